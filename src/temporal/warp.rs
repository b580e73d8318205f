//! Bilinear backward warp: `warp(X, F)(p) = X(p + F(p))`.
//!
//! Pixel centres sit at integer coordinates, so a sample is inside the frame when
//! `0 <= x + dx <= W - 1` and `0 <= y + dy <= H - 1`. Outside samples (and non-finite flow) are invalid:
//! the output there is 0 and the returned mask is `false`. No clamping or edge extension: a value
//! invented at the border would count as "consistent" in the metrics. Plain loops rather than
//! `cv::remap`, whose border modes cannot express "invalid" and whose fixed-point weights (5 bits)
//! are not exactly bilinear.
use super::{same_size, Flow, Image, Mask, Result};

/// `warp(X, F)` for an RGB frame: `[H, W, 3]` sampled at `p + F(p)`; returns the warped frame and which
/// pixels had an in-frame sample.
pub fn warp_image(image: &Image, flow: &Flow) -> Result<(Image, Mask)> {
    image.check("warp: image")?;
    flow.check("warp: flow")?;
    same_size("warp: flow vs image", image.size(), flow.size())?;
    let (data, valid) = warp_channels::<3>(&image.data, flow);
    Ok((Image { width: image.width, height: image.height, data }, Mask::new(flow.width, flow.height, valid)?))
}

/// `warp(G, F)` for a flow field (as needed by the forward-backward check): `[H, W, 2]` sampled at
/// `p + F(p)`.
pub fn warp_flow(field: &Flow, flow: &Flow) -> Result<(Flow, Mask)> {
    field.check("warp: flow field")?;
    flow.check("warp: flow")?;
    same_size("warp: flow vs warped flow field", field.size(), flow.size())?;
    let (data, valid) = warp_channels::<2>(&field.data, flow);
    Ok((Flow { width: field.width, height: field.height, data }, Mask::new(flow.width, flow.height, valid)?))
}

/// The shared loop over `[H, W, C]` interleaved data; sizes already checked.
fn warp_channels<const C: usize>(src: &[f32], flow: &Flow) -> (Vec<f32>, Vec<bool>) {
    let (w, h) = flow.size();
    let mut out = vec![0.0f32; w * h * C];
    let mut valid = vec![false; w * h];
    let (max_x, max_y) = ((w - 1) as f32, (h - 1) as f32);
    for y in 0..h {
        for x in 0..w {
            let i = y * w + x;
            let (dx, dy) = (flow.data[2 * i], flow.data[2 * i + 1]);
            let (sx, sy) = (x as f32 + dx, y as f32 + dy);
            // Also rejects NaN: every comparison with NaN is false.
            if !(sx >= 0.0 && sx <= max_x && sy >= 0.0 && sy <= max_y) {
                continue;
            }
            let (x0, y0) = (sx.floor() as usize, sy.floor() as usize);
            let (fx, fy) = (sx - x0 as f32, sy - y0 as f32);
            // At the last row/column the weight of the missing neighbour is exactly 0.
            let (x1, y1) = ((x0 + 1).min(w - 1), (y0 + 1).min(h - 1));
            let weights = [(1.0 - fx) * (1.0 - fy), fx * (1.0 - fy), (1.0 - fx) * fy, fx * fy];
            let corners = [(y0 * w + x0) * C, (y0 * w + x1) * C, (y1 * w + x0) * C, (y1 * w + x1) * C];
            for c in 0..C {
                out[i * C + c] = weights.iter().zip(&corners).map(|(wt, &base)| wt * src[base + c]).sum();
            }
            valid[i] = true;
        }
    }
    (out, valid)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ramp(w: usize, h: usize) -> Image {
        // R = x, G = y, B = x * y: bilinear interpolation reproduces R and G exactly.
        let data =
            (0..h).flat_map(|y| (0..w).flat_map(move |x| [x as f32, y as f32, (x * y) as f32])).collect();
        Image::new(w, h, data).unwrap()
    }

    #[test]
    fn zero_flow_is_identity() {
        let img = ramp(5, 4);
        let (out, mask) = warp_image(&img, &Flow::uniform(5, 4, 0.0, 0.0)).unwrap();
        assert_eq!(out, img);
        assert!(mask.data.iter().all(|&v| v));
    }

    #[test]
    fn subpixel_shift_is_bilinear() {
        let img = ramp(6, 5);
        let (out, mask) = warp_image(&img, &Flow::uniform(6, 5, 0.25, 0.5)).unwrap();
        // Pixel (2, 1) samples (2.25, 1.5): R = 2.25, G = 1.5,
        // B = 0.75*0.5*(2*1) + 0.25*0.5*(3*1) + 0.75*0.5*(2*2) + 0.25*0.5*(3*2) = 0.75+0.375+1.5+0.75 = 3.375.
        let i = (6 + 2) * 3;
        assert_eq!(&out.data[i..i + 3], &[2.25, 1.5, 3.375]);
        // The last column samples x = 5.25 > 5: invalid and zero. The last row samples y = 4.5 > 4.
        assert!(!mask.data[5] && !mask.data[4 * 6]);
        assert_eq!(&out.data[15..18], &[0.0, 0.0, 0.0]);
        assert_eq!(mask.data.iter().filter(|&&v| v).count(), 5 * 4);
    }

    #[test]
    fn samples_on_the_last_pixel_centre_are_valid() {
        let img = ramp(4, 3);
        let (out, mask) = warp_image(&img, &Flow::uniform(4, 3, 1.0, 0.0)).unwrap();
        assert!(mask.data[2] && !mask.data[3]);
        assert_eq!(&out.data[6..9], &[3.0, 0.0, 0.0]);
    }

    #[test]
    fn nan_flow_is_invalid_and_sizes_are_checked() {
        let img = ramp(3, 3);
        let mut flow = Flow::uniform(3, 3, 0.0, 0.0);
        flow.data[0] = f32::NAN;
        let (_, mask) = warp_image(&img, &flow).unwrap();
        assert!(!mask.data[0] && mask.data[1]);
        let err = warp_image(&img, &Flow::uniform(4, 3, 0.0, 0.0)).unwrap_err().to_string();
        assert!(err.contains("expected 3x3, found 4x3"), "{err}");
    }
}
