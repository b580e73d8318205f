//! The model behind the video stages: anything that maps a frame tensor to a frame tensor.
use candle_core::{DType, Device, Result, Tensor};

use crate::checkpoint::WeightSource;
use crate::models::neat::{Controls, Neat, NeatStyle};
use crate::models::stya2k::{StyA2K, StyleFeatures};

/// Which network stylises the frames (`--model` of `video`/`stream`, the element's `model`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelChoice {
    /// Frames pass through unchanged (pipeline checks and I/O benchmarks).
    Identity,
    /// StyA2K or NeAT, as the weights say.
    Network(WeightSource),
}

impl std::str::FromStr for ModelChoice {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "identity" => Ok(ModelChoice::Identity),
            other => other.parse().map(ModelChoice::Network),
        }
    }
}

/// A per-frame image-to-image model. Frames are `[1, 3, H, W]` RGB in [0, 1]; the output has the same
/// shape (values outside [0, 1] are clamped later).
pub trait Stylizer: Send {
    fn stylize(&mut self, frame: &Tensor) -> Result<Tensor>;
    /// Replaces the style (a `[1, 3, H_s, W_s]` image) between two frames.
    fn set_style(&mut self, style: &Tensor) -> Result<()>;
}

/// Passes frames through untouched: the I/O ceiling in benches, and a model for pipeline tests.
#[derive(Debug, Default)]
pub struct Identity;

impl Stylizer for Identity {
    fn stylize(&mut self, frame: &Tensor) -> Result<Tensor> {
        Ok(frame.clone())
    }

    fn set_style(&mut self, _: &Tensor) -> Result<()> {
        Ok(())
    }
}

/// StyA2K with the style encoded once and reused for every frame.
#[derive(Clone)]
pub struct StyA2kStylizer {
    model: StyA2K,
    style: StyleFeatures,
    alpha: f64,
}

impl StyA2kStylizer {
    pub fn new(model: StyA2K, style: &Tensor, alpha: f64) -> Result<Self> {
        let style = model.encode_style(style)?;
        Ok(Self { model, style, alpha })
    }
}

impl Stylizer for StyA2kStylizer {
    fn stylize(&mut self, frame: &Tensor) -> Result<Tensor> {
        self.model.stylize(frame, &self.style, self.alpha)
    }

    fn set_style(&mut self, style: &Tensor) -> Result<()> {
        self.style = self.model.encode_style(style)?;
        Ok(())
    }
}

/// NeAT with the style (colour statistics, PAMA keys and values) prepared once for every frame.
#[derive(Clone)]
pub struct NeatStylizer {
    model: Neat,
    style: NeatStyle,
    controls: Controls,
}

impl NeatStylizer {
    pub fn new(model: Neat, style: &Tensor, controls: Controls) -> Result<Self> {
        let style = model.encode_style(style)?;
        Ok(Self { model, style, controls })
    }
}

impl Stylizer for NeatStylizer {
    fn stylize(&mut self, frame: &Tensor) -> Result<Tensor> {
        self.model.stylize(frame, &self.style, self.controls)
    }

    fn set_style(&mut self, style: &Tensor) -> Result<()> {
        self.style = self.model.encode_style(style)?;
        Ok(())
    }
}

/// Runs a stylizer on `device` in `dtype` (`--device`, `--precision`): each frame is uploaded and cast
/// once before the model and the result comes back as f32 once after, so between the two the frame
/// stays on the device (NeAT's prior included, `crate::ops::prior`).
#[derive(Clone)]
pub struct OnDevice<S> {
    inner: S,
    device: Device,
    dtype: DType,
}

impl<S: Stylizer> OnDevice<S> {
    /// `make` builds the inner stylizer from the style image already on `device` in `dtype`.
    pub fn new(
        style: &Tensor,
        device: Device,
        dtype: DType,
        make: impl FnOnce(&Tensor) -> Result<S>,
    ) -> Result<Self> {
        let inner = make(&style.to_device(&device)?.to_dtype(dtype)?)?;
        Ok(Self { inner, device, dtype })
    }
}

impl<S: Stylizer> Stylizer for OnDevice<S> {
    fn stylize(&mut self, frame: &Tensor) -> Result<Tensor> {
        let out = self.inner.stylize(&frame.to_device(&self.device)?.to_dtype(self.dtype)?)?;
        out.to_dtype(DType::F32)?.to_device(&Device::Cpu)
    }

    fn set_style(&mut self, style: &Tensor) -> Result<()> {
        self.inner.set_style(&style.to_device(&self.device)?.to_dtype(self.dtype)?)
    }
}
