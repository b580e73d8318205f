//! The CUDA side of the frame conversions: launches of `kernels/convert.cu` (PTX from `build.rs`).
use candle_core::backend::BackendStorage;
use candle_core::cuda_backend::cudarc::driver::{CudaView, DeviceRepr, LaunchConfig, PushKernelArg};
use candle_core::cuda_backend::{CudaDType, WrapErr};
use candle_core::{CudaStorage, DType, Result};
use half::{bf16, f16};

use crate::ops::cuda_launch::Input;

const PTX: &str = include_str!(concat!(env!("OUT_DIR"), "/convert.ptx"));
const MODULE: &str = "stylestream_convert";
const THREADS: u32 = 256;

/// Mirror of `FrameGeometry` in `kernels/stylestream.cuh`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
struct Geometry {
    height: u32,
    width: u32,
    padded_height: u32,
    padded_width: u32,
}

// SAFETY: a plain `#[repr(C)]` struct of `u32`, laid out as its C declaration.
unsafe impl DeviceRepr for Geometry {}

/// u8 `[H, W, 3]` -> `[3, H', W']` of `dtype`.
pub(super) fn to_planar(g: &super::FrameGeometry, dtype: DType, frame: Input) -> Result<CudaStorage> {
    match dtype {
        DType::F32 => to_planar_as::<f32>(g, frame, "f32"),
        DType::F16 => to_planar_as::<f16>(g, frame, "f16"),
        DType::BF16 => to_planar_as::<bf16>(g, frame, "bf16"),
        other => candle_core::bail!("frames convert to f32, f16 or bf16, got {other:?}"),
    }
}

/// `[3, H', W']` -> u8 `[H, W, 3]`.
pub(super) fn to_rgb8(g: &super::FrameGeometry, planar: Input) -> Result<CudaStorage> {
    match planar.0.dtype() {
        DType::F32 => to_rgb8_as::<f32>(g, planar, "f32"),
        DType::F16 => to_rgb8_as::<f16>(g, planar, "f16"),
        DType::BF16 => to_rgb8_as::<bf16>(g, planar, "bf16"),
        other => candle_core::bail!("frames convert from f32, f16 or bf16, got {other:?}"),
    }
}

fn to_planar_as<T: CudaDType + DeviceRepr>(
    g: &super::FrameGeometry,
    frame: Input,
    suffix: &str,
) -> Result<CudaStorage> {
    let dev = &frame.0.device;
    let frame = view::<u8>(frame)?;
    let plane = g.padded_height * g.padded_width;
    // SAFETY: one thread per padded pixel writes its three values.
    let out = unsafe { dev.alloc::<T>(3 * plane)? };
    let func = dev.get_or_load_custom_func(&format!("rgb8_to_planar_{suffix}"), MODULE, PTX)?;
    let geometry = geometry(g)?;
    let mut launch = func.builder();
    launch.arg(&frame).arg(&out).arg(&geometry);
    // SAFETY: argument types and order match `rgb8_to_planar_*`.
    unsafe { launch.launch(config(plane)?) }.w()?;
    Ok(T::wrap_cuda_slice(out, dev.clone()))
}

fn to_rgb8_as<T: CudaDType + DeviceRepr>(
    g: &super::FrameGeometry,
    planar: Input,
    suffix: &str,
) -> Result<CudaStorage> {
    let dev = &planar.0.device;
    let planar = view::<T>(planar)?;
    let pixels = g.height * g.width;
    // SAFETY: one thread per output pixel writes its three bytes.
    let out = unsafe { dev.alloc::<u8>(3 * pixels)? };
    let func = dev.get_or_load_custom_func(&format!("planar_to_rgb8_{suffix}"), MODULE, PTX)?;
    let geometry = geometry(g)?;
    let mut launch = func.builder();
    launch.arg(&planar).arg(&out).arg(&geometry);
    // SAFETY: argument types and order match `planar_to_rgb8_*`.
    unsafe { launch.launch(config(pixels)?) }.w()?;
    Ok(u8::wrap_cuda_slice(out, dev.clone()))
}

fn view<'a, T: CudaDType>(input: Input<'a>) -> Result<CudaView<'a, T>> {
    crate::ops::cuda_launch::view(input, "frame conversion")
}

fn geometry(g: &super::FrameGeometry) -> Result<Geometry> {
    let dim = |x: usize| {
        u32::try_from(x).map_err(|_| candle_core::Error::Msg(format!("frame side {x} exceeds 32 bits")))
    };
    Ok(Geometry {
        height: dim(g.height)?,
        width: dim(g.width)?,
        padded_height: dim(g.padded_height)?,
        padded_width: dim(g.padded_width)?,
    })
}

fn config(threads: usize) -> Result<LaunchConfig> {
    let blocks = u32::try_from(threads.div_ceil(THREADS as usize))
        .map_err(|_| candle_core::Error::Msg(format!("{threads} pixels exceed one launch")))?;
    Ok(LaunchConfig { grid_dim: (blocks, 1, 1), block_dim: (THREADS, 1, 1), shared_mem_bytes: 0 })
}

/// `check-kernels`: the CPU reference on a copy of the input must give exactly the same bytes or
/// values (both sides do the same f32 arithmetic and round to the storage type the same way).
#[cfg(feature = "check-kernels")]
pub(super) fn check_against_reference(
    op: &dyn candle_core::CustomOp1,
    out: &CudaStorage,
    (s, l): Input,
) -> Result<()> {
    let (want, shape) = op.cpu_fwd(&s.to_cpu_storage()?, l)?;
    let got = out.to_cpu_storage()?;
    let whole = candle_core::Layout::contiguous(shape);
    let as_f64 = |c: &candle_core::CpuStorage| -> Result<Vec<f64>> {
        let (start, end) = whole.contiguous_offsets().expect("contiguous by construction");
        Ok(match c {
            candle_core::CpuStorage::U8(v) => v[start..end].iter().map(|&x| f64::from(x)).collect(),
            candle_core::CpuStorage::F32(v) => v[start..end].iter().map(|&x| f64::from(x)).collect(),
            candle_core::CpuStorage::F16(v) => v[start..end].iter().map(|x| f64::from(x.to_f32())).collect(),
            candle_core::CpuStorage::BF16(v) => v[start..end].iter().map(|x| f64::from(x.to_f32())).collect(),
            other => candle_core::bail!("unexpected {:?}", other.dtype()),
        })
    };
    let (got, want) = (as_f64(&got)?, as_f64(&want)?);
    match got.iter().zip(&want).position(|(g, w)| g != w) {
        None => Ok(()),
        Some(i) => candle_core::bail!(
            "check-kernels: {} on CUDA differs from the CPU reference at element {i}: {} != {}",
            op.name(),
            got[i],
            want[i]
        ),
    }
}
