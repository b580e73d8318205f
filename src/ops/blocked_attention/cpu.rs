//! The CPU reference of the blocked attention ops: plain loops, one head per rayon task, written to
//! be read next to the paper. Maps are `[C, H, W]` row-major; style tensors `[heads, n, r, d]`.
use rayon::prelude::*;

use super::Geometry;

/// Distributed attention for every covered pixel: softmax over the `n_s` aggregated style patches.
/// `q`: `[heads * d_k, H, W]`; `k_bar`: `[heads, n_s, d_k]`; `v_bar`: `[heads, n_s, d_v]`.
/// Returns `[heads * d_v, H, W]`, zero outside whole patches.
pub(super) fn distributed(g: &Geometry, q: &[f32], k_bar: &[f32], v_bar: &[f32]) -> Vec<f32> {
    let hw = g.height * g.width;
    let covered_h = g.height / g.region * g.region;
    let covered_w = g.width / g.region * g.region;
    let mut out = vec![0f32; g.heads * g.d_v * hw];
    out.par_chunks_mut(g.d_v * hw).enumerate().for_each(|(h, out_h)| {
        let q_h = &q[h * g.d_k * hw..][..g.d_k * hw];
        let k_h = &k_bar[h * g.n_s * g.d_k..][..g.n_s * g.d_k];
        let v_h = &v_bar[h * g.n_s * g.d_v..][..g.n_s * g.d_v];
        let mut query = vec![0f32; g.d_k];
        let mut weights = vec![0f32; g.n_s];
        let mut value = vec![0f32; g.d_v];
        for y in 0..covered_h {
            for x in 0..covered_w {
                let p = y * g.width + x;
                for (c, qc) in query.iter_mut().enumerate() {
                    *qc = q_h[c * hw + p];
                }
                for (w, key) in weights.iter_mut().zip(k_h.chunks_exact(g.d_k)) {
                    *w = dot(&query, key);
                }
                softmax(&mut weights);
                weighted_sum(&weights, v_h, &mut value);
                for (c, vc) in value.iter().enumerate() {
                    out_h[c * hw + p] = *vc;
                }
            }
        }
    });
    out
}

/// Progressive attention for every whole content patch.
/// `q`: `[heads * d_k, H, W]`; `k`: `[heads, n_s, r, d_k]`; `v`: `[heads, n_s, r, d_v]`.
/// Returns `[heads * d_v, H, W]`, zero outside whole patches.
pub(super) fn progressive(g: &Geometry, q: &[f32], k: &[f32], v: &[f32]) -> Vec<f32> {
    let hw = g.height * g.width;
    let big_r = g.region;
    let r = big_r * big_r;
    let mut out = vec![0f32; g.heads * g.d_v * hw];
    out.par_chunks_mut(g.d_v * hw).enumerate().for_each(|(h, out_h)| {
        let q_h = &q[h * g.d_k * hw..][..g.d_k * hw];
        let k_h = &k[h * g.n_s * r * g.d_k..][..g.n_s * r * g.d_k];
        let v_h = &v[h * g.n_s * r * g.d_v..][..g.n_s * r * g.d_v];
        // The current content patch's queries, [r, d_k].
        let mut patch = vec![0f32; r * g.d_k];
        let mut logits = vec![0f32; r];
        let mut value = vec![0f32; g.d_v];
        for i in 0..g.height / big_r {
            for j in 0..g.width / big_r {
                let pixel = |y: usize| (i * big_r + y / big_r) * g.width + j * big_r + y % big_r;
                for (y, query) in patch.chunks_exact_mut(g.d_k).enumerate() {
                    for (c, qc) in query.iter_mut().enumerate() {
                        *qc = q_h[c * hw + pixel(y)];
                    }
                }
                // Position-aligned patch score: one dot product over all r * d_k values.
                let scores = k_h.chunks_exact(r * g.d_k).map(|key_patch| dot(&patch, key_patch));
                let best = argmax_first(scores);
                let k_m = &k_h[best * r * g.d_k..][..r * g.d_k];
                let v_m = &v_h[best * r * g.d_v..][..r * g.d_v];
                for (y, query) in patch.chunks_exact(g.d_k).enumerate() {
                    for (l, key) in logits.iter_mut().zip(k_m.chunks_exact(g.d_k)) {
                        *l = dot(query, key);
                    }
                    softmax(&mut logits);
                    weighted_sum(&logits, v_m, &mut value);
                    let p = pixel(y);
                    for (c, vc) in value.iter().enumerate() {
                        out_h[c * hw + p] = *vc;
                    }
                }
            }
        }
    });
    out
}

/// Dot product with eight independent accumulators, so the compiler can vectorise it.
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (a8, b8) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = a8.remainder().iter().zip(b8.remainder()).map(|(x, y)| x * y).sum();
    for (x, y) in a8.zip(b8) {
        for l in 0..8 {
            acc[l] += x[l] * y[l];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// Numerically stable softmax in place.
fn softmax(x: &mut [f32]) {
    let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0f32;
    for v in x.iter_mut() {
        *v = (*v - max).exp();
        sum += *v;
    }
    for v in x.iter_mut() {
        *v /= sum;
    }
}

/// `out = sum_z weights[z] * rows[z]`, `rows` being `weights.len()` rows of `out.len()` values.
fn weighted_sum(weights: &[f32], rows: &[f32], out: &mut [f32]) {
    out.fill(0.);
    for (w, row) in weights.iter().zip(rows.chunks_exact(out.len())) {
        for (o, x) in out.iter_mut().zip(row) {
            *o += w * x;
        }
    }
}

/// Index of the largest score; the first one on exact ties, as `torch.argmax`.
fn argmax_first(scores: impl Iterator<Item = f32>) -> usize {
    let mut best = (0, f32::NEG_INFINITY);
    for (i, s) in scores.enumerate() {
        if s > best.1 {
            best = (i, s);
        }
    }
    best.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argmax_keeps_the_first_of_ties() {
        assert_eq!(argmax_first([1.0, 3.0, 3.0, 2.0].into_iter()), 1);
    }

    #[test]
    fn softmax_sums_to_one_and_survives_large_logits() {
        let mut x = [1000.0, 1000.0, 0.0];
        softmax(&mut x);
        assert!((x[0] - 0.5).abs() < 1e-6 && x[2] == 0.0);
    }

    #[test]
    fn dot_handles_tails() {
        let a: Vec<f32> = (0..11).map(|i| i as f32).collect();
        assert_eq!(dot(&a, &a), (0..11).map(|i| (i * i) as f32).sum::<f32>());
    }
}
