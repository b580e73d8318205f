//! Backward passes of the blocked attention ops, as tensor ops (any device).
//!
//! Both ops are, per head, `out = softmax(Q K^T) V` over some set of keys; with `A` the softmax weights
//! and `G` the gradient of the output, the vector-Jacobian product is
//! `dV = A^T G`, `dL = A * (G V^T - rowsum(A * G V^T))`, `dQ = dL K`, `dK = dL^T Q`.
//! The forward is recomputed here in blocked form (`[heads, positions, d]`): training crops are small,
//! so the score tensors fit, and inference never runs this.
use candle_core::{Result, Tensor, D};

use super::{block, unblock};

/// `(dQ, dK, dV)` of `softmax(Q K^T) V` for batched `q [.., m, d_k]`, `k [.., n, d_k]`,
/// `v [.., n, d_v]` and output gradient `g [.., m, d_v]`.
fn softmax_attention_vjp(q: &Tensor, k: &Tensor, v: &Tensor, g: &Tensor) -> Result<(Tensor, Tensor, Tensor)> {
    let a = candle_nn::ops::softmax_last_dim(&q.matmul(&k.t()?)?)?;
    let dv = a.t()?.matmul(g)?;
    let da = g.matmul(&v.t()?)?;
    let dl = (&a * da.broadcast_sub(&(&a * &da)?.sum_keepdim(D::Minus1)?)?)?;
    Ok((dl.matmul(k)?, dl.t()?.matmul(q)?, dv))
}

/// Gradients of [`super::distributed_attention`] with respect to `q [1, heads*d_k, H, W]`,
/// `k_bar [heads, n_s, d_k]` and `v_bar [heads, n_s, d_v]`, given the output gradient
/// `grad [1, heads*d_v, H, W]`.
pub(super) fn distributed(
    q: &Tensor,
    k_bar: &Tensor,
    v_bar: &Tensor,
    grad: &Tensor,
    region: usize,
) -> Result<(Tensor, Tensor, Tensor)> {
    let (heads, _, d_k) = k_bar.dims3()?;
    let d_v = v_bar.dim(2)?;
    let (_, _, h, w) = q.dims4()?;
    // [1, heads*d, H, W] -> [heads, n_c, r, d] -> [heads, n_c * r, d]: every covered position.
    let flat = |x: &Tensor, d: usize| -> Result<Tensor> {
        let b = block(&x.detach(), region, heads)?;
        let (_, n_c, r, _) = b.dims4()?;
        b.reshape((heads, n_c * r, d))
    };
    let qb = flat(q, d_k)?;
    let (dq, dk, dv) = softmax_attention_vjp(&qb, &k_bar.detach(), &v_bar.detach(), &flat(grad, d_v)?)?;
    let r = region * region;
    let dq = unblock(&dq.reshape((heads, (h / region) * (w / region), r, d_k))?, region, h, w)?;
    Ok((dq, dk, dv))
}

/// Gradients of [`super::progressive_attention`] with respect to `q [1, heads*d_k, H, W]`,
/// `k [heads, n_s, r, d_k]` and `v [heads, n_s, r, d_v]`, given `grad [1, heads*d_v, H, W]`.
///
/// The patch choice (argmax) is piecewise constant, so no gradient flows through it; the matched
/// patch's keys and values receive the gradients of every content patch that chose it.
pub(super) fn progressive(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    grad: &Tensor,
    region: usize,
) -> Result<(Tensor, Tensor, Tensor)> {
    let (heads, n_s, r, d_k) = k.dims4()?;
    let d_v = v.dim(3)?;
    let (_, _, h, w) = q.dims4()?;
    let (k, v) = (k.detach(), v.detach());
    let qb = block(&q.detach(), region, heads)?; // [heads, n_c, r, d_k]
    let n_c = qb.dim(1)?;
    // Position-aligned patch scores [heads, n_c, n_s] and each content patch's best style patch, as
    // rows of the flattened [heads * n_s, r * d] style tensors.
    let scores = qb.reshape((heads, n_c, r * d_k))?.matmul(&k.reshape((heads, n_s, r * d_k))?.t()?)?;
    let offsets: Vec<u32> = (0..heads).map(|h| (h * n_s) as u32).collect();
    let offsets = Tensor::from_vec(offsets, (heads, 1), q.device())?;
    let rows = scores.argmax(2)?.broadcast_add(&offsets)?.flatten_all()?; // [heads * n_c]
    let k_rows = k.reshape((heads * n_s, r * d_k))?;
    let v_rows = v.reshape((heads * n_s, r * d_v))?;
    let matched = |x: &Tensor, d: usize| x.index_select(&rows, 0)?.reshape((heads, n_c, r, d));
    let g = block(&grad.detach(), region, heads)?;
    let (dq, dk_m, dv_m) = softmax_attention_vjp(&qb, &matched(&k_rows, d_k)?, &matched(&v_rows, d_v)?, &g)?;
    let scatter = |rows_of: &Tensor, d_m: &Tensor, d: usize| -> Result<Tensor> {
        rows_of
            .zeros_like()?
            .index_add(&rows, &d_m.reshape((heads * n_c, r * d))?, 0)?
            .reshape((heads, n_s, r, d))
    };
    let dk = scatter(&k_rows, &dk_m, d_k)?;
    let dv = scatter(&v_rows, &dv_m, d_v)?;
    Ok((unblock(&dq, region, h, w)?, dk, dv))
}
