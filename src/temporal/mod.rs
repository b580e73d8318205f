//! Temporal consistency of stylised video: optical flow, warping, occlusion masks, the three flicker
//! metrics of `docs/temporal.md` (Lai E_warp, Ruder MSE, masked RMSE), an offline evaluator that writes
//! CSV/JSON/PNG reports, a live monitor that never slows the video, and a causal stabiliser.
//!
//! Conventions shared by every file here (they are also written into every report):
//! - pixels are RGB in [0, 1], interleaved `[H, W, 3]`;
//! - flow is computed on the INPUT (source) frames, never on stylised ones, in pixels, `[H, W, 2]` (dx, dy);
//!   `F_{a->b}(p)` says where the content of frame `a` at pixel `p` is found in frame `b`;
//! - `warp(X, F)` samples `X` bilinearly at `p + F(p)`; samples outside the frame are invalid.
mod flow;
mod measure;
mod metrics;
mod monitor;
mod occlusion;
mod stabilize;
mod warp;

use std::path::PathBuf;

pub use flow::{DisPreset, FlowEstimator, FlowMethod};
pub use measure::{
    Conventions, Evaluator, FrameRow, MeasureConfig, MetricSummary, PlotLabels, Report, Summary,
};
pub use metrics::{lai_e_warp, masked_rmse, pair_metrics, ruder_mse, PairGeometry, PairMetrics};
pub use monitor::{Monitor, MonitorConfig, MonitorReading};
pub use occlusion::occlusion_mask;
pub use stabilize::{CutReason, Stabilized, Stabilizer, StabilizerConfig};
pub use warp::{warp_flow, warp_image};

/// Everything that can go wrong in `crate::temporal`; each message names what differs.
#[derive(Debug, thiserror::Error)]
pub enum TemporalError {
    #[error("{what}: expected {expected_w}x{expected_h}, found {found_w}x{found_h}")]
    SizeMismatch { what: String, expected_w: usize, expected_h: usize, found_w: usize, found_h: usize },
    #[error("frame {frame}: stylised {stylised_w}x{stylised_h} vs source {source_w}x{source_h}")]
    FrameSize { frame: u64, stylised_w: usize, stylised_h: usize, source_w: usize, source_h: usize },
    #[error("frame {frame}: source {found_w}x{found_h} vs {expected_w}x{expected_h} earlier in the video")]
    SizeChanged { frame: u64, expected_w: usize, expected_h: usize, found_w: usize, found_h: usize },
    #[error("{what}: expected {expected} values, found {found}")]
    BufferLength { what: String, expected: usize, found: usize },
    #[error("row stride {stride} bytes is shorter than a {width}-pixel RGB row ({} bytes)", width * 3)]
    Stride { stride: usize, width: usize },
    #[error("{what}: an image needs at least one pixel, found {width}x{height}")]
    Empty { what: String, width: usize, height: usize },
    #[error("{name} = {value}: expected {expected}")]
    Parameter { name: &'static str, value: String, expected: &'static str },
    #[error(
        "a {frames}-frame video has no frame pairs{}: nothing to measure",
        if *interval == 1 { String::new() } else { format!(" {interval} frames apart") }
    )]
    NoFramePairs { frames: u64, interval: usize },
    #[error("optical flow ({method}): cannot create the estimator: {message}")]
    FlowSetup { method: String, message: String },
    #[error("optical flow ({method}) on {width}x{height} frames: {message}")]
    Flow { method: String, width: usize, height: usize, message: String },
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: {message}")]
    Write { path: PathBuf, message: String },
    #[error("monitor: {0}")]
    Monitor(String),
}

pub type Result<T, E = TemporalError> = std::result::Result<T, E>;

/// An RGB frame, `data` interleaved `[H, W, 3]` in [0, 1].
#[derive(Debug, Clone, PartialEq)]
pub struct Image {
    pub width: usize,
    pub height: usize,
    pub data: Vec<f32>,
}

impl Image {
    /// Wraps `data` (`[H, W, 3]`), checking its length.
    pub fn new(width: usize, height: usize, data: Vec<f32>) -> Result<Self> {
        check_len("image", width, height, 3, data.len())?;
        Ok(Self { width, height, data })
    }

    /// A black frame.
    pub fn zeros(width: usize, height: usize) -> Self {
        Self { width, height, data: vec![0.0; width * height * 3] }
    }

    /// From 8-bit RGB rows `stride_bytes` apart (GStreamer pads rows to 4 bytes: width 322 has stride 968).
    /// The last row may stop right after its pixels.
    pub fn from_rgb8(width: usize, height: usize, stride_bytes: usize, bytes: &[u8]) -> Result<Self> {
        if width == 0 || height == 0 {
            return Err(TemporalError::Empty { what: "rgb8 frame".into(), width, height });
        }
        if stride_bytes < width * 3 {
            return Err(TemporalError::Stride { stride: stride_bytes, width });
        }
        let needed = stride_bytes * (height - 1) + width * 3;
        if bytes.len() < needed {
            return Err(TemporalError::BufferLength {
                what: format!("rgb8 {width}x{height} frame with stride {stride_bytes}"),
                expected: needed,
                found: bytes.len(),
            });
        }
        let mut data = Vec::with_capacity(width * height * 3);
        for row in bytes.chunks(stride_bytes).take(height) {
            data.extend(row[..width * 3].iter().map(|&b| f32::from(b) / 255.0));
        }
        Ok(Self { width, height, data })
    }

    /// Tightly packed 8-bit RGB (stride `3 * width`), values clamped to [0, 1] and rounded.
    pub fn to_rgb8(&self) -> Vec<u8> {
        self.data.iter().map(|&v| (v.clamp(0.0, 1.0) * 255.0).round() as u8).collect()
    }

    /// `(width, height)`.
    pub fn size(&self) -> (usize, usize) {
        (self.width, self.height)
    }

    /// Errors unless the public fields agree (the struct can be built by hand).
    fn check(&self, what: &str) -> Result<()> {
        check_len(what, self.width, self.height, 3, self.data.len())
    }
}

/// Optical flow, `data` interleaved `[H, W, 2]` = (dx, dy) in pixels.
#[derive(Debug, Clone, PartialEq)]
pub struct Flow {
    pub width: usize,
    pub height: usize,
    pub data: Vec<f32>,
}

impl Flow {
    /// Wraps `data` (`[H, W, 2]`), checking its length.
    pub fn new(width: usize, height: usize, data: Vec<f32>) -> Result<Self> {
        check_len("flow", width, height, 2, data.len())?;
        Ok(Self { width, height, data })
    }

    /// The same motion `(dx, dy)` at every pixel: a camera pan.
    pub fn uniform(width: usize, height: usize, dx: f32, dy: f32) -> Self {
        Self { width, height, data: [dx, dy].repeat(width * height) }
    }

    /// `(dx, dy)` at pixel `(x, y)`.
    pub fn at(&self, x: usize, y: usize) -> (f32, f32) {
        let i = 2 * (y * self.width + x);
        (self.data[i], self.data[i + 1])
    }

    /// `(width, height)`.
    pub fn size(&self) -> (usize, usize) {
        (self.width, self.height)
    }

    fn check(&self, what: &str) -> Result<()> {
        check_len(what, self.width, self.height, 2, self.data.len())
    }
}

/// Per-pixel validity `[H, W]`: `true` = usable (not occluded, not out of frame), M = 1 in the formulas.
#[derive(Debug, Clone, PartialEq)]
pub struct Mask {
    pub width: usize,
    pub height: usize,
    pub data: Vec<bool>,
}

impl Mask {
    /// Wraps `data` (`[H, W]`), checking its length.
    pub fn new(width: usize, height: usize, data: Vec<bool>) -> Result<Self> {
        check_len("mask", width, height, 1, data.len())?;
        Ok(Self { width, height, data })
    }

    /// Every pixel valid.
    pub fn all_valid(width: usize, height: usize) -> Self {
        Self { width, height, data: vec![true; width * height] }
    }

    /// Share of valid pixels in [0, 1] (0 for an empty mask).
    pub fn valid_fraction(&self) -> f64 {
        if self.data.is_empty() {
            return 0.0;
        }
        self.data.iter().filter(|&&v| v).count() as f64 / self.data.len() as f64
    }

    /// `(width, height)`.
    pub fn size(&self) -> (usize, usize) {
        (self.width, self.height)
    }

    fn check(&self, what: &str) -> Result<()> {
        check_len(what, self.width, self.height, 1, self.data.len())
    }
}

/// Errors on an empty frame or a `data` length other than `width * height * channels`.
fn check_len(what: &str, width: usize, height: usize, channels: usize, found: usize) -> Result<()> {
    if width == 0 || height == 0 {
        return Err(TemporalError::Empty { what: what.into(), width, height });
    }
    let expected = width * height * channels;
    if expected != found {
        return Err(TemporalError::BufferLength {
            what: format!("{what} {width}x{height}x{channels}"),
            expected,
            found,
        });
    }
    Ok(())
}

/// Errors unless `found` has the size `expected`; `what` names the pair being compared.
fn same_size(what: &str, expected: (usize, usize), found: (usize, usize)) -> Result<()> {
    if expected != found {
        return Err(TemporalError::SizeMismatch {
            what: what.into(),
            expected_w: expected.0,
            expected_h: expected.1,
            found_w: found.0,
            found_h: found.1,
        });
    }
    Ok(())
}

/// Checks one frame's source and stylised images: valid buffers of the same size.
pub(crate) fn check_pair(frame: u64, source: &Image, stylised: &Image) -> Result<()> {
    source.check(&format!("frame {frame}: source"))?;
    stylised.check(&format!("frame {frame}: stylised"))?;
    if source.size() != stylised.size() {
        return Err(TemporalError::FrameSize {
            frame,
            stylised_w: stylised.width,
            stylised_h: stylised.height,
            source_w: source.width,
            source_h: source.height,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rgb8_honours_padded_stride() {
        // 2x2 frame, stride 8 (6 bytes of pixels + 2 bytes of padding that must be ignored).
        let bytes = [0, 51, 255, 255, 0, 0, 99, 99, 10, 20, 30, 40, 50, 60];
        let img = Image::from_rgb8(2, 2, 8, &bytes).unwrap();
        assert_eq!(img.to_rgb8(), vec![0, 51, 255, 255, 0, 0, 10, 20, 30, 40, 50, 60]);
        assert!((img.data[1] - 0.2).abs() < 1e-7);
    }

    #[test]
    fn rgb8_rejects_short_buffers_and_strides() {
        let err = Image::from_rgb8(2, 2, 8, &[0; 13]).unwrap_err().to_string();
        assert!(err.contains("expected 14 values, found 13"), "{err}");
        let err = Image::from_rgb8(322, 2, 966 - 1, &[0; 4000]).unwrap_err().to_string();
        assert!(err.contains("shorter than a 322-pixel RGB row (966 bytes)"), "{err}");
        assert!(Image::from_rgb8(0, 2, 8, &[]).is_err());
    }

    #[test]
    fn constructors_check_lengths() {
        assert!(Image::new(2, 2, vec![0.0; 11]).is_err());
        assert!(Flow::new(2, 2, vec![0.0; 8]).is_ok());
        assert!(Mask::new(3, 1, vec![true; 2]).is_err());
        let err = Image::new(0, 4, vec![]).unwrap_err().to_string();
        assert_eq!(err, "image: an image needs at least one pixel, found 0x4");
    }
}
