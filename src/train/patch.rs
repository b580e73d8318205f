//! Sobel-guided patch sampling for NeAT's patch co-occurrence discriminators (L_patch_simple /
//! L_patch_complex), the paper's weapon against style halos.
//!
//! Patches are drawn at random, scored by the mean Sobel gradient magnitude of their region (for
//! output patches on the content image's Sobel map, since the output's own edges are what training
//! changes; for style patches on the style image's), sorted by score and split into halves: the low
//! half holds "simple" (flat, low-frequency) regions, the high half "complex" (edges, texture) ones.
//! Each half goes to its own discriminator, so flat content regions learn to look like flat style
//! regions instead of carrying the edge texture that makes halos.
//!
//! Scores are image processing on the inputs and carry no gradient.
use candle_core::{DType, Result, Tensor};

use crate::checkpoint::formula;

/// Rec. 601 luma weights: the Sobel map is computed on brightness.
const LUMA: [f32; 3] = [0.299, 0.587, 0.114];

/// Top-left corner of a square patch, in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Patch {
    pub y: usize,
    pub x: usize,
}

/// The Sobel gradient magnitude `sqrt(gx^2 + gy^2)` of an image's luma (3x3 Sobel kernels, borders
/// replicated), `height x width`, row-major.
#[derive(Debug, Clone)]
pub struct SobelMap {
    width: usize,
    magnitude: Vec<f32>,
}

impl SobelMap {
    /// Of an RGB image `[3, H, W]` or `[1, 3, H, W]`.
    pub fn of(image: &Tensor) -> Result<Self> {
        let image = image.to_dtype(DType::F32)?;
        let image = if image.rank() == 4 { image.squeeze(0)? } else { image };
        let (c, height, width) = image.dims3()?;
        if c != 3 {
            candle_core::bail!("Sobel map: expected an RGB image, got {c} channels");
        }
        let planes = image.to_vec3::<f32>()?;
        let luma = |y: isize, x: isize| {
            let (y, x) = (y.clamp(0, height as isize - 1) as usize, x.clamp(0, width as isize - 1) as usize);
            (0..3).map(|ch| LUMA[ch] * planes[ch][y][x]).sum::<f32>()
        };
        let mut magnitude = Vec::with_capacity(height * width);
        for y in 0..height as isize {
            for x in 0..width as isize {
                let gx = (luma(y - 1, x + 1) + 2.0 * luma(y, x + 1) + luma(y + 1, x + 1))
                    - (luma(y - 1, x - 1) + 2.0 * luma(y, x - 1) + luma(y + 1, x - 1));
                let gy = (luma(y + 1, x - 1) + 2.0 * luma(y + 1, x) + luma(y + 1, x + 1))
                    - (luma(y - 1, x - 1) + 2.0 * luma(y - 1, x) + luma(y - 1, x + 1));
                magnitude.push(gx.hypot(gy));
            }
        }
        Ok(Self { width, magnitude })
    }

    /// Mean magnitude over the `size x size` region at `patch`.
    pub fn patch_mean(&self, patch: Patch, size: usize) -> f64 {
        let rows = self.magnitude[patch.y * self.width..].chunks(self.width).take(size);
        let sum: f64 =
            rows.map(|row| row[patch.x..patch.x + size].iter().map(|&m| m as f64).sum::<f64>()).sum();
        sum / (size * size) as f64
    }
}

/// `count` patch corners uniform over a `height x width` image (patches of `size` fit inside), a pure
/// function of `(seed, stream, draw)`: `draw` numbers the sets of one stream (the training step).
pub fn sample(
    seed: u64,
    stream: &str,
    draw: u64,
    count: usize,
    size: usize,
    height: usize,
    width: usize,
) -> Vec<Patch> {
    let corner = |i: u64, room: usize| {
        let u = (formula::uniform(stream, seed, i) + 1.0) / 2.0; // [0, 1)
        ((u * (room + 1) as f64) as usize).min(room)
    };
    let base = draw * 2 * count as u64;
    (0..count as u64)
        .map(|n| Patch { y: corner(base + 2 * n, height - size), x: corner(base + 2 * n + 1, width - size) })
        .collect()
}

/// Sorts `patches` by their mean Sobel magnitude on `map` and splits them into the low ("simple") and
/// high ("complex") halves; an odd patch out goes to the complex half. Ties keep the given order.
pub fn split(map: &SobelMap, patches: &[Patch], size: usize) -> (Vec<Patch>, Vec<Patch>) {
    let mut scored: Vec<(f64, Patch)> = patches.iter().map(|&p| (map.patch_mean(p, size), p)).collect();
    scored.sort_by(|a, b| a.0.total_cmp(&b.0));
    let sorted: Vec<Patch> = scored.into_iter().map(|(_, p)| p).collect();
    let (simple, complex) = sorted.split_at(patches.len() / 2);
    (simple.to_vec(), complex.to_vec())
}

/// The patches of `image` `[1, 3, H, W]` -> `[n, 3, size, size]` (differentiable in `image`).
pub fn crop(image: &Tensor, patches: &[Patch], size: usize) -> Result<Tensor> {
    let crops = patches
        .iter()
        .map(|p| image.narrow(2, p.y, size)?.narrow(3, p.x, size))
        .collect::<Result<Vec<_>>>()?;
    Tensor::cat(&crops, 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    /// A vertical step edge from 0 to 1 in all channels: |gx| = 4 (1 + 2 + 1) on the two columns beside
    /// it, 0 elsewhere (the Sobel kernel's definition).
    #[test]
    fn sobel_of_a_step_edge() -> Result<()> {
        let (h, w) = (5, 6);
        let v: Vec<f32> = (0..3 * h * w).map(|i| if i % w >= 3 { 1.0 } else { 0.0 }).collect();
        let map = SobelMap::of(&Tensor::from_vec(v, (3, h, w), &Device::Cpu)?)?;
        for y in 0..h {
            for x in 0..w {
                let want = if x == 2 || x == 3 { 4.0 } else { 0.0 };
                assert!((map.magnitude[y * w + x] - want).abs() < 1e-5, "({y}, {x})");
            }
        }
        assert!((map.patch_mean(Patch { y: 0, x: 2 }, 2) - 4.0).abs() < 1e-6);
        assert_eq!(map.patch_mean(Patch { y: 1, x: 0 }, 2), 0.0);
        Ok(())
    }

    #[test]
    fn samples_fit_and_repeat() {
        let a = sample(3, "s", 7, 50, 16, 40, 64);
        assert!(a.iter().all(|p| p.y + 16 <= 40 && p.x + 16 <= 64));
        assert_eq!(a, sample(3, "s", 7, 50, 16, 40, 64));
        assert_ne!(a, sample(3, "s", 8, 50, 16, 40, 64));
    }
}
