//! The StyA2K training objective (shared/docs/stya2k.md section 7): a global mean/std loss and the
//! non-parametric A2K feature loss, both on the frozen encoder's features of the output.
//!
//! Taps are the encoder outputs relu1_1 .. relu5_1 (`[B, C_i, h_i, w_i]`): `Fo` of the stylised output,
//! `Fc` of the content, `Fs` of the style.
use candle_core::{Result, Tensor};

use crate::nn::{mean_std, mean_variance_norm};
use crate::ops::blocked_attention::{
    aggregate_style_patches, block, distributed_attention, progressive_attention, HEADS,
};

/// Levels (0-based tap indices) of the global statistics loss: relu1_1 .. relu4_1.
const GLOBAL_LEVELS: std::ops::Range<usize> = 0..4;

/// The A2K feature loss levels relu2_1 .. relu5_1 (0-based tap index) and their attention regions R.
const A2K_LEVELS: [(usize, usize); 4] = [(1, 16), (2, 8), (3, 8), (4, 4)];

/// Mean of squared differences over all elements.
fn mse(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    (a - b)?.sqr()?.mean_all()
}

/// `L_global = sum_{relu1_1..relu4_1} MSE(mu(Fo), mu(Fs)) + MSE(sigma(Fo), sigma(Fs))` with the
/// unbiased, eps-in-the-root statistics of `nn::mean_std`; a scalar.
pub fn global_stats_loss(fo: &[Tensor], fs: &[Tensor]) -> Result<Tensor> {
    let mut total = Tensor::zeros((), fo[0].dtype(), fo[0].device())?;
    for i in GLOBAL_LEVELS {
        let ((mo, so), (ms, ss)) = (mean_std(&fo[i])?, mean_std(&fs[i])?);
        total = ((total + mse(&mo, &ms)?)? + mse(&so, &ss)?)?;
    }
    Ok(total)
}

/// The attention key of level `level` (0-based tap index): every shallower tap resized to this level's
/// size with PyTorch-style nearest sampling, each and this level's tap mean-variance normalised, then
/// concatenated along channels, shallowest first: `[B, 64 + 128 + ... + C_level, h, w]`.
fn multi_level_key(taps: &[Tensor], level: usize) -> Result<Tensor> {
    let (_, _, h, w) = taps[level].dims4()?;
    let parts = taps[..=level]
        .iter()
        .map(|t| mean_variance_norm(&t.upsample_nearest2d(h, w)?))
        .collect::<Result<Vec<_>>>()?;
    Tensor::cat(&parts, 1)
}

/// The A2K loss targets `T_i = DA_i + PA_i + Fc_i` for relu2_1 .. relu5_1: the A2K attention without
/// learned projections (queries the content key, keys the style key, values the raw `Fs_i`, sigmoid
/// weights with alpha 1 and beta 0), one sample at a time. Built from frozen encoder features only, so
/// they carry no gradient.
pub fn a2k_targets(fc: &[Tensor], fs: &[Tensor]) -> Result<Vec<Tensor>> {
    let one = Tensor::ones(1, fc[0].dtype(), fc[0].device())?;
    let zero = one.zeros_like()?;
    A2K_LEVELS
        .iter()
        .map(|&(level, region)| {
            let (ck, sk) = (multi_level_key(fc, level)?, multi_level_key(fs, level)?);
            let per_sample = (0..fc[level].dim(0)?)
                .map(|b| {
                    let (q, fs_b) = (ck.narrow(0, b, 1)?, fs[level].narrow(0, b, 1)?);
                    let k = block(&sk.narrow(0, b, 1)?, region, HEADS)?;
                    let v = block(&fs_b, region, HEADS)?;
                    let (k_bar, v_bar) = aggregate_style_patches(&k, &v, &one, &zero)?;
                    let da = distributed_attention(&q, &k_bar, &v_bar, region)?;
                    let pa = progressive_attention(&q, &k, &v, region)?;
                    (da + pa)? + fc[level].narrow(0, b, 1)?
                })
                .collect::<Result<Vec<_>>>()?;
            Tensor::cat(&per_sample, 0)?.detach().contiguous()
        })
        .collect()
}

/// `L_A2K = sum_{relu2_1..relu5_1} MSE(Fo_i, T_i)` (mean over all elements); a scalar.
pub fn a2k_feature_loss(fo: &[Tensor], targets: &[Tensor]) -> Result<Tensor> {
    let mut total = Tensor::zeros((), fo[0].dtype(), fo[0].device())?;
    for (&(level, _), target) in A2K_LEVELS.iter().zip(targets) {
        total = (total + mse(&fo[level], target)?)?;
    }
    Ok(total)
}

/// `L_range = mean(relu(-O)^2 + relu(O - 1)^2)` over the output's pixels `[B, 3, H, W]` (RGB, 1 =
/// full scale); a scalar, 0 while every value is displayable. Inference clamps to [0, 1], and with a
/// random encoder nothing else holds the decoder there: zero-mean random filters see an image and its
/// negative alike, so unpenalised training can drift to negative (all-black once clamped) outputs.
pub fn range_loss(output: &Tensor) -> Result<Tensor> {
    let below = output.neg()?.relu()?.sqr()?;
    let above = (output - 1.0)?.relu()?.sqr()?;
    (below + above)?.mean_all()
}

/// `L_colour = MSE(mu(O), mu(S)) + MSE(sigma(O), sigma(S))` of the RGB channels of the output and the
/// style (`[B, 3, H, W]`, statistics per sample and channel as in `global_stats_loss`); a scalar. The
/// pixel-space level of the global loss: a random encoder's colour mixing carries colour only weakly.
pub fn colour_loss(output: &Tensor, style: &Tensor) -> Result<Tensor> {
    let ((mo, so), (ms, ss)) = (mean_std(output)?, mean_std(style)?);
    mse(&mo, &ms)? + mse(&so, &ss)?
}

/// `L_identity = MSE(G(c, c), c)`: the content stylised with itself as the style must come back
/// unchanged (`[B, 3, H, W]` pixels; SANet's identity loss, pixel part). A direct reconstruction signal
/// that teaches the decoder to invert the encoder far sooner than the feature losses alone.
pub fn identity_loss(identity: &Tensor, content: &Tensor) -> Result<Tensor> {
    mse(identity, content)
}

/// The weights of the terms: the official two (train_A2K.sh: 10 and 1.25) and our three pixel terms
/// for random encoders (0 reproduces the official objective). Checkpoints written before the pixel
/// terms existed read them as 0.
#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct Weights {
    pub global: f64,
    pub a2k: f64,
    #[serde(default)]
    pub range: f64,
    #[serde(default)]
    pub colour: f64,
    #[serde(default)]
    pub identity: f64,
}

/// One evaluation of the objective.
pub struct Objective {
    /// `global * L_global + a2k * L_A2K + range * L_range + colour * L_colour + identity *
    /// L_identity`, the scalar to differentiate.
    pub total: Tensor,
    pub global: f32,
    pub a2k: f32,
    pub range: f32,
    pub colour: f32,
    /// 0 when its weight is 0 (the identity pass is skipped).
    pub identity: f32,
}

impl Objective {
    /// The weighted objective from the output `[B, 3, H, W]` and its taps `fo`, the style pixels
    /// `[B, 3, H, W]` and taps `fs`, the A2K targets, and `L_identity` when its weight is not 0.
    pub fn new(
        output: &Tensor,
        fo: &[Tensor],
        style: &Tensor,
        fs: &[Tensor],
        targets: &[Tensor],
        identity: Option<Tensor>,
        w: Weights,
    ) -> Result<Self> {
        let global = global_stats_loss(fo, fs)?;
        let a2k = a2k_feature_loss(fo, targets)?;
        let range = range_loss(output)?;
        let colour = colour_loss(output, style)?;
        let mut total = ((&global * w.global)? + (&a2k * w.a2k)?)?;
        total = ((total + (&range * w.range)?)? + (&colour * w.colour)?)?;
        let mut identity_value = 0.0;
        if let Some(identity) = identity {
            total = (total + (&identity * w.identity)?)?;
            identity_value = identity.to_scalar()?;
        }
        Ok(Self {
            total,
            global: global.to_scalar()?,
            a2k: a2k.to_scalar()?,
            range: range.to_scalar()?,
            colour: colour.to_scalar()?,
            identity: identity_value,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn range_loss_is_zero_inside_and_quadratic_outside() -> Result<()> {
        let dev = Device::Cpu;
        let inside = Tensor::new(&[0.0f32, 0.25, 1.0, 0.5], &dev)?.reshape((1, 1, 2, 2))?;
        assert_eq!(range_loss(&inside)?.to_scalar::<f32>()?, 0.0);
        // (0.5^2 + 0 + 0.25^2 + 0) / 4
        let outside = Tensor::new(&[-0.5f32, 0.5, 1.25, 1.0], &dev)?.reshape((1, 1, 2, 2))?;
        let want = (0.25 + 0.0625) / 4.0;
        assert!((range_loss(&outside)?.to_scalar::<f32>()? - want).abs() < 1e-7);
        Ok(())
    }

    #[test]
    fn colour_loss_compares_channel_statistics_not_layout() -> Result<()> {
        let dev = Device::Cpu;
        let a = Tensor::new(&[0.1f32, 0.9, 0.3, 0.7, 0.2, 0.4, 0.6, 0.8], &dev)?.reshape((1, 2, 2, 2))?;
        // The same values per channel, shuffled in space: identical statistics.
        let b = Tensor::new(&[0.7f32, 0.3, 0.9, 0.1, 0.8, 0.6, 0.4, 0.2], &dev)?.reshape((1, 2, 2, 2))?;
        assert!(colour_loss(&a, &b)?.to_scalar::<f32>()?.abs() < 1e-12);
        // Shifting one channel by 0.2 moves its mean only: (0.2^2 + 0) / 2 over the mean MSE.
        let shifted = Tensor::cat(&[(a.narrow(1, 0, 1)? + 0.2)?, a.narrow(1, 1, 1)?], 1)?;
        let got = colour_loss(&shifted, &a)?.to_scalar::<f32>()?;
        assert!((got - 0.02).abs() < 1e-6, "{got}");
        Ok(())
    }
}
