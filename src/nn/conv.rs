//! Convolutions as the StyA2K networks use them.
use candle_core::{Module, Result, Tensor};
use candle_nn::{Conv2d, Conv2dConfig, VarBuilder};

/// 1x1 convolution `C_in -> C_out` with bias (a per-pixel affine map), keys `weight`, `bias`.
pub fn conv1x1(c_in: usize, c_out: usize, vb: VarBuilder) -> Result<Conv2d> {
    candle_nn::conv2d(c_in, c_out, 1, Conv2dConfig::default(), vb)
}

/// `ReflectionPad2d(1)` followed by an unpadded 3x3 convolution with bias: `[B, C_in, H, W] ->
/// [B, C_out, H, W]`. Reflection rather than zero padding keeps borders free of dark frames.
#[derive(Debug, Clone)]
pub struct ReflectConv3x3 {
    conv: Conv2d,
}

impl ReflectConv3x3 {
    /// Loads `weight` `[C_out, C_in, 3, 3]` and `bias` `[C_out]` from `vb`.
    pub fn new(c_in: usize, c_out: usize, vb: VarBuilder) -> Result<Self> {
        let conv = candle_nn::conv2d(c_in, c_out, 3, Conv2dConfig::default(), vb)?;
        Ok(Self { conv })
    }
}

impl Module for ReflectConv3x3 {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.conv.forward(&super::reflect_pad(x, 1, 1, 1, 1)?)
    }
}
