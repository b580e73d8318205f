//! The plain-loop 3x3 convolution every fast path is compared with: one multiply-add per weight, per
//! pixel, in the order PyTorch's definition reads.
use super::Padding;
use crate::ops::reflect_index;

/// `relu?(conv3x3(pad1(x), w) + b)`: `x` `[B, C_in, H, W]` as `dims`, `w` `[C_out, C_in, 3, 3]`, `b`
/// `[C_out]`; returns `[B, C_out, H, W]`.
#[cfg_attr(not(any(test, feature = "check-kernels")), allow(dead_code))]
pub(super) fn conv3x3(
    x: &[f32],
    dims: [usize; 4],
    w: &[f32],
    c_out: usize,
    b: &[f32],
    padding: Padding,
    relu: bool,
) -> Vec<f32> {
    let [batch, c_in, h, wd] = dims;
    let at = |n: usize, c: usize, y: isize, xx: isize| -> f32 {
        let inside = (0..h as isize).contains(&y) && (0..wd as isize).contains(&xx);
        let (y, xx) = match padding {
            _ if inside => (y as usize, xx as usize),
            Padding::Reflect => (reflect_index(y, h) as usize, reflect_index(xx, wd) as usize),
            Padding::Zero => return 0.0,
        };
        x[((n * c_in + c) * h + y) * wd + xx]
    };
    let mut out = vec![0f32; batch * c_out * h * wd];
    for n in 0..batch {
        for o in 0..c_out {
            for y in 0..h {
                for xx in 0..wd {
                    let mut acc = b[o];
                    for c in 0..c_in {
                        for dy in 0..3 {
                            for dx in 0..3 {
                                let v = at(n, c, (y + dy) as isize - 1, (xx + dx) as isize - 1);
                                acc += w[((o * c_in + c) * 3 + dy) * 3 + dx] * v;
                            }
                        }
                    }
                    out[((n * c_out + o) * h + y) * wd + xx] = if relu { acc.max(0.0) } else { acc };
                }
            }
        }
    }
    out
}
