//! Frame conversions around the model, as custom ops so that a GPU pipeline uploads 8-bit frames
//! and downloads 8-bit results (a quarter of the f32 bytes) and pads/crops without extra passes.
//!
//! - [`rgb8_to_planar`]: packed RGB bytes `[H, W, 3]` -> `[1, 3, H', W']` in [0, 1], reflect-padded
//!   at the bottom and right up to multiples (the model's `PAD_MULTIPLE`), as `nn::reflect_pad` does.
//! - [`planar_to_rgb8`]: `[1, 3, H', W']` -> the top-left `[H, W, 3]` as bytes,
//!   `round(clamp(v, 0, 1) * 255)` (as `image_io::to_rgb8`).
mod cpu;
#[cfg(feature = "cuda")]
mod cuda;

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp1, DType, Layout, Result, Shape, Tensor};

/// Sizes of one conversion: the frame `[height, width, 3]` and the planar map `[3, padded_height,
/// padded_width]` (at least as large).
#[derive(Debug, Clone, Copy)]
struct FrameGeometry {
    height: usize,
    width: usize,
    padded_height: usize,
    padded_width: usize,
}

/// `frame`: u8 `[H, W, 3]` -> `[1, 3, ceil(H/m) m, ceil(W/m) m]` of `dtype` (f32, f16 or bf16),
/// value = byte / 255, with `m = multiple`.
pub fn rgb8_to_planar(frame: &Tensor, multiple: usize, dtype: DType) -> Result<Tensor> {
    let (height, width, channels) = frame.dims3()?;
    if frame.dtype() != DType::U8 || channels != 3 || height == 0 || width == 0 || multiple == 0 {
        candle_core::bail!(
            "rgb8_to_planar takes u8 [H, W, 3] frames and a positive multiple, got {:?} {:?} and {multiple}",
            frame.dtype(),
            frame.dims()
        );
    }
    check_float(dtype)?;
    let g = FrameGeometry {
        height,
        width,
        padded_height: height.div_ceil(multiple) * multiple,
        padded_width: width.div_ceil(multiple) * multiple,
    };
    frame.contiguous()?.apply_op1_no_bwd(&ToPlanar { g, dtype })
}

/// `planar`: `[1, 3, H', W']` (f32, f16 or bf16) -> u8 `[height, width, 3]` of its top-left corner.
pub fn planar_to_rgb8(planar: &Tensor, height: usize, width: usize) -> Result<Tensor> {
    let (b, c, padded_height, padded_width) = planar.dims4()?;
    if b != 1 || c != 3 || height == 0 || width == 0 || height > padded_height || width > padded_width {
        candle_core::bail!(
            "planar_to_rgb8 takes [1, 3, H', W'] and a {height}x{width} crop inside it, got {:?}",
            planar.dims()
        );
    }
    check_float(planar.dtype())?;
    let g = FrameGeometry { height, width, padded_height, padded_width };
    planar.contiguous()?.apply_op1_no_bwd(&ToRgb8 { g })
}

fn check_float(dtype: DType) -> Result<()> {
    match dtype {
        DType::F32 | DType::F16 | DType::BF16 => Ok(()),
        other => candle_core::bail!("frames convert to and from f32, f16 or bf16, got {other:?}"),
    }
}

/// A contiguous input's elements.
fn contiguous<'a, T: candle_core::WithDType>(s: &'a CpuStorage, l: &Layout) -> Result<&'a [T]> {
    match l.contiguous_offsets() {
        Some((start, end)) => Ok(&s.as_slice::<T>()?[start..end]),
        None => candle_core::bail!("frame conversion needs contiguous inputs"),
    }
}

struct ToPlanar {
    g: FrameGeometry,
    dtype: DType,
}

impl CustomOp1 for ToPlanar {
    fn name(&self) -> &'static str {
        "rgb8-to-planar"
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s: &candle_core::CudaStorage,
        l: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        let out = cuda::to_planar(&self.g, self.dtype, (s, l))?;
        #[cfg(feature = "check-kernels")]
        cuda::check_against_reference(self, &out, (s, l))?;
        Ok((out, self.out_shape()))
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let planar = cpu::to_planar(&self.g, contiguous::<u8>(s, l)?);
        let out = match self.dtype {
            DType::F16 => CpuStorage::F16(planar.into_iter().map(half::f16::from_f32).collect()),
            DType::BF16 => CpuStorage::BF16(planar.into_iter().map(half::bf16::from_f32).collect()),
            _ => CpuStorage::F32(planar),
        };
        Ok((out, self.out_shape()))
    }
}

impl ToPlanar {
    fn out_shape(&self) -> Shape {
        Shape::from((1, 3, self.g.padded_height, self.g.padded_width))
    }
}

struct ToRgb8 {
    g: FrameGeometry,
}

impl CustomOp1 for ToRgb8 {
    fn name(&self) -> &'static str {
        "planar-to-rgb8"
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s: &candle_core::CudaStorage,
        l: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        let out = cuda::to_rgb8(&self.g, (s, l))?;
        #[cfg(feature = "check-kernels")]
        cuda::check_against_reference(self, &out, (s, l))?;
        Ok((out, self.out_shape()))
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let values: Vec<f32> = match s.dtype() {
            DType::F32 => contiguous::<f32>(s, l)?.to_vec(),
            DType::F16 => contiguous::<half::f16>(s, l)?.iter().map(|x| x.to_f32()).collect(),
            DType::BF16 => contiguous::<half::bf16>(s, l)?.iter().map(|x| x.to_f32()).collect(),
            other => candle_core::bail!("frames convert from f32, f16 or bf16, got {other:?}"),
        };
        Ok((CpuStorage::U8(cpu::to_rgb8(&self.g, &values)), self.out_shape()))
    }
}

impl ToRgb8 {
    fn out_shape(&self) -> Shape {
        Shape::from((self.g.height, self.g.width, 3))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn round_trip_pads_by_reflection_and_crops_back() -> Result<()> {
        let bytes: Vec<u8> = (0..5 * 3 * 3).map(|i| (i * 7 % 256) as u8).collect();
        let frame = Tensor::from_vec(bytes.clone(), (5, 3, 3), &Device::Cpu)?;
        let planar = rgb8_to_planar(&frame, 4, DType::F32)?;
        assert_eq!(planar.dims(), &[1, 3, 8, 4]);
        // The same padding as the model's own reflect_pad on the f32 image.
        let float = (frame.to_dtype(DType::F32)? / 255.0)?.permute((2, 0, 1))?.unsqueeze(0)?;
        let want = crate::nn::reflect_pad(&float, 0, 3, 0, 1)?;
        let diff = (planar - &want)?.abs()?.max_all()?.to_scalar::<f32>()?;
        // One ulp: candle divides a tensor by a scalar as a multiplication by its reciprocal.
        assert!(diff <= 1e-7, "{diff}");
        let back = planar_to_rgb8(&want, 5, 3)?;
        assert_eq!(back.flatten_all()?.to_vec1::<u8>()?, bytes);
        Ok(())
    }

    #[test]
    fn bytes_round_and_clamp_as_image_io() -> Result<()> {
        let planar = Tensor::new(&[-0.5f32, 0.5, 1.5], &Device::Cpu)?.reshape((1, 3, 1, 1))?;
        let bytes = planar_to_rgb8(&planar, 1, 1)?.flatten_all()?.to_vec1::<u8>()?;
        let want = crate::image_io::to_rgb8(&planar)?.into_raw();
        assert_eq!(bytes, want);
        assert_eq!(bytes, vec![0, 128, 255]);
        Ok(())
    }
}
