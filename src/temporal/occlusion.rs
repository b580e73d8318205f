//! Occlusion mask by the forward-backward check (Sundaram et al. 2010, as used by Ruder et al. 2016 and
//! Lai et al. 2018), exactly as `docs/temporal.md` writes it. With `F = F_{a->b}` and
//! `B~ = warp(F_{b->a}, F)`, a pixel of frame `a` is occluded when
//! - `|F + B~|^2 > 0.01 (|F|^2 + |B~|^2) + 0.5` (the two flows disagree), or
//! - `|grad F|^2 > 0.01 |F|^2 + 0.002` (motion boundary; squared gradients of both components), or
//! - `p + F(p)` falls outside frame `b` (the warp's own validity).
//!
//! Gradients are central differences `(F(x+1) - F(x-1)) / 2` inside the frame and one-sided
//! differences `F(1) - F(0)`, `F(W-1) - F(W-2)` on its edges (numpy.gradient's convention; Ruder's
//! checker also uses the centred [-0.5, 0, 0.5] kernel). A 1-pixel-wide axis has zero gradient.
use super::warp::warp_flow;
use super::{same_size, Flow, Mask, Result};

const DISAGREE_REL: f32 = 0.01;
const DISAGREE_ABS: f32 = 0.5;
const BOUNDARY_REL: f32 = 0.01;
const BOUNDARY_ABS: f32 = 0.002;

/// Validity mask `M_a` (`[H, W]`, `true` = usable) for comparing frame `a` with frame `b` warped by
/// `forward = F_{a->b}`; `backward = F_{b->a}`.
pub fn occlusion_mask(forward: &Flow, backward: &Flow) -> Result<Mask> {
    same_size("occlusion: backward flow vs forward flow", forward.size(), backward.size())?;
    let (b_warped, in_frame) = warp_flow(backward, forward)?;
    let (w, h) = forward.size();
    let f = &forward.data;
    // d/dx and d/dy of component c at pixel (x, y), by the convention in the header.
    let diff = |lo: usize, hi: usize, c: usize, span: f32| (f[2 * hi + c] - f[2 * lo + c]) / span;
    let grad_x = |x: usize, y: usize, c: usize| match (x, w) {
        (_, 1) => 0.0,
        (0, _) => diff(y * w, y * w + 1, c, 1.0),
        (x, w) if x == w - 1 => diff(y * w + x - 1, y * w + x, c, 1.0),
        (x, _) => diff(y * w + x - 1, y * w + x + 1, c, 2.0),
    };
    let grad_y = |x: usize, y: usize, c: usize| match (y, h) {
        (_, 1) => 0.0,
        (0, _) => diff(x, w + x, c, 1.0),
        (y, h) if y == h - 1 => diff((y - 1) * w + x, y * w + x, c, 1.0),
        (y, _) => diff((y - 1) * w + x, (y + 1) * w + x, c, 2.0),
    };
    let mut valid = in_frame.data;
    for y in 0..h {
        for x in 0..w {
            let i = y * w + x;
            if !valid[i] {
                continue;
            }
            let (u, v) = (f[2 * i], f[2 * i + 1]);
            let (bu, bv) = (b_warped.data[2 * i], b_warped.data[2 * i + 1]);
            let f2 = u * u + v * v;
            let disagree =
                (u + bu).powi(2) + (v + bv).powi(2) > DISAGREE_REL * (f2 + bu * bu + bv * bv) + DISAGREE_ABS;
            let grad2: f32 = (0..2).map(|c| grad_x(x, y, c).powi(2) + grad_y(x, y, c).powi(2)).sum();
            let boundary = grad2 > BOUNDARY_REL * f2 + BOUNDARY_ABS;
            valid[i] = !(disagree || boundary);
        }
    }
    Mask::new(w, h, valid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consistent_pan_is_valid_except_the_revealed_strip() {
        // Camera pans so content moves 3 px left: F_{a->b} = (-3, 0), F_{b->a} = (+3, 0). Pixels x < 3 of
        // frame a left the frame in b (their sample p + F is at x < 0): exactly that strip is occluded.
        let (w, h) = (20, 10);
        let mask = occlusion_mask(&Flow::uniform(w, h, -3.0, 0.0), &Flow::uniform(w, h, 3.0, 0.0)).unwrap();
        for y in 0..h {
            for x in 0..w {
                assert_eq!(mask.data[y * w + x], x >= 3, "pixel ({x}, {y})");
            }
        }
    }

    #[test]
    fn disagreeing_flows_are_occluded() {
        // |F + B~|^2 = 1.0^2 = 1 > 0.01 * (4 + 1) + 0.5 = 0.55: occluded.
        let mask = occlusion_mask(&Flow::uniform(8, 8, 2.0, 0.0), &Flow::uniform(8, 8, -1.0, 0.0)).unwrap();
        assert!(mask.data.iter().all(|&v| !v));
        // |F + B~|^2 = 0.7^2 = 0.49 <= 0.01 * (4 + 1.69) + 0.5 = 0.5569: consistent (where in frame).
        let mask = occlusion_mask(&Flow::uniform(8, 8, 2.0, 0.0), &Flow::uniform(8, 8, -1.3, 0.0)).unwrap();
        assert_eq!(mask.data.iter().filter(|&&v| v).count(), 6 * 8);
    }

    #[test]
    fn motion_boundary_is_occluded() {
        // Zero flow left of x = 4, (0, 0.5) right of it (vertical motion, so nothing leaves the frame
        // sideways). At x = 3 and x = 4 the central difference is 0.25: |grad F|^2 = 0.0625 > 0.01 * |F|^2 +
        // 0.002 (<= 0.0045). Elsewhere the gradient is 0.
        let (w, h) = (8, 6);
        let mut fwd = Flow::uniform(w, h, 0.0, 0.0);
        let mut bwd = fwd.clone();
        for y in 0..h {
            for x in 4..w {
                fwd.data[2 * (y * w + x) + 1] = 0.5;
                bwd.data[2 * (y * w + x) + 1] = -0.5;
            }
        }
        let mask = occlusion_mask(&fwd, &bwd).unwrap();
        for x in 0..w {
            // Row 2 is far from the bottom edge, whose samples at y + 0.5 > 5 leave the frame.
            assert_eq!(mask.data[2 * w + x], !(3..=4).contains(&x), "x = {x}");
        }
    }
}
