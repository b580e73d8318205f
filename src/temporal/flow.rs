//! Dense optical flow on input frames with OpenCV: DIS (Kroeger et al. 2016; the default: classical,
//! robust, no weights to ship) or Farneback (2003). The only file of `temporal` that touches `Mat`.
use std::fmt;

use opencv::core::{Mat, Vec2f};
use opencv::prelude::*;
use opencv::video::{
    DISOpticalFlow, DISOpticalFlow_PRESET_FAST, DISOpticalFlow_PRESET_MEDIUM,
    DISOpticalFlow_PRESET_ULTRAFAST, FarnebackOpticalFlow,
};

use super::{same_size, Flow, Image, Result, TemporalError};

/// DIS speed/quality trade-off: OpenCV's three presets (`cv::DISOpticalFlow::create`), which set the
/// finest pyramid level, patch size and variational refinement. MEDIUM is the most accurate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DisPreset {
    UltraFast,
    Fast,
    Medium,
}

/// Which estimator computes `F_{a->b}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlowMethod {
    Dis(DisPreset),
    /// OpenCV's defaults: 5 levels, pyramid scale 0.5, window 13, 10 iterations, poly_n 5, sigma 1.1.
    Farneback,
}

impl Default for FlowMethod {
    /// DIS MEDIUM: the preset the fixtures' reference numbers were recorded with; measurement wants
    /// accuracy more than speed (the live monitor picks its own).
    fn default() -> Self {
        FlowMethod::Dis(DisPreset::Medium)
    }
}

impl FlowMethod {
    /// Estimator name as written in reports: `opencv-dis` or `opencv-farneback`.
    pub fn name(&self) -> &'static str {
        match self {
            FlowMethod::Dis(_) => "opencv-dis",
            FlowMethod::Farneback => "opencv-farneback",
        }
    }

    /// Preset as written in reports: `ultrafast`/`fast`/`medium`, or the Farneback parameters.
    pub fn preset(&self) -> &'static str {
        match self {
            FlowMethod::Dis(DisPreset::UltraFast) => "ultrafast",
            FlowMethod::Dis(DisPreset::Fast) => "fast",
            FlowMethod::Dis(DisPreset::Medium) => "medium",
            FlowMethod::Farneback => {
                "levels=5,pyr_scale=0.5,winsize=13,iterations=10,poly_n=5,poly_sigma=1.1"
            }
        }
    }
}

impl fmt::Display for FlowMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name(), self.preset())
    }
}

/// Smallest side accepted. OpenCV's DIS itself refuses frames under 12 pixels (StsBadSize), and up to
/// 16 one of its 8-12 pixel patches covers most of the frame; one clear limit for both estimators.
const MIN_SIDE: usize = 16;

enum Engine {
    Dis(opencv::core::Ptr<DISOpticalFlow>),
    Farneback(opencv::core::Ptr<FarnebackOpticalFlow>),
}

/// A reusable flow estimator (keeps OpenCV's buffers between calls). Frames are converted to 8-bit
/// grayscale (ITU-R BT.601 luma, as `cv::cvtColor(RGB2GRAY)`) because both estimators work on luma.
pub struct FlowEstimator {
    method: FlowMethod,
    engine: Engine,
}

impl FlowEstimator {
    pub fn new(method: FlowMethod) -> Result<Self> {
        let fail = |e: opencv::Error| TemporalError::FlowSetup {
            method: method.to_string(),
            message: e.to_string(),
        };
        let engine = match method {
            FlowMethod::Dis(preset) => {
                let preset = match preset {
                    DisPreset::UltraFast => DISOpticalFlow_PRESET_ULTRAFAST,
                    DisPreset::Fast => DISOpticalFlow_PRESET_FAST,
                    DisPreset::Medium => DISOpticalFlow_PRESET_MEDIUM,
                };
                Engine::Dis(DISOpticalFlow::create(preset).map_err(fail)?)
            }
            FlowMethod::Farneback => Engine::Farneback(
                FarnebackOpticalFlow::create(5, 0.5, false, 13, 10, 5, 1.1, 0).map_err(fail)?,
            ),
        };
        Ok(Self { method, engine })
    }

    pub fn method(&self) -> FlowMethod {
        self.method
    }

    /// `F_{from->to}`, `[H, W, 2]` in pixels: `from(p) ~ to(p + F(p))`, so `warp(to, F)` aligns `to` with
    /// `from`. Both frames must have the same size, each side at least 16 pixels.
    pub fn compute(&mut self, from: &Image, to: &Image) -> Result<Flow> {
        from.check("flow: first frame")?;
        to.check("flow: second frame")?;
        same_size("flow: second frame vs first frame", from.size(), to.size())?;
        let (width, height) = from.size();
        let fail =
            |message: String| TemporalError::Flow { method: self.method.to_string(), width, height, message };
        if width < MIN_SIDE || height < MIN_SIDE {
            return Err(fail(format!("each side must be at least {MIN_SIDE} pixels")));
        }
        let (gray_from, gray_to) = (luma8(from), luma8(to));
        let (rows, cols) = (height as i32, width as i32);
        let cv = |e: opencv::Error| fail(e.to_string());
        let mat_from = Mat::new_rows_cols_with_data::<u8>(rows, cols, &gray_from).map_err(cv)?;
        let mat_to = Mat::new_rows_cols_with_data::<u8>(rows, cols, &gray_to).map_err(cv)?;
        let mut out = Mat::default();
        match &mut self.engine {
            Engine::Dis(dis) => dis.calc(&mat_from, &mat_to, &mut out).map_err(cv)?,
            Engine::Farneback(fb) => fb.calc(&mat_from, &mat_to, &mut out).map_err(cv)?,
        }
        if out.rows() != rows || out.cols() != cols || !out.is_continuous() {
            return Err(fail(format!(
                "OpenCV returned a {}x{} flow (continuous: {})",
                out.cols(),
                out.rows(),
                out.is_continuous()
            )));
        }
        // [H, W] of Vec2f -> [H, W, 2] interleaved f32
        let vectors = out.data_typed::<Vec2f>().map_err(cv)?;
        let data = vectors.iter().flat_map(|v| [v[0], v[1]]).collect();
        Flow::new(width, height, data)
    }
}

/// `[H, W]` 8-bit luma from `[H, W, 3]` RGB in [0, 1].
fn luma8(image: &Image) -> Vec<u8> {
    image
        .data
        .chunks_exact(3)
        .map(|p| ((0.299 * p[0] + 0.587 * p[1] + 0.114 * p[2]).clamp(0.0, 1.0) * 255.0).round() as u8)
        .collect()
}
