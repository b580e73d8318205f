//! `stylestream eval-quality`: style-transfer quality on folders of content and style images (every
//! content with every style), as a mean per model and per style.
//!
//! Per pair, with `O` the output, `C` the content and `S` the style (all 8-bit RGB as written to disk):
//! - colour: the Chamfer colour distance `D(O, S)` ([`chamfer`]) beside the baseline `D(C, S)` of the
//!   unmodified content; their ratio below 1 means the output moved its colours toward the style;
//! - structure: `SSIM(O, C)` on luma ([`ssim`]);
//! - style statistics: `sum_l |mu_l(O) - mu_l(S)|_2 + |sigma_l(O) - sigma_l(S)|_2` over relu1_1 ..
//!   relu4_1 of a random-weight VGG-19 (`random:SEED`, He et al. 2016), beside the same for `C`. Pick a
//!   seed the model was not trained with, or the number is the model's own training loss;
//! - the standard style distance: the same sum over relu1_1 .. relu4_1 of the ImageNet VGG-16
//!   (`checkpoint::vgg16`, the features style losses are defined on), beside the same for `C`.
pub mod chamfer;
mod sheet;
pub mod ssim;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use image::RgbImage;

use crate::checkpoint::{vgg16, Encoder};
use crate::image_io;
use crate::models::neat::Controls;
use crate::models::vgg::{Architecture, Vgg};
use crate::models::Network;
use crate::nn::mean_std;
pub use sheet::contact_sheet;

/// The scores of one (content, style) pair.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PairScore {
    pub content: PathBuf,
    pub style: PathBuf,
    /// `D(O, S)`, RGB 0..255 squared distance, per-pixel means.
    pub chamfer_output: f64,
    /// `D(C, S)`: the baseline of doing nothing.
    pub chamfer_content: f64,
    /// `SSIM(O, C)` on luma.
    pub ssim: f64,
    /// Random-encoder mean/std distance of the output to the style.
    pub stats_output: f64,
    /// The same for the unmodified content.
    pub stats_content: f64,
    /// ImageNet VGG-16 mean/std distance of the output to the style.
    pub vgg16_output: f64,
    /// The same for the unmodified content.
    pub vgg16_content: f64,
}

/// Means over all pairs of one model (or of one model and one style).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Summary {
    pub model: String,
    pub pairs: usize,
    pub chamfer_output: f64,
    pub chamfer_content: f64,
    /// `chamfer_output / chamfer_content` of the means.
    pub chamfer_ratio: f64,
    pub ssim: f64,
    pub stats_output: f64,
    pub stats_content: f64,
    pub vgg16_output: f64,
    pub vgg16_content: f64,
}

impl Summary {
    pub fn new(model: String, scores: &[PairScore]) -> Self {
        let mean = |f: fn(&PairScore) -> f64| scores.iter().map(f).sum::<f64>() / scores.len() as f64;
        let (out, content) = (mean(|s| s.chamfer_output), mean(|s| s.chamfer_content));
        Self {
            model,
            pairs: scores.len(),
            chamfer_output: out,
            chamfer_content: content,
            chamfer_ratio: out / content,
            ssim: mean(|s| s.ssim),
            stats_output: mean(|s| s.stats_output),
            stats_content: mean(|s| s.stats_content),
            vgg16_output: mean(|s| s.vgg16_output),
            vgg16_content: mean(|s| s.vgg16_content),
        }
    }

    /// One summary per style (in order of first appearance), each over that style's pairs.
    pub fn by_style(model: &str, scores: &[PairScore]) -> Vec<(PathBuf, Self)> {
        let mut styles: Vec<&PathBuf> = Vec::new();
        for score in scores {
            if !styles.contains(&&score.style) {
                styles.push(&score.style);
            }
        }
        styles
            .into_iter()
            .map(|style| {
                let of_style: Vec<PairScore> = scores.iter().filter(|s| &s.style == style).cloned().collect();
                (style.clone(), Self::new(model.to_string(), &of_style))
            })
            .collect()
    }
}

/// Style statistics of a fixed encoder (to relu4_1).
pub struct StyleStats {
    vgg: Vgg,
}

impl StyleStats {
    /// The random-weight VGG-19 `random:SEED`.
    pub fn new(seed: u64, device: &Device) -> Result<Self> {
        let (_, tensors) = Encoder::Random(seed).load()?;
        let vb = VarBuilder::from_tensors(tensors, DType::F32, device);
        Ok(Self { vgg: Vgg::new_to(4, vb.pp("vgg"))? })
    }

    /// The ImageNet VGG-16. Its floor pools ignore up to 7 bottom rows / right columns at relu4_1,
    /// which moves image-wide statistics negligibly.
    pub fn vgg16(device: &Device) -> Result<Self> {
        let vb = VarBuilder::from_tensors(vgg16::tensors()?, DType::F32, device);
        Ok(Self { vgg: Vgg::build(Architecture::Torchvision16, 4, vb.pp("vgg"))? })
    }

    /// Per level relu1_1 .. relu4_1: the `[C]` channel means and stds of `img` (`[1, 3, H, W]`).
    fn stats(&self, img: &Tensor) -> Result<Vec<(Tensor, Tensor)>> {
        let taps = self.vgg.forward_to(img, 4)?;
        Ok(taps
            .iter()
            .map(|t| mean_std(t).and_then(|(m, s)| Ok((m.flatten_all()?, s.flatten_all()?))))
            .collect::<candle_core::Result<_>>()?)
    }

    /// `sum_l |mu_l(a) - mu_l(b)|_2 + |sigma_l(a) - sigma_l(b)|_2`.
    pub fn distance(&self, a: &Tensor, b: &Tensor) -> Result<f64> {
        let norm = |x: &Tensor, y: &Tensor| -> Result<f64> {
            Ok((x - y)?.sqr()?.sum_all()?.sqrt()?.to_scalar::<f32>()? as f64)
        };
        let mut total = 0.0;
        for ((ma, sa), (mb, sb)) in self.stats(a)?.iter().zip(self.stats(b)?.iter()) {
            total += norm(ma, mb)? + norm(sa, sb)?;
        }
        Ok(total)
    }
}

/// Everything [`evaluate`] needs besides the model.
pub struct Setup<'a> {
    pub contents: &'a [PathBuf],
    pub styles: &'a [PathBuf],
    /// Longer side of the content (and the style) as the model sees it.
    pub max_side: u32,
    pub controls: Controls,
    /// The random encoder's statistics.
    pub stats: &'a StyleStats,
    /// VGG-16's.
    pub vgg16: &'a StyleStats,
    pub device: &'a Device,
}

/// One evaluated pair: its scores and the three images for the contact sheet.
pub struct Evaluated {
    pub score: PairScore,
    pub images: [RgbImage; 3],
}

/// Runs `network` on every content x style pair and scores it; `progress` is called after each pair.
pub fn evaluate(network: &Network, setup: &Setup, mut progress: impl FnMut()) -> Result<Vec<Evaluated>> {
    let read = |p: &Path| image_io::read_picture(p, Some(setup.max_side), setup.device).map(|pic| pic.rgb);
    let mut out = Vec::with_capacity(setup.contents.len() * setup.styles.len());
    for content_path in setup.contents {
        let content = read(content_path)?;
        let content8 = image_io::to_rgb8(&content)?;
        for style_path in setup.styles {
            let style = read(style_path)?;
            let style8 = image_io::to_rgb8(&style)?;
            let output =
                network.stylize_image(&content, &style, setup.controls, DType::F32).with_context(|| {
                    format!("{}: stylising with {}", content_path.display(), style_path.display())
                })?;
            let output8 = image_io::to_rgb8(&output)?;
            // Scores are taken on the 8-bit images a user would see, re-read as tensors for the encoder.
            let as_seen =
                image_io::to_tensor(&image::DynamicImage::ImageRgb8(output8.clone()), setup.device)?;
            let colours = |img: &RgbImage| chamfer::sample_colours(img.as_raw(), chamfer::MAX_POINTS);
            let style_colours = colours(&style8);
            let (h, w) = (content8.height() as usize, content8.width() as usize);
            let ssim = ssim::ssim(&ssim::luma(output8.as_raw()), &ssim::luma(content8.as_raw()), h, w)
                .with_context(|| format!("{}: smaller than the 11x11 SSIM window", content_path.display()))?;
            let score = PairScore {
                content: content_path.clone(),
                style: style_path.clone(),
                chamfer_output: chamfer::chamfer(&colours(&output8), &style_colours),
                chamfer_content: chamfer::chamfer(&colours(&content8), &style_colours),
                ssim,
                stats_output: setup.stats.distance(&as_seen, &style)?,
                stats_content: setup.stats.distance(&content, &style)?,
                vgg16_output: setup.vgg16.distance(&as_seen, &style)?,
                vgg16_content: setup.vgg16.distance(&content, &style)?,
            };
            out.push(Evaluated { score, images: [content8.clone(), style8, output8] });
            progress();
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn score(style: &str, chamfer_output: f64, vgg16_output: f64) -> PairScore {
        PairScore {
            content: PathBuf::from("c.png"),
            style: PathBuf::from(style),
            chamfer_output,
            chamfer_content: 10.0,
            ssim: 0.5,
            stats_output: 1.0,
            stats_content: 2.0,
            vgg16_output,
            vgg16_content: 4.0,
        }
    }

    #[test]
    fn per_style_summaries_group_in_order_and_average_their_pairs() {
        let scores = [
            score("b.png", 2.0, 1.0),
            score("a.png", 6.0, 3.0),
            score("b.png", 4.0, 2.0),
            score("a.png", 8.0, 5.0),
        ];
        let by_style = Summary::by_style("m", &scores);
        let styles: Vec<_> = by_style.iter().map(|(s, _)| s.to_str().unwrap()).collect();
        assert_eq!(styles, ["b.png", "a.png"]);
        let (b, a) = (&by_style[0].1, &by_style[1].1);
        assert_eq!((b.pairs, b.chamfer_ratio, b.vgg16_output), (2, 0.3, 1.5));
        assert_eq!((a.pairs, a.chamfer_ratio, a.vgg16_output), (2, 0.7, 4.0));
        // The overall mean is the mean of the per-style means when styles have equal pair counts.
        assert_eq!(Summary::new("m".into(), &scores).chamfer_ratio, 0.5);
    }
}
