//! The CUDA side of the streaming attention: launches of `kernels/streaming_attention.cu` (PTX from
//! `build.rs`, loaded once per device through candle's custom-kernel loader).
use candle_core::backend::BackendStorage;
use candle_core::cuda_backend::cudarc::driver::{DeviceRepr, LaunchConfig, PushKernelArg};
use candle_core::cuda_backend::{CudaDType, WrapErr};
use candle_core::{CudaStorage, DType, Result};
use half::{bf16, f16};

use super::{Geometry, CUDA_HEAD_DIMS};
use crate::ops::cuda_launch::{allow_shared, blocks, dim, view, Input};

const PTX: &str = include_str!(concat!(env!("OUT_DIR"), "/streaming_attention.ptx"));
const MODULE: &str = "stylestream_streaming_attention";
const OP: &str = "streaming attention";

/// Block shape of `stream_attention_{f16,bf16}_*`: `TC_THREADS` threads, `TC_QUERIES` queries,
/// `TC_KEYS` keys per stage, rows padded by `TC_PAD` elements.
const TC_THREADS: u32 = 128;
const TC_QUERIES: u32 = 64;
const TC_KEYS: usize = 32;
const TC_PAD: usize = 8;
/// The same for `stream_attention_f32_*` (`F32_THREADS`, `F32_QUERIES`, `F32_KEYS`).
const F32_THREADS: u32 = 256;
const F32_QUERIES: u32 = 64;
const F32_KEYS: usize = 32;

/// Mirror of `AttentionShape` in `kernels/stylestream.cuh`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
struct AttentionShape {
    n_q: u32,
    n_k: u32,
}

// SAFETY: a plain `#[repr(C)]` struct of `u32`, laid out as its C declaration.
unsafe impl DeviceRepr for AttentionShape {}

/// `q` `[1, D, H, W]`, `k` `[N_k, D]`, `v` `[N_k, D]` with `D` one of [`CUDA_HEAD_DIMS`] (the op pads)
/// -> `[1, D, H, W]`, in the storage type of `q`.
pub(super) fn attend(g: &Geometry, q: Input, k: Input, v: Input) -> Result<CudaStorage> {
    let d = g.d_v;
    if g.d_k != d || !CUDA_HEAD_DIMS.contains(&d) {
        candle_core::bail!("{OP} on CUDA takes heads of {CUDA_HEAD_DIMS:?} channels, got {} and {d}", g.d_k);
    }
    match q.0.dtype() {
        DType::F32 => launch::<f32>(g, q, k, v, "f32", F32_THREADS, F32_QUERIES, f32_shared_bytes(d)),
        DType::F16 => launch::<f16>(g, q, k, v, "f16", TC_THREADS, TC_QUERIES, tensor_core_shared_bytes(d)),
        DType::BF16 => {
            launch::<bf16>(g, q, k, v, "bf16", TC_THREADS, TC_QUERIES, tensor_core_shared_bytes(d))
        }
        other => candle_core::bail!("{OP} runs in f32, f16 or bf16, got {other:?}"),
    }
}

/// `TcSmem` of the kernel: queries `[D][64 + 8]`, two stages of keys and values `[32][D + 8]`, in
/// two-byte elements.
fn tensor_core_shared_bytes(d: usize) -> usize {
    (d * (TC_QUERIES as usize + TC_PAD) + 4 * TC_KEYS * (d + TC_PAD)) * 2
}

/// `F32Smem` of the kernel: queries `[D][64]`, keys `[D][32]`, values `[32][D]`, probabilities
/// `[64][33]`, in floats.
fn f32_shared_bytes(d: usize) -> usize {
    (d * F32_QUERIES as usize + 2 * d * F32_KEYS + F32_QUERIES as usize * (F32_KEYS + 1)) * 4
}

#[allow(clippy::too_many_arguments)]
fn launch<T: CudaDType + DeviceRepr>(
    g: &Geometry,
    q: Input,
    k: Input,
    v: Input,
    suffix: &str,
    threads: u32,
    queries_per_block: u32,
    shared: usize,
) -> Result<CudaStorage> {
    let dev = &q.0.device;
    for (name, input) in [("keys", k), ("values", v)] {
        if input.1.start_offset() % 8 != 0 {
            candle_core::bail!("{OP} on CUDA reads {name} in 16-byte rows; their view must start on one");
        }
    }
    let (q, k, v) = (view::<T>(q, OP)?, view::<T>(k, OP)?, view::<T>(v, OP)?);
    let func = dev.get_or_load_custom_func(&format!("stream_attention_{suffix}_d{}", g.d_v), MODULE, PTX)?;
    allow_shared(&func, shared)?;
    // SAFETY: the kernel writes every element: each block all channels of its queries below n_q.
    let out = unsafe { dev.alloc::<T>(g.d_v * g.n_q)? };
    let shape = AttentionShape { n_q: dim(g.n_q)?, n_k: dim(g.n_k)? };
    let cfg = LaunchConfig {
        grid_dim: (blocks(g.n_q, queries_per_block)?, 1, 1),
        block_dim: (threads, 1, 1),
        shared_mem_bytes: dim(shared)?,
    };
    let mut builder = func.builder();
    builder.arg(&q).arg(&k).arg(&v).arg(&out).arg(&shape);
    // SAFETY: argument types and order match `stream_attention_*`; shapes were checked by the op.
    unsafe { builder.launch(cfg) }.w()?;
    Ok(T::wrap_cuda_slice(out, dev.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_memory_matches_the_kernel_layouts_and_fits_hopper() {
        // By hand from TcSmem / F32Smem at D = 256: (256 * 72 + 4 * 32 * 264) * 2 and
        // (256 * 64 + 2 * 256 * 32 + 64 * 33) * 4.
        assert_eq!(tensor_core_shared_bytes(256), 104_448);
        assert_eq!(f32_shared_bytes(256), 139_520);
        for d in CUDA_HEAD_DIMS {
            assert!(tensor_core_shared_bytes(d) <= 227 * 1024 && f32_shared_bytes(d) <= 227 * 1024);
        }
    }
}
