//! The CPU reference of the streaming attention: one rayon task per query tile, the online-softmax
//! recurrence written out per query row. The two tile products (scores `Q K^T`, values `P V`) go to
//! `gemm`, the matrix-multiply crate candle's own CPU matmul uses, through [`matmul`], a bounds-checked
//! wrapper. Queries are a `[d_k, N_q]` channel-major map; keys `[N_k, d_k]` and values `[N_k, d_v]`
//! pixel-major.
use rayon::prelude::*;

use super::{Geometry, KEY_TILE, QUERY_TILE};
use crate::ops::product;

/// Attention for every query. Returns `[d_v, N_q]` channel-major, like the queries.
///
/// Each output value depends only on its query tile, computed start to finish by one task in a fixed
/// order, so the result is bitwise the same whatever the thread count or scheduling.
pub(super) fn attend(g: &Geometry, q: &[f32], k: &[f32], v: &[f32]) -> Vec<f32> {
    let starts: Vec<usize> = (0..g.n_q).step_by(QUERY_TILE).collect();
    // Per tile, [rows, d_v] row-major.
    let tiles: Vec<Vec<f32>> = starts.par_iter().map(|&start| query_tile(g, q, k, v, start)).collect();
    let mut out = vec![0f32; g.d_v * g.n_q];
    // [tiles][rows, d_v] -> [d_v, N_q]
    out.par_chunks_mut(g.n_q).enumerate().for_each(|(c, channel)| {
        for (&start, tile) in starts.iter().zip(&tiles) {
            for (i, row) in tile.chunks_exact(g.d_v).enumerate() {
                channel[start + i] = row[c];
            }
        }
    });
    out
}

/// The queries `start .. start + rows` against all keys, tile by tile. Returns `[rows, d_v]`.
fn query_tile(g: &Geometry, q: &[f32], k: &[f32], v: &[f32], start: usize) -> Vec<f32> {
    let rows = QUERY_TILE.min(g.n_q - start);
    // Q_t [rows, d_k]: query i, channel c at q[start + c * N_q + i].
    let queries = View { data: &q[start..], rows, cols: g.d_k, row_stride: 1, col_stride: g.n_q };
    let mut scores = vec![0f32; rows * KEY_TILE];
    // Per query: running maximum m, running normaliser l = sum_j exp(s_j - m), and the running
    // unnormalised output acc = sum_j exp(s_j - m) v_j.
    let mut max = vec![f32::NEG_INFINITY; rows];
    let mut norm = vec![0f32; rows];
    let mut acc = vec![0f32; rows * g.d_v];
    for k0 in (0..g.n_k).step_by(KEY_TILE) {
        let cols = KEY_TILE.min(g.n_k - k0);
        let s = &mut scores[..rows * cols];
        // K_t^T [d_k, cols]: channel c of key j at k[(k0 + j) * d_k + c].
        let keys = View { data: &k[k0 * g.d_k..], rows: g.d_k, cols, row_stride: 1, col_stride: g.d_k };
        matmul(s, &queries, &keys, false); // S = Q_t K_t^T, [rows, cols]
        for ((row, acc_row), (m, l)) in
            s.chunks_exact_mut(cols).zip(acc.chunks_exact_mut(g.d_v)).zip(max.iter_mut().zip(norm.iter_mut()))
        {
            let m_new = row.iter().copied().fold(*m, f32::max);
            // exp(-inf) = 0 on the first tile, where l and acc are still zero.
            let rescale = (*m - m_new).exp();
            let mut tile_sum = 0f32;
            for x in row.iter_mut() {
                *x = (*x - m_new).exp();
                tile_sum += *x;
            }
            *l = *l * rescale + tile_sum;
            if rescale != 1.0 {
                acc_row.iter_mut().for_each(|a| *a *= rescale);
            }
            *m = m_new;
        }
        // acc += P_t V_t: [rows, cols] x [cols, d_v].
        let p = View { data: s, rows, cols, row_stride: cols, col_stride: 1 };
        let values =
            View { data: &v[k0 * g.d_v..], rows: cols, cols: g.d_v, row_stride: g.d_v, col_stride: 1 };
        matmul(&mut acc, &p, &values, true);
    }
    for (acc_row, l) in acc.chunks_exact_mut(g.d_v).zip(&norm) {
        acc_row.iter_mut().for_each(|a| *a /= l);
    }
    acc
}

/// A strided matrix: element `(i, j)` at `data[i * row_stride + j * col_stride]`.
struct View<'a> {
    data: &'a [f32],
    rows: usize,
    cols: usize,
    row_stride: usize,
    col_stride: usize,
}

impl View<'_> {
    /// Whether every element lies inside `data`.
    fn in_bounds(&self) -> bool {
        self.rows == 0
            || self.cols == 0
            || (self.rows - 1) * self.row_stride + (self.cols - 1) * self.col_stride < self.data.len()
    }
}

/// `out = a b` (or `out += a b` with `accumulate`), `out` row-major `[a.rows, b.cols]`, single-threaded
/// (the parallelism is across query tiles).
fn matmul(out: &mut [f32], a: &View, b: &View, accumulate: bool) {
    assert!(a.cols == b.rows && out.len() == a.rows * b.cols, "matmul shapes");
    assert!(a.in_bounds() && b.in_bounds(), "matmul views exceed their slices");
    // SAFETY: the asserts above keep every element gemm reads or writes inside the three slices; `out`
    // is a unique borrow, so it aliases neither input.
    unsafe {
        product(
            (a.rows, b.cols, a.cols),
            (out.as_mut_ptr(), 1, b.cols as isize),
            accumulate,
            (a.data.as_ptr(), a.col_stride as isize, a.row_stride as isize),
            (b.data.as_ptr(), b.col_stride as isize, b.row_stride as isize),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matmul_reads_strided_views_and_accumulates() {
        // a = [[1, 2], [3, 4]] stored column-major; b = [[5], [6]].
        let a = View { data: &[1., 3., 2., 4.], rows: 2, cols: 2, row_stride: 1, col_stride: 2 };
        let b = View { data: &[5., 6.], rows: 2, cols: 1, row_stride: 1, col_stride: 1 };
        let mut out = vec![1f32; 2];
        matmul(&mut out, &a, &b, false);
        assert_eq!(out, vec![17., 39.]);
        matmul(&mut out, &a, &b, true);
        assert_eq!(out, vec![34., 78.]);
    }
}
