//! Convolutions as the StyA2K networks use them.
use candle_core::{Module, Result, Tensor};
use candle_nn::{Conv2d, Conv2dConfig, VarBuilder};

/// 1x1 convolution `C_in -> C_out` with bias (a per-pixel affine map), keys `weight`, `bias`.
pub fn conv1x1(c_in: usize, c_out: usize, vb: VarBuilder) -> Result<Conv2d> {
    candle_nn::conv2d(c_in, c_out, 1, Conv2dConfig::default(), vb)
}

/// How a [`Conv3x3`] fills the one-pixel border it reads outside the frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Padding {
    /// `ReflectionPad2d(1)`, as the official StyA2K/AdaIN networks pad: borders stay free of dark frames.
    Reflect,
    /// Zeros, as torchvision's VGG pads (`Conv2d(padding=1)`).
    Zero,
}

/// A 3x3 convolution with bias that keeps the frame size, padding one pixel first:
/// `[B, C_in, H, W] -> [B, C_out, H, W]`.
#[derive(Debug, Clone)]
pub struct Conv3x3 {
    conv: Conv2d,
    padding: Padding,
}

impl Conv3x3 {
    /// Loads `weight` `[C_out, C_in, 3, 3]` and `bias` `[C_out]` from `vb`.
    pub fn new(c_in: usize, c_out: usize, padding: Padding, vb: VarBuilder) -> Result<Self> {
        let conv = candle_nn::conv2d(c_in, c_out, 3, Conv2dConfig::default(), vb)?;
        Ok(Self { conv, padding })
    }

    /// The convolution followed by ReLU: `[B, C_in, H, W] -> [B, C_out, H, W]`, every value >= 0.
    pub fn forward_relu(&self, x: &Tensor) -> Result<Tensor> {
        self.forward(x)?.relu()
    }
}

impl Module for Conv3x3 {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let padded = match self.padding {
            Padding::Reflect => super::reflect_pad(x, 1, 1, 1, 1)?,
            Padding::Zero => x.pad_with_zeros(2, 1, 1)?.pad_with_zeros(3, 1, 1)?,
        };
        let weight = self.conv.weight();
        if x.device().is_cpu() && (x.track_op() || weight.track_op()) {
            let out = unfolded_conv(&padded, weight)?;
            return match self.conv.bias() {
                Some(bias) => out.broadcast_add(&bias.reshape((1, (), 1, 1))?),
                None => Ok(out),
            };
        }
        self.conv.forward(&padded)
    }
}

/// An unpadded, stride-1 convolution without bias as im2col and one matrix product: `x` `[B, C_in, H, W]`,
/// `w` `[C_out, C_in, k_h, k_w]` -> `[B, C_out, H - k_h + 1, W - k_w + 1]`. The same values as
/// `Tensor::conv2d` (up to summation order), built from ops whose gradients are copies and matrix
/// products: candle computes a convolution's input gradient on the CPU with a direct-loop transposed
/// convolution, which made it a third of a training step. Used when a gradient will flow.
fn unfolded_conv(x: &Tensor, w: &Tensor) -> Result<Tensor> {
    let (b, c_in, h, wd) = x.dims4()?;
    let (c_out, _, k_h, k_w) = w.dims4()?;
    let (h_out, w_out) = (h + 1 - k_h, wd + 1 - k_w);
    let mut taps = Vec::with_capacity(k_h * k_w);
    for dy in 0..k_h {
        for dx in 0..k_w {
            taps.push(x.narrow(2, dy, h_out)?.narrow(3, dx, w_out)?);
        }
    }
    // [B, C_in, k_h * k_w, H', W'] -> [B, C_in * k_h * k_w, H' * W'], rows in the kernel's (c, dy, dx) order.
    let columns = Tensor::stack(&taps, 2)?.reshape((b, c_in * k_h * k_w, h_out * w_out))?;
    let kernel = w.reshape((1, c_out, c_in * k_h * k_w))?.broadcast_as((b, c_out, c_in * k_h * k_w))?;
    kernel.contiguous()?.matmul(&columns)?.reshape((b, c_out, h_out, w_out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device, Var};

    fn random(dims: &[usize], seed: u64) -> Tensor {
        let n: usize = dims.iter().product();
        let v = (0..n as u64).map(|i| crate::checkpoint::formula::uniform("t", seed, i) as f32).collect();
        Tensor::from_vec(v, dims, &Device::Cpu).unwrap()
    }

    fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
        (a - b).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar().unwrap()
    }

    #[test]
    fn unfolded_conv_matches_conv2d_and_its_gradients() {
        for (b, c_in, c_out, h, w, k) in [(2, 3, 5, 9, 7, 3), (1, 4, 2, 6, 6, 1), (1, 2, 3, 8, 11, 5)] {
            let x = Var::from_tensor(&random(&[b, c_in, h, w], 1)).unwrap();
            let kernel = Var::from_tensor(&random(&[c_out, c_in, k, k], 2)).unwrap();
            let probe = random(&[b, c_out, h + 1 - k, w + 1 - k], 3);
            let ours = unfolded_conv(&x, &kernel).unwrap();
            let theirs = x.conv2d(&kernel, 0, 1, 1, 1).unwrap();
            assert_eq!(ours.dims(), theirs.dims());
            assert!(max_abs_diff(&ours, &theirs) < 1e-5);
            let g_ours = (ours * &probe).unwrap().sum_all().unwrap().backward().unwrap();
            let g_theirs = (theirs * &probe).unwrap().sum_all().unwrap().backward().unwrap();
            for v in [x.as_tensor(), kernel.as_tensor()] {
                let (a, b) = (g_ours.get(v).unwrap(), g_theirs.get(v).unwrap());
                assert!(max_abs_diff(a, b) < 1e-4, "k {k}: gradient differs by {}", max_abs_diff(a, b));
            }
        }
    }

    #[test]
    fn reflect_conv_takes_the_same_values_with_and_without_gradients() {
        let vb = crate::checkpoint::formula::var_builder(5, &Device::Cpu);
        let conv = Conv3x3::new(4, 6, Padding::Reflect, vb.pp("vgg").pp("2")).unwrap();
        let x = random(&[1, 4, 7, 5], 9).to_dtype(DType::F32).unwrap();
        let plain = conv.forward(&x).unwrap();
        let tracked = conv.forward(Var::from_tensor(&x).unwrap().as_tensor()).unwrap();
        assert!(max_abs_diff(&plain, &tracked) < 1e-5);
    }
}
