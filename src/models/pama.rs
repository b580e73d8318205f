//! One PAMA block ("Consistent Style Transfer", Luo et al. 2022), as NeAT chains four of them at relu4_1.
//!
//! Structure and key names follow the public PAMA code (`conv_in`, `attn.{f,g,h,out_conv}`, `conv_out`,
//! `fuse.{proj1,proj2,proj3,fuse1x,fuse3x,fuse5x}`), as `shared/docs/neat.md` restates it:
//!
//!     Fc' = relu6(conv_in(pad(Fc)))      Fs' = relu6(conv_in(pad(Fs)))      (one conv_in for both)
//!     A   = softmax_j(f(mvn Fc')^T g(mvn Fs')) h(Fs')                        (all-to-all, no scaling)
//!     Fcs = relu6(conv_out(pad(relu6(out_conv(A)))))
//!     out = clamp(gate, 0, 1) proj2(Fc') + clamp(1 - gate, 0, 1) proj3(Fcs)
//!
//! with f, g, h 1x1 convs `C -> C/2` followed by ReLU6, `gate` the mean of three sigmoid gates (1x1,
//! 3x3 and 5x5 convs `C -> 1`, reflection padded) on `proj1(cat(Fc', Fcs))`. The attention streams over
//! the style positions (`ops::streaming_attention`), so no score matrix is ever whole. Everything on the
//! style side is computed once per style by [`Pama::style`].
use candle_core::{Module, Result, Tensor};
use candle_nn::{Conv2d, Conv2dConfig, VarBuilder};

use crate::nn::{conv1x1, mean_variance_norm, reflect_pad, Conv3x3, Padding};
use crate::ops::streaming_attention::streaming_attention;

fn relu6(x: &Tensor) -> Result<Tensor> {
    x.clamp(0f32, 6f32)
}

/// The attention unit: queries from the normalised content, keys from the normalised style, values
/// from the raw style, all at `C/2` channels; `out_conv` brings the result back to `C`.
#[derive(Debug, Clone)]
pub struct AttentionUnit {
    f: Conv2d,
    g: Conv2d,
    h: Conv2d,
    out_conv: Conv2d,
}

/// The style side of one block, from `Fs` `[1, C, H_s, W_s]`: `n_s = H_s * W_s` positions, pixel-major.
#[derive(Debug, Clone)]
pub struct PamaStyle {
    /// `relu6(g(mvn Fs'))`, `[n_s, C/2]`.
    keys: Tensor,
    /// `relu6(h(Fs'))`, `[n_s, C/2]`.
    values: Tensor,
}

impl AttentionUnit {
    fn new(channels: usize, vb: VarBuilder) -> Result<Self> {
        let half = channels / 2;
        Ok(Self {
            f: conv1x1(channels, half, vb.pp("f"))?,
            g: conv1x1(channels, half, vb.pp("g"))?,
            h: conv1x1(channels, half, vb.pp("h"))?,
            out_conv: conv1x1(half, channels, vb.pp("out_conv"))?,
        })
    }

    fn style(&self, fs: &Tensor) -> Result<PamaStyle> {
        // [1, C/2, H_s, W_s] -> [C/2, n_s] -> [n_s, C/2]
        let pixel_major = |x: Tensor| -> Result<Tensor> { x.flatten_from(2)?.squeeze(0)?.t()?.contiguous() };
        Ok(PamaStyle {
            keys: pixel_major(relu6(&self.g.forward(&mean_variance_norm(fs)?)?)?)?,
            values: pixel_major(relu6(&self.h.forward(fs)?)?)?,
        })
    }

    /// `[1, C, H, W]` content features -> `[1, C, H, W]`.
    fn forward(&self, fc: &Tensor, style: &PamaStyle) -> Result<Tensor> {
        let queries = relu6(&self.f.forward(&mean_variance_norm(fc)?)?)?;
        let attended = if [&queries, &style.keys, &style.values].iter().any(|t| t.track_op()) {
            dense_attention(&queries, &style.keys, &style.values)?
        } else {
            streaming_attention(&queries, &style.keys, &style.values)?
        };
        relu6(&self.out_conv.forward(&attended)?)
    }
}

/// The attention of [`streaming_attention`] built from differentiable candle ops, for training: the
/// streaming op defines no backward pass. It holds the whole `n_q x n_k` score matrix, which at
/// training crops is small (a 256 crop: 1,024 x 1,024 at relu4_1). Taken whenever an input is part of
/// a gradient graph; inference never is, so it always streams. `q` `[1, d, H, W]`, `k` `[n_k, d]`,
/// `v` `[n_k, d_v]` -> `[1, d_v, H, W]`; any float type.
pub fn dense_attention(q: &Tensor, k: &Tensor, v: &Tensor) -> Result<Tensor> {
    let (_, d, h, w) = q.dims4()?;
    // [1, d, H, W] -> [d, H*W] -> [n_q, d]
    let q = q.reshape((d, h * w))?.t()?;
    // [n_q, d] x [d, n_k] -> [n_q, n_k], softmax over the keys
    let weights = candle_nn::ops::softmax(&q.matmul(&k.t()?)?, candle_core::D::Minus1)?;
    // [n_q, n_k] x [n_k, d_v] -> [n_q, d_v] -> [d_v, n_q] -> [1, d_v, H, W]
    let d_v = v.dim(1)?;
    weights.matmul(v)?.t()?.reshape((1, d_v, h, w))
}

/// The fuse unit: a per-pixel gate between the (projected) content and attended features.
#[derive(Debug, Clone)]
pub struct FuseUnit {
    proj1: Conv2d,
    proj2: Conv2d,
    proj3: Conv2d,
    fuse1x: Conv2d,
    fuse3x: Conv3x3,
    fuse5x: Conv2d,
}

impl FuseUnit {
    fn new(channels: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            proj1: conv1x1(2 * channels, channels, vb.pp("proj1"))?,
            proj2: conv1x1(channels, channels, vb.pp("proj2"))?,
            proj3: conv1x1(channels, channels, vb.pp("proj3"))?,
            fuse1x: conv1x1(channels, 1, vb.pp("fuse1x"))?,
            fuse3x: Conv3x3::new(channels, 1, Padding::Reflect, vb.pp("fuse3x"))?,
            fuse5x: candle_nn::conv2d(channels, 1, 5, Conv2dConfig::default(), vb.pp("fuse5x"))?,
        })
    }

    /// `fc`, `fcs`: `[1, C, H, W]` each -> `[1, C, H, W]`.
    fn forward(&self, fc: &Tensor, fcs: &Tensor) -> Result<Tensor> {
        // [1, 2C, H, W] -> [1, C, H, W]
        let cat = self.proj1.forward(&Tensor::cat(&[fc, fcs], 1)?)?;
        let sigmoid = candle_nn::ops::sigmoid;
        let gate1 = sigmoid(&self.fuse1x.forward(&cat)?)?;
        let gate3 = sigmoid(&self.fuse3x.forward(&cat)?)?;
        let gate5 = sigmoid(&self.fuse5x.forward(&reflect_pad(&cat, 2, 2, 2, 2)?)?)?;
        // [1, 1, H, W], broadcast over channels.
        let gate = (((gate1 + gate3)? + gate5)? / 3.0)?;
        let keep = gate.clamp(0f32, 1f32)?;
        let take = gate.affine(-1.0, 1.0)?.clamp(0f32, 1f32)?;
        keep.broadcast_mul(&self.proj2.forward(fc)?)? + take.broadcast_mul(&self.proj3.forward(fcs)?)?
    }
}

/// One block for `C` channels.
#[derive(Debug, Clone)]
pub struct Pama {
    conv_in: Conv3x3,
    attn: AttentionUnit,
    conv_out: Conv3x3,
    fuse: FuseUnit,
}

impl Pama {
    /// Loads `conv_in`, `attn`, `conv_out` and `fuse` from `vb`; `channels` must be even.
    pub fn new(channels: usize, vb: VarBuilder) -> Result<Self> {
        if channels % 2 != 0 {
            candle_core::bail!("a PAMA block needs an even channel count (f, g, h halve it), got {channels}");
        }
        Ok(Self {
            conv_in: Conv3x3::new(channels, channels, Padding::Reflect, vb.pp("conv_in"))?,
            attn: AttentionUnit::new(channels, vb.pp("attn"))?,
            conv_out: Conv3x3::new(channels, channels, Padding::Reflect, vb.pp("conv_out"))?,
            fuse: FuseUnit::new(channels, vb.pp("fuse"))?,
        })
    }

    /// The style side from the style features `Fs` `[1, C, H_s, W_s]`.
    pub fn style(&self, fs: &Tensor) -> Result<PamaStyle> {
        self.attn.style(&relu6(&self.conv_in.forward(fs)?)?)
    }

    /// Aligns content features `Fc` `[1, C, H, W]` to the style -> `[1, C, H, W]`.
    pub fn forward(&self, fc: &Tensor, style: &PamaStyle) -> Result<Tensor> {
        let fc = relu6(&self.conv_in.forward(fc)?)?;
        let fcs = self.attn.forward(&fc, style)?;
        let fcs = relu6(&self.conv_out.forward(&fcs)?)?;
        self.fuse.forward(&fc, &fcs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    /// The training path computes the same attention as the streaming op.
    #[test]
    fn dense_attention_equals_the_streaming_op() -> Result<()> {
        let dev = Device::Cpu;
        let q = (Tensor::randn(0f32, 1., (1, 6, 5, 7), &dev)? * 0.7)?;
        let k = (Tensor::randn(0f32, 1., (300, 6), &dev)? * 0.7)?;
        let v = Tensor::randn(0f32, 1., (300, 4), &dev)?;
        let dense = dense_attention(&q, &k, &v)?;
        let streamed = streaming_attention(&q, &k, &v)?;
        let diff = (dense - streamed)?.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()?;
        assert!(diff < 1e-5, "max difference {diff}");
        Ok(())
    }
}
