//! StyA2K on CUDA: model-only and on-GPU pipeline fps at 256^2, 512^2, 720p and 1080p in f32, f16 and
//! bf16, the attention kernels alone against their floors, and the half-precision error against f32.
//! Prints markdown tables (benches/gpu/run.sh keeps them for benches/RESULTS.md).
//!
//! Run: `cargo bench --no-default-features --features cuda --bench cuda_stya2k` on a machine with a
//! GPU, or the prebuilt binary from benches/gpu/build.sh. Arguments: `--quick` (fewer repetitions).
//!
//! Method (METHOD.md of the device docs): formula weights, synthetic non-zero images, the style
//! encoded once; 3 warm-up runs, then repetitions until 2 s (or 30) have passed, each timed from a
//! device synchronisation to the next; the median is reported.
use std::time::Duration;

use candle_core::{DType, Device, Result, Tensor};
use stylestream::checkpoint::{self, formula, WeightSource};
use stylestream::models::stya2k::{pad_to_multiple, StyA2K, PAD_MULTIPLE};
use stylestream::ops::blocked_attention::{block, distributed_attention, progressive_attention};
use stylestream::ops::convert::{planar_to_rgb8, rgb8_to_planar};

mod common;
use common::{image, rgb8, time};

/// Device-to-device copy bandwidth (bytes read + written per second) and f32 FMA-pipe rate of an H100
/// SXM: the copy was measured on the device machine (~3.0 TB/s, KINDS.md); 67 TFLOP/s is the
/// datasheet f32 (non-tensor) rate, which is what these kernels use.
const BANDWIDTH: f64 = 3.0e12;
const F32_FLOPS: f64 = 67e12;

const SIZES: [(&str, usize, usize); 4] =
    [("256x256", 256, 256), ("512x512", 512, 512), ("720p", 720, 1280), ("1080p", 1080, 1920)];

fn main() -> anyhow::Result<()> {
    let quick = std::env::args().any(|a| a == "--quick");
    let budget = if quick { Duration::from_millis(300) } else { Duration::from_secs(2) };
    let gpu = Device::new_cuda(0)?;

    println!("## StyA2K on CUDA, style 512x512 encoded once, formula weights\n");
    println!("| size | precision | model ms | model fps | pipeline ms | pipeline fps |");
    println!("|---|---|---|---|---|---|");
    for precision in [DType::F32, DType::F16, DType::BF16] {
        let model =
            checkpoint::load_stya2k_as(&WeightSource::Formula(formula::GOLDEN_SEED), &gpu, precision)?;
        let style = image(512, 512, 1, &gpu)?.to_dtype(precision)?;
        let features = model.encode_style(&style)?;
        for (name, h, w) in SIZES {
            // Model only: the padded planar frame already on the GPU.
            let content = pad_to_multiple(&image(h, w, 2, &gpu)?)?.to_dtype(precision)?;
            let model_s = time(&gpu, budget, || model.trace(&content, &features, 1.0).map(|t| t.output))?;
            // Pipeline on the GPU: 8-bit frame from host memory, convert, model, convert, 8-bit back.
            let frame = rgb8(h, w)?;
            let pipeline_s = time(&gpu, budget, || {
                let planar = rgb8_to_planar(&frame.to_device(&gpu)?, PAD_MULTIPLE, precision)?;
                let out = model.trace(&planar, &features, 1.0)?.output;
                planar_to_rgb8(&out, h, w)?.to_device(&Device::Cpu)
            })?;
            println!(
                "| {name} | {precision:?} | {:.2} | {:.1} | {:.2} | {:.1} |",
                model_s * 1e3,
                1.0 / model_s,
                pipeline_s * 1e3,
                1.0 / pipeline_s
            );
        }
    }

    println!("\n## Half precision against f32 (512x512 golden images, output relative L2)\n");
    println!("| precision | rel L2 vs f32 |\n|---|---|");
    let reference = stylise(&gpu, DType::F32)?;
    for precision in [DType::F16, DType::BF16] {
        let out = stylise(&gpu, precision)?.to_dtype(DType::F32)?;
        println!("| {precision:?} | {:.3e} |", rel_l2(&out, &reference)?);
    }

    println!(
        "\n## Attention kernels alone (relu3_1 geometry: 8 heads x 32 channels, R = 8; style 512x512)\n"
    );
    println!("| kernel | content | precision | ms | floor ms (bytes) | floor ms (f32 FLOPs) | x floor |");
    println!("|---|---|---|---|---|---|---|");
    for (name, h, w) in [("512x512", 512, 512), ("1080p", 1088, 1920)] {
        for precision in [DType::F32, DType::F16] {
            attention(&gpu, budget, name, h / 4, w / 4, precision)?;
        }
    }
    Ok(())
}

/// Times the attention ops at one relu3_1 feature size `fh x fw` against a 128x128 style map.
fn attention(gpu: &Device, budget: Duration, name: &str, fh: usize, fw: usize, dtype: DType) -> Result<()> {
    let (heads, d, region, style) = (8usize, 32usize, 8usize, 128usize);
    let rand = |shape: &[usize]| -> Result<Tensor> { Tensor::rand(-1f32, 1f32, shape, gpu)?.to_dtype(dtype) };
    let q = rand(&[1, heads * d, fh, fw])?;
    let n_s = (style / region).pow(2);
    let (k_bar, v_bar) = (rand(&[heads, n_s, d])?, rand(&[heads, n_s, d])?);
    let k = block(&rand(&[1, heads * d, style, style])?, region, heads)?;
    let v = block(&rand(&[1, heads * d, style, style])?, region, heads)?;
    let bytes_per = dtype.size_in_bytes() as f64;
    let pixels = (fh * fw) as f64;
    let r = (region * region) as f64;
    let n_c = ((fh / region) * (fw / region)) as f64;
    let map = pixels * (heads * d) as f64;

    let da = time(gpu, budget, || distributed_attention(&q, &k_bar, &v_bar, region))?;
    let da_bytes = (2.0 * map + 2.0 * (heads * n_s * d) as f64) * bytes_per;
    let da_flops = 2.0 * pixels * (heads * n_s) as f64 * (2 * d) as f64;
    row("distributed", name, dtype, da, da_bytes, da_flops);

    let pa = time(gpu, budget, || progressive_attention(&q, &k, &v, region))?;
    let pa_bytes = (2.0 * map + 2.0 * (heads * n_s) as f64 * r * d as f64) * bytes_per;
    let pa_flops =
        2.0 * n_c * (heads * n_s) as f64 * r * d as f64 + 2.0 * pixels * heads as f64 * r * (2 * d) as f64;
    row("progressive", name, dtype, pa, pa_bytes, pa_flops);
    Ok(())
}

fn row(kernel: &str, size: &str, dtype: DType, seconds: f64, bytes: f64, flops: f64) {
    let (fb, ff) = (bytes / BANDWIDTH, flops / F32_FLOPS);
    println!(
        "| {kernel} | {size} | {dtype:?} | {:.3} | {:.3} | {:.3} | {:.1} |",
        seconds * 1e3,
        fb * 1e3,
        ff * 1e3,
        seconds / fb.max(ff)
    );
}

/// The 512x512 golden content stylised with the golden style in `dtype`.
fn stylise(gpu: &Device, dtype: DType) -> Result<Tensor> {
    let model: StyA2K = checkpoint::load_stya2k_as(&WeightSource::Formula(formula::GOLDEN_SEED), gpu, dtype)
        .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
    let style = image(512, 512, 1, gpu)?.to_dtype(dtype)?;
    let features = model.encode_style(&style)?;
    model.stylize(&image(512, 512, 2, gpu)?.to_dtype(dtype)?, &features, 1.0)?.to_device(&Device::Cpu)
}

fn rel_l2(a: &Tensor, b: &Tensor) -> Result<f64> {
    let (a, b) = (a.to_dtype(DType::F64)?, b.to_dtype(DType::F64)?);
    let num = (&a - &b)?.sqr()?.sum_all()?.to_scalar::<f64>()?;
    let den = b.sqr()?.sum_all()?.to_scalar::<f64>()?;
    Ok((num / den).sqrt())
}
