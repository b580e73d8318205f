//! All-to-all attention that streams over the keys (online softmax), for NeAT's PAMA blocks.
//!
//! `out[:, p] = sum_j softmax_j(<q_p, k_j>) v_j` for every query position `p` of a map, over every key
//! `j` (no `1/sqrt(d)` scaling, as PAMA defines it). A dense implementation holds the `N_q x N_k` score
//! matrix: at 1920x1080 content and a 512x512 style that is 32,400 x 4,096 f32 = 530 MB per block. This
//! op never holds more than one [`QUERY_TILE`] x [`KEY_TILE`] tile of scores per worker: for each query
//! tile it walks the keys tile by tile, keeping per query the running maximum `m`, the running
//! normaliser `l = sum exp(s - m)` and the running weighted sum of values, rescaled by `exp(m_old -
//! m_new)` whenever the maximum grows (Milakov & Gimelshein 2018, "Online normalizer calculation for
//! softmax"; the FlashAttention recurrence). Memory is linear in `N_q + N_k`.
//!
//! The query side takes and returns plain `[1, C, H, W]` maps, as StyA2K's blocked attention does, so a
//! kernel can read the map in place; the key/value side (one style, reused for every frame) is given
//! pixel-major, `[N_k, d]`.
//!
//! Storage is f32, f16 or bf16; the CPU reference computes in f32 and rounds the result to the storage
//! type once. With feature `cuda` the op runs `kernels/streaming_attention.cu` on CUDA tensors: f16/bf16
//! on the tensor cores (f32 accumulation, the probabilities rounded to the storage type for the
//! `P V` product), f32 with f32 FMA. With `check-kernels` every CUDA call is re-run on the CPU
//! reference and must agree to relative L2 [`CHECK_TOLERANCE_F32`] / [`CHECK_TOLERANCE_HALF`].
mod cpu;
#[cfg(feature = "cuda")]
mod cuda;

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp3, DType, Layout, Result, Shape, Tensor};

use super::storage::{f32_values, storage_as};

/// Largest relative L2 distance between a CUDA result and the CPU reference in f32 (only the order of
/// f32 sums differs).
pub const CHECK_TOLERANCE_F32: f64 = 1e-5;
/// The same for f16/bf16 storage: the kernel also rounds the softmax probabilities to the storage
/// type for the tensor cores, the reference keeps them in f32.
pub const CHECK_TOLERANCE_HALF: f64 = 1e-2;

/// Head dims the CUDA kernels are compiled for; other dims are zero-padded up to the next one
/// (zero channels add nothing to a score and their outputs are cut off).
pub const CUDA_HEAD_DIMS: [usize; 3] = [64, 128, 256];

/// Queries per tile: one rayon task each. 64 keeps a 1080p frame's 32,400 queries in 507 tasks, plenty
/// for any core count, while each task's score tile stays in L2.
pub const QUERY_TILE: usize = 64;

/// Keys per tile: the score tile is `QUERY_TILE x KEY_TILE` f32 = 64 KiB. Larger tiles rescale the
/// accumulator less often; this one keeps the tile, its values and the accumulator in L2.
pub const KEY_TILE: usize = 256;

/// Streaming attention. `q`: queries `[1, d_k, H, W]`; `k`: keys `[N_k, d_k]`; `v`: values `[N_k, d_v]`,
/// all of one dtype (f32, f16 or bf16), `N_k >= 1`. Returns `[1, d_v, H, W]` in that dtype: at each
/// position the softmax-weighted sum of the values.
pub fn streaming_attention(q: &Tensor, k: &Tensor, v: &Tensor) -> Result<Tensor> {
    let (b, d_k, _, _) = q.dims4()?;
    let (n_k, kd) = k.dims2()?;
    let (vn, d_v) = v.dims2()?;
    check(b == 1, || format!("streaming attention takes one frame at a time, got batch {b}"))?;
    check(kd == d_k, || format!("keys have {kd} channels, the queries {d_k}"))?;
    check(vn == n_k, || format!("{vn} values do not pair with {n_k} keys"))?;
    check(n_k > 0, || "streaming attention needs at least one key".to_string())?;
    check(matches!(q.dtype(), DType::F32 | DType::F16 | DType::BF16), || {
        format!("streaming attention runs in f32, f16 or bf16, got {:?}", q.dtype())
    })?;
    for (name, t) in [("keys", k), ("values", v)] {
        check(t.dtype() == q.dtype(), || {
            format!("streaming attention: {name} are {:?}, the queries {:?}", t.dtype(), q.dtype())
        })?;
    }
    if q.device().is_cuda() {
        return on_cuda(q, k, v, d_k, d_v);
    }
    q.contiguous()?.apply_op3_no_bwd(&k.contiguous()?, &v.contiguous()?, &StreamingAttention)
}

/// The CUDA path: channels zero-padded to one of [`CUDA_HEAD_DIMS`] when needed (none for PAMA's 256),
/// style rows on 16-byte boundaries (the kernels copy them with 16-byte loads).
fn on_cuda(q: &Tensor, k: &Tensor, v: &Tensor, d_k: usize, d_v: usize) -> Result<Tensor> {
    let d = CUDA_HEAD_DIMS.into_iter().find(|&d| d >= d_k.max(d_v)).ok_or_else(|| {
        candle_core::Error::Msg(format!(
            "streaming attention on CUDA handles up to {} channels, got {}",
            CUDA_HEAD_DIMS[CUDA_HEAD_DIMS.len() - 1],
            d_k.max(d_v)
        ))
    })?;
    let pad = |t: &Tensor, dim: usize, have: usize| -> Result<Tensor> {
        let t = if have == d { t.contiguous()? } else { t.pad_with_zeros(dim, 0, d - have)? };
        // A view that starts mid-buffer keeps its offset; 8 elements are 16 bytes of f16/bf16.
        if t.layout().start_offset() % 8 == 0 {
            Ok(t)
        } else {
            t.copy()
        }
    };
    let out = pad(q, 1, d_k)?.apply_op3_no_bwd(&pad(k, 1, d_k)?, &pad(v, 1, d_v)?, &StreamingAttention)?;
    if d == d_v {
        Ok(out)
    } else {
        out.narrow(1, 0, d_v)
    }
}

fn check(ok: bool, msg: impl FnOnce() -> String) -> Result<()> {
    if ok {
        Ok(())
    } else {
        Err(candle_core::Error::Msg(msg()))
    }
}

/// Sizes read from the layouts.
#[derive(Debug, Clone, Copy)]
struct Geometry {
    d_k: usize,
    d_v: usize,
    /// Queries: `H * W`.
    n_q: usize,
    n_k: usize,
    height: usize,
    width: usize,
}

impl Geometry {
    /// From the query `[1, d_k, H, W]` and value `[N_k, d_v]` layouts.
    fn new(q: &Layout, v: &Layout) -> Self {
        let (qd, vd) = (q.dims(), v.dims());
        Geometry { d_k: qd[1], d_v: vd[1], n_q: qd[2] * qd[3], n_k: vd[0], height: qd[2], width: qd[3] }
    }

    fn out_shape(&self) -> Shape {
        Shape::from((1, self.d_v, self.height, self.width))
    }
}

struct StreamingAttention;

impl CustomOp3 for StreamingAttention {
    fn name(&self) -> &'static str {
        "streaming-attention"
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
        let g = Geometry::new(lq, lv);
        let out = cuda::attend(&g, (q, lq), (k, lk), (v, lv))?;
        #[cfg(feature = "check-kernels")]
        {
            let (qc, kc, vc) = (q.to_cpu_storage()?, k.to_cpu_storage()?, v.to_cpu_storage()?);
            let want = self.cpu_fwd(&qc, lq, &kc, lk, &vc, lv)?;
            let tolerance = if q.dtype() == DType::F32 { CHECK_TOLERANCE_F32 } else { CHECK_TOLERANCE_HALF };
            super::cuda_launch::check_close(self.name(), &out, want, tolerance)?;
        }
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
        let g = Geometry::new(lq, lv);
        let name = self.name();
        let out =
            cpu::attend(&g, &f32_values(q, lq, name)?, &f32_values(k, lk, name)?, &f32_values(v, lv, name)?);
        Ok((storage_as(out, q.dtype()), g.out_shape()))
    }
}
