//! The CUDA path against the CPU reference: each kernel on random inputs of several sizes (odd ones
//! and remainder strips included), then StyA2K on the golden fixtures (tests/stya2k_golden.rs, same
//! numbers, same 1e-4 tolerance), then NeAT: its streaming attention, its content prior on the test
//! photos (the CPU reference is itself checked against OpenCV in tests/neat_prior.rs) and the whole
//! model against the same model on the CPU. Built only with `--features cuda`; every test passes with a note
//! when no GPU can be opened, so the binary can be built and run anywhere. One binary, so that the GPU
//! machine gets a single prebuilt test program (benches/gpu/build.sh).
#![cfg(feature = "cuda")]
mod common;

use candle_core::{DType, Device, Tensor};
use common::{golden, golden_image, rel_l2, GoldenImage};
use stylestream::checkpoint::{self, formula, WeightSource};
use stylestream::models::stya2k::StyA2K;
use stylestream::ops::blocked_attention::{
    block, distributed_attention, progressive_attention, CHECK_TOLERANCE_F32, CHECK_TOLERANCE_HALF,
};
use stylestream::ops::convert::{planar_to_rgb8, rgb8_to_planar};
use stylestream::ops::streaming_attention::{self as streaming, streaming_attention};
use stylestream::prior::{ColourStats, PriorConfig};

fn gpu() -> Option<Device> {
    match Device::new_cuda(0) {
        Ok(d) => Some(d),
        Err(e) => {
            println!("skipped: no CUDA device ({})", e.to_string().lines().next().unwrap_or_default());
            None
        }
    }
}

/// Uniform values in [-scale, scale) from a splitmix64 stream: fresh for every `seed`, never zeros.
fn random(shape: &[usize], seed: u64, scale: f32) -> Tensor {
    let n: usize = shape.iter().product();
    let mut z = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let values: Vec<f32> = (0..n)
        .map(|_| {
            z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut x = z;
            x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            x ^= x >> 31;
            ((x >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * scale
        })
        .collect();
    Tensor::from_vec(values, shape, &Device::Cpu).unwrap()
}

/// One attention problem: heads, d_k, d_v, content H x W, style H x W, region.
#[derive(Debug, Clone, Copy)]
struct Case {
    heads: usize,
    d_k: usize,
    d_v: usize,
    content: (usize, usize),
    style: (usize, usize),
    region: usize,
}

const CASES: [Case; 6] = [
    // StyA2K relu3_1 and relu4_1 at 512x512, relu5_1 of a 1080p frame against a 512 style.
    Case { heads: 8, d_k: 32, d_v: 32, content: (128, 128), style: (128, 128), region: 8 },
    Case { heads: 8, d_k: 64, d_v: 64, content: (64, 64), style: (64, 64), region: 8 },
    Case { heads: 8, d_k: 64, d_v: 64, content: (68, 120), style: (32, 32), region: 4 },
    // Odd everything: head dims, regions, remainder strips, more style than content patches.
    Case { heads: 3, d_k: 5, d_v: 7, content: (13, 11), style: (17, 19), region: 3 },
    Case { heads: 2, d_k: 33, d_v: 9, content: (21, 45), style: (10, 15), region: 5 },
    Case { heads: 1, d_k: 1, d_v: 64, content: (9, 9), style: (3, 3), region: 3 },
];

fn tolerance(dtype: DType) -> f64 {
    if dtype == DType::F32 {
        CHECK_TOLERANCE_F32
    } else {
        CHECK_TOLERANCE_HALF
    }
}

/// Runs `op` on the CPU and on `gpu` with the same inputs (already rounded to `dtype`) and returns the
/// relative L2 distance of the results.
fn compare(gpu: &Device, dtype: DType, inputs: [Tensor; 3], op: impl Fn(&[Tensor]) -> Tensor) -> f64 {
    let cpu: Vec<Tensor> = inputs.iter().map(|t| t.to_dtype(dtype).unwrap()).collect();
    let dev: Vec<Tensor> = cpu.iter().map(|t| t.to_device(gpu).unwrap()).collect();
    let want = op(&cpu);
    let got = op(&dev).to_device(&Device::Cpu).unwrap();
    assert_eq!(got.dtype(), dtype);
    rel_l2(&got, &want)
}

#[test]
fn attention_kernels_match_the_cpu_reference() {
    let Some(gpu) = gpu() else { return };
    for (i, case) in CASES.iter().enumerate() {
        let Case { heads, d_k, d_v, content: (h, w), style: (sh, sw), region } = *case;
        let n_s = (sh / region) * (sw / region);
        for dtype in [DType::F32, DType::F16, DType::BF16] {
            let seed = 100 * i as u64;
            let q = random(&[1, heads * d_k, h, w], seed + 1, 1.0);
            // Aggregates of the distributed attention, [heads, n_s, d].
            let k_bar = random(&[heads, n_s, d_k], seed + 2, 1.0);
            let v_bar = random(&[heads, n_s, d_v], seed + 3, 1.0);
            let da = compare(&gpu, dtype, [q.clone(), k_bar, v_bar], |t| {
                distributed_attention(&t[0], &t[1], &t[2], region).unwrap()
            });
            // Blocked style keys and values, [heads, n_s, r, d].
            let k = block(&random(&[1, heads * d_k, sh, sw], seed + 4, 1.0), region, heads).unwrap();
            let v = block(&random(&[1, heads * d_v, sh, sw], seed + 5, 1.0), region, heads).unwrap();
            let pa = compare(&gpu, dtype, [q, k, v], |t| {
                progressive_attention(&t[0], &t[1], &t[2], region).unwrap()
            });
            println!("{case:?} {dtype:?}: distributed rel L2 {da:.2e}, progressive {pa:.2e}");
            assert!(da <= tolerance(dtype), "{case:?} {dtype:?} distributed: {da:.3e}");
            assert!(pa <= tolerance(dtype), "{case:?} {dtype:?} progressive: {pa:.3e}");
        }
    }
}

#[test]
fn frame_conversions_match_the_cpu_reference() {
    let Some(gpu) = gpu() else { return };
    for (i, (h, w)) in [(1, 1), (37, 53), (64, 64), (1080, 1920)].into_iter().enumerate() {
        let bytes = ((random(&[h, w, 3], 7 + i as u64, 1.0) + 1.0).unwrap() * 127.9).unwrap();
        let frame = bytes.to_dtype(DType::U8).unwrap();
        for dtype in [DType::F32, DType::F16, DType::BF16] {
            let want = rgb8_to_planar(&frame, 64, dtype).unwrap();
            let got = rgb8_to_planar(&frame.to_device(&gpu).unwrap(), 64, dtype).unwrap();
            let err = rel_l2(&got.to_device(&Device::Cpu).unwrap(), &want);
            assert_eq!(err, 0.0, "rgb8_to_planar {h}x{w} {dtype:?}");
            // Values outside [0, 1] too, to check the clamp.
            let planar = ((random(want.dims(), 11 + i as u64, 0.7) + 0.5).unwrap()).to_dtype(dtype).unwrap();
            let want = planar_to_rgb8(&planar, h, w).unwrap().to_vec3::<u8>().unwrap();
            let got =
                planar_to_rgb8(&planar.to_device(&gpu).unwrap(), h, w).unwrap().to_vec3::<u8>().unwrap();
            assert!(got == want, "planar_to_rgb8 {h}x{w} {dtype:?}");
        }
    }
}

/// StyA2K with formula weights on `device`, or with `model` loaded there.
fn golden_case(case: &str, size: usize, model: &StyA2K, device: &Device) {
    let on = |t: Tensor| t.to_device(device).unwrap();
    let content = on(golden_image(GoldenImage::Content, size, size));
    let style = on(golden_image(GoldenImage::Style, size, size));
    let features = model.encode_style(&style).unwrap();
    let trace = model.trace(&content, &features, 1.0).unwrap();
    let want = golden(case);
    let cpu = |t: &Tensor| t.to_device(&Device::Cpu).unwrap();
    let mut computed = vec![
        ("a2k3", cpu(&trace.a2k3)),
        ("transform", cpu(&trace.transform)),
        ("output", cpu(&trace.output)),
    ];
    let taps = ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"];
    for (name, tap) in taps.iter().zip(&trace.content_taps) {
        computed.push((name, cpu(tap)));
    }
    for (name, got) in computed {
        let key = if name.starts_with("relu") { format!("content_{name}") } else { name.to_string() };
        if let Some(expected) = want.get(&key) {
            let err = rel_l2(&got, expected);
            println!("{case} {key} on CUDA: rel L2 {err:.3e}");
            assert!(err <= 1e-4, "{case} {key}: rel L2 {err:.3e} > 1e-4");
        }
    }
}

#[test]
fn golden_fixtures_match_on_cuda() {
    let Some(gpu) = gpu() else { return };
    let model = checkpoint::load_stya2k(&WeightSource::Formula(formula::GOLDEN_SEED), &gpu).unwrap();
    for (case, size) in [("s64", 64), ("s128", 128), ("s256", 256)] {
        golden_case(case, size, &model, &gpu);
    }
}

#[test]
fn golden_real_trained_a2k_matches_on_cuda() {
    let Some(gpu) = gpu() else { return };
    let a2k =
        checkpoint::read_official("a2k", &common::shared("fixtures/official/latest_net_A2K.pth")).unwrap();
    let model = StyA2K::new(common::formula_with(a2k, formula::GOLDEN_SEED).set_device(gpu.clone())).unwrap();
    golden_case("s128_realA2K", 128, &model, &gpu);
}

/// Streaming attention problems: d_k, d_v, content H x W, style keys. PAMA's 256 channels at relu4_1
/// (a 360x640 frame against a 256x256 style), then odd everything: head dims that need padding, a
/// query count that is no multiple of the 64-query block, key counts that leave a partial tile or
/// are a single key.
const STREAMING_CASES: [(usize, usize, (usize, usize), usize); 7] = [
    (256, 256, (45, 80), 1024),
    (256, 256, (17, 23), 333),
    (128, 128, (8, 8), 32),
    (64, 64, (1, 1), 2),
    (5, 7, (13, 11), 37),
    (33, 100, (9, 9), 1),
    (200, 129, (3, 67), 65),
];

#[test]
fn streaming_attention_matches_the_cpu_reference() {
    let Some(gpu) = gpu() else { return };
    for (i, &(d_k, d_v, (h, w), n_k)) in STREAMING_CASES.iter().enumerate() {
        for dtype in [DType::F32, DType::F16, DType::BF16] {
            let seed = 1000 + 10 * i as u64;
            // Non-negative like PAMA's ReLU6 features; the scale keeps the softmax neither one-hot nor flat.
            let scale = 2.0 / (d_k as f32).sqrt();
            let q = (random(&[1, d_k, h, w], seed, scale) + scale as f64).unwrap();
            let k = (random(&[n_k, d_k], seed + 1, scale) + scale as f64).unwrap();
            let v = random(&[n_k, d_v], seed + 2, 1.0);
            let err = compare(&gpu, dtype, [q, k, v], |t| streaming_attention(&t[0], &t[1], &t[2]).unwrap());
            println!("streaming d_k {d_k} d_v {d_v} {h}x{w} keys {n_k} {dtype:?}: rel L2 {err:.2e}");
            let tolerance = if dtype == DType::F32 {
                streaming::CHECK_TOLERANCE_F32
            } else {
                streaming::CHECK_TOLERANCE_HALF
            };
            assert!(err <= tolerance, "streaming {d_k}/{d_v} {h}x{w} {n_k} {dtype:?}: {err:.3e}");
        }
    }
}

/// A test photo as packed RGB bytes `[H, W, 3]` (at most `max_side` on its longer side).
fn photo_rgb8(name: &str, max_side: u32) -> Tensor {
    let path = common::fixture(&format!("images/{name}"));
    let rgb = stylestream::image_io::read_picture(&path, Some(max_side), &Device::Cpu).unwrap().rgb;
    let bytes = (rgb * 255.0).unwrap().round().unwrap().clamp(0f32, 255f32).unwrap();
    bytes.squeeze(0).unwrap().permute((1, 2, 0)).unwrap().to_dtype(DType::U8).unwrap()
}

#[test]
fn content_prior_matches_the_cpu_reference() {
    let Some(gpu) = gpu() else { return };
    let style = ColourStats::of(
        &stylestream::image_io::read_picture(
            &common::fixture("images/hubble_deep_field.jpg"),
            Some(256),
            &Device::Cpu,
        )
        .unwrap()
        .rgb,
    )
    .unwrap();
    // Real photos at two sizes, then frames smaller than the bilateral window (reflection wraps).
    let mut frames = vec![photo_rgb8("chelsea.png", 451), photo_rgb8("hubble_deep_field.jpg", 333)];
    for (i, (h, w)) in [(1, 1), (5, 3), (37, 53)].into_iter().enumerate() {
        let bytes = ((random(&[h, w, 3], 50 + i as u64, 1.0) + 1.0).unwrap() * 127.9).unwrap();
        frames.push(bytes.to_dtype(DType::U8).unwrap());
    }
    for frame in &frames {
        let planar = (frame.permute((2, 0, 1)).unwrap().to_dtype(DType::F32).unwrap() / 255.0)
            .unwrap()
            .unsqueeze(0)
            .unwrap();
        for config in [PriorConfig::default(), PriorConfig::default().with_blur(0)] {
            for dtype in [DType::F32, DType::F16, DType::BF16] {
                for source in [frame, &planar] {
                    let source =
                        source.to_dtype(if source.dtype() == DType::U8 { DType::U8 } else { dtype }).unwrap();
                    let prior = |device: &Device| {
                        let source = source.to_device(device).unwrap();
                        let out =
                            stylestream::ops::prior::content_prior(&source, &style, &config, dtype).unwrap();
                        out.to_device(&Device::Cpu).unwrap()
                    };
                    let (want, got) = (prior(&Device::Cpu), prior(&gpu));
                    assert_eq!(got.dtype(), dtype);
                    let err = rel_l2(&got, &want);
                    let worst = (got.to_dtype(DType::F32).unwrap() - want.to_dtype(DType::F32).unwrap())
                        .unwrap()
                        .abs()
                        .unwrap()
                        .max_all()
                        .unwrap()
                        .to_scalar::<f32>()
                        .unwrap();
                    println!(
                        "prior {:?} from {:?} blur {} {dtype:?}: rel L2 {err:.2e}, max |diff| {worst:.2e}",
                        frame.dims(),
                        source.dtype(),
                        config.blur_kernel
                    );
                    let tolerance = stylestream::ops::prior::check_max_abs(dtype);
                    assert!(worst <= tolerance, "prior {:?} {dtype:?}: max |diff| {worst:.3e}", frame.dims());
                    // Relative L2 as for every kernel, except for a single pixel: no colour variance,
                    // so the ridge's gain (~300) magnifies last-bit differences (ops::prior docs).
                    if dtype == DType::F32 && frame.elem_count() > 3 {
                        assert!(err <= 1e-5, "prior {:?}: rel L2 {err:.3e}", frame.dims());
                    }
                    if dtype == DType::F16 {
                        assert!(err <= 1e-2, "prior {:?} f16: rel L2 {err:.3e}", frame.dims());
                    }
                }
            }
        }
    }
}

#[test]
fn neat_on_cuda_matches_neat_on_the_cpu() {
    let Some(gpu) = gpu() else { return };
    let source = WeightSource::NeatFormula(formula::GOLDEN_SEED);
    let frame = photo_rgb8("chelsea.png", 120); // 120 x 80: padded to 120 x 80, relu4_1 15 x 10
    let style = golden_image(GoldenImage::Style, 64, 48);
    let controls = stylestream::models::neat::Controls::default();
    let run = |device: &Device, dtype: DType| {
        let model = checkpoint::load_neat_as(&source, device, dtype).unwrap();
        let encoded = model.encode_style(&style.to_device(device).unwrap().to_dtype(dtype).unwrap()).unwrap();
        let bytes = model.stylize_rgb8(&frame.to_device(device).unwrap(), &encoded, controls).unwrap();
        let planar = (frame.permute((2, 0, 1)).unwrap().to_dtype(DType::F32).unwrap() / 255.0)
            .unwrap()
            .unsqueeze(0)
            .unwrap();
        // The planar path with blur 0 (the CPU prior needs OpenCV for a blur, absent from this build).
        let mut sharp = model.clone();
        sharp.set_prior(PriorConfig::default().with_blur(0)).unwrap();
        let trace = sharp
            .trace(&planar.to_device(device).unwrap().to_dtype(dtype).unwrap(), &encoded, controls)
            .unwrap();
        let cpu = |t: &Tensor| t.to_device(&Device::Cpu).unwrap().to_dtype(DType::F32).unwrap();
        (cpu(&bytes), cpu(&trace.output), cpu(&trace.content_features))
    };
    let (bytes_cpu, out_cpu, features_cpu) = run(&Device::Cpu, DType::F32);
    for (dtype, tolerance) in [(DType::F32, 1e-4), (DType::F16, 5e-2), (DType::BF16, 1e-1)] {
        let (bytes, out, features) = run(&gpu, dtype);
        let (e_out, e_features) = (rel_l2(&out, &out_cpu), rel_l2(&features, &features_cpu));
        let worst =
            (bytes - &bytes_cpu).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
        println!("NeAT on CUDA {dtype:?}: output rel L2 {e_out:.2e}, relu4_1 {e_features:.2e}, bytes max |diff| {worst}");
        assert!(
            e_out <= tolerance && e_features <= tolerance,
            "NeAT {dtype:?}: {e_out:.3e} / {e_features:.3e}"
        );
        if dtype == DType::F32 {
            assert!(worst <= 1.0, "NeAT rgb8 path on CUDA differs by {worst} levels");
        }
    }
}
