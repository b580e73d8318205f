//! NeAT's objective (shared/docs/neat.md, "Training losses"): its terms, their weights, and the three
//! terms that compare encoder features only (L_s, L_c, L_identity). The adversarial, contrastive and
//! patch terms live with their networks (`discriminator`, `contrastive`, `patch`).
//!
//!     L = l1 L_s + l2 L_adv + l3 L_c + l4 L_identity + l5 L_s-contra + l6 L_c-contra
//!         + l7 L_patch_simple + l8 L_patch_complex
//!
//! The paper writes its distances as `||.||_2`; we compute them as the mean of squared differences, as
//! the AdaIN / SANet / PAMA code its losses come from does, so the weights keep their usual scale.
//! Taps are the encoder outputs relu1_1 .. relu4_1, `[B, C_i, h_i, w_i]`.
use candle_core::{Module, Result, Tensor};

use super::loss::global_stats_loss;
use crate::nn::Conv3x3;

/// The terms of the objective, by the names `--loss-off` takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Term {
    Style,
    Adv,
    Content,
    Identity,
    StyleContra,
    ContentContra,
    PatchSimple,
    PatchComplex,
}

impl Term {
    pub const ALL: [Term; 8] = [
        Term::Style,
        Term::Adv,
        Term::Content,
        Term::Identity,
        Term::StyleContra,
        Term::ContentContra,
        Term::PatchSimple,
        Term::PatchComplex,
    ];

    /// The loss CSV column.
    pub fn column(self) -> &'static str {
        match self {
            Term::Style => "style",
            Term::Adv => "adv",
            Term::Content => "content",
            Term::Identity => "identity",
            Term::StyleContra => "style_contra",
            Term::ContentContra => "content_contra",
            Term::PatchSimple => "patch_simple",
            Term::PatchComplex => "patch_complex",
        }
    }
}

/// The weights l1 .. l8. The paper fixes only the patch terms' (0.25 simple, 0.75 complex); the
/// others are ours: style 3, content 1 and identity 1 with the pixel/feature split 50/1 as SANet
/// trains (PAMA, whose blocks NeAT uses, descends from it); the adversarial and both contrastive terms
/// small (0.1, 0.3, 0.3) so they shape the result without outweighing the statistics it starts from.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Lambdas {
    pub style: f64,
    pub adv: f64,
    pub content: f64,
    pub identity: f64,
    pub style_contra: f64,
    pub content_contra: f64,
    pub patch_simple: f64,
    pub patch_complex: f64,
    /// lambda_id1: the pixel part of L_identity.
    pub identity_pixel: f64,
    /// lambda_id2: the feature part of L_identity.
    pub identity_feature: f64,
}

impl Default for Lambdas {
    fn default() -> Self {
        Lambdas {
            style: 3.0,
            adv: 0.1,
            content: 1.0,
            identity: 1.0,
            style_contra: 0.3,
            content_contra: 0.3,
            patch_simple: 0.25,
            patch_complex: 0.75,
            identity_pixel: 50.0,
            identity_feature: 1.0,
        }
    }
}

impl Lambdas {
    /// The weight of `term`.
    pub fn of(&self, term: Term) -> f64 {
        match term {
            Term::Style => self.style,
            Term::Adv => self.adv,
            Term::Content => self.content,
            Term::Identity => self.identity,
            Term::StyleContra => self.style_contra,
            Term::ContentContra => self.content_contra,
            Term::PatchSimple => self.patch_simple,
            Term::PatchComplex => self.patch_complex,
        }
    }
}

/// Mean of squared differences over all elements.
pub fn mse(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    (a - b)?.sqr()?.mean_all()
}

/// L_s: the mean/std loss over relu1_1 .. relu4_1 of the outputs `fo` against their styles `fs` (row
/// for row); the same statistics as StyA2K's global loss, so the same function.
pub fn style_loss(fo: &[Tensor], fs: &[Tensor]) -> Result<Tensor> {
    global_stats_loss(fo, fs)
}

/// L_c: the perceptual loss at conv4_2 (before its ReLU): `conv4_2` (the encoder's layer `32`, frozen)
/// applied to the relu4_1 of the outputs and of their contents, compared by MSE.
pub fn content_loss(conv4_2: &Conv3x3, fo4: &Tensor, fc4: &Tensor) -> Result<Tensor> {
    mse(&conv4_2.forward(fo4)?, &conv4_2.forward(fc4)?)
}

/// One identity pair: an image stylised with itself, its features, and the image's own.
pub struct IdentityPair<'a> {
    /// `I_cc` (or `I_ss`), `[B, 3, H, W]`.
    pub output: &'a Tensor,
    /// Its taps relu1_1 .. relu4_1.
    pub output_taps: &'a [Tensor],
    /// `I_c` (or `I_s`).
    pub image: &'a Tensor,
    pub image_taps: &'a [Tensor],
}

/// L_identity = `pixel * sum_pairs MSE(I_xx, I_x) + feature * sum_pairs sum_l MSE(phi_l(I_xx), phi_l(I_x))`
/// over the content pair and the style pair, l = relu1_1 .. relu4_1.
pub fn identity_loss(pairs: &[IdentityPair], pixel: f64, feature: f64) -> Result<Tensor> {
    let mut total = Tensor::zeros((), pairs[0].output.dtype(), pairs[0].output.device())?;
    for pair in pairs {
        total = (total + (mse(pair.output, pair.image)? * pixel)?)?;
        for (o, i) in pair.output_taps.iter().zip(pair.image_taps) {
            total = (total + (mse(o, i)? * feature)?)?;
        }
    }
    Ok(total)
}
