//! Convolutions as the StyA2K networks use them.
use std::sync::OnceLock;

use candle_core::{DType, Module, Result, Tensor};
use candle_nn::{Conv2d, Conv2dConfig, VarBuilder};

pub use crate::ops::conv3x3::Padding;
use crate::ops::conv3x3::{conv3x3, conv3x3_winograd, winograd_filters};

/// Below this many input or output channels the Winograd transforms (memory-bound passes over 36/16 of
/// the frame) cost about what the products save, so the direct convolution runs: benches/cpu_conv.rs
/// measured the two within noise of each other at 64 channels and Winograd 1.5-3x faster from 128-256
/// channels up (benches/RESULTS.md).
const WINOGRAD_MIN_CHANNELS: usize = 128;

/// 1x1 convolution `C_in -> C_out` with bias (a per-pixel affine map), keys `weight`, `bias`.
pub fn conv1x1(c_in: usize, c_out: usize, vb: VarBuilder) -> Result<Conv2d> {
    candle_nn::conv2d(c_in, c_out, 1, Conv2dConfig::default(), vb)
}

/// A 3x3 convolution with bias that keeps the frame size, padding one pixel first:
/// `[B, C_in, H, W] -> [B, C_out, H, W]`.
#[derive(Debug, Clone)]
pub struct Conv3x3 {
    conv: Conv2d,
    padding: Padding,
    /// The filters in Winograd's domain, made on the first inference call that uses them.
    winograd: OnceLock<Tensor>,
}

impl Conv3x3 {
    /// Loads `weight` `[C_out, C_in, 3, 3]` and `bias` `[C_out]` from `vb`.
    pub fn new(c_in: usize, c_out: usize, padding: Padding, vb: VarBuilder) -> Result<Self> {
        let conv = candle_nn::conv2d(c_in, c_out, 3, Conv2dConfig::default(), vb)?;
        Ok(Self { conv, padding, winograd: OnceLock::new() })
    }

    /// The convolution followed by ReLU: `[B, C_in, H, W] -> [B, C_out, H, W]`, every value >= 0.
    pub fn forward_relu(&self, x: &Tensor) -> Result<Tensor> {
        self.run(x, true)
    }

    /// f32 on the CPU runs our op (padding, bias and ReLU fused): Winograd's F(4x4, 3x3) when no
    /// gradient flows and both sides have the channels for it, else the direct convolution (with
    /// gradients). Other devices and dtypes pad, then run candle's convolution.
    fn run(&self, x: &Tensor, relu: bool) -> Result<Tensor> {
        let (weight, bias) = (self.conv.weight(), self.conv.bias());
        if let Some(bias) = bias.filter(|_| x.device().is_cpu() && x.dtype() == DType::F32) {
            let (c_out, c_in, _, _) = weight.dims4()?;
            if x.track_op() || weight.track_op() || c_in.min(c_out) < WINOGRAD_MIN_CHANNELS {
                return conv3x3(x, weight, bias, self.padding, relu);
            }
            let filters = match self.winograd.get() {
                Some(filters) => filters,
                None => {
                    let _ = self.winograd.set(winograd_filters(weight)?);
                    self.winograd.get().expect("set just above")
                }
            };
            return conv3x3_winograd(x, filters, bias, self.padding, relu);
        }
        let padded = match self.padding {
            Padding::Reflect => super::reflect_pad(x, 1, 1, 1, 1)?,
            Padding::Zero => x.pad_with_zeros(2, 1, 1)?.pad_with_zeros(3, 1, 1)?,
        };
        let y = self.conv.forward(&padded)?;
        if relu {
            y.relu()
        } else {
            Ok(y)
        }
    }
}

impl Module for Conv3x3 {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.run(x, false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn the_op_and_candles_convolution_agree_with_and_without_relu() {
        let vb = crate::checkpoint::formula::var_builder(5, &Device::Cpu);
        let v = (0..4 * 7 * 5).map(|i| crate::checkpoint::formula::uniform("t", 9, i) as f32).collect();
        let x = Tensor::from_vec(v, (1, 4, 7, 5), &Device::Cpu).unwrap();
        for padding in [Padding::Reflect, Padding::Zero] {
            let conv = Conv3x3::new(4, 6, padding, vb.pp("vgg").pp("2")).unwrap();
            let conv64 =
                Conv3x3::new(4, 6, padding, vb.clone().set_dtype(DType::F64).pp("vgg").pp("2")).unwrap();
            for relu in [false, true] {
                let ours = conv.run(&x, relu).unwrap();
                let candle = conv64.run(&x.to_dtype(DType::F64).unwrap(), relu).unwrap();
                let diff = (ours - candle.to_dtype(DType::F32).unwrap()).unwrap().abs().unwrap();
                let max: f32 = diff.flatten_all().unwrap().max(0).unwrap().to_scalar().unwrap();
                assert!(max < 1e-5, "{padding:?} relu {relu}: {max}");
            }
        }
    }
}
