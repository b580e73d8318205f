//! SSIM (Wang, Bovik, Sheikh & Simoncelli 2004) between two images' luma, the structure-preservation
//! measure of style-transfer papers (NeAT's Table 1 among them).
//!
//! The paper's standard settings: an 11x11 Gaussian window with sigma 1.5, `C1 = (0.01 L)^2`,
//! `C2 = (0.03 L)^2` with `L = 255`, luma `Y = 0.299 R + 0.587 G + 0.114 B` on 0..255, and the mean of the
//! SSIM map over the positions where the whole window fits ("valid", as the reference MATLAB code).

const RADIUS: usize = 5;
const SIGMA: f64 = 1.5;
const C1: f64 = (0.01 * 255.0) * (0.01 * 255.0);
const C2: f64 = (0.03 * 255.0) * (0.03 * 255.0);

/// Luma on 0..255 of interleaved 8-bit RGB, `[H * W]` row-major.
pub fn luma(rgb: &[u8]) -> Vec<f64> {
    rgb.chunks_exact(3).map(|p| 0.299 * p[0] as f64 + 0.587 * p[1] as f64 + 0.114 * p[2] as f64).collect()
}

fn window() -> [f64; 2 * RADIUS + 1] {
    let mut w = [0.0; 2 * RADIUS + 1];
    for (i, v) in w.iter_mut().enumerate() {
        let d = i as f64 - RADIUS as f64;
        *v = (-d * d / (2.0 * SIGMA * SIGMA)).exp();
    }
    let sum: f64 = w.iter().sum();
    w.map(|v| v / sum)
}

/// Separable Gaussian filtering of `x` (`[h, w]`), valid part only: `[h - 10, w - 10]`.
fn filter_valid(x: &[f64], h: usize, w: usize) -> Vec<f64> {
    let g = window();
    let (oh, ow) = (h - 2 * RADIUS, w - 2 * RADIUS);
    let rows: Vec<f64> = (0..h)
        .flat_map(|y| (0..ow).map(move |x0| (y, x0)))
        .map(|(y, x0)| g.iter().enumerate().map(|(k, gk)| gk * x[y * w + x0 + k]).sum())
        .collect();
    (0..oh)
        .flat_map(|y0| (0..ow).map(move |x0| (y0, x0)))
        .map(|(y0, x0)| g.iter().enumerate().map(|(k, gk)| gk * rows[(y0 + k) * ow + x0]).sum())
        .collect()
}

/// Mean SSIM of two luma planes of `h x w` pixels; `None` when the image is smaller than the window.
pub fn ssim(a: &[f64], b: &[f64], h: usize, w: usize) -> Option<f64> {
    if h <= 2 * RADIUS || w <= 2 * RADIUS || a.len() != h * w || b.len() != h * w {
        return None;
    }
    let prod = |p: &[f64], q: &[f64]| p.iter().zip(q).map(|(x, y)| x * y).collect::<Vec<_>>();
    let (mu_a, mu_b) = (filter_valid(a, h, w), filter_valid(b, h, w));
    let (aa, bb, ab) =
        (filter_valid(&prod(a, a), h, w), filter_valid(&prod(b, b), h, w), filter_valid(&prod(a, b), h, w));
    let n = mu_a.len();
    let total: f64 = (0..n)
        .map(|i| {
            let (ma, mb) = (mu_a[i], mu_b[i]);
            let (va, vb, cov) = (aa[i] - ma * ma, bb[i] - mb * mb, ab[i] - ma * mb);
            ((2.0 * ma * mb + C1) * (2.0 * cov + C2)) / ((ma * ma + mb * mb + C1) * (va + vb + C2))
        })
        .sum();
    Some(total / n as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ramp(h: usize, w: usize) -> Vec<f64> {
        (0..h * w).map(|i| ((i % w) * 7 + (i / w) * 3) as f64 % 256.0).collect()
    }

    #[test]
    fn identical_images_score_one() {
        let a = ramp(20, 24);
        assert!((ssim(&a, &a, 20, 24).unwrap() - 1.0).abs() < 1e-12);
    }

    #[test]
    fn constant_images_reduce_to_the_luminance_term() {
        // Flat images have zero variance and covariance: SSIM = (2 m1 m2 + C1) / (m1^2 + m2^2 + C1).
        let (a, b) = (vec![100.0; 16 * 16], vec![120.0; 16 * 16]);
        let expected = (2.0 * 100.0 * 120.0 + C1) / (100.0f64.powi(2) + 120.0f64.powi(2) + C1);
        assert!((ssim(&a, &b, 16, 16).unwrap() - expected).abs() < 1e-12);
    }

    #[test]
    fn inverted_structure_scores_below_zero_and_small_images_have_none() {
        let a = ramp(20, 20);
        let b: Vec<f64> = a.iter().map(|v| 255.0 - v).collect();
        assert!(ssim(&a, &b, 20, 20).unwrap() < 0.0);
        assert!(ssim(&a[..100], &a[..100], 10, 10).is_none());
    }

    #[test]
    fn window_sums_to_one() {
        assert!((window().iter().sum::<f64>() - 1.0).abs() < 1e-15);
    }
}
