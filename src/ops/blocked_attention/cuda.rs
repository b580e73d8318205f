//! The CUDA side of the blocked attention ops: launches of `kernels/blocked_attention.cu`, compiled to
//! PTX by `build.rs` and loaded once per device through candle's custom-kernel loader.
use crate::ops::cuda_launch::{blocks, dim, Input, DEFAULT_SHARED_LIMIT};
use candle_core::backend::BackendStorage;
use candle_core::cuda_backend::cudarc::driver::{
    CudaView, DeviceRepr, LaunchConfig, PushKernelArg, ValidAsZeroBits,
};
use candle_core::cuda_backend::{CudaDType, WrapErr};
use candle_core::{CudaStorage, DType, Result};
use half::{bf16, f16};

use super::Geometry;

const PTX: &str = include_str!(concat!(env!("OUT_DIR"), "/blocked_attention.ptx"));
const MODULE: &str = "stylestream_blocked_attention";

/// Threads per block of `a2k_distributed_*` (`DA_THREADS` in the kernel).
const DA_THREADS: u32 = 128;
/// Content x style patches per block of `a2k_match_*` (`PA_TILE`), and its threads (`PA_THREADS`).
const PA_TILE: u32 = 64;
const PA_THREADS: u32 = 256;
/// Positions per region (threads per block) of `a2k_local_*`.
const MAX_REGION_POSITIONS: usize = 256;

/// Mirror of `StylePatches` in `kernels/stylestream.cuh`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
struct StylePatches {
    heads: u32,
    n: u32,
    r: u32,
    d_k: u32,
    d_v: u32,
}

/// Mirror of `QueryMap` in `kernels/stylestream.cuh`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
struct QueryMap {
    height: u32,
    width: u32,
    region: u32,
}

// SAFETY: plain `#[repr(C)]` structs of `u32`, laid out as their C declarations.
unsafe impl DeviceRepr for StylePatches {}
unsafe impl DeviceRepr for QueryMap {}

/// Distributed attention: `q` `[1, heads * d_k, H, W]`, `k_bar` `[heads, n_s, d_k]`, `v_bar`
/// `[heads, n_s, d_v]` -> `[1, heads * d_v, H, W]`, in the storage type of `q`.
pub(super) fn distributed(g: &Geometry, q: Input, k_bar: Input, v_bar: Input) -> Result<CudaStorage> {
    match q.0.dtype() {
        DType::F32 => distributed_as::<f32>(g, q, k_bar, v_bar, "f32"),
        DType::F16 => distributed_as::<f16>(g, q, k_bar, v_bar, "f16"),
        DType::BF16 => distributed_as::<bf16>(g, q, k_bar, v_bar, "bf16"),
        other => candle_core::bail!("blocked attention runs in f32, f16 or bf16, got {other:?}"),
    }
}

/// Progressive attention: `q` `[1, heads * d_k, H, W]`, `k` `[heads, n_s, r, d_k]`, `v`
/// `[heads, n_s, r, d_v]` -> `[1, heads * d_v, H, W]`, in the storage type of `q`.
pub(super) fn progressive(g: &Geometry, q: Input, k: Input, v: Input) -> Result<CudaStorage> {
    match q.0.dtype() {
        DType::F32 => progressive_as::<f32>(g, q, k, v, "f32"),
        DType::F16 => progressive_as::<f16>(g, q, k, v, "f16"),
        DType::BF16 => progressive_as::<bf16>(g, q, k, v, "bf16"),
        other => candle_core::bail!("blocked attention runs in f32, f16 or bf16, got {other:?}"),
    }
}

fn distributed_as<T: CudaDType + DeviceRepr>(
    g: &Geometry,
    q: Input,
    k_bar: Input,
    v_bar: Input,
    suffix: &str,
) -> Result<CudaStorage> {
    let dev = &q.0.device;
    let (q, k_bar, v_bar) = (view::<T>(q)?, view::<T>(k_bar)?, view::<T>(v_bar)?);
    let func = dev.get_or_load_custom_func(
        &format!("a2k_distributed_{suffix}_d{}", padded_head_dim(g)?),
        MODULE,
        PTX,
    )?;
    let hw = g.height * g.width;
    // SAFETY: the kernel writes every element, zeros outside whole patches included.
    let out = unsafe { dev.alloc::<T>(g.heads * g.d_v * hw)? };
    let cfg = LaunchConfig {
        grid_dim: (blocks(hw, DA_THREADS)?, dim(g.heads)?, 1),
        block_dim: (DA_THREADS, 1, 1),
        shared_mem_bytes: 0,
    };
    let (patches, map) = (style_patches(g, 1)?, query_map(g)?);
    let mut launch = func.builder();
    launch.arg(&q).arg(&k_bar).arg(&v_bar).arg(&out).arg(&patches).arg(&map);
    // SAFETY: argument types and order match `a2k_distributed_*`; shapes were checked by the op.
    unsafe { launch.launch(cfg) }.w()?;
    Ok(T::wrap_cuda_slice(out, dev.clone()))
}

fn progressive_as<T: CudaDType + DeviceRepr + ValidAsZeroBits>(
    g: &Geometry,
    q: Input,
    k: Input,
    v: Input,
    suffix: &str,
) -> Result<CudaStorage> {
    let dev = &q.0.device;
    let (q, k, v) = (view::<T>(q)?, view::<T>(k)?, view::<T>(v)?);
    let d = padded_head_dim(g)?;
    let r = g.region * g.region;
    // The matched style patch's keys and values as f32 rows of d; one thread per position, each
    // with ~170 registers (ptxas, D = 64), so at most 256 threads fit a multiprocessor's 64K.
    let shared = 2 * r * d * std::mem::size_of::<f32>();
    if r > MAX_REGION_POSITIONS || shared > DEFAULT_SHARED_LIMIT {
        candle_core::bail!(
            "progressive attention on CUDA holds a {0}x{0} region of {d}-channel heads in shared memory; \
             at most {DEFAULT_SHARED_LIMIT} bytes and {MAX_REGION_POSITIONS} positions, this needs {shared} and {r}",
            g.region
        );
    }
    let (grid_h, grid_w) = (g.height / g.region, g.width / g.region);
    let n_c = grid_h * grid_w;
    let hw = g.height * g.width;
    let (patches, map) = (style_patches(g, r)?, query_map(g)?);

    // Step 1: best style patch per (head, content patch), as the kernel's packed (score, index) keys.
    let best = dev.alloc_zeros::<u64>(g.heads * n_c)?;
    let matcher = dev.get_or_load_custom_func(&format!("a2k_match_{suffix}"), MODULE, PTX)?;
    let cfg = LaunchConfig {
        grid_dim: (blocks(g.n_s, PA_TILE)?, blocks(n_c, PA_TILE)?, dim(g.heads)?),
        block_dim: (PA_THREADS, 1, 1),
        shared_mem_bytes: 0,
    };
    let mut launch = matcher.builder();
    launch.arg(&q).arg(&k).arg(&best).arg(&patches).arg(&map);
    // SAFETY: argument types and order match `a2k_match_*`; shapes were checked by the op.
    unsafe { launch.launch(cfg) }.w()?;

    // Step 2: local attention inside the matched patch. Only pixels of whole patches are written, so
    // the output starts zeroed when the map has a remainder strip.
    let len = g.heads * g.d_v * hw;
    let out = if g.height % g.region == 0 && g.width % g.region == 0 {
        // SAFETY: whole patches cover the map and the kernel writes every one of their pixels.
        unsafe { dev.alloc::<T>(len)? }
    } else {
        dev.alloc_zeros::<T>(len)?
    };
    let local = dev.get_or_load_custom_func(&format!("a2k_local_{suffix}_d{d}"), MODULE, PTX)?;
    let cfg = LaunchConfig {
        grid_dim: (dim(n_c)?, dim(g.heads)?, 1),
        block_dim: (dim(r.div_ceil(32) * 32)?, 1, 1),
        shared_mem_bytes: dim(shared)?,
    };
    let mut launch = local.builder();
    launch.arg(&q).arg(&k).arg(&v).arg(&best).arg(&out).arg(&patches).arg(&map);
    // SAFETY: argument types and order match `a2k_local_*`; `best` was written by step 1 on the same
    // stream.
    unsafe { launch.launch(cfg) }.w()?;
    Ok(T::wrap_cuda_slice(out, dev.clone()))
}

/// The kernels keep a query and an accumulator of `D` floats per thread in registers, `D` fixed at
/// compile time: 32 or 64 channels per head (StyA2K has 32 at relu3_1 and 64 deeper).
fn padded_head_dim(g: &Geometry) -> Result<usize> {
    match g.d_k.max(g.d_v) {
        0..=32 => Ok(32),
        33..=64 => Ok(64),
        d => candle_core::bail!("blocked attention on CUDA handles up to 64 channels per head, got {d}"),
    }
}

fn view<'a, T: CudaDType>(input: Input<'a>) -> Result<CudaView<'a, T>> {
    crate::ops::cuda_launch::view(input, "blocked attention")
}

fn style_patches(g: &Geometry, r: usize) -> Result<StylePatches> {
    Ok(StylePatches { heads: dim(g.heads)?, n: dim(g.n_s)?, r: dim(r)?, d_k: dim(g.d_k)?, d_v: dim(g.d_v)? })
}

fn query_map(g: &Geometry) -> Result<QueryMap> {
    Ok(QueryMap { height: dim(g.height)?, width: dim(g.width)?, region: dim(g.region)? })
}

/// `check-kernels`: runs `op`'s CPU reference on copies of the inputs and fails the call unless the
/// CUDA result `out` agrees to [`super::CHECK_TOLERANCE_F32`] / [`super::CHECK_TOLERANCE_HALF`].
#[cfg(feature = "check-kernels")]
pub(super) fn check_against_reference(
    op: &dyn candle_core::CustomOp3,
    out: &CudaStorage,
    [a, b, c]: [Input; 3],
) -> Result<()> {
    let (a_cpu, b_cpu, c_cpu) = (a.0.to_cpu_storage()?, b.0.to_cpu_storage()?, c.0.to_cpu_storage()?);
    let want = op.cpu_fwd(&a_cpu, a.1, &b_cpu, b.1, &c_cpu, c.1)?;
    let tolerance =
        if out.dtype() == DType::F32 { super::CHECK_TOLERANCE_F32 } else { super::CHECK_TOLERANCE_HALF };
    crate::ops::cuda_launch::check_close(op.name(), out, want, tolerance)
}
