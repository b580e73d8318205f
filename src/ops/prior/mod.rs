//! NeAT's content prior as one op that runs where the frame is (`crate::prior` describes the prior;
//! this is its device-side implementation). The GPU path keeps the frame on the device from upload
//! to the model's input: only the nine colour sums come back to the host, for the 3x3 square roots.
//!
//! Stages (the CPU reference in `cpu.rs`, the kernels in `kernels/prior.cu`, one for one):
//! 1. the frame (packed RGB bytes `[H, W, 3]`, or `[1, 3, H, W]` in [0, 1]) on the 0..255 scale, with
//!    the horizontal Gaussian taps fused in, then the vertical taps: OpenCV's `GaussianBlur` with the
//!    kernel of `getGaussianKernel` (f64 taps normalised, then f32);
//! 2. OpenCV's `bilateralFilter` for 3-channel float images, as its source computes it: a circular
//!    window of radius `d / 2` (offsets with `dx^2 + dy^2 > R^2` are skipped), weight
//!    `exp(-r^2 / (2 sigma_space^2)) * exp(-(sum_c |x_c - x0_c|)^2 / (2 sigma_color^2))` (the colour
//!    distance is the L1 sum over channels; OpenCV reads the second factor from a 4096-bin-per-channel
//!    table with linear interpolation, which differs from the exact exponential by < 1e-7), borders
//!    reflect-101;
//! 3. the mean and covariance of the result in f64, the [`ColourMap`] to the style's statistics
//!    (host, f64), folded with the prior weight into one f32 affine map applied per pixel.
//!
//! With blur 0, steps 1 (except the conversion) and 2 are skipped, as in `crate::prior`.
mod cpu;
#[cfg(feature = "cuda")]
mod cuda;

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp1, DType, Layout, Result, Shape, Tensor};

use super::storage::{f32_values, storage_as};
use crate::prior::{ColourMap, ColourStats, PriorConfig};

/// Largest difference between any value of the CUDA prior and the CPU reference, in [0, 1] units,
/// when written as f32: ~1/40 of an 8-bit level. Absolute, not relative: a frame with (nearly) no
/// colour variance gets a large gain from the ridge in `C_p^{-1/2}` (~300 for a single pixel), which
/// multiplies the last-bit differences of the kernels' `exp` and summation order.
pub const CHECK_MAX_ABS_F32: f32 = 1e-4;
/// The same written as f16 (one f16 step near 1 is 4.9e-4, so both sides may round apart).
pub const CHECK_MAX_ABS_F16: f32 = 1e-3;
/// The same written as bf16 (one bf16 step near 1 is 3.9e-3, 7.8e-3 above 1).
pub const CHECK_MAX_ABS_BF16: f32 = 1e-2;

/// [`CHECK_MAX_ABS_F32`], [`CHECK_MAX_ABS_F16`] or [`CHECK_MAX_ABS_BF16`] for an output type.
pub fn check_max_abs(dtype: DType) -> f32 {
    match dtype {
        DType::F16 => CHECK_MAX_ABS_F16,
        DType::BF16 => CHECK_MAX_ABS_BF16,
        _ => CHECK_MAX_ABS_F32,
    }
}

/// The content prior of `frame` for a style with colour statistics `style`, on `frame`'s device.
/// `frame`: u8 `[H, W, 3]` (packed RGB) or `[1, 3, H, W]` f32/f16/bf16 in [0, 1]. Returns
/// `[1, 3, H, W]` of `dtype` (f32, f16 or bf16).
pub fn content_prior(
    frame: &Tensor,
    style: &ColourStats,
    config: &PriorConfig,
    dtype: DType,
) -> Result<Tensor> {
    config.check().map_err(candle_core::Error::wrap)?;
    let source = match (frame.dtype(), frame.dims()) {
        (DType::U8, &[h, w, 3]) if h > 0 && w > 0 => Source::Rgb8,
        (DType::F32 | DType::F16 | DType::BF16, &[1, 3, h, w]) if h > 0 && w > 0 => Source::Planar,
        (dtype, dims) => candle_core::bail!(
            "content prior: expected a u8 [H, W, 3] or float [1, 3, H, W] frame, got {dtype:?} {dims:?}"
        ),
    };
    if !matches!(dtype, DType::F32 | DType::F16 | DType::BF16) {
        candle_core::bail!("content prior: written as f32, f16 or bf16, not {dtype:?}");
    }
    let (height, width) = match source {
        Source::Rgb8 => (frame.dim(0)?, frame.dim(1)?),
        Source::Planar => (frame.dim(2)?, frame.dim(3)?),
    };
    let op = ContentPrior { style: *style, config: *config, height, width, dtype };
    frame.contiguous()?.apply_op1_no_bwd(&op)
}

/// The layout of the frame the prior reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    /// Packed 8-bit RGB `[H, W, 3]`.
    Rgb8,
    /// `[1, 3, H, W]` in [0, 1].
    Planar,
}

/// What every stage needs to know, derived from [`PriorConfig`] as OpenCV derives it.
#[derive(Debug, Clone)]
struct Filters {
    /// Gaussian taps, `2 R + 1` of them; `[1.0]` when the blur is off.
    taps: Vec<f32>,
    /// Whether blur and bilateral run at all (blur kernel > 0).
    simplify: bool,
    /// `max(d / 2, 1)`.
    bilateral_radius: usize,
    /// `-0.5 / sigma_color^2`, for 0..255 values.
    color_coeff: f32,
    /// `-0.5 / sigma_space^2`, per squared pixel.
    space_coeff: f32,
}

impl Filters {
    fn new(config: &PriorConfig) -> Self {
        let simplify = config.blur_kernel > 0;
        let coeff = |sigma: f64| (-0.5 / (sigma * sigma)) as f32;
        Filters {
            taps: if simplify {
                cpu::gaussian_taps(config.blur_kernel, config.blur_sigma)
            } else {
                vec![1.0]
            },
            simplify,
            bilateral_radius: (config.bilateral_diameter as usize / 2).max(1),
            color_coeff: coeff(config.bilateral_sigma),
            space_coeff: coeff(config.bilateral_sigma),
        }
    }
}

/// The recolouring map and the prior weight as one f32 affine map of 0..255 values:
/// `out = weight (a x / 255 + b)`, row-major `a`.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Affine {
    a: [f32; 9],
    b: [f32; 3],
}

impl Affine {
    /// From the simplified frame's statistics, the style's, and the config's ridge and weight.
    fn new(frame: &ColourStats, style: &ColourStats, config: &PriorConfig) -> Self {
        let map = ColourMap::new(frame, style, config.ridge);
        Affine {
            a: std::array::from_fn(|k| (config.weight * map.a[k / 3][k % 3] / 255.0) as f32),
            b: std::array::from_fn(|c| (config.weight * map.b[c]) as f32),
        }
    }
}

/// Mean and covariance from the nine sums of the stats stage over `n` pixels: `sum x_c` (3), then
/// `sum x_i x_j` for (0,0), (0,1), (0,2), (1,1), (1,2), (2,2).
fn stats_from_sums(sums: &[f64; 9], n: usize) -> ColourStats {
    let n = n as f64;
    let mean = [sums[0] / n, sums[1] / n, sums[2] / n];
    let pairs = [(0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (2, 2)];
    let mut covariance = [[0f64; 3]; 3];
    for ((i, j), sum) in pairs.into_iter().zip(&sums[3..]) {
        covariance[i][j] = sum / n - mean[i] * mean[j];
        covariance[j][i] = covariance[i][j];
    }
    ColourStats { mean, covariance }
}

struct ContentPrior {
    style: ColourStats,
    config: PriorConfig,
    height: usize,
    width: usize,
    dtype: DType,
}

impl ContentPrior {
    fn out_shape(&self) -> Shape {
        Shape::from((1, 3, self.height, self.width))
    }

    fn source(&self, dtype: DType) -> Source {
        if dtype == DType::U8 {
            Source::Rgb8
        } else {
            Source::Planar
        }
    }
}

impl CustomOp1 for ContentPrior {
    fn name(&self) -> &'static str {
        "content-prior"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let filters = Filters::new(&self.config);
        let frame = match self.source(s.dtype()) {
            Source::Rgb8 => {
                let (start, end) = l.contiguous_offsets().ok_or_else(|| {
                    candle_core::Error::Msg("content prior needs a contiguous frame".into())
                })?;
                cpu::Frame::Rgb8(&s.as_slice::<u8>()?[start..end])
            }
            Source::Planar => cpu::Frame::Planar(f32_values(s, l, self.name())?),
        };
        let (h, w) = (self.height, self.width);
        let mut planes = cpu::blur_rows(&frame, &filters.taps, h, w);
        if filters.simplify {
            planes = cpu::blur_cols(&planes, &filters.taps, h, w);
            planes = cpu::bilateral(&planes, h, w, &filters);
        }
        let affine = Affine::new(&stats_from_sums(&cpu::stats(&planes), h * w), &self.style, &self.config);
        Ok((storage_as(cpu::recolour(&planes, &affine), self.dtype), self.out_shape()))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s: &candle_core::CudaStorage,
        l: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        let filters = Filters::new(&self.config);
        let source = self.source(s.dtype());
        let out = cuda::content_prior(self, &filters, source, (s, l))?;
        #[cfg(feature = "check-kernels")]
        {
            let want = self.cpu_fwd(&s.to_cpu_storage()?, l)?;
            super::cuda_launch::check_max_abs(self.name(), &out, want, check_max_abs(self.dtype))?;
        }
        Ok((out, self.out_shape()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn stats_from_sums_match_colour_stats_of_the_same_pixels() -> Result<()> {
        // Two pixels (0.2, 0.4, 0.6) and (0.6, 0.0, 0.2), as 0..255 planes.
        let planes: Vec<f32> = [0.2f32, 0.6, 0.4, 0.0, 0.6, 0.2].iter().map(|x| x * 255.0).collect();
        let got = stats_from_sums(&cpu::stats(&planes), 2);
        let image = Tensor::from_vec(vec![0.2f32, 0.6, 0.4, 0.0, 0.6, 0.2], (1, 3, 1, 2), &Device::Cpu)?;
        let want = ColourStats::of(&image).map_err(candle_core::Error::wrap)?;
        for i in 0..3 {
            assert!((got.mean[i] - want.mean[i]).abs() < 1e-7);
            for j in 0..3 {
                assert!((got.covariance[i][j] - want.covariance[i][j]).abs() < 1e-7);
            }
        }
        // By hand: mean R = 0.4, var R = 0.04, cov(R, G) = ((-0.2)(0.2) + (0.2)(-0.2)) / 2 = -0.04.
        assert!((got.mean[0] - 0.4).abs() < 1e-7 && (got.covariance[0][0] - 0.04).abs() < 1e-7);
        assert!((got.covariance[0][1] + 0.04).abs() < 1e-7);
        Ok(())
    }

    #[test]
    fn bytes_and_planar_frames_give_the_same_prior_and_bad_frames_are_refused() -> Result<()> {
        let bytes: Vec<u8> = (0..9 * 7 * 3).map(|i| (i * 37 % 251) as u8).collect();
        let rgb8 = Tensor::from_vec(bytes, (9, 7, 3), &Device::Cpu)?;
        let planar = (rgb8.permute((2, 0, 1))?.to_dtype(DType::F32)? / 255.0)?.unsqueeze(0)?;
        let style = ColourStats {
            mean: [0.3, 0.5, 0.2],
            covariance: [[0.02, 0.0, 0.0], [0.0, 0.01, 0.0], [0.0, 0.0, 0.03]],
        };
        let config = PriorConfig::default();
        let a = content_prior(&rgb8, &style, &config, DType::F32)?;
        let b = content_prior(&planar, &style, &config, DType::F32)?;
        // The planar frame holds byte / 255 in f32, so its 0..255 values are off by up to ~3e-5 (f32
        // rounding), which the recolouring's gain carries into the prior: far below 1/255.
        let diff = (a - b)?.abs()?.max_all()?.to_scalar::<f32>()?;
        assert!(diff < 1e-4, "{diff}");
        let err = content_prior(&rgb8.to_dtype(DType::F32)?, &style, &config, DType::F32).unwrap_err();
        assert!(err.to_string().contains("expected a u8 [H, W, 3]"), "{err}");
        Ok(())
    }
}
