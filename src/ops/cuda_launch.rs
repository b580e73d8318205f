//! Launch helpers shared by the ops' CUDA sides: typed views of candle's storages, sizes as the
//! kernels' 32-bit integers, opting a kernel in to more than 48 KB of shared memory, and the
//! `check-kernels` comparison of a CUDA result with the op's CPU reference.
#[cfg(feature = "check-kernels")]
use candle_core::backend::BackendStorage;
use candle_core::cuda_backend::cudarc::driver::sys::CUfunction_attribute_enum;
use candle_core::cuda_backend::cudarc::driver::{CudaFunction, CudaView};
use candle_core::cuda_backend::{CudaDType, WrapErr};
use candle_core::{CudaStorage, Layout, Result};

/// One input of an op: its storage and layout.
pub(crate) type Input<'a> = (&'a CudaStorage, &'a Layout);

/// Shared memory a block may use without opting in to more.
pub(crate) const DEFAULT_SHARED_LIMIT: usize = 48 * 1024;

/// The contiguous elements of `input` as a device view; `op` names the caller in errors.
pub(crate) fn view<'a, T: CudaDType>((storage, layout): Input<'a>, op: &str) -> Result<CudaView<'a, T>> {
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(storage.as_cuda_slice::<T>()?.slice(start..end)),
        None => candle_core::bail!("{op} needs contiguous inputs"),
    }
}

/// A size as the kernels' `uint32_t`; the kernels index with 64 bits wherever products can overflow.
pub(crate) fn dim(x: usize) -> Result<u32> {
    u32::try_from(x).map_err(|_| candle_core::Error::Msg(format!("{x} exceeds the kernels' 32-bit sizes")))
}

/// Blocks of `per_block` items that cover `items`.
pub(crate) fn blocks(items: usize, per_block: u32) -> Result<u32> {
    dim(items.div_ceil(per_block as usize))
}

/// Lets `func` launch with `bytes` of dynamic shared memory (needed above [`DEFAULT_SHARED_LIMIT`];
/// Hopper allows up to 227 KB per block).
pub(crate) fn allow_shared(func: &CudaFunction, bytes: usize) -> Result<()> {
    if bytes > DEFAULT_SHARED_LIMIT {
        let attribute = CUfunction_attribute_enum::CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES;
        func.set_attribute(attribute, i32::try_from(bytes).unwrap_or(i32::MAX)).w()?;
    }
    Ok(())
}

/// `check-kernels`: every value of a CUDA result must lie within `tolerance` of `want`, the op's CPU
/// reference on copies of the inputs.
#[cfg(feature = "check-kernels")]
pub(crate) fn check_max_abs(
    op: &str,
    got: &CudaStorage,
    (want, shape): (candle_core::CpuStorage, candle_core::Shape),
    tolerance: f32,
) -> Result<()> {
    let whole = Layout::contiguous(shape);
    let got_cpu = got.to_cpu_storage()?;
    let got_values = super::storage::f32_values(&got_cpu, &whole, op)?;
    let want_values = super::storage::f32_values(&want, &whole, op)?;
    let worst = got_values.iter().zip(want_values.iter()).map(|(g, w)| (g - w).abs()).fold(0f32, f32::max);
    if worst <= tolerance {
        Ok(())
    } else {
        candle_core::bail!(
            "check-kernels: {op} on CUDA ({:?}) differs from the CPU reference by up to {worst:.3e} > {tolerance:e}",
            got.dtype()
        )
    }
}

/// `check-kernels`: the relative L2 distance between a CUDA result and `want`, the op's CPU reference
/// on copies of the inputs, must be at most `tolerance`.
#[cfg(feature = "check-kernels")]
pub(crate) fn check_close(
    op: &str,
    got: &CudaStorage,
    (want, shape): (candle_core::CpuStorage, candle_core::Shape),
    tolerance: f64,
) -> Result<()> {
    let whole = Layout::contiguous(shape);
    let got_cpu = got.to_cpu_storage()?;
    let got_values = super::storage::f32_values(&got_cpu, &whole, op)?;
    let want_values = super::storage::f32_values(&want, &whole, op)?;
    let err = super::storage::relative_l2(&got_values, &want_values);
    if err <= tolerance {
        Ok(())
    } else {
        candle_core::bail!(
            "check-kernels: {op} on CUDA ({:?}) differs from the CPU reference: relative L2 {err:.3e} > {tolerance:e}",
            got.dtype()
        )
    }
}
