//! The CUDA path against the CPU reference: each kernel on random inputs of several sizes (odd ones
//! and remainder strips included), then StyA2K on the golden fixtures (tests/stya2k_golden.rs, same
//! numbers, same 1e-4 tolerance). Built only with `--features cuda`; every test passes with a note
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
