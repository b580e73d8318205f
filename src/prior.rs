//! NeAT's content prior: the frame simplified and recoloured with the style's palette, the image the
//! network's RGB deltas are added to (`shared/docs/neat.md`, "Content prior").
//!
//! `P(I_c, I_s) = weight * recolour(bilateral(gaussian(I_c)), stats(I_s))`, on `[1, 3, H, W]` RGB in
//! [0, 1]:
//! 1. Gaussian blur, kernel [`PriorConfig::blur_kernel`] (7, the paper's "7 px"), sigma
//!    [`PriorConfig::blur_sigma`] (the paper gives none; we take 1.4, the sigma OpenCV itself derives
//!    for a 7-pixel kernel, `0.3 ((k - 1) / 2 - 1) + 0.8`).
//! 2. Bilateral filter, diameter 25, sigma 100 for both colour and space, on 0..255 values (the
//!    frame is scaled by 255 for OpenCV and back).
//! 3. Recolour: `x' = C_s^{1/2} (C_p + ridge I)^{-1/2} (x - mu_p) + mu_s`, mean `mu` and 3x3 covariance
//!    `C` of the simplified frame (`p`) and of the style image (`s`), symmetric matrix square roots.
//! 4. Times the prior weight (0.5).
//!
//! Blur 0 skips steps 1 and 2. On the CPU both filters run in OpenCV with its default border
//! (reflect-101, the same mirror as the networks' reflection padding), so they need the crate's
//! `media` feature; without it only blur 0 runs, and asking for a blur is an error that says so. A
//! frame on a CUDA device never leaves it: the same chain runs as kernels (`crate::ops::prior`,
//! checked against OpenCV's filters in tests/neat_prior.rs).
use candle_core::Tensor;
use serde::{Deserialize, Serialize};

/// A 3x3 matrix, row-major.
type Mat3 = [[f64; 3]; 3];

/// The prior's settings: stored in every NeAT checkpoint; `--blur` and `--prior-weight` override them.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PriorConfig {
    /// Gaussian kernel side in pixels, odd; 0 disables blur and bilateral filter. Paper: 7.
    pub blur_kernel: u32,
    /// Gaussian sigma in pixels (ours: OpenCV's own choice for the kernel, 1.4 for 7).
    pub blur_sigma: f64,
    /// Bilateral filter diameter in pixels. Paper: 25.
    pub bilateral_diameter: u32,
    /// Bilateral sigmaColor and sigmaSpace, on 0..255 values. Paper: 100.
    pub bilateral_sigma: f64,
    /// Added to the diagonal of the frame's colour covariance before its inverse square root, in
    /// squared [0, 1] units. Ours: 1e-7, a tenth of the variance of 8-bit quantisation
    /// (1 / (12 * 255^2)). It keeps flat and grey frames finite (their null directions carry no
    /// signal, so the large gain there multiplies zeros), while a natural photo's weakest colour
    /// direction (variance ~3e-4 for chelsea.png) shrinks by only ~0.03 %; 1e-5 shrank it by 3.5 %.
    pub ridge: f64,
    /// The prior's factor in the output. Paper (training): 0.5.
    pub weight: f64,
}

impl Default for PriorConfig {
    fn default() -> Self {
        PriorConfig {
            blur_kernel: 7,
            blur_sigma: opencv_sigma(7),
            bilateral_diameter: 25,
            bilateral_sigma: 100.0,
            ridge: 1e-7,
            weight: 0.5,
        }
    }
}

/// The sigma OpenCV derives for a Gaussian kernel of side `kernel` when given none.
pub fn opencv_sigma(kernel: u32) -> f64 {
    0.3 * ((kernel as f64 - 1.0) * 0.5 - 1.0) + 0.8
}

impl PriorConfig {
    /// The `--blur K` control: kernel `K` (0 = off) with OpenCV's sigma for it.
    pub fn with_blur(self, kernel: u32) -> Self {
        PriorConfig { blur_kernel: kernel, blur_sigma: opencv_sigma(kernel), ..self }
    }

    /// Checks every field's range.
    pub fn check(&self) -> Result<(), PriorError> {
        let bad = |field, value: String, expected| Err(PriorError::Config { field, value, expected });
        if self.blur_kernel != 0 && self.blur_kernel % 2 == 0 {
            return bad("blur_kernel", self.blur_kernel.to_string(), "0 (off) or an odd number of pixels");
        }
        if self.blur_kernel != 0 && !positive(self.blur_sigma) {
            return bad("blur_sigma", self.blur_sigma.to_string(), "a positive number of pixels");
        }
        if self.bilateral_diameter == 0 || !positive(self.bilateral_sigma) {
            let value = format!("{} / {}", self.bilateral_diameter, self.bilateral_sigma);
            return bad("bilateral_diameter / bilateral_sigma", value, "both positive");
        }
        if !positive(self.ridge) {
            return bad("ridge", self.ridge.to_string(), "a small positive number such as 1e-7");
        }
        if !self.weight.is_finite() {
            return bad("weight", self.weight.to_string(), "a finite number (0.5 in training)");
        }
        Ok(())
    }
}

fn positive(x: f64) -> bool {
    x > 0.0 && x.is_finite()
}

/// What went wrong in the prior.
#[derive(Debug, thiserror::Error)]
pub enum PriorError {
    #[error("content prior: {field} = {value}, expected {expected}")]
    Config { field: &'static str, value: String, expected: &'static str },
    #[error("content prior: expected a [1, 3, H, W] RGB frame, got {0:?}")]
    Shape(Vec<usize>),
    #[error("content prior: OpenCV {step} on a {width}x{height} frame: {message}")]
    OpenCv { step: &'static str, width: usize, height: usize, message: String },
    #[error("content prior: a blur of {kernel} px needs OpenCV, left out of this build (feature `media`); use --blur 0")]
    NoOpenCv { kernel: u32 },
    #[error("content prior: {0}")]
    Tensor(#[from] candle_core::Error),
}

/// A frame's colour statistics: mean and covariance (divided by the pixel count) of its RGB values.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ColourStats {
    pub mean: [f64; 3],
    pub covariance: Mat3,
}

impl ColourStats {
    /// Statistics of a `[1, 3, H, W]` image, accumulated in f64.
    pub fn of(image: &Tensor) -> Result<Self, PriorError> {
        let planes = Planes::of(image)?;
        Ok(planes.stats())
    }
}

/// The affine colour map that gives pixels with statistics `from` the mean and covariance of `to`:
/// `x' = a x + b` with `a = C_to^{1/2} (C_from + ridge I)^{-1/2}`, `b = mu_to - a mu_from`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ColourMap {
    pub a: Mat3,
    pub b: [f64; 3],
}

impl ColourMap {
    pub fn new(from: &ColourStats, to: &ColourStats, ridge: f64) -> Self {
        let mut ridged = from.covariance;
        (0..3).for_each(|i| ridged[i][i] += ridge);
        let a = mul(&symmetric_power(&to.covariance, 0.5), &symmetric_power(&ridged, -0.5));
        let b = std::array::from_fn(|i| to.mean[i] - (0..3).map(|j| a[i][j] * from.mean[j]).sum::<f64>());
        ColourMap { a, b }
    }
}

/// Recolours `image` `[1, 3, H, W]` to the mean and covariance of `target` (step 3 alone).
pub fn recolour(image: &Tensor, target: &ColourStats, ridge: f64) -> Result<Tensor, PriorError> {
    let mut planes = Planes::of(image)?;
    let map = ColourMap::new(&planes.stats(), target, ridge);
    planes.apply(&map, 1.0);
    planes.into_tensor(image.device())
}

/// The whole prior of `frame` `[1, 3, H, W]` for a style with statistics `style` -> `[1, 3, H, W]`.
/// With `blur_kernel` 0 it is exactly `weight * recolour(frame)`.
pub fn content_prior(
    frame: &Tensor,
    style: &ColourStats,
    config: &PriorConfig,
) -> Result<Tensor, PriorError> {
    let _span = tracing::debug_span!("content_prior").entered();
    if frame.device().is_cuda() {
        // The frame stays on the GPU: the same chain as kernels (crate::ops::prior).
        return Ok(crate::ops::prior::content_prior(frame, style, config, frame.dtype())?);
    }
    let mut planes = Planes::of(frame)?;
    if config.blur_kernel > 0 {
        planes = simplify(planes, config)?;
    }
    let map = ColourMap::new(&planes.stats(), style, config.ridge);
    planes.apply(&map, config.weight);
    // In the frame's storage type, as the model's deltas it is added to.
    Ok(planes.into_tensor(frame.device())?.to_dtype(frame.dtype())?)
}

/// The bilateral filter of step 2 alone on `[1, 3, H, W]` in [0, 1] (OpenCV `bilateralFilter` on the
/// frame times 255, divided by 255 after).
#[cfg(feature = "media")]
pub fn bilateral(image: &Tensor, diameter: u32, sigma: f64) -> Result<Tensor, PriorError> {
    let planes = Planes::of(image)?;
    let (h, w) = (planes.height, planes.width);
    let filtered = opencv_filters::bilateral(&planes.to_interleaved_255(), h, w, diameter, sigma)?;
    Planes::from_interleaved_255(&filtered, h, w).into_tensor(image.device())
}

/// Steps 1 and 2.
#[cfg(feature = "media")]
fn simplify(planes: Planes, config: &PriorConfig) -> Result<Planes, PriorError> {
    let (h, w) = (planes.height, planes.width);
    let blurred =
        opencv_filters::gaussian(&planes.to_interleaved_255(), h, w, config.blur_kernel, config.blur_sigma)?;
    let filtered =
        opencv_filters::bilateral(&blurred, h, w, config.bilateral_diameter, config.bilateral_sigma)?;
    Ok(Planes::from_interleaved_255(&filtered, h, w))
}

#[cfg(not(feature = "media"))]
fn simplify(_: Planes, config: &PriorConfig) -> Result<Planes, PriorError> {
    Err(PriorError::NoOpenCv { kernel: config.blur_kernel })
}

/// The two OpenCV filters on interleaved `[H, W, 3]` f32 values in 0..255.
#[cfg(feature = "media")]
mod opencv_filters {
    use opencv::boxed_ref::BoxedRef;
    use opencv::core::{Mat, Size, BORDER_DEFAULT};
    use opencv::prelude::*;

    use super::PriorError;

    fn run(
        step: &'static str,
        rgb: &[f32],
        height: usize,
        width: usize,
        filter: impl FnOnce(&BoxedRef<Mat>, &mut Mat) -> opencv::Result<()>,
    ) -> Result<Vec<f32>, PriorError> {
        let fail = |e: opencv::Error| PriorError::OpenCv { step, width, height, message: e.to_string() };
        // [H, W * 3] f32 viewed as [H, W] of 3 channels (CV_32FC3).
        let flat =
            Mat::new_rows_cols_with_data::<f32>(height as i32, (width * 3) as i32, rgb).map_err(fail)?;
        let src = flat.reshape(3, height as i32).map_err(fail)?;
        let mut dst = Mat::default();
        filter(&src, &mut dst).map_err(fail)?;
        let dst = dst.reshape(1, height as i32).map_err(fail)?;
        Ok(dst.data_typed::<f32>().map_err(fail)?.to_vec())
    }

    pub(super) fn gaussian(
        rgb: &[f32],
        height: usize,
        width: usize,
        kernel: u32,
        sigma: f64,
    ) -> Result<Vec<f32>, PriorError> {
        run("GaussianBlur", rgb, height, width, |src, dst| {
            let size = Size::new(kernel as i32, kernel as i32);
            opencv::imgproc::gaussian_blur(src, dst, size, sigma, sigma, BORDER_DEFAULT)
        })
    }

    pub(super) fn bilateral(
        rgb: &[f32],
        height: usize,
        width: usize,
        diameter: u32,
        sigma: f64,
    ) -> Result<Vec<f32>, PriorError> {
        run("bilateralFilter", rgb, height, width, |src, dst| {
            opencv::imgproc::bilateral_filter(src, dst, diameter as i32, sigma, sigma, BORDER_DEFAULT)
        })
    }
}

/// A frame as three planes, `data` `[3, H, W]` f32.
struct Planes {
    height: usize,
    width: usize,
    data: Vec<f32>,
}

impl Planes {
    fn of(image: &Tensor) -> Result<Self, PriorError> {
        let (height, width) = match image.dims() {
            &[1, 3, h, w] if h > 0 && w > 0 => (h, w),
            dims => return Err(PriorError::Shape(dims.to_vec())),
        };
        let data = image.flatten_all()?.to_dtype(candle_core::DType::F32)?.to_vec1::<f32>()?;
        Ok(Planes { height, width, data })
    }

    fn into_tensor(self, device: &candle_core::Device) -> Result<Tensor, PriorError> {
        Ok(Tensor::from_vec(self.data, (1, 3, self.height, self.width), device)?)
    }

    /// `[H, W, 3]` values times 255, as OpenCV's filters take them.
    #[cfg(feature = "media")]
    fn to_interleaved_255(&self) -> Vec<f32> {
        let n = self.height * self.width;
        (0..3 * n).map(|i| self.data[(i % 3) * n + i / 3] * 255.0).collect()
    }

    #[cfg(feature = "media")]
    fn from_interleaved_255(rgb: &[f32], height: usize, width: usize) -> Self {
        let n = height * width;
        let data = (0..3 * n).map(|i| rgb[(i % n) * 3 + i / n] / 255.0).collect();
        Planes { height, width, data }
    }

    fn stats(&self) -> ColourStats {
        let n = self.height * self.width;
        let (r, g, b) = (&self.data[..n], &self.data[n..2 * n], &self.data[2 * n..]);
        let mut sum = [0f64; 3];
        let mut cross = [[0f64; 3]; 3];
        for ((&r, &g), &b) in r.iter().zip(g).zip(b) {
            let x = [r as f64, g as f64, b as f64];
            for i in 0..3 {
                sum[i] += x[i];
                for j in i..3 {
                    cross[i][j] += x[i] * x[j];
                }
            }
        }
        let mean = sum.map(|s| s / n as f64);
        // E[x x^T] - mu mu^T: the raw second moments are accumulated in f64, whose 53 bits hold the
        // sums of up to 3840x2160 products of [0, 1] values with ~1e-9 relative error.
        let mut covariance = [[0f64; 3]; 3];
        for i in 0..3 {
            for j in i..3 {
                covariance[i][j] = cross[i][j] / n as f64 - mean[i] * mean[j];
                covariance[j][i] = covariance[i][j];
            }
        }
        ColourStats { mean, covariance }
    }

    /// `x <- weight * (a x + b)` for every pixel, in f64, rounded once to f32.
    fn apply(&mut self, map: &ColourMap, weight: f64) {
        let n = self.height * self.width;
        let (r, rest) = self.data.split_at_mut(n);
        let (g, b) = rest.split_at_mut(n);
        for ((r, g), b) in r.iter_mut().zip(g.iter_mut()).zip(b.iter_mut()) {
            let x = [*r as f64, *g as f64, *b as f64];
            let y: [f64; 3] = std::array::from_fn(|i| {
                weight * (map.a[i][0] * x[0] + map.a[i][1] * x[1] + map.a[i][2] * x[2] + map.b[i])
            });
            (*r, *g, *b) = (y[0] as f32, y[1] as f32, y[2] as f32);
        }
    }
}

fn mul(a: &Mat3, b: &Mat3) -> Mat3 {
    std::array::from_fn(|i| std::array::from_fn(|j| (0..3).map(|k| a[i][k] * b[k][j]).sum()))
}

fn transpose(a: &Mat3) -> Mat3 {
    std::array::from_fn(|i| std::array::from_fn(|j| a[j][i]))
}

/// `m^p` of a symmetric positive semi-definite matrix, `V diag(lambda^p) V^T`; eigenvalues that
/// round-off pushed below zero count as zero.
fn symmetric_power(m: &Mat3, p: f64) -> Mat3 {
    let (lambda, v) = symmetric_eigen(m);
    let d: Mat3 = std::array::from_fn(|i| {
        std::array::from_fn(|j| if i == j { lambda[i].max(0.0).powf(p) } else { 0.0 })
    });
    mul(&mul(&v, &d), &transpose(&v))
}

/// Eigenvalues and eigenvectors (the columns of the second matrix) of a symmetric 3x3 matrix, by
/// cyclic Jacobi rotations: each rotation zeroes one off-diagonal pair; sweeps repeat until the
/// off-diagonal part is round-off. Jacobi rather than a closed-form cubic because it stays accurate
/// for the repeated eigenvalues of grey or single-hue frames.
fn symmetric_eigen(m: &Mat3) -> ([f64; 3], Mat3) {
    let mut a = *m;
    let mut v: Mat3 = std::array::from_fn(|i| std::array::from_fn(|j| if i == j { 1.0 } else { 0.0 }));
    let scale: f64 = a.iter().flatten().map(|x| x * x).sum();
    for _sweep in 0..32 {
        let off = a[0][1] * a[0][1] + a[0][2] * a[0][2] + a[1][2] * a[1][2];
        if off <= f64::EPSILON * f64::EPSILON * scale {
            break;
        }
        for (p, q) in [(0, 1), (0, 2), (1, 2)] {
            if a[p][q] == 0.0 {
                continue;
            }
            // tan of the rotation angle that zeroes a[p][q] (the smaller root, for stability).
            let theta = (a[q][q] - a[p][p]) / (2.0 * a[p][q]);
            let t = if theta >= 0.0 { 1.0 } else { -1.0 } / (theta.abs() + (theta * theta + 1.0).sqrt());
            let c = 1.0 / (t * t + 1.0).sqrt();
            let s = t * c;
            let mut j: Mat3 =
                std::array::from_fn(|i| std::array::from_fn(|k| if i == k { 1.0 } else { 0.0 }));
            (j[p][p], j[q][q], j[p][q], j[q][p]) = (c, c, s, -s);
            a = mul(&mul(&transpose(&j), &a), &j);
            v = mul(&v, &j);
        }
    }
    ([a[0][0], a[1][1], a[2][2]], v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: &Mat3, b: &Mat3, tol: f64) -> bool {
        a.iter().flatten().zip(b.iter().flatten()).all(|(x, y)| (x - y).abs() <= tol)
    }

    #[test]
    fn square_root_squares_back_and_inverse_root_inverts() {
        let m = [[0.05, 0.02, -0.01], [0.02, 0.04, 0.005], [-0.01, 0.005, 0.03]];
        let root = symmetric_power(&m, 0.5);
        assert!(close(&mul(&root, &root), &m, 1e-15));
        assert!(close(&root, &transpose(&root), 1e-15), "the root is symmetric");
        let inv_root = symmetric_power(&m, -0.5);
        let id = mul(&mul(&inv_root, &m), &inv_root);
        assert!(close(&id, &std::array::from_fn(|i| std::array::from_fn(|j| (i == j) as u8 as f64)), 1e-12));
    }

    #[test]
    fn repeated_and_zero_eigenvalues_are_handled() {
        // Grey pixels: covariance c * ones(3, 3), eigenvalues 3c, 0, 0.
        let m = [[0.02; 3]; 3];
        let (lambda, _) = symmetric_eigen(&m);
        let mut sorted = lambda;
        sorted.sort_by(f64::total_cmp);
        assert!(sorted[0].abs() < 1e-16 && sorted[1].abs() < 1e-16 && (sorted[2] - 0.06).abs() < 1e-16);
        let root = symmetric_power(&m, 0.5);
        assert!(close(&mul(&root, &root), &m, 1e-15));
    }

    #[test]
    fn config_ranges_are_checked() {
        assert!(PriorConfig::default().check().is_ok());
        assert_eq!(PriorConfig::default().blur_sigma, 0.3 * 2.0 + 0.8);
        assert!(PriorConfig::default().with_blur(0).check().is_ok());
        let e = PriorConfig::default().with_blur(4).check().unwrap_err().to_string();
        assert!(e.contains("blur_kernel = 4"), "{e}");
        let e = PriorConfig { ridge: 0.0, ..Default::default() }.check().unwrap_err().to_string();
        assert!(e.contains("ridge"), "{e}");
    }
}
