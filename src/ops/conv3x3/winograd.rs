//! Winograd's minimal filtering F(4x4, 3x3) (Lavin & Gray 2016): each 4x4 output tile from a 6x6
//! input tile with 36 multiplies per (filter, channel) pair instead of 144, so the products cost a
//! quarter of the direct convolution's.
//!
//! `Y = A^T [(G g G^T) . (B^T d B)] A` per tile, with the transforms below. Filters are transformed
//! once (`U [36, C_out, C_in]`, [`filters`]); per block of tile rows, inputs are transformed to
//! `V [C_in, 36, T]`, the 36 products `M[xi] = U[xi] V[xi]` (`[C_out, T]` each) run on `gemm`, and the
//! output transform adds the bias, applies the ReLU and writes NCHW. Transforms work on 16 tiles of a
//! tile row at a time, one SIMD lane each, compiled for AVX-512 where the CPU has it (`simd.rs`).
//!
//! Rounding: the transforms' constants (1/4, 1/6, 1/24, 4, 8, ...) grow the f32 error to a few 1e-6
//! relative per layer (the direct product's is ~1e-7); the golden tests bound the whole network.
use rayon::prelude::*;

use super::direct::Padded;
use super::simd;
use crate::ops::product;

/// Tiles transformed together, one per SIMD lane (16 f32 in an AVX-512 register).
const LANES: usize = 16;

/// Working memory of a block (`V` and `M`), in f32 values: tile rows are grouped up to this.
const BLOCK_VALUES: usize = 4 << 20;

/// `G g G^T` for every filter: `w` `[C_out, C_in, 3, 3]` -> `[36, C_out, C_in]`, position
/// `xi = 6 i + j` of the 6x6 transformed filter.
pub(super) fn filters(w: &[f32], c_out: usize, c_in: usize) -> Vec<f32> {
    let mut u = vec![0f32; 36 * c_out * c_in];
    for (oc, g) in w.chunks(9).enumerate() {
        // G applied to each column, then to each row of the result.
        let mut cols = [[0f32; 3]; 6];
        for x in 0..3 {
            let t = filter_transform([g[x], g[3 + x], g[6 + x]]);
            for (i, v) in t.into_iter().enumerate() {
                cols[i][x] = v;
            }
        }
        for (i, row) in cols.iter().enumerate() {
            for (j, v) in filter_transform(*row).into_iter().enumerate() {
                u[(6 * i + j) * c_out * c_in + oc] = v;
            }
        }
    }
    u
}

/// `G g` for one 3-vector.
fn filter_transform([g0, g1, g2]: [f32; 3]) -> [f32; 6] {
    [
        g0 / 4.0,
        -(g0 + g1 + g2) / 6.0,
        -(g0 - g1 + g2) / 6.0,
        g0 / 24.0 + g1 / 12.0 + g2 / 6.0,
        g0 / 24.0 - g1 / 12.0 + g2 / 6.0,
        g2,
    ]
}

type Lanes = [f32; LANES];

/// `B^T d` on six lane vectors.
#[inline(always)]
fn input_transform(d: &[Lanes; 6]) -> [Lanes; 6] {
    let mut r = [[0f32; LANES]; 6];
    for l in 0..LANES {
        let [d0, d1, d2, d3, d4, d5] = [d[0][l], d[1][l], d[2][l], d[3][l], d[4][l], d[5][l]];
        r[0][l] = 4.0 * d0 - 5.0 * d2 + d4;
        r[1][l] = -4.0 * (d1 + d2) + d3 + d4;
        r[2][l] = 4.0 * (d1 - d2) - d3 + d4;
        r[3][l] = 2.0 * (d3 - d1) - d2 + d4;
        r[4][l] = 2.0 * (d1 - d3) - d2 + d4;
        r[5][l] = 4.0 * d1 - 5.0 * d3 + d5;
    }
    r
}

/// `A^T m` on six lane vectors.
#[inline(always)]
fn output_transform(m: &[Lanes; 6]) -> [Lanes; 4] {
    let mut r = [[0f32; LANES]; 4];
    for l in 0..LANES {
        let [m0, m1, m2, m3, m4, m5] = [m[0][l], m[1][l], m[2][l], m[3][l], m[4][l], m[5][l]];
        let (s12, d12, s34, d34) = (m1 + m2, m1 - m2, m3 + m4, m3 - m4);
        r[0][l] = m0 + s12 + s34;
        r[1][l] = d12 + 2.0 * d34;
        r[2][l] = s12 + 4.0 * s34;
        r[3][l] = d12 + 8.0 * d34 + m5;
    }
    r
}

/// Tile grid of an `h x w` output: `(rows, columns)` of 4x4 tiles.
pub(super) fn tiles(h: usize, w: usize) -> (usize, usize) {
    (h.div_ceil(4), w.div_ceil(4))
}

/// The convolution of `input` (padded to `4 * tile rows + 2` by `4 * tile columns + 2`, zero beyond
/// the padded frame) with transformed filters `u` `[36, c_out, C_in]`: `out` `[c_out, h, w]` (one
/// NCHW frame) `= relu?(conv + bias)`.
#[allow(clippy::too_many_arguments)]
pub(super) fn conv(
    input: &Padded,
    u: &[f32],
    c_out: usize,
    bias: &[f32],
    relu: bool,
    h: usize,
    w: usize,
    out: &mut [f32],
) {
    let c_in = input.channels;
    let (ty_n, tx_n) = tiles(h, w);
    let rows = (BLOCK_VALUES / (36 * (c_in + c_out) * tx_n)).clamp(1, ty_n);
    let mut v = Vec::new();
    let mut m = Vec::new();
    for ty0 in (0..ty_n).step_by(rows) {
        let block_rows = rows.min(ty_n - ty0);
        let t_n = block_rows * tx_n;
        v.resize(c_in * 36 * t_n, 0f32);
        m.resize(36 * c_out * t_n, 0f32);
        // V [C_in, 36, T]
        v.par_chunks_mut(36 * t_n).enumerate().for_each(|(c, v_c)| {
            let plane = &input.data[c * input.channel_stride..];
            let rows = BlockRows { ty0, rows: block_rows, tx_n };
            simd::dispatch(|| transform_channel(plane, input.width, rows, v_c));
        });
        // M[xi] = U[xi] V[xi]: [C_out, C_in] x [C_in, T] -> [C_out, T]
        m.par_chunks_mut(c_out * t_n).enumerate().for_each(|(xi, m_xi)| {
            // SAFETY: U[xi] is [c_out, c_in] row-major inside u; V[xi] is the [c_in, T] view with row
            // stride 36 T from offset xi T; M[xi] is [c_out, T] row-major.
            unsafe {
                product(
                    (c_out, t_n, c_in),
                    (m_xi.as_mut_ptr(), 1, t_n as isize),
                    false,
                    (u.as_ptr().add(xi * c_out * c_in), 1, c_in as isize),
                    (v.as_ptr().add(xi * t_n), 1, (36 * t_n) as isize),
                );
            }
        });
        let m = &m;
        out.par_chunks_mut(h * w).enumerate().for_each(|(o, plane)| {
            let rows = BlockRows { ty0, rows: block_rows, tx_n };
            simd::dispatch(|| untransform_filter(m, (o, c_out), bias[o], relu, plane, (h, w), rows));
        });
    }
}

/// The tile rows of a block: `rows` rows from tile row `ty0`, `tx_n` tiles each.
#[derive(Clone, Copy)]
struct BlockRows {
    ty0: usize,
    rows: usize,
    tx_n: usize,
}

/// Input transform of every tile of a block for one channel: `plane` is the padded channel (row
/// `stride`), `v_c` its `[36, T]` slice of `V`.
#[inline(always)]
fn transform_channel(plane: &[f32], stride: usize, b: BlockRows, v_c: &mut [f32]) {
    let t_n = b.rows * b.tx_n;
    for r in 0..b.rows {
        for tx0 in (0..b.tx_n).step_by(LANES) {
            let lanes = LANES.min(b.tx_n - tx0);
            transform_tiles(plane, stride, 4 * (b.ty0 + r), 4 * tx0, lanes, v_c, t_n, r * b.tx_n + tx0);
        }
    }
}

/// Output transform of every tile of a block for filter `o` of `c_out`, into its output `plane`.
#[inline(always)]
fn untransform_filter(
    m: &[f32],
    (o, c_out): (usize, usize),
    bias: f32,
    relu: bool,
    plane: &mut [f32],
    (h, w): (usize, usize),
    b: BlockRows,
) {
    let t_n = b.rows * b.tx_n;
    for r in 0..b.rows {
        for tx0 in (0..b.tx_n).step_by(LANES) {
            let lanes = LANES.min(b.tx_n - tx0);
            let tile = (o, r * b.tx_n + tx0, t_n, c_out);
            untransform_tiles(m, tile, bias, relu, plane, (h, w), 4 * (b.ty0 + r), 4 * tx0, lanes);
        }
    }
}

/// Input transform of `lanes` consecutive tiles of one channel whose top-left padded pixel is
/// `(y0, x0)`, `x0 + 4 lane` for lane `lane`: writes `V[xi][t + lane]` into `v_c` (`[36, t_n]`).
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn transform_tiles(
    plane: &[f32],
    stride: usize,
    y0: usize,
    x0: usize,
    lanes: usize,
    v_c: &mut [f32],
    t_n: usize,
    t: usize,
) {
    // Columns first: for each of the 6 tile columns, B^T over the 6 rows.
    let mut cols = [[[0f32; LANES]; 6]; 6]; // [j][i][lane]
    for (j, col) in cols.iter_mut().enumerate() {
        let mut d = [[0f32; LANES]; 6];
        for (k, dk) in d.iter_mut().enumerate() {
            let row = &plane[(y0 + k) * stride + x0 + j..];
            for (lane, v) in dk.iter_mut().enumerate().take(lanes) {
                *v = row[4 * lane];
            }
        }
        *col = input_transform(&d);
    }
    // Then rows: for each i, B^T over the 6 columns.
    for i in 0..6 {
        let d = cols.map(|col| col[i]);
        for (j, vals) in input_transform(&d).iter().enumerate() {
            let xi = 6 * i + j;
            v_c[xi * t_n + t..xi * t_n + t + lanes].copy_from_slice(&vals[..lanes]);
        }
    }
}

/// Output transform of `lanes` tiles of filter `o` starting at block tile `t`: `tile` is `(o, t,
/// t_n, c_out)` locating them in `m` `[36, c_out, t_n]`; writes the 4x4 outputs (clipped to `(h,
/// w)`) with `bias` and the ReLU into `plane` at `(y0, x0 + 4 lane)`.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn untransform_tiles(
    m: &[f32],
    (o, t, t_n, c_out): (usize, usize, usize, usize),
    bias: f32,
    relu: bool,
    plane: &mut [f32],
    (h, w): (usize, usize),
    y0: usize,
    x0: usize,
    lanes: usize,
) {
    // A^T over each of the 6 columns ([j][i][lane]), then regrouped by output row ([i][j][lane]).
    let cols: [[Lanes; 4]; 6] = std::array::from_fn(|j| {
        let mut col = [[0f32; LANES]; 6];
        for (i, ci) in col.iter_mut().enumerate() {
            let at = ((6 * i + j) * c_out + o) * t_n + t;
            ci[..lanes].copy_from_slice(&m[at..at + lanes]);
        }
        output_transform(&col)
    });
    let rows: [[Lanes; 6]; 4] = std::array::from_fn(|i| cols.map(|col| col[i]));
    for (i, row) in rows.iter().enumerate() {
        let y = y0 + i;
        if y >= h {
            break;
        }
        let out = output_transform(row);
        let line = &mut plane[y * w..(y + 1) * w];
        for (j, vals) in out.iter().enumerate() {
            for (lane, &v) in vals.iter().enumerate().take(lanes) {
                let x = x0 + 4 * lane + j;
                if x < w {
                    let v = v + bias;
                    line[x] = if relu { v.max(0.0) } else { v };
                }
            }
        }
    }
}
