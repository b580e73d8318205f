//! NeAT on CUDA: model-only and end-to-end fps at 512x512, 1080p and 4K in f32 and f16 with peak GPU
//! memory, the streaming attention kernel's TFLOP/s against a measured cuBLAS matrix-product ceiling,
//! and the content prior alone. Prints markdown tables (benches/gpu/run.sh keeps them for
//! benches/RESULTS.md).
//!
//! Run: `cargo bench --no-default-features --features cuda --bench cuda_neat` on a machine with a GPU,
//! or the prebuilt binary from benches/gpu/build.sh. Arguments: `--quick` (fewer repetitions).
//!
//! Method (METHOD.md of the device docs), as benches/cuda_stya2k.rs: formula weights, synthetic
//! non-zero images, the style (512x512) encoded once; 3 warm-up runs, then repetitions until the
//! budget (2 s, or 30 runs) is spent, each timed from a device synchronisation to the next; the median
//! is reported. Model only: the planar frame already on the GPU, `Neat::stylize` (prior kernels
//! included). End to end: a packed 8-bit frame in host memory uploaded, `Neat::stylize_rgb8` (bytes in,
//! bytes out, everything between on the GPU), the bytes copied back. Peak memory: the device's used
//! memory (`cuMemGetInfo`, so the CUDA context and candle's pool included) sampled every 0.2 ms by a
//! second thread while a configuration runs, minus the idle level measured before the model loads.
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use candle_core::{DType, Device, Result, Tensor};
use stylestream::checkpoint::{self, formula, WeightSource};
use stylestream::models::neat::{Controls, PAD_MULTIPLE};
use stylestream::ops::streaming_attention::streaming_attention;
use stylestream::prior::{ColourStats, PriorConfig};

mod common;
use common::{image, rgb8, time};

const SIZES: [(&str, usize, usize); 3] = [("512x512", 512, 512), ("1080p", 1080, 1920), ("4K", 2160, 3840)];

fn main() -> anyhow::Result<()> {
    let quick = std::env::args().any(|a| a == "--quick");
    let budget = if quick { Duration::from_millis(300) } else { Duration::from_secs(2) };
    let gpu = Device::new_cuda(0)?;
    let memory = Memory::new(&gpu)?;

    println!("## NeAT on CUDA, style 512x512 encoded once, formula weights (4 PAMA blocks)\n");
    println!("| size | precision | model ms | model fps | end-to-end ms | end-to-end fps | peak GPU MiB |");
    println!("|---|---|---|---|---|---|---|");
    for precision in [DType::F32, DType::F16] {
        let model =
            checkpoint::load_neat_as(&WeightSource::NeatFormula(formula::GOLDEN_SEED), &gpu, precision)?;
        let style = model.encode_style(&image(512, 512, 1, &gpu)?.to_dtype(precision)?)?;
        for (name, h, w) in SIZES {
            let content = image(h, w, 2, &gpu)?.to_dtype(precision)?;
            let frame = rgb8(h, w)?;
            let peak = memory.peak(|| -> Result<(f64, f64)> {
                let model_s = time(&gpu, budget, || model.stylize(&content, &style, Controls::default()))?;
                let e2e_s = time(&gpu, budget, || {
                    model
                        .stylize_rgb8(&frame.to_device(&gpu)?, &style, Controls::default())?
                        .to_device(&Device::Cpu)
                })?;
                Ok((model_s, e2e_s))
            })?;
            let ((model_s, e2e_s), bytes) = peak;
            println!(
                "| {name} | {precision:?} | {:.2} | {:.1} | {:.2} | {:.1} | {:.0} |",
                model_s * 1e3,
                1.0 / model_s,
                e2e_s * 1e3,
                1.0 / e2e_s,
                bytes as f64 / (1 << 20) as f64
            );
        }
    }

    println!(
        "\n## Streaming attention kernel alone (PAMA at relu4_1: 256 channels, style 512x512 = 4096 keys)\n"
    );
    let ceiling_f16 = matmul_tflops(&gpu, budget, DType::F16)?;
    let ceiling_f32 = matmul_tflops(&gpu, budget, DType::F32)?;
    println!("Measured ceilings: cuBLAS (candle matmul) 8192^3 f16 {ceiling_f16:.0} TFLOP/s, f32 {ceiling_f32:.1} TFLOP/s.\n");
    println!("| content | precision | queries | ms per block | TFLOP/s | of matmul ceiling |");
    println!("|---|---|---|---|---|---|");
    for (name, h, w) in SIZES {
        for (precision, ceiling) in [(DType::F32, ceiling_f32), (DType::F16, ceiling_f16)] {
            let (fh, fw) = (h.div_ceil(PAD_MULTIPLE), w.div_ceil(PAD_MULTIPLE));
            let (d, n_k) = (256usize, 4096usize);
            let rand = |shape: &[usize], lo: f32| -> Result<Tensor> {
                Tensor::rand(lo, 1f32, shape, &gpu)?.to_dtype(precision)
            };
            let (q, k, v) = (rand(&[1, d, fh, fw], 0.0)?, rand(&[n_k, d], 0.0)?, rand(&[n_k, d], -1.0)?);
            let s = time(&gpu, budget, || streaming_attention(&q, &k, &v))?;
            // Scores and weighted values: 2 n_q n_k (d_k + d_v) floating-point operations.
            let tflops = 2.0 * (fh * fw) as f64 * n_k as f64 * (2 * d) as f64 / s / 1e12;
            println!(
                "| {name} | {precision:?} | {} | {:.3} | {tflops:.1} | {:.0} % |",
                fh * fw,
                s * 1e3,
                100.0 * tflops / ceiling
            );
        }
    }

    println!("\n## Content prior alone (blur 7, bilateral d = 25, recolour; from 8-bit frames on the GPU)\n");
    println!("| size | ms |\n|---|---|");
    let style = ColourStats::of(&image(64, 64, 1, &Device::Cpu)?).map_err(candle_core::Error::wrap)?;
    for (name, h, w) in SIZES {
        let frame = rgb8(h, w)?.to_device(&gpu)?;
        let s = time(&gpu, budget, || {
            stylestream::ops::prior::content_prior(&frame, &style, &PriorConfig::default(), DType::F16)
        })?;
        println!("| {name} | {:.3} |", s * 1e3);
    }
    Ok(())
}

/// TFLOP/s of an 8192 x 8192 x 8192 matrix product (cuBLAS through candle) on random data.
fn matmul_tflops(gpu: &Device, budget: Duration, dtype: DType) -> Result<f64> {
    let n = 8192usize;
    let a = Tensor::rand(-1f32, 1f32, (n, n), gpu)?.to_dtype(dtype)?;
    let b = Tensor::rand(-1f32, 1f32, (n, n), gpu)?.to_dtype(dtype)?;
    let s = time(gpu, budget, || a.matmul(&b))?;
    Ok(2.0 * (n as f64).powi(3) / s / 1e12)
}

/// Peak device memory while a closure runs, sampled by a second thread.
struct Memory {
    context: Arc<candle_core::cuda_backend::cudarc::driver::CudaContext>,
    idle: usize,
}

impl Memory {
    fn new(gpu: &Device) -> Result<Self> {
        let context = gpu.as_cuda_device()?.cuda_stream().context().clone();
        let idle = used(&context)?;
        Ok(Memory { context, idle })
    }

    /// Runs `f`; returns its result and the largest used memory seen meanwhile, above the idle level.
    fn peak<T>(&self, f: impl FnOnce() -> Result<T>) -> Result<(T, usize)> {
        let stop = Arc::new(AtomicBool::new(false));
        let peak = Arc::new(AtomicUsize::new(0));
        let sampler = {
            let (stop, peak, context) = (stop.clone(), peak.clone(), self.context.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    if let Ok(bytes) = used(&context) {
                        peak.fetch_max(bytes, Ordering::Relaxed);
                    }
                    std::thread::sleep(Duration::from_micros(200));
                }
            })
        };
        let out = f();
        stop.store(true, Ordering::Relaxed);
        sampler.join().map_err(|_| candle_core::Error::Msg("memory sampler panicked".into()))?;
        Ok((out?, peak.load(Ordering::Relaxed).saturating_sub(self.idle)))
    }
}

fn used(context: &candle_core::cuda_backend::cudarc::driver::CudaContext) -> Result<usize> {
    let (free, total) = context.mem_get_info().map_err(|e| candle_core::Error::Msg(e.to_string()))?;
    Ok(total - free)
}
