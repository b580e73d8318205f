//! The CPU reference of the prior op: each stage of `kernels/prior.cu` written out plainly, on f32
//! planes `[3, H, W]` in 0..255. Rows are independent, so each filter runs over rows with rayon.
use std::borrow::Cow;

use rayon::prelude::*;

use super::{Affine, Filters};
use crate::ops::reflect_index;

/// The frame the first stage reads.
pub(super) enum Frame<'a> {
    /// Packed RGB bytes `[H, W, 3]`.
    Rgb8(&'a [u8]),
    /// Planar `[3, H, W]` in [0, 1].
    Planar(Cow<'a, [f32]>),
}

impl Frame<'_> {
    /// Channel `c` of pixel `p = y W + x` on the 0..255 scale.
    fn at(&self, c: usize, p: usize, plane: usize) -> f32 {
        match self {
            Frame::Rgb8(bytes) => f32::from(bytes[p * 3 + c]),
            Frame::Planar(values) => values[c * plane + p] * 255.0,
        }
    }
}

/// OpenCV's `getGaussianKernel(kernel, sigma, CV_32F)`: `exp(-x^2 / (2 sigma^2))` for
/// `x = i - (kernel - 1) / 2`, normalised in f64, then rounded to f32.
pub(super) fn gaussian_taps(kernel: u32, sigma: f64) -> Vec<f32> {
    let centre = (kernel as f64 - 1.0) / 2.0;
    let raw: Vec<f64> =
        (0..kernel).map(|i| (-(i as f64 - centre).powi(2) / (2.0 * sigma * sigma)).exp()).collect();
    let sum: f64 = raw.iter().sum();
    raw.iter().map(|t| (t / sum) as f32).collect()
}

/// Runs `pixel(y, x) -> [f32; 3]` over an `h x w` frame, row-parallel, into planes `[3, h, w]`.
fn per_pixel(h: usize, w: usize, pixel: impl Fn(usize, usize) -> [f32; 3] + Sync) -> Vec<f32> {
    let rows: Vec<Vec<[f32; 3]>> =
        (0..h).into_par_iter().map(|y| (0..w).map(|x| pixel(y, x)).collect()).collect();
    let plane = h * w;
    let mut out = vec![0f32; 3 * plane];
    for (y, row) in rows.iter().enumerate() {
        for (x, px) in row.iter().enumerate() {
            for (c, v) in px.iter().enumerate() {
                out[c * plane + y * w + x] = *v;
            }
        }
    }
    out
}

/// Stage 1a: the frame on the 0..255 scale with the horizontal taps, `[3, h, w]`.
pub(super) fn blur_rows(frame: &Frame, taps: &[f32], h: usize, w: usize) -> Vec<f32> {
    let r = (taps.len() / 2) as isize;
    per_pixel(h, w, |y, x| {
        let mut acc = [0f32; 3];
        for (t, &tap) in taps.iter().enumerate() {
            let q = y * w + reflect_index(x as isize + t as isize - r, w) as usize;
            for (c, a) in acc.iter_mut().enumerate() {
                *a = tap.mul_add(frame.at(c, q, h * w), *a);
            }
        }
        acc
    })
}

/// Stage 1b: the vertical taps.
pub(super) fn blur_cols(planes: &[f32], taps: &[f32], h: usize, w: usize) -> Vec<f32> {
    let r = (taps.len() / 2) as isize;
    let plane = h * w;
    per_pixel(h, w, |y, x| {
        let mut acc = [0f32; 3];
        for (t, &tap) in taps.iter().enumerate() {
            let q = reflect_index(y as isize + t as isize - r, h) as usize * w + x;
            for (c, a) in acc.iter_mut().enumerate() {
                *a = tap.mul_add(planes[c * plane + q], *a);
            }
        }
        acc
    })
}

/// Stage 2: OpenCV's bilateral filter for 3-channel float images (see the module doc of `ops::prior`).
pub(super) fn bilateral(planes: &[f32], h: usize, w: usize, f: &Filters) -> Vec<f32> {
    let r = f.bilateral_radius as isize;
    let plane = h * w;
    // The circular window: offsets and their squared distances.
    let window: Vec<(isize, isize, f32)> = (-r..=r)
        .flat_map(|dy| (-r..=r).map(move |dx| (dy, dx)))
        .filter(|(dy, dx)| dy * dy + dx * dx <= r * r)
        .map(|(dy, dx)| (dy, dx, (dy * dy + dx * dx) as f32))
        .collect();
    per_pixel(h, w, |y, x| {
        let centre: [f32; 3] = std::array::from_fn(|c| planes[c * plane + y * w + x]);
        let (mut sum, mut wsum) = ([0f32; 3], 0f32);
        for &(dy, dx, r2) in &window {
            let q =
                reflect_index(y as isize + dy, h) as usize * w + reflect_index(x as isize + dx, w) as usize;
            let v: [f32; 3] = std::array::from_fn(|c| planes[c * plane + q]);
            let diff: f32 = (0..3).map(|c| (v[c] - centre[c]).abs()).sum();
            let weight = (f.space_coeff * r2 + f.color_coeff * diff * diff).exp();
            for c in 0..3 {
                sum[c] = weight.mul_add(v[c], sum[c]);
            }
            wsum += weight;
        }
        sum.map(|s| s / wsum)
    })
}

/// Stage 3a: the nine sums of `x = value / 255` in f64, laid out as `ops::prior::stats_from_sums`
/// reads them.
pub(super) fn stats(planes: &[f32]) -> [f64; 9] {
    let plane = planes.len() / 3;
    let mut sums = [0f64; 9];
    for p in 0..plane {
        let x: [f64; 3] = std::array::from_fn(|c| f64::from(planes[c * plane + p]) / 255.0);
        let terms =
            [x[0], x[1], x[2], x[0] * x[0], x[0] * x[1], x[0] * x[2], x[1] * x[1], x[1] * x[2], x[2] * x[2]];
        for (s, t) in sums.iter_mut().zip(terms) {
            *s += t;
        }
    }
    sums
}

/// Stage 3b: the affine map per pixel, `[3, H, W]` in the output's units.
pub(super) fn recolour(planes: &[f32], m: &Affine) -> Vec<f32> {
    let plane = planes.len() / 3;
    let mut out = vec![0f32; planes.len()];
    for p in 0..plane {
        let x = [planes[p], planes[plane + p], planes[2 * plane + p]];
        for c in 0..3 {
            out[c * plane + p] =
                m.a[3 * c].mul_add(x[0], m.a[3 * c + 1].mul_add(x[1], m.a[3 * c + 2].mul_add(x[2], m.b[c])));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prior::PriorConfig;

    #[test]
    fn gaussian_taps_are_opencvs_formula() {
        let taps = gaussian_taps(7, 1.4);
        assert_eq!(taps.len(), 7);
        let sum: f32 = taps.iter().sum();
        assert!((sum - 1.0).abs() < 1e-6);
        assert_eq!(taps[0], taps[6]);
        // Centre over edge: exp(0) / exp(-9 / (2 * 1.96)).
        assert!((taps[3] / taps[0] - (9.0f32 / 3.92).exp()).abs() < 1e-4);
    }

    #[test]
    fn the_bilateral_window_is_a_disc_and_keeps_flat_images() {
        let f = Filters::new(&PriorConfig::default());
        assert_eq!(f.bilateral_radius, 12);
        // A flat image stays flat; a single bright pixel only spreads inside the disc of radius 12.
        let (h, w) = (31, 31);
        let flat = vec![77f32; 3 * h * w];
        assert!(bilateral(&flat, h, w, &f).iter().all(|&v| (v - 77.0).abs() < 1e-3));
        let mut spot = vec![0f32; 3 * h * w];
        spot[15 * w + 15] = 255.0;
        let out = bilateral(&spot, h, w, &f);
        // (15, 27) is 12 px away: inside; (24, 24) is 12.7 px away: outside.
        assert!(out[15 * w + 3] > 0.0 && out[15 * w + 27] > 0.0);
        assert_eq!(out[24 * w + 24], 0.0);
        assert_eq!(out[6 * w + 6], 0.0);
    }
}
