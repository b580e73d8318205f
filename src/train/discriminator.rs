//! NeAT's discriminators and the GAN loss they are trained with.
//!
//! Loss form: the non-saturating log loss (Goodfellow et al. 2014). With `D(x)` a logit,
//! the discriminator minimises `softplus(-D(real)) + softplus(D(fake))` (= `-log sigmoid(D(real)) -
//! log(1 - sigmoid(D(fake)))`), the generator minimises `softplus(-D(fake))` (= `-log sigmoid(D(fake))`),
//! each averaged over its logits. The discriminator sees the generator's output detached, and the two
//! steps alternate, each with its own Adam (`train::neat`).
//!
//! - [`DomainDiscriminator`] (L_adv): real artworks of the style set vs stylised outputs, one logit per
//!   16x16 cell of the image (a PatchGAN-style map, averaged by the loss).
//! - [`CooccurrenceDiscriminator`] (L_patch_simple / L_patch_complex): the patch co-occurrence
//!   discriminator of the Swapping Autoencoder (Park et al. 2020): does a target patch co-occur with a
//!   set of reference patches of the style image? Target and references go through one patch encoder;
//!   the target's code and the references' mean code are classified together. NeAT trains two, one for
//!   the low- and one for the high-frequency half of the patches (`train::patch`).
//!
//! Architecture (ours; the paper gives none): blocks of reflection-padded 3x3 conv, leaky ReLU 0.2 and a
//! 2x2 mean pool. A mean pool over the window axes instead of a strided conv or candle's pools: the
//! backward passes of those are the ones least exercised in candle 0.11 (its max_pool2d backward is
//! wrong), while these ops are covered by the gradient tests.
use candle_core::{Module, Result, Tensor};
use candle_nn::{Linear, VarBuilder};

use crate::nn::{conv1x1, Conv3x3, Padding};

/// Negative slope of the leaky ReLUs.
const LEAK: f64 = 0.2;

/// Channel widths of the domain discriminator's four blocks (input 3 channels).
const DOMAIN_WIDTHS: [usize; 4] = [32, 64, 128, 256];

/// Channel widths of the patch encoder's three blocks; its code has the last width.
const PATCH_WIDTHS: [usize; 3] = [32, 64, 128];

/// Width of the co-occurrence classifier's hidden layer.
const PATCH_HIDDEN: usize = 128;

/// `log(1 + exp(x))`, computed as `max(x, 0) + log(1 + exp(-|x|))` so no exponential overflows.
pub fn softplus(x: &Tensor) -> Result<Tensor> {
    x.relu()? + (x.abs()?.neg()?.exp()? + 1.0)?.log()?
}

/// The discriminator's loss: `mean softplus(-real) + mean softplus(fake)`, logits of any shape.
pub fn discriminator_loss(real: &Tensor, fake: &Tensor) -> Result<Tensor> {
    softplus(&real.neg()?)?.mean_all()? + softplus(fake)?.mean_all()?
}

/// The generator's (non-saturating) loss: `mean softplus(-fake)`.
pub fn generator_loss(fake: &Tensor) -> Result<Tensor> {
    softplus(&fake.neg()?)?.mean_all()
}

fn leaky_relu(x: &Tensor) -> Result<Tensor> {
    x.relu()? - (x.neg()?.relu()? * LEAK)?
}

/// `[B, C, H, W] -> [B, C, H/2, W/2]`, the mean of each 2x2 window (H, W even).
fn mean_pool2(x: &Tensor) -> Result<Tensor> {
    let (b, c, h, w) = x.dims4()?;
    // [B, C, H, W] -> [B, C, H/2, 2, W/2, 2] -> mean over the 2s
    x.reshape((b, c, h / 2, 2, w / 2, 2))?.mean(5)?.mean(3)
}

/// Reflection-padded 3x3 conv, leaky ReLU, 2x2 mean pool: `[B, C_in, H, W] -> [B, C_out, H/2, W/2]`.
#[derive(Debug, Clone)]
struct DownBlock {
    conv: Conv3x3,
}

impl DownBlock {
    fn new(c_in: usize, c_out: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self { conv: Conv3x3::new(c_in, c_out, Padding::Reflect, vb)? })
    }
}

impl Module for DownBlock {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        mean_pool2(&leaky_relu(&self.conv.forward(x)?)?)
    }
}

/// A stack of down blocks from RGB, keys `block{i}.weight/bias`.
fn down_stack(widths: &[usize], vb: &VarBuilder) -> Result<Vec<DownBlock>> {
    let mut c_in = 3;
    widths
        .iter()
        .enumerate()
        .map(|(i, &c_out)| {
            let block = DownBlock::new(c_in, c_out, vb.pp(format!("block{i}")));
            c_in = c_out;
            block
        })
        .collect()
}

fn run_stack(blocks: &[DownBlock], x: &Tensor) -> Result<Tensor> {
    blocks.iter().try_fold(x.clone(), |x, block| block.forward(&x))
}

/// The domain-level discriminator of L_adv: `[B, 3, H, W]` (H, W multiples of 16) -> logits
/// `[B, 1, H/16, W/16]`.
#[derive(Debug, Clone)]
pub struct DomainDiscriminator {
    blocks: Vec<DownBlock>,
    logit: candle_nn::Conv2d,
}

impl DomainDiscriminator {
    pub fn new(vb: VarBuilder) -> Result<Self> {
        let widths = DOMAIN_WIDTHS;
        Ok(Self { blocks: down_stack(&widths, &vb)?, logit: conv1x1(widths[3], 1, vb.pp("logit"))? })
    }
}

impl Module for DomainDiscriminator {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.logit.forward(&run_stack(&self.blocks, x)?)
    }
}

/// The patch co-occurrence discriminator: `targets` `[n, 3, p, p]` judged with `references`
/// `[m, 3, p, p]` (p a multiple of 8) -> logits `[n]`.
#[derive(Debug, Clone)]
pub struct CooccurrenceDiscriminator {
    encoder: Vec<DownBlock>,
    hidden: Linear,
    logit: Linear,
}

impl CooccurrenceDiscriminator {
    pub fn new(vb: VarBuilder) -> Result<Self> {
        let code = PATCH_WIDTHS[PATCH_WIDTHS.len() - 1];
        Ok(Self {
            encoder: down_stack(&PATCH_WIDTHS, &vb.pp("encoder"))?,
            hidden: candle_nn::linear(2 * code, PATCH_HIDDEN, vb.pp("hidden"))?,
            logit: candle_nn::linear(PATCH_HIDDEN, 1, vb.pp("logit"))?,
        })
    }

    /// `[n, 3, p, p]` -> `[n, code]`: the encoder's map averaged over positions.
    fn encode(&self, patches: &Tensor) -> Result<Tensor> {
        run_stack(&self.encoder, patches)?.flatten_from(2)?.mean(2)
    }

    pub fn forward(&self, targets: &Tensor, references: &Tensor) -> Result<Tensor> {
        let n = targets.dim(0)?;
        let code = self.encode(targets)?;
        // [m, code] -> [1, code] -> [n, code]: one summary of the references for every target
        let reference = self.encode(references)?.mean_keepdim(0)?.broadcast_as(code.shape())?;
        let joint = Tensor::cat(&[&code, &reference], 1)?;
        let hidden = leaky_relu(&self.hidden.forward(&joint)?)?;
        self.logit.forward(&hidden)?.reshape(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    /// The loss forms against their definitions (`-log sigmoid`, `-log(1 - sigmoid)`) on picked logits,
    /// and no overflow at a large logit.
    #[test]
    fn gan_losses_are_the_non_saturating_log_loss() -> Result<()> {
        let dev = Device::Cpu;
        let (real, fake) = ([2.0f64, -1.0, 0.0], [-3.0f64, 1.5]);
        let sigmoid = |x: f64| 1.0 / (1.0 + (-x).exp());
        let mean = |v: Vec<f64>| v.iter().sum::<f64>() / v.len() as f64;
        let want_d = mean(real.iter().map(|&x| -sigmoid(x).ln()).collect())
            + mean(fake.iter().map(|&x| -(1.0 - sigmoid(x)).ln()).collect());
        let want_g = mean(fake.iter().map(|&x| -sigmoid(x).ln()).collect());
        let (real_t, fake_t) = (Tensor::new(&real, &dev)?, Tensor::new(&fake, &dev)?);
        let got_d = discriminator_loss(&real_t, &fake_t)?.to_scalar::<f64>()?;
        let got_g = generator_loss(&fake_t)?.to_scalar::<f64>()?;
        assert!((got_d - want_d).abs() < 1e-12, "{got_d} vs {want_d}");
        assert!((got_g - want_g).abs() < 1e-12, "{got_g} vs {want_g}");
        let big = softplus(&Tensor::new(&[500f32, -500.], &dev)?)?.to_vec1::<f32>()?;
        assert_eq!(big, [500.0, 0.0]);
        Ok(())
    }
}
