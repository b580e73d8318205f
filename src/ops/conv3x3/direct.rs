//! The fast CPU 3x3 convolution: every tap a shifted view of one padded buffer, fed to `gemm`.
//!
//! A frame padded to `Hp x Wp` is stored channel-major with row stride `Wp`. Output pixel `(y, x)`
//! sits at flat position `q = y * Wp + x` of a `H x Wp` grid, and tap `(dy, dx)` reads the padded
//! buffer at `q + dy * Wp + dx`: for a fixed tap, the input columns of all output pixels are one
//! contiguous run. So the convolution is nine products `W_tap [C_out, C_in] x P_tap [C_in, pixels]`
//! accumulated into one tile, with no im2col copy. The two columns `x = W, W + 1` of each grid row
//! are computed and thrown away (2 / Wp of the work).
//!
//! Work is split into tiles of whole grid rows, sized so that a tile's `[C_out, pixels]` accumulator
//! stays in the core's L2 cache across the nine products; the two cores take tiles in parallel and
//! each finishes its tile (bias, ReLU, copy to NCHW) while it is hot.
use gemm::{gemm, Parallelism};
use rayon::prelude::*;

use super::Padding;
use crate::ops::reflect_index;

/// A padded, channel-major frame: channel `c` starts at `c * channel_stride`, row stride `width`.
/// `channel_stride >= height * width + 2`: the last tap of the last grid row reads two values past the
/// padded frame (into the thrown-away columns' inputs), which stay zero.
pub(super) struct Padded {
    pub data: Vec<f32>,
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    pub channel_stride: usize,
}

impl Padded {
    /// A zeroed buffer for `channels` frames of `height x width` (padding included).
    pub fn zeros(channels: usize, height: usize, width: usize) -> Self {
        let channel_stride = height * width + 2;
        Self { data: vec![0.0; channels * channel_stride], channels, height, width, channel_stride }
    }

    /// Copies `src` `[channels, h, w]` (one NCHW frame) into the interior at offset `(pad, pad)` and
    /// fills the `pad`-wide border as `padding` says (reflection continues periodically for pads wider
    /// than the frame, see [`reflect_index`]).
    pub fn fill(&mut self, src: &[f32], pad: usize, padding: Padding) {
        let (hp, wp, cs) = (self.height, self.width, self.channel_stride);
        let (h, w) = (hp - 2 * pad, wp - 2 * pad);
        let source = |i: usize, n: usize| -> Option<usize> {
            let s = i as isize - pad as isize;
            match padding {
                _ if (0..n as isize).contains(&s) => Some(s as usize),
                Padding::Reflect => Some(reflect_index(s, n) as usize),
                Padding::Zero => None,
            }
        };
        self.data.par_chunks_mut(cs).zip(src.par_chunks(h * w)).for_each(|(dst, plane)| {
            for py in 0..hp {
                let row = &mut dst[py * wp..(py + 1) * wp];
                let Some(sy) = source(py, h) else {
                    row.fill(0.0);
                    continue;
                };
                let line = &plane[sy * w..(sy + 1) * w];
                row[pad..pad + w].copy_from_slice(line);
                for px in (0..pad).chain(pad + w..wp) {
                    row[px] = source(px, w).map_or(0.0, |sx| line[sx]);
                }
            }
        });
    }
}

/// A valid (unpadded) 3x3 convolution of `input` with `c_out` filters: `out[o, y, x] = bias[o] +
/// sum_{c, dy, dx} W_tap(3 dy + dx)[o, c] * input[c, y + dy, x + dx]`, ReLU after when `relu`.
/// `out`: `[c_out, Hp - 2, Wp - 2]` row-major (one NCHW frame). `tap(t)` places tap `t`'s (`t = 3 dy +
/// dx`) `[c_out, C_in]` matrix inside `weights`: the offset of its element `(0, 0)` and its row and
/// column strides.
pub(super) fn conv_valid(
    input: &Padded,
    weights: &[f32],
    tap: impl Fn(usize) -> (usize, isize, isize) + Sync,
    c_out: usize,
    bias: Option<&[f32]>,
    relu: bool,
    out: &mut [f32],
) {
    let (wp, h, w) = (input.width, input.height - 2, input.width - 2);
    let rows = tile_rows(c_out, wp, h);
    let plane = h * w;
    assert!(out.len() >= c_out * plane, "output holds {} values, needs {}", out.len(), c_out * plane);
    let out = SharedOut(out.as_mut_ptr());
    (0..h.div_ceil(rows)).into_par_iter().for_each(|t| {
        let y0 = t * rows;
        let n_rows = rows.min(h - y0);
        let n = n_rows * wp;
        let mut acc = vec![0f32; c_out * n];
        for k in 0..9 {
            let (offset, rs, cs) = tap(k);
            let shift = (k / 3) * wp + k % 3;
            // SAFETY: acc is [c_out, n] row-major; the weight view stays inside `weights` by the
            // caller's `tap`; the input view reads rows y0 .. y0 + n_rows + 2 of every channel plus
            // two values, inside `channel_stride` (see `Padded`).
            unsafe {
                gemm(
                    c_out,
                    n,
                    input.channels,
                    acc.as_mut_ptr(),
                    1,
                    n as isize,
                    k > 0,
                    weights.as_ptr().add(offset),
                    cs,
                    rs,
                    input.data.as_ptr().add(y0 * wp + shift),
                    1,
                    input.channel_stride as isize,
                    1.0,
                    1.0,
                    false,
                    false,
                    false,
                    Parallelism::None,
                );
            }
        }
        for (o, src) in acc.chunks(n).enumerate() {
            let b = bias.map_or(0.0, |b| b[o]);
            // SAFETY: tile t alone writes rows y0 .. y0 + n_rows of each channel, inside `out` (checked).
            let dst = unsafe { std::slice::from_raw_parts_mut(out.at(o * plane + y0 * w), n_rows * w) };
            for (d, s) in dst.chunks_mut(w).zip(src.chunks(wp)) {
                for (d, s) in d.iter_mut().zip(s) {
                    let v = s + b;
                    *d = if relu { v.max(0.0) } else { v };
                }
            }
        }
    });
}

/// The output buffer, shared by the tiles that each write their own rows of it.
struct SharedOut(*mut f32);
// SAFETY: tiles write disjoint ranges (see `conv_valid`).
unsafe impl Sync for SharedOut {}

impl SharedOut {
    fn at(&self, i: usize) -> *mut f32 {
        // SAFETY: callers stay inside the buffer.
        unsafe { self.0.add(i) }
    }
}

/// Grid rows per tile: an accumulator of about 128 K floats (512 KB, half of a Zen 4 core's L2),
/// at least one row, and at least four tiles when the frame has the rows for them (both cores busy).
fn tile_rows(c_out: usize, wp: usize, h: usize) -> usize {
    let by_cache = (128 * 1024 / (c_out * wp)).max(1);
    let by_balance = h.div_ceil(4).max(1);
    by_cache.min(by_balance)
}
