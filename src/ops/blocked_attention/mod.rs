//! StyA2K's all-to-key blocked attention (Zhu et al., ICCV 2023, section 3), as two custom ops.
//!
//! Feature maps are partitioned into non-overlapping `R x R` patches ("blocks"): patch `n` is the
//! row-major index over the patch grid, in-patch position `y = a * R + b` row-major inside it. Rows
//! and columns beyond the last whole patch are not attended (the official code drops them and its
//! output is zero there); stylestream pads frames so that none are left (see `models::stya2k`).
//! Channels split into `heads` contiguous groups of `d = C / heads`.
//!
//! - [`aggregate_style_patches`] (style side, once per style): key/value patch centres and the
//!   sigmoid-weighted aggregates of the distributed attention.
//! - [`distributed_attention`]: every content position attends to all aggregated style patches.
//! - [`progressive_attention`]: every content patch picks its best position-aligned style patch
//!   (hard argmax) and attends locally inside it.
//!
//! The content side takes and returns plain `[1, C, H, W]` maps, so blocking and unblocking happen
//! inside the op: a kernel can read the map in place. The style side is pre-blocked once.
//!
//! Both ops are differentiable (training, `crate::train`): their backward passes are written with
//! tensor ops in `grad.rs`, so they run on any device.
//!
//! Storage is f32, f16 or bf16; both the CPU reference and the CUDA kernels (feature `cuda`,
//! `kernels/blocked_attention.cu`) compute in f32 and round the result to the storage type once. With
//! feature `check-kernels`, every CUDA call is re-run on the CPU reference and must agree to relative
//! L2 [`CHECK_TOLERANCE_F32`] (f32) or [`CHECK_TOLERANCE_HALF`] (f16, bf16).
mod cpu;
#[cfg(feature = "cuda")]
mod cuda;
mod grad;

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp3, DType, Layout, Result, Shape, Tensor};

use super::storage::storage_as;

/// Heads of every A2K attention in StyA2K.
pub const HEADS: usize = 8;

/// Largest relative L2 distance between a CUDA result and the CPU reference in f32: only the order
/// of f32 sums differs.
pub const CHECK_TOLERANCE_F32: f64 = 1e-5;
/// The same for f16/bf16 storage: both sides round the same f32 result to half precision.
pub const CHECK_TOLERANCE_HALF: f64 = 1e-2;

/// Splits `[1, C, H, W]` into patches and heads: `[heads, n, r, d]` with `n = (H/R) * (W/R)`,
/// `r = R^2`, `d = C / heads`, uncovered remainder rows/columns dropped.
pub fn block(x: &Tensor, region: usize, heads: usize) -> Result<Tensor> {
    let (b, c, h, w) = x.dims4()?;
    check(b == 1, || format!("blocked attention takes one frame at a time, got batch {b}"))?;
    check(c % heads == 0, || format!("{c} channels do not split into {heads} heads"))?;
    let (nh, nw) = (h / region, w / region);
    check(nh > 0 && nw > 0, || format!("a {h}x{w} feature map holds no {region}x{region} patch"))?;
    let d = c / heads;
    let x = x.narrow(2, 0, nh * region)?.narrow(3, 0, nw * region)?;
    // [1, C, nh*R, nw*R] -> [heads, d, nh, R, nw, R]
    let x = x.reshape((heads, d, nh, region, nw, region))?;
    // -> [heads, nh, nw, R(a), R(b), d] -> [heads, n, r, d]
    x.permute((0, 2, 4, 3, 5, 1))?.contiguous()?.reshape((heads, nh * nw, region * region, d))
}

/// The inverse of [`block`]: `[heads, n, r, d]` -> `[1, heads * d, height, width]` with
/// `n = (height/R) * (width/R)`; positions outside whole patches are zero.
pub fn unblock(x: &Tensor, region: usize, height: usize, width: usize) -> Result<Tensor> {
    let (heads, n, r, d) = x.dims4()?;
    let (nh, nw) = (height / region, width / region);
    check(n == nh * nw && r == region * region, || {
        format!("{n} patches of {r} do not tile a {height}x{width} map with {region}x{region} regions")
    })?;
    // [heads, n, r, d] -> [heads, nh, nw, R(a), R(b), d] -> [heads, d, nh, R(a), nw, R(b)]
    let x = x.reshape((heads, nh, nw, region, region, d))?.permute((0, 5, 1, 3, 2, 4))?;
    let x = x.contiguous()?.reshape((1, heads * d, nh * region, nw * region))?;
    x.pad_with_zeros(2, 0, height - nh * region)?.pad_with_zeros(3, 0, width - nw * region)
}

/// Distributed attention, style side. `k`, `v`: blocked style keys `[heads, n, r, d_k]` and values
/// `[heads, n, r, d_v]`; `alpha`, `beta`: the learned scalars, shape `[1]`.
///
/// Per patch z: centres `kappa = mean_y K[z, y]`, `nu = mean_y V[z, y]`; weights
/// `s_y = sigmoid(beta + alpha <kappa, K[z, y]>)`; aggregates
/// `K_bar = (sum_y s_y K[z, y] + kappa) / (r + 1)` and likewise `V_bar` with the same `s`. The division
/// by `r + 1` (not by the sum of the weights) is the official definition.
/// Returns `(K_bar [heads, n, d_k], V_bar [heads, n, d_v])`.
pub fn aggregate_style_patches(
    k: &Tensor,
    v: &Tensor,
    alpha: &Tensor,
    beta: &Tensor,
) -> Result<(Tensor, Tensor)> {
    let r = k.dim(2)?;
    let kappa = k.mean_keepdim(2)?; // [heads, n, 1, d_k]
    let nu = v.mean_keepdim(2)?; // [heads, n, 1, d_v]
    let dis = k.broadcast_mul(&kappa)?.sum_keepdim(3)?; // [heads, n, r, 1]
    let s = candle_nn::ops::sigmoid(&dis.broadcast_mul(alpha)?.broadcast_add(beta)?)?;
    let aggregate = |x: &Tensor, centre: &Tensor| -> Result<Tensor> {
        // [heads, n, r, d] -> [heads, n, d]
        ((x.broadcast_mul(&s)?.sum_keepdim(2)? + centre)? / (r + 1) as f64)?.squeeze(2)
    };
    Ok((aggregate(k, &kappa)?, aggregate(v, &nu)?))
}

/// Distributed attention, content side. `q`: queries `[1, heads * d_k, H, W]`; `k_bar`, `v_bar`:
/// from [`aggregate_style_patches`]. For every covered position and head: softmax over the style
/// patches of `<q, K_bar[z]>` (no `1/sqrt(d)` scaling, as the official code), then the weighted sum of
/// `V_bar`. Returns `[1, heads * d_v, H, W]`, zero outside whole `region x region` patches.
pub fn distributed_attention(q: &Tensor, k_bar: &Tensor, v_bar: &Tensor, region: usize) -> Result<Tensor> {
    let (heads, n, d_k) = k_bar.dims3()?;
    let (vh, vn, _) = v_bar.dims3()?;
    check(vh == heads && vn == n, || {
        format!("V_bar {:?} does not pair with K_bar {:?}", v_bar.dims(), k_bar.dims())
    })?;
    check_query(q, heads, d_k, region)?;
    check_dtypes(q, &[k_bar, v_bar])?;
    q.contiguous()?.apply_op3(&k_bar.contiguous()?, &v_bar.contiguous()?, DistributedAttention { region })
}

/// Progressive attention. `q`: queries `[1, heads * d_k, H, W]`; `k`, `v`: blocked style keys
/// `[heads, n, r, d_k]` and values `[heads, n, r, d_v]` with `r = region^2`.
///
/// Per head and content patch x: patch score `S[x, z] = sum_y <Q[x, y], K[z, y]>` (position-aligned),
/// `m = argmax_z S` (first index on ties, as torch), then for each position y a softmax over the r
/// positions of patch m of `<Q[x, y], K[m, y']>` weighting `V[m, y']`. Returns `[1, heads * d_v, H, W]`,
/// zero outside whole patches.
pub fn progressive_attention(q: &Tensor, k: &Tensor, v: &Tensor, region: usize) -> Result<Tensor> {
    let (heads, n, r, d_k) = k.dims4()?;
    let (vh, vn, vr, _) = v.dims4()?;
    check(vh == heads && vn == n && vr == r, || {
        format!("V {:?} does not pair with K {:?}", v.dims(), k.dims())
    })?;
    check(r == region * region, || {
        format!("style patches hold {r} positions, a {region}x{region} region needs {}", region * region)
    })?;
    check_query(q, heads, d_k, region)?;
    check_dtypes(q, &[k, v])?;
    q.contiguous()?.apply_op3(&k.contiguous()?, &v.contiguous()?, ProgressiveAttention { region })
}

fn check_query(q: &Tensor, heads: usize, d_k: usize, region: usize) -> Result<()> {
    let (b, c, h, w) = q.dims4()?;
    check(b == 1, || format!("blocked attention takes one frame at a time, got batch {b}"))?;
    check(c == heads * d_k, || format!("queries have {c} channels, the keys need {heads} heads x {d_k}"))?;
    check(matches!(q.dtype(), DType::F32 | DType::F16 | DType::BF16), || {
        format!("blocked attention runs in f32, f16 or bf16, got {:?}", q.dtype())
    })?;
    check(h >= region && w >= region, || format!("a {h}x{w} feature map holds no {region}x{region} patch"))
}

fn check_dtypes(q: &Tensor, style: &[&Tensor]) -> Result<()> {
    match style.iter().find(|t| t.dtype() != q.dtype()) {
        Some(t) => Err(candle_core::Error::Msg(format!(
            "style tensors in {:?} do not pair with queries in {:?}",
            t.dtype(),
            q.dtype()
        ))),
        None => Ok(()),
    }
}

fn check(ok: bool, msg: impl FnOnce() -> String) -> Result<()> {
    if ok {
        Ok(())
    } else {
        Err(candle_core::Error::Msg(msg()))
    }
}

/// Geometry shared by both ops: the query map and the style tensors' sizes.
#[derive(Debug, Clone, Copy)]
struct Geometry {
    heads: usize,
    d_k: usize,
    d_v: usize,
    /// Style patches.
    n_s: usize,
    height: usize,
    width: usize,
    region: usize,
}

impl Geometry {
    /// Reads the geometry from the query `[1, heads*d_k, H, W]` and value `[heads, n_s, .., d_v]` layouts.
    fn new(q: &Layout, v: &Layout, region: usize) -> Self {
        let qd = q.dims();
        let vd = v.dims();
        let heads = vd[0];
        Geometry {
            heads,
            d_k: qd[1] / heads,
            d_v: vd[vd.len() - 1],
            n_s: vd[1],
            height: qd[2],
            width: qd[3],
            region,
        }
    }

    fn out_shape(&self) -> Shape {
        Shape::from((1, self.heads * self.d_v, self.height, self.width))
    }
}

/// A contiguous input's values as f32.
fn values<'a>(s: &'a CpuStorage, l: &Layout) -> Result<std::borrow::Cow<'a, [f32]>> {
    super::storage::f32_values(s, l, "blocked attention")
}

struct DistributedAttention {
    region: usize,
}

impl CustomOp3 for DistributedAttention {
    fn name(&self) -> &'static str {
        "a2k-distributed-attention"
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        q: &candle_core::CudaStorage,
        lq: &Layout,
        k_bar: &candle_core::CudaStorage,
        lk: &Layout,
        v_bar: &candle_core::CudaStorage,
        lv: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        let g = Geometry::new(lq, lv, self.region);
        let out = cuda::distributed(&g, (q, lq), (k_bar, lk), (v_bar, lv))?;
        #[cfg(feature = "check-kernels")]
        cuda::check_against_reference(self, &out, [(q, lq), (k_bar, lk), (v_bar, lv)])?;
        Ok((out, g.out_shape()))
    }

    fn cpu_fwd(
        &self,
        q: &CpuStorage,
        lq: &Layout,
        k_bar: &CpuStorage,
        lk: &Layout,
        v_bar: &CpuStorage,
        lv: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let g = Geometry::new(lq, lv, self.region);
        let out = cpu::distributed(&g, &values(q, lq)?, &values(k_bar, lk)?, &values(v_bar, lv)?);
        Ok((storage_as(out, q.dtype()), g.out_shape()))
    }

    fn bwd(
        &self,
        q: &Tensor,
        k_bar: &Tensor,
        v_bar: &Tensor,
        _: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (dq, dk, dv) = grad::distributed(q, k_bar, v_bar, grad, self.region)?;
        Ok((Some(dq), Some(dk), Some(dv)))
    }
}

struct ProgressiveAttention {
    region: usize,
}

impl CustomOp3 for ProgressiveAttention {
    fn name(&self) -> &'static str {
        "a2k-progressive-attention"
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        q: &candle_core::CudaStorage,
        lq: &Layout,
        k: &candle_core::CudaStorage,
        lk: &Layout,
        v: &candle_core::CudaStorage,
        lv: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        let g = Geometry::new(lq, lv, self.region);
        let out = cuda::progressive(&g, (q, lq), (k, lk), (v, lv))?;
        #[cfg(feature = "check-kernels")]
        cuda::check_against_reference(self, &out, [(q, lq), (k, lk), (v, lv)])?;
        Ok((out, g.out_shape()))
    }

    fn cpu_fwd(
        &self,
        q: &CpuStorage,
        lq: &Layout,
        k: &CpuStorage,
        lk: &Layout,
        v: &CpuStorage,
        lv: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let g = Geometry::new(lq, lv, self.region);
        let out = cpu::progressive(&g, &values(q, lq)?, &values(k, lk)?, &values(v, lv)?);
        Ok((storage_as(out, q.dtype()), g.out_shape()))
    }

    fn bwd(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        _: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (dq, dk, dv) = grad::progressive(q, k, v, grad, self.region)?;
        Ok((Some(dq), Some(dk), Some(dv)))
    }
}
