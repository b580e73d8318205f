//! The three flicker metrics of `docs/temporal.md`, per frame pair `(a, b)` with `b = a + k`:
//! - Lai et al. 2018 `E(a) = sum_i M_a(i) ||X_a(i) - warp(X_b, F_{a->b})(i)||^2 / sum_i M_a(i)`, both sums over
//!   pixels x 3 channels (so the denominator is `3 * valid pixels`); all `3HW` values if none is valid.
//! - Ruder et al. 2016 `MSE(b) = sum (M_b * (warp(X_a, F_{b->a}) - X_b))^2 / (3HW)`: masked zeros stay in
//!   the denominator.
//! - ReReVST's masked RMSE: `sqrt(MSE(b))`, the same masked mean with zeros, in [0, 1] units.
//!
//! `X` is either the stylised video (O) or the source video (I, the floor set by the flow's own error).
//! Sums run in f64: a 4K frame has 25 million squared terms.
use super::flow::FlowEstimator;
use super::occlusion::occlusion_mask;
use super::warp::warp_image;
use super::{same_size, Flow, Image, Mask, Result};

/// Lai E_warp of one pair: `frame` = `X_a`, `warped_next` = `warp(X_b, F_{a->b})`, `mask` = `M_a`.
pub fn lai_e_warp(frame: &Image, warped_next: &Image, mask: &Mask) -> Result<f64> {
    let (sum, valid) = masked_squared_error(frame, warped_next, mask)?;
    // "If no pixel is valid, divide by all pixel values": the numerator is then 0, and so is E.
    let denominator = if valid > 0 { 3 * valid } else { frame.data.len() };
    Ok(sum / denominator as f64)
}

/// Ruder MSE of one pair: `frame` = `X_b`, `warped_prev` = `warp(X_a, F_{b->a})`, `mask` = `M_b`.
pub fn ruder_mse(frame: &Image, warped_prev: &Image, mask: &Mask) -> Result<f64> {
    let (sum, _) = masked_squared_error(frame, warped_prev, mask)?;
    Ok(sum / frame.data.len() as f64)
}

/// ReReVST masked RMSE of one pair: `sqrt` of [`ruder_mse`] (same arguments).
pub fn masked_rmse(frame: &Image, warped_prev: &Image, mask: &Mask) -> Result<f64> {
    Ok(ruder_mse(frame, warped_prev, mask)?.sqrt())
}

/// `(sum over valid pixels x 3 channels of the squared difference, number of valid pixels)`.
fn masked_squared_error(frame: &Image, warped: &Image, mask: &Mask) -> Result<(f64, usize)> {
    frame.check("metric: frame")?;
    warped.check("metric: warped frame")?;
    mask.check("metric: mask")?;
    same_size("metric: warped frame vs frame", frame.size(), warped.size())?;
    same_size("metric: mask vs frame", frame.size(), mask.size())?;
    let mut sum = 0.0f64;
    let mut valid = 0;
    for ((p, q), &m) in frame.data.chunks_exact(3).zip(warped.data.chunks_exact(3)).zip(&mask.data) {
        if m {
            valid += 1;
            sum += p.iter().zip(q).map(|(&x, &y)| f64::from(x - y).powi(2)).sum::<f64>();
        }
    }
    Ok((sum, valid))
}

/// Flows and masks of one frame pair `(a, b)`, computed once on the source frames and applied to both
/// the stylised and the source video.
#[derive(Debug, Clone)]
pub struct PairGeometry {
    /// `F_{a->b}`, `[H, W, 2]` pixels.
    pub forward: Flow,
    /// `F_{b->a}`, `[H, W, 2]` pixels.
    pub backward: Flow,
    /// `M_a` = occlusion(`F_{a->b}`, `F_{b->a}`): where `X_a` can be compared with `warp(X_b, F_{a->b})`.
    pub mask_a: Mask,
    /// `M_b` = occlusion(`F_{b->a}`, `F_{a->b}`): where `X_b` can be compared with `warp(X_a, F_{b->a})`.
    pub mask_b: Mask,
}

impl PairGeometry {
    /// From known flows (ground truth in tests, or another estimator's output).
    pub fn from_flows(forward: Flow, backward: Flow) -> Result<Self> {
        let mask_a = occlusion_mask(&forward, &backward)?;
        let mask_b = occlusion_mask(&backward, &forward)?;
        Ok(Self { forward, backward, mask_a, mask_b })
    }

    /// Estimates both flows between the source frames `a` and `b`.
    pub fn estimate(estimator: &mut FlowEstimator, a: &Image, b: &Image) -> Result<Self> {
        let forward = estimator.compute(a, b)?;
        let backward = estimator.compute(b, a)?;
        Self::from_flows(forward, backward)
    }
}

/// The three metrics of one pair of frames of one video.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct PairMetrics {
    /// Lai E_warp at frame `a`, squared [0, 1] units.
    pub e_warp: f64,
    /// Ruder MSE at frame `b`, squared [0, 1] units.
    pub ruder_mse: f64,
    /// ReReVST masked RMSE at frame `b`, [0, 1] units.
    pub masked_rmse: f64,
}

/// All three metrics for frames `a` and `b` of one video (stylised or source) under `geometry`.
pub fn pair_metrics(geometry: &PairGeometry, a: &Image, b: &Image) -> Result<PairMetrics> {
    let (b_on_a, _) = warp_image(b, &geometry.forward)?;
    let (a_on_b, _) = warp_image(a, &geometry.backward)?;
    let ruder_mse = ruder_mse(b, &a_on_b, &geometry.mask_b)?;
    Ok(PairMetrics {
        e_warp: lai_e_warp(a, &b_on_a, &geometry.mask_a)?,
        ruder_mse,
        masked_rmse: ruder_mse.sqrt(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gray(w: usize, h: usize, v: f32) -> Image {
        Image::new(w, h, vec![v; w * h * 3]).unwrap()
    }

    fn set(img: &mut Image, x: usize, y: usize, rgb: [f32; 3]) {
        let i = 3 * (y * img.width + x);
        img.data[i..i + 3].copy_from_slice(&rgb);
    }

    /// Hand-worked 4x4 pair. b is a moved one pixel right, `b(x, y) = a(x - 1, y)`, so `F_{a->b} = (+1, 0)`
    /// and `F_{b->a} = (-1, 0)`.
    /// Both frames are grey 0.5 except:
    /// - b(1, 0) = (0.7, 0.5, 0.5): differs from a(0, 0) by 0.2 in red;
    /// - b(2, 1) = (0.1, 0.1, 0.5): differs from a(1, 1) by -0.4 in red and green;
    /// - a(3, 1) = 0 and b(0, 2) = 0.9: distractors in the columns the masks exclude.
    ///
    /// M_a: a pixel samples b at x + 1, outside for x = 3, so 12 of 16 pixels are valid.
    /// M_b: b samples a at x - 1, outside for x = 0, so 12 valid.
    /// Squared differences over valid pixels x channels: 0.2^2 + 0.4^2 + 0.4^2 = 0.36 in both directions.
    /// - E_warp = 0.36 / (3 * 12) = 0.01
    /// - Ruder MSE = 0.36 / (3 * 16) = 0.0075
    /// - masked RMSE = sqrt(0.0075) = 0.0866025...
    #[test]
    fn hand_computed_4x4() {
        let mut a = gray(4, 4, 0.5);
        let mut b = gray(4, 4, 0.5);
        set(&mut b, 1, 0, [0.7, 0.5, 0.5]);
        set(&mut b, 2, 1, [0.1, 0.1, 0.5]);
        set(&mut a, 3, 1, [0.0, 0.0, 0.0]);
        set(&mut b, 0, 2, [0.9, 0.9, 0.9]);
        let geometry =
            PairGeometry::from_flows(Flow::uniform(4, 4, 1.0, 0.0), Flow::uniform(4, 4, -1.0, 0.0)).unwrap();
        assert_eq!(geometry.mask_a.valid_fraction(), 0.75);
        assert!((0..16).all(|i| geometry.mask_a.data[i] == (i % 4 != 3)));
        assert!((0..16).all(|i| geometry.mask_b.data[i] == (i % 4 != 0)));
        let m = pair_metrics(&geometry, &a, &b).unwrap();
        // f32 pixel values: 0.7 - 0.5 is 0.2 only to ~1e-8.
        assert!((m.e_warp - 0.01).abs() < 1e-7, "{m:?}");
        assert!((m.ruder_mse - 0.0075).abs() < 1e-7, "{m:?}");
        assert!((m.masked_rmse - 0.0075f64.sqrt()).abs() < 1e-7, "{m:?}");
    }

    #[test]
    fn identical_frames_score_zero() {
        let a = gray(5, 4, 0.3);
        let geometry =
            PairGeometry::from_flows(Flow::uniform(5, 4, 0.0, 0.0), Flow::uniform(5, 4, 0.0, 0.0)).unwrap();
        let m = pair_metrics(&geometry, &a, &a).unwrap();
        assert_eq!(m, PairMetrics { e_warp: 0.0, ruder_mse: 0.0, masked_rmse: 0.0 });
    }

    #[test]
    fn no_valid_pixel_divides_by_all_values() {
        let (a, b) = (gray(3, 3, 0.0), gray(3, 3, 1.0));
        let none = Mask::new(3, 3, vec![false; 9]).unwrap();
        assert_eq!(lai_e_warp(&a, &b, &none).unwrap(), 0.0);
        assert_eq!(ruder_mse(&a, &b, &none).unwrap(), 0.0);
        // Every value differs by 1 and every pixel is valid: all three are 1.
        let all = Mask::all_valid(3, 3);
        assert_eq!(lai_e_warp(&a, &b, &all).unwrap(), 1.0);
        assert_eq!(ruder_mse(&a, &b, &all).unwrap(), 1.0);
        assert_eq!(masked_rmse(&a, &b, &all).unwrap(), 1.0);
    }

    #[test]
    fn mismatched_sizes_are_errors() {
        let err = lai_e_warp(&gray(3, 3, 0.0), &gray(3, 2, 0.0), &Mask::all_valid(3, 3)).unwrap_err();
        assert_eq!(err.to_string(), "metric: warped frame vs frame: expected 3x3, found 3x2");
    }
}
