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
use rayon::prelude::*;

use super::{simd, Padding};
use crate::ops::product;
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
    /// than the frame, see [`reflect_index`]). Rows and columns of the buffer beyond `h + 2 pad` and
    /// `w + 2 pad` are left as they are (zero in a fresh buffer).
    pub fn fill(&mut self, src: &[f32], h: usize, w: usize, pad: usize, padding: Padding) {
        let (wp, cs) = (self.width, self.channel_stride);
        let (hp, wq) = (h + 2 * pad, w + 2 * pad);
        assert!(hp <= self.height && wq <= wp, "a {h}x{w} frame padded by {pad} exceeds the buffer");
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
                let row = &mut dst[py * wp..py * wp + wq];
                let Some(sy) = source(py, h) else {
                    row.fill(0.0);
                    continue;
                };
                let line = &plane[sy * w..(sy + 1) * w];
                row[pad..pad + w].copy_from_slice(line);
                for px in (0..pad).chain(pad + w..wq) {
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
    let plane = h * w;
    assert!(out.len() >= c_out * plane, "output holds {} values, needs {}", out.len(), c_out * plane);
    // A handful of filters (an RGB output, PAMA's one-channel gate): each product would be a sliver of
    // a matrix, so a loop over pixel vectors keeps every filter's sum in registers instead.
    match c_out {
        1 => return few_filters::<1>(input, &pack_taps(weights, &tap, input.channels, 1), bias, relu, out),
        2 => return few_filters::<2>(input, &pack_taps(weights, &tap, input.channels, 2), bias, relu, out),
        3 => return few_filters::<3>(input, &pack_taps(weights, &tap, input.channels, 3), bias, relu, out),
        4 => return few_filters::<4>(input, &pack_taps(weights, &tap, input.channels, 4), bias, relu, out),
        _ => {}
    }
    let rows = tile_rows(c_out, wp, h);
    // A handful of input channels (an RGB frame): nine products of depth C_in would each re-read the
    // whole accumulator for a few multiply-adds per value, so the tile is unfolded into one product
    // of depth 9 C_in (copies of contiguous runs: cheap at this depth).
    let few_channels =
        (input.channels <= FEW_CHANNELS).then(|| pack_taps(weights, &tap, input.channels, c_out));
    let out = SharedOut(out.as_mut_ptr());
    (0..h.div_ceil(rows)).into_par_iter().for_each(|t| {
        let y0 = t * rows;
        let n_rows = rows.min(h - y0);
        let n = n_rows * wp;
        let mut acc = vec![0f32; c_out * n];
        if let Some(packed) = &few_channels {
            // im2col of the tile: row 9 c + t is channel c shifted by tap t, one contiguous copy.
            let mut columns = vec![0f32; 9 * input.channels * n];
            for (r, dst) in columns.chunks_mut(n).enumerate() {
                let (c, k) = (r / 9, r % 9);
                let start = c * input.channel_stride + y0 * wp + (k / 3) * wp + k % 3;
                dst.copy_from_slice(&input.data[start..start + n]);
            }
            // SAFETY: acc is [c_out, n]; packed is [9 C_in, c_out] read as its transpose; columns is
            // [9 C_in, n]; all row-major and in bounds.
            unsafe {
                product(
                    (c_out, n, 9 * input.channels),
                    (acc.as_mut_ptr(), 1, n as isize),
                    false,
                    (packed.as_ptr(), c_out as isize, 1),
                    (columns.as_ptr(), 1, n as isize),
                );
            }
        } else {
            accumulate_taps(input, weights, &tap, y0, n, &mut acc);
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

/// `acc` `[c_out, n]` = the nine tap products over grid positions `y0 * Wp .. y0 * Wp + n`.
fn accumulate_taps(
    input: &Padded,
    weights: &[f32],
    tap: impl Fn(usize) -> (usize, isize, isize),
    y0: usize,
    n: usize,
    acc: &mut [f32],
) {
    let (wp, c_out) = (input.width, acc.len() / n);
    for k in 0..9 {
        let (offset, rs, cs) = tap(k);
        let shift = (k / 3) * wp + k % 3;
        // SAFETY: acc is [c_out, n] row-major; the weight view stays inside `weights` by the caller's
        // `tap`; the input view reads rows y0 .. y0 + n / Wp + 2 of every channel plus two values,
        // inside `channel_stride` (see `Padded`).
        unsafe {
            product(
                (c_out, n, input.channels),
                (acc.as_mut_ptr(), 1, n as isize),
                k > 0,
                (weights.as_ptr().add(offset), cs, rs),
                (input.data.as_ptr().add(y0 * wp + shift), 1, input.channel_stride as isize),
            );
        }
    }
}

/// The weights as `[C_in, 9, c_out]` (filter index fastest), read through `tap` (see [`conv_valid`]).
fn pack_taps(
    weights: &[f32],
    tap: impl Fn(usize) -> (usize, isize, isize),
    c_in: usize,
    c_out: usize,
) -> Vec<f32> {
    let taps: Vec<_> = (0..9).map(tap).collect();
    let mut packed = Vec::with_capacity(c_in * 9 * c_out);
    for c in 0..c_in as isize {
        for &(offset, rs, cs) in &taps {
            packed.extend((0..c_out as isize).map(|o| weights[(offset as isize + o * rs + c * cs) as usize]));
        }
    }
    packed
}

/// Input channels up to which a tile is unfolded into one product (see [`conv_valid`]).
const FEW_CHANNELS: usize = 8;

/// Pixels per vector of [`few_filters`]: one AVX-512 register of f32.
const LANES: usize = 16;

/// [`conv_valid`] for `O <= 4` filters: per output row (rows in parallel) and 16-pixel run, the `O`
/// sums stay in registers over all channels and taps. `packed`: `[C_in, 9, O]` from [`pack_taps`].
fn few_filters<const O: usize>(
    input: &Padded,
    packed: &[f32],
    bias: Option<&[f32]>,
    relu: bool,
    out: &mut [f32],
) {
    let (wp, h, w) = (input.width, input.height - 2, input.width - 2);
    let out = SharedOut(out.as_mut_ptr());
    (0..h).into_par_iter().for_each(|y| {
        simd::dispatch(|| {
            let mut row = [[0f32; LANES]; O];
            for x0 in (0..w).step_by(LANES) {
                let lanes = LANES.min(w - x0);
                for (o, acc) in row.iter_mut().enumerate() {
                    *acc = [bias.map_or(0.0, |b| b[o]); LANES];
                }
                for (c, wc) in packed.chunks(9 * O).enumerate() {
                    let channel = &input.data[c * input.channel_stride..];
                    for (t, wt) in wc.chunks(O).enumerate() {
                        let start = (y + t / 3) * wp + t % 3 + x0;
                        let mut src = [0f32; LANES];
                        src[..lanes].copy_from_slice(&channel[start..start + lanes]);
                        for (acc, &k) in row.iter_mut().zip(wt) {
                            for (a, s) in acc.iter_mut().zip(&src) {
                                *a += k * s;
                            }
                        }
                    }
                }
                for (o, acc) in row.iter().enumerate() {
                    // SAFETY: row y of filter o, pixels x0 .. x0 + lanes: written by this task only.
                    let dst =
                        unsafe { std::slice::from_raw_parts_mut(out.at(o * h * w + y * w + x0), lanes) };
                    for (d, &v) in dst.iter_mut().zip(acc) {
                        *d = if relu { v.max(0.0) } else { v };
                    }
                }
            }
        })
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
