//! The CPU reference of the frame conversions.
use super::FrameGeometry;
use crate::ops::reflect_index;

/// `rgb`: `[height, width, 3]` bytes -> `[3, padded_height, padded_width]` values byte / 255, the
/// padding mirrored from the frame.
pub(super) fn to_planar(g: &FrameGeometry, rgb: &[u8]) -> Vec<f32> {
    let plane = g.padded_height * g.padded_width;
    let mut out = vec![0f32; 3 * plane];
    for y in 0..g.padded_height {
        let sy = reflect_index(y as isize, g.height) as usize;
        for x in 0..g.padded_width {
            let sx = reflect_index(x as isize, g.width) as usize;
            let px = &rgb[(sy * g.width + sx) * 3..][..3];
            for (c, &byte) in px.iter().enumerate() {
                out[c * plane + y * g.padded_width + x] = f32::from(byte) / 255.0;
            }
        }
    }
    out
}

/// `planar`: `[3, padded_height, padded_width]` -> `[height, width, 3]` bytes of the top-left corner,
/// `round(clamp(v, 0, 1) * 255)`.
pub(super) fn to_rgb8(g: &FrameGeometry, planar: &[f32]) -> Vec<u8> {
    let plane = g.padded_height * g.padded_width;
    let mut out = vec![0u8; g.height * g.width * 3];
    for (i, px) in out.chunks_exact_mut(3).enumerate() {
        let src = (i / g.width) * g.padded_width + i % g.width;
        for (c, byte) in px.iter_mut().enumerate() {
            *byte = (planar[c * plane + src].clamp(0.0, 1.0) * 255.0).round() as u8;
        }
    }
    out
}
