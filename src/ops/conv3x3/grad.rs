//! The backward pass of [`super::conv3x3`] on the same machinery as the forward pass.
//!
//! With `y = conv(P(x), W)` (`P`: the one-pixel padding), `dL/dP(x) = conv(pad2_zero(g), W')` where
//! `W'[c, o, dy, dx] = W[o, c, 2 - dy, 2 - dx]` and `g = dL/dy` (after the ReLU's mask): a full
//! correlation, `[B, C_in, H + 2, W + 2]`. `dL/dx` folds that back through `P`'s adjoint: the
//! interior as is, plus, for reflection, each border value onto the pixel it was copied from.
//! `dL/dW[o, c, t] = sum_q g[o, q] P(x)[c, q + shift(t)]`, nine products over the pixels, split
//! across the cores and summed.
use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape};
use rayon::prelude::*;

use super::direct::{conv_valid, Padded};
use super::{dims4, f32_slice, Padding};
use crate::ops::product;
use crate::ops::reflect_index;

/// `dL/dx` `[B, C_in, H, W]` from `g` `[B, C_out, H, W]` and `W` `[C_out, C_in, 3, 3]`.
pub(super) struct InputGrad {
    pub padding: Padding,
}

impl CustomOp2 for InputGrad {
    fn name(&self) -> &'static str {
        "conv3x3-input-grad"
    }

    fn cpu_fwd(
        &self,
        gs: &CpuStorage,
        gl: &Layout,
        ws: &CpuStorage,
        wl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (g, w) = (f32_slice(gs, gl)?, f32_slice(ws, wl)?);
        let [batch, c_out, h, wd] = dims4(gl);
        let c_in = wl.dims()[1];
        let (hp, wp) = (h + 2, wd + 2);
        let mut d_x = vec![0f32; batch * c_in * h * wd];
        let mut padded = Padded::zeros(c_out, h + 4, wd + 4);
        let mut d_padded = vec![0f32; c_in * hp * wp];
        // Tap t of W' as a [C_in, C_out] matrix: W'[c, o, t] = W[o, c, 8 - t] at o * 9 C_in + 9 c + 8 - t.
        let tap = move |t: usize| (8 - t, 9, (9 * c_in) as isize);
        for (frame, d_frame) in g.chunks(c_out * h * wd).zip(d_x.chunks_mut(c_in * h * wd)) {
            padded.fill(frame, h, wd, 2, Padding::Zero);
            conv_valid(&padded, w, tap, c_in, None, false, &mut d_padded);
            fold_border(&d_padded, h, wd, self.padding, d_frame);
        }
        Ok((CpuStorage::F32(d_x), Shape::from((batch, c_in, h, wd))))
    }
}

/// The adjoint of one-pixel padding: `d_padded` `[C, H + 2, W + 2]` -> `d_x` `[C, H, W]`.
fn fold_border(d_padded: &[f32], h: usize, w: usize, padding: Padding, d_x: &mut [f32]) {
    let wp = w + 2;
    d_x.par_chunks_mut(h * w).zip(d_padded.par_chunks((h + 2) * wp)).for_each(|(dst, src)| {
        for y in 0..h {
            dst[y * w..(y + 1) * w].copy_from_slice(&src[(y + 1) * wp + 1..(y + 1) * wp + 1 + w]);
        }
        if padding == Padding::Zero {
            return;
        }
        let border = (0..h + 2).flat_map(|py| {
            let edge_row = py == 0 || py == h + 1;
            (0..wp).filter(move |&px| edge_row || px == 0 || px == w + 1).map(move |px| (py, px))
        });
        for (py, px) in border {
            let sy = reflect_index(py as isize - 1, h) as usize;
            let sx = reflect_index(px as isize - 1, w) as usize;
            dst[sy * w + sx] += src[py * wp + px];
        }
    });
}

/// `dL/dW` `[C_out, C_in, 3, 3]` from `x` `[B, C_in, H, W]` and `g` `[B, C_out, H, W]`.
pub(super) struct WeightGrad {
    pub padding: Padding,
}

impl CustomOp2 for WeightGrad {
    fn name(&self) -> &'static str {
        "conv3x3-weight-grad"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        gs: &CpuStorage,
        gl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (x, g) = (f32_slice(xs, xl)?, f32_slice(gs, gl)?);
        let [_, c_in, h, wd] = dims4(xl);
        let c_out = gl.dims()[1];
        let wp = wd + 2;
        let n = h * wp;
        let mut padded = Padded::zeros(c_in, h + 2, wp);
        // g on the H x Wp grid of the padded input, zero in the two thrown-away columns of each row.
        let mut grid = vec![0f32; c_out * n];
        let parts = rayon::current_num_threads().min(n.div_ceil(256)).max(1);
        let chunk = n.div_ceil(parts);
        let mut partial = vec![vec![0f32; c_out * c_in * 9]; parts];
        for (i, (frame, g_frame)) in x.chunks(c_in * h * wd).zip(g.chunks(c_out * h * wd)).enumerate() {
            padded.fill(frame, h, wd, 1, self.padding);
            for (dst, src) in grid.chunks_mut(n).zip(g_frame.chunks(h * wd)) {
                for (d, s) in dst.chunks_mut(wp).zip(src.chunks(wd)) {
                    d[..wd].copy_from_slice(s);
                }
            }
            partial.par_iter_mut().enumerate().for_each(|(p, d_w)| {
                let q0 = p * chunk;
                let k = chunk.min(n - q0);
                for t in 0..9 {
                    let shift = (t / 3) * wp + t % 3;
                    // SAFETY: d_w is [C_out, C_in, 9]: tap t's [C_out, C_in] view has strides (9 C_in, 9)
                    // from offset t. grid is [C_out, n]; the input view reads q0 + shift .. q0 + k + shift
                    // of every channel, inside `channel_stride` (see `Padded`).
                    unsafe {
                        product(
                            (c_out, c_in, k),
                            (d_w.as_mut_ptr().add(t), 9, (9 * c_in) as isize),
                            i > 0,
                            (grid.as_ptr().add(q0), 1, n as isize),
                            (padded.data.as_ptr().add(q0 + shift), padded.channel_stride as isize, 1),
                        );
                    }
                }
            });
        }
        let mut d_w = partial.pop().unwrap_or_default();
        for other in &partial {
            d_w.iter_mut().zip(other).for_each(|(a, b)| *a += b);
        }
        Ok((CpuStorage::F32(d_w), Shape::from((c_out, c_in, 3, 3))))
    }
}
