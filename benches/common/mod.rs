//! Shared by the CUDA benches: timing between device synchronisations and synthetic inputs.
#![allow(dead_code)] // each bench uses a subset
use std::time::{Duration, Instant};

use candle_core::{Device, Result, Tensor};

/// Median seconds of `f`, each run between two device synchronisations.
pub fn time<T>(gpu: &Device, budget: Duration, mut f: impl FnMut() -> Result<T>) -> Result<f64> {
    for _ in 0..3 {
        f()?;
    }
    gpu.synchronize()?;
    let mut runs = Vec::new();
    let start = Instant::now();
    while runs.len() < 5 || (start.elapsed() < budget && runs.len() < 30) {
        let t = Instant::now();
        let out = f()?;
        gpu.synchronize()?;
        runs.push(t.elapsed().as_secs_f64());
        drop(out);
    }
    runs.sort_by(f64::total_cmp);
    Ok(runs[runs.len() / 2])
}

/// A smooth synthetic RGB image `[1, 3, h, w]` in [0, 1], different per `seed`, never constant.
pub fn image(h: usize, w: usize, seed: usize, device: &Device) -> Result<Tensor> {
    let ys = Tensor::arange(0f32, h as f32, device)?.reshape((1, 1, h, 1))?;
    let xs = Tensor::arange(0f32, w as f32, device)?.reshape((1, 1, 1, w))?;
    let channels = (0..3)
        .map(|c| {
            let (fy, fx) = (0.013 * (c + seed) as f64, 0.021 / (c + seed) as f64);
            (ys.affine(fy, 0.0)?.broadcast_add(&xs.affine(fx, c as f64)?)?.sin()? + 1.0)? * 0.5
        })
        .collect::<Result<Vec<_>>>()?;
    Tensor::cat(&channels, 1)
}

/// A packed 8-bit RGB frame `[h, w, 3]` in host memory.
pub fn rgb8(h: usize, w: usize) -> Result<Tensor> {
    let bytes: Vec<u8> = (0..h * w * 3).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
    Tensor::from_vec(bytes, (h, w, 3), &Device::Cpu)
}
