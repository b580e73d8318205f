//! The CUDA side of the prior op: launches of `kernels/prior.cu`. Everything stays on the device but
//! the nine colour sums, read back once per frame for the 3x3 matrix roots (f64, on the host).
use candle_core::backend::BackendStorage;
use candle_core::cuda_backend::cudarc::driver::{
    CudaSlice, CudaView, DeviceRepr, LaunchConfig, PushKernelArg,
};
use candle_core::cuda_backend::{CudaDType, WrapErr};
use candle_core::{CudaDevice, CudaStorage, DType, Result};
use half::{bf16, f16};

use super::{stats_from_sums, Affine, ContentPrior, Filters, Source};
use crate::ops::cuda_launch::{allow_shared, blocks, dim, view, Input};

const PTX: &str = include_str!(concat!(env!("OUT_DIR"), "/prior.ptx"));
const MODULE: &str = "stylestream_prior";
const OP: &str = "content prior";
/// Threads per block of the per-pixel kernels.
const THREADS: u32 = 256;
/// `BILATERAL_TILE`: output pixels per block side of `prior_bilateral`.
const BILATERAL_TILE: u32 = 16;
/// Blocks of `prior_stats` (grid-stride; a few per multiprocessor keep the atomics few).
const STATS_BLOCKS: u32 = 1024;
/// Shared memory a Hopper block may opt in to.
const SHARED_LIMIT: usize = 227 * 1024;

/// Mirror of `PriorShape` in `kernels/stylestream.cuh`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
struct PriorShape {
    height: u32,
    width: u32,
    blur_radius: u32,
    bilateral_radius: u32,
    color_coeff: f32,
    space_coeff: f32,
}

/// Mirror of `ColourAffine` in `kernels/stylestream.cuh`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
struct ColourAffine {
    a: [f32; 9],
    b: [f32; 3],
}

// SAFETY: plain `#[repr(C)]` structs of `u32`/`f32`, laid out as their C declarations.
unsafe impl DeviceRepr for PriorShape {}
unsafe impl DeviceRepr for ColourAffine {}

/// The whole prior of one frame -> `[3, H, W]` of `op.dtype`.
pub(super) fn content_prior(
    op: &ContentPrior,
    f: &Filters,
    source: Source,
    frame: Input,
) -> Result<CudaStorage> {
    let dev = frame.0.device.clone();
    let (h, w) = (op.height, op.width);
    let shape = PriorShape {
        height: dim(h)?,
        width: dim(w)?,
        blur_radius: dim(f.taps.len() / 2)?,
        bilateral_radius: dim(f.bilateral_radius)?,
        color_coeff: f.color_coeff,
        space_coeff: f.space_coeff,
    };
    let plane = h * w;
    let per_pixel = LaunchConfig {
        grid_dim: (blocks(plane, THREADS)?, 1, 1),
        block_dim: (THREADS, 1, 1),
        shared_mem_bytes: 0,
    };
    // SAFETY: filled by the copy that follows.
    let mut taps = unsafe { dev.alloc::<f32>(f.taps.len())? };
    dev.memcpy_htod(f.taps.as_slice(), &mut taps)?;

    // Stage 1a: frame -> 0..255 planes, horizontal taps.
    // SAFETY (allocations below): each kernel writes every element of its output.
    let mut planes = unsafe { dev.alloc::<f32>(3 * plane)? };
    match source {
        Source::Rgb8 => blur_rows::<u8>(&dev, frame, "u8", &taps, &mut planes, shape, per_pixel)?,
        Source::Planar => match frame.0.dtype() {
            DType::F32 => blur_rows::<f32>(&dev, frame, "f32", &taps, &mut planes, shape, per_pixel)?,
            DType::F16 => blur_rows::<f16>(&dev, frame, "f16", &taps, &mut planes, shape, per_pixel)?,
            DType::BF16 => blur_rows::<bf16>(&dev, frame, "bf16", &taps, &mut planes, shape, per_pixel)?,
            other => candle_core::bail!("{OP} reads f32, f16 or bf16 frames, got {other:?}"),
        },
    }
    if f.simplify {
        // Stage 1b: vertical taps.
        let mut blurred = unsafe { dev.alloc::<f32>(3 * plane)? };
        let func = dev.get_or_load_custom_func("prior_blur_cols", MODULE, PTX)?;
        let mut b = func.builder();
        b.arg(&planes).arg(&taps).arg(&mut blurred).arg(&shape);
        // SAFETY: argument types and order match `prior_blur_cols`.
        unsafe { b.launch(per_pixel) }.w()?;
        // Stage 2: bilateral, a 16 x 16 tile and its 2R apron per block.
        let side = BILATERAL_TILE as usize + 2 * f.bilateral_radius;
        let shared = 3 * side * side * std::mem::size_of::<f32>();
        if shared > SHARED_LIMIT {
            candle_core::bail!("{OP} on CUDA: a bilateral diameter of {} needs {shared} bytes of shared memory per block, more than {SHARED_LIMIT}", 2 * f.bilateral_radius + 1);
        }
        let func = dev.get_or_load_custom_func("prior_bilateral", MODULE, PTX)?;
        allow_shared(&func, shared)?;
        let cfg = LaunchConfig {
            grid_dim: (blocks(w, BILATERAL_TILE)?, blocks(h, BILATERAL_TILE)?, 1),
            block_dim: (BILATERAL_TILE, BILATERAL_TILE, 1),
            shared_mem_bytes: dim(shared)?,
        };
        let mut b = func.builder();
        b.arg(&blurred).arg(&mut planes).arg(&shape);
        // SAFETY: argument types and order match `prior_bilateral`; `blurred` and `planes` are distinct.
        unsafe { b.launch(cfg) }.w()?;
    }

    // Stage 3: colour sums -> host -> affine map -> recolour.
    let sums = dev.alloc_zeros::<f64>(9)?;
    let func = dev.get_or_load_custom_func("prior_stats", MODULE, PTX)?;
    let cfg = LaunchConfig {
        grid_dim: (blocks(plane, THREADS)?.min(STATS_BLOCKS), 1, 1),
        block_dim: (THREADS, 1, 1),
        shared_mem_bytes: 0,
    };
    let mut b = func.builder();
    b.arg(&planes).arg(&sums).arg(&shape);
    // SAFETY: argument types and order match `prior_stats`; `sums` holds 9 zeroed doubles.
    unsafe { b.launch(cfg) }.w()?;
    let sums: [f64; 9] =
        dev.clone_dtoh(&sums)?.try_into().map_err(|_| candle_core::Error::Msg("nine sums".into()))?;
    let affine = Affine::new(&stats_from_sums(&sums, plane), &op.style, &op.config);
    let affine = ColourAffine { a: affine.a, b: affine.b };
    match op.dtype {
        DType::F32 => recolour::<f32>(&dev, &planes, "f32", affine, shape, per_pixel),
        DType::F16 => recolour::<f16>(&dev, &planes, "f16", affine, shape, per_pixel),
        DType::BF16 => recolour::<bf16>(&dev, &planes, "bf16", affine, shape, per_pixel),
        other => candle_core::bail!("{OP} writes f32, f16 or bf16, not {other:?}"),
    }
}

fn blur_rows<S: CudaDType + DeviceRepr>(
    dev: &CudaDevice,
    frame: Input,
    suffix: &str,
    taps: &CudaSlice<f32>,
    planes: &mut CudaSlice<f32>,
    shape: PriorShape,
    cfg: LaunchConfig,
) -> Result<()> {
    let frame: CudaView<S> = view(frame, OP)?;
    let func = dev.get_or_load_custom_func(&format!("prior_blur_rows_{suffix}"), MODULE, PTX)?;
    let mut b = func.builder();
    b.arg(&frame).arg(taps).arg(planes).arg(&shape);
    // SAFETY: argument types and order match `prior_blur_rows_*`; the frame holds H W 3 elements.
    unsafe { b.launch(cfg) }.w()?;
    Ok(())
}

fn recolour<T: CudaDType + DeviceRepr>(
    dev: &CudaDevice,
    planes: &CudaSlice<f32>,
    suffix: &str,
    affine: ColourAffine,
    shape: PriorShape,
    cfg: LaunchConfig,
) -> Result<CudaStorage> {
    // SAFETY: one thread per pixel writes its three channels.
    let out = unsafe { dev.alloc::<T>(planes.len())? };
    let func = dev.get_or_load_custom_func(&format!("prior_recolour_{suffix}"), MODULE, PTX)?;
    let mut b = func.builder();
    b.arg(planes).arg(&out).arg(&affine).arg(&shape);
    // SAFETY: argument types and order match `prior_recolour_*`.
    unsafe { b.launch(cfg) }.w()?;
    Ok(T::wrap_cuda_slice(out, dev.clone()))
}
