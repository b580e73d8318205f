//! NeAT: "Neural Artistic Tracing for high resolution Style Transfer" (Ruta et al.), inference.
//!
//! Style transfer as editing: the network predicts RGB deltas that are added to a content prior
//! (`crate::prior`: the frame blurred, bilateral-filtered and recoloured with the style's palette):
//!
//!     output = prior(I_c, I_s) + D( blend(Fc, T(Fc, Fs), alpha) ),   Fc = E(I_c), Fs = E(I_s)
//!
//! E is the VGG-19 encoder of `models::vgg` to relu4_1, T four chained PAMA blocks (`models::pama`)
//! that all attend to the same style features, D the decoder mirroring the encoder (the AdaIN/PAMA
//! decoder, keys `1, 5, ..., 28` of its `nn.Sequential`) whose last conv has no activation. The output
//! is clamped only when written to an image. No official code or weights exist
//! (`shared/docs/neat.md`); every choice the paper leaves open is a field of [`NeatConfig`] or a
//! documented constant, and the config is stored in each checkpoint.
//! Bundle namespaces: `vgg.` (frozen encoder), `transform.align1..align4.` (PAMA), `decoder.`.
//! Weights: trained bundles, or `formula-neat:SEED` (untrained, for tests and benchmarks).
//! Run: `stylestream image --content photo.jpg --style art.jpg -o out.png --model neat.safetensors`.
use candle_core::{Module, Result, Tensor};
use candle_nn::VarBuilder;
use serde::{Deserialize, Serialize};

use crate::models::pama::{Pama, PamaStyle};
use crate::models::vgg::{Architecture, Vgg};
use crate::nn::{blend, reflect_pad, upsample2, Conv3x3, Padding};
use crate::ops::convert::{planar_to_rgb8, rgb8_to_planar};
use crate::prior::{content_prior, ColourStats, PriorConfig};

/// The content is reflect-padded at the bottom and right to a multiple of 8 and the deltas are
/// cropped back: relu4_1 is at 1/8 scale with ceil-mode pools, so 8 makes the decoder's three x2
/// upsamplings land exactly on the padded size. The attention is all-to-all and needs no larger
/// multiple. The prior is computed on the unpadded frame.
pub const PAD_MULTIPLE: usize = 8;

/// The relu4_1 channel count, where the PAMA blocks work.
const CHANNELS: usize = 512;

/// What a NeAT checkpoint fixes besides its weights (JSON in the bundle's `stylestream.config`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NeatConfig {
    /// PAMA blocks chained at relu4_1 (the paper: 4).
    pub pama_blocks: usize,
    /// The content prior.
    pub prior: PriorConfig,
}

impl Default for NeatConfig {
    fn default() -> Self {
        NeatConfig { pama_blocks: 4, prior: PriorConfig::default() }
    }
}

/// The per-frame controls of the paper's inference section.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Controls {
    /// Feature interpolation before the decoder: `blend(Fc, T, alpha)`; 0 decodes the content
    /// features, 1 the stylised ones, above 1 amplifies the style.
    pub alpha: f64,
    /// "Full" interpolation: the prior is interpolated toward the content too, `blend(weight * I_c,
    /// prior, alpha)` (ours: the paper names the control, not its formula; the content is weighted like
    /// the prior so alpha 1 is the plain prior and alpha 0 the plain, weighted content).
    pub alpha_prior: bool,
}

impl Default for Controls {
    fn default() -> Self {
        Controls { alpha: 1.0, alpha_prior: false }
    }
}

/// A style image, prepared once and reused for every frame: its colour statistics (for the prior)
/// and each PAMA block's keys and values.
#[derive(Debug, Clone)]
pub struct NeatStyle {
    /// Storage type of the style tensors, and so of the model's weights.
    dtype: candle_core::DType,
    colour: ColourStats,
    blocks: Vec<PamaStyle>,
}

/// Intermediate results of one forward pass (for tests and diagnostics), at the content's size unless
/// noted.
#[derive(Debug, Clone)]
pub struct Trace {
    /// The prior actually added (after full interpolation), `[1, 3, H, W]`.
    pub prior: Tensor,
    /// Content relu4_1 `Fc` of the padded frame, `[1, 512, H'/8, W'/8]` (`H'`, `W'` padded).
    pub content_features: Tensor,
    /// The decoder's input `blend(Fc, T(Fc, Fs), alpha)`, `[1, 512, H'/8, W'/8]`.
    pub decoder_input: Tensor,
    /// The decoder output cropped to the content, `[1, 3, H, W]`.
    pub deltas: Tensor,
    /// `prior + deltas`, `[1, 3, H, W]`, unclamped.
    pub output: Tensor,
}

/// The decoder: relu4_1 `[1, 512, h, w]` -> RGB deltas `[1, 3, 8h, 8w]`.
#[derive(Debug, Clone)]
pub struct Decoder {
    steps: Vec<DecoderStep>,
}

#[derive(Debug, Clone)]
enum DecoderStep {
    /// Reflection-padded 3x3 conv, followed by a ReLU unless it is the last layer.
    Conv(Conv3x3, bool),
    Upsample,
}

/// `(sequential index, C_in, C_out)` of each conv, `None` for a nearest x2 upsample: the encoder's
/// relu4_1 .. relu1_1 in reverse, as AdaIN's and PAMA's `decoder` `nn.Sequential` numbers them.
const DECODER: [Option<(usize, usize, usize)>; 12] = [
    Some((1, 512, 256)),
    None,
    Some((5, 256, 256)),
    Some((8, 256, 256)),
    Some((11, 256, 256)),
    Some((14, 256, 128)),
    None,
    Some((18, 128, 128)),
    Some((21, 128, 64)),
    None,
    Some((25, 64, 64)),
    Some((28, 64, 3)),
];

impl Decoder {
    pub fn new(vb: VarBuilder) -> Result<Self> {
        let last = DECODER.len() - 1;
        let steps = DECODER
            .iter()
            .enumerate()
            .map(|(i, step)| match *step {
                Some((idx, c_in, c_out)) => {
                    Ok(DecoderStep::Conv(Conv3x3::new(c_in, c_out, Padding::Reflect, vb.pp(idx))?, i != last))
                }
                None => Ok(DecoderStep::Upsample),
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { steps })
    }
}

impl Module for Decoder {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut x = x.clone();
        for step in &self.steps {
            x = match step {
                DecoderStep::Conv(conv, true) => conv.forward_relu(&x)?,
                DecoderStep::Conv(conv, false) => conv.forward(&x)?,
                DecoderStep::Upsample => upsample2(&x)?,
            };
        }
        Ok(x)
    }
}

/// The whole network.
#[derive(Debug, Clone)]
pub struct Neat {
    config: NeatConfig,
    vgg: Vgg,
    /// `transform.align1` .. `transform.align{pama_blocks}`.
    align: Vec<Pama>,
    decoder: Decoder,
}

impl Neat {
    /// Loads the `vgg`, `transform` and `decoder` namespaces of `vb`, on the normalised VGG-19.
    pub fn new(config: NeatConfig, vb: VarBuilder) -> Result<Self> {
        Self::with_encoder(config, Architecture::Normalised19, vb)
    }

    /// As [`Neat::new`], on an encoder of `architecture`.
    pub fn with_encoder(config: NeatConfig, architecture: Architecture, vb: VarBuilder) -> Result<Self> {
        if config.pama_blocks == 0 {
            candle_core::bail!("NeAT needs at least one PAMA block, the config says 0");
        }
        config.prior.check().map_err(candle_core::Error::wrap)?;
        let align = (1..=config.pama_blocks)
            .map(|i| Pama::new(CHANNELS, vb.pp("transform").pp(format!("align{i}"))))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            config,
            vgg: Vgg::build(architecture, 4, vb.pp("vgg"))?,
            align,
            decoder: Decoder::new(vb.pp("decoder"))?,
        })
    }

    pub fn config(&self) -> &NeatConfig {
        &self.config
    }

    /// The frozen encoder (training reads the output's features with it).
    pub fn encoder(&self) -> &Vgg {
        &self.vgg
    }

    /// Replaces the prior's settings (the `--blur` and `--prior-weight` controls).
    pub fn set_prior(&mut self, prior: PriorConfig) -> Result<()> {
        prior.check().map_err(candle_core::Error::wrap)?;
        self.config.prior = prior;
        Ok(())
    }

    /// Prepares a style image `[1, 3, H_s, W_s]` (RGB in [0, 1], any size of at least one pixel).
    pub fn encode_style(&self, style: &Tensor) -> Result<NeatStyle> {
        let _span = tracing::debug_span!("encode_style").entered();
        // The style is not padded like the content: padding to multiples of 8 only matters for
        // VGG-16's floor pools (which would drop up to 7 rows and fail below 8 px).
        let fs = self.vgg.forward_last(&self.vgg.pad_for_pools(style, 4)?, 4)?;
        Ok(NeatStyle {
            dtype: style.dtype(),
            colour: ColourStats::of(style).map_err(candle_core::Error::wrap)?,
            blocks: self.align.iter().map(|block| block.style(&fs)).collect::<Result<Vec<_>>>()?,
        })
    }

    /// Stylises content `[1, 3, H, W]` (RGB in [0, 1]) -> `[1, 3, H, W]`, unclamped.
    pub fn stylize(&self, content: &Tensor, style: &NeatStyle, controls: Controls) -> Result<Tensor> {
        Ok(self.trace(content, style, controls)?.output)
    }

    /// The forward pass, keeping the intermediates of [`Trace`].
    pub fn trace(&self, content: &Tensor, style: &NeatStyle, controls: Controls) -> Result<Trace> {
        let _span = tracing::debug_span!("stylize").entered();
        let (_, _, h, w) = content.dims4()?;
        let prior =
            content_prior(content, &style.colour, &self.config.prior).map_err(candle_core::Error::wrap)?;
        let up = |n: usize| n.div_ceil(PAD_MULTIPLE) * PAD_MULTIPLE - n;
        let padded = reflect_pad(content, 0, up(h), 0, up(w))?;
        self.edit(prior, content, &padded, style, controls)
    }

    /// Stylises a packed RGB frame, u8 `[H, W, 3]` on the model's device -> u8 `[H, W, 3]`. The frame is
    /// converted, padded, filtered for the prior and written back by the ops of `crate::ops`, so on a
    /// GPU it stays there from upload to download (3 bytes per pixel each way, no f32 frame on the
    /// host). On the CPU the result equals [`Neat::stylize`] of the frame / 255, rounded, up to the
    /// prior's filters (here the reference of `ops::prior`, within 1/255 of OpenCV's).
    pub fn stylize_rgb8(&self, frame: &Tensor, style: &NeatStyle, controls: Controls) -> Result<Tensor> {
        let _span = tracing::debug_span!("stylize_rgb8").entered();
        let (h, w, _) = frame.dims3()?;
        let prior = crate::ops::prior::content_prior(frame, &style.colour, &self.config.prior, style.dtype)?;
        let padded = rgb8_to_planar(frame, PAD_MULTIPLE, style.dtype)?;
        let content = padded.narrow(2, 0, h)?.narrow(3, 0, w)?;
        let output = self.edit(prior, &content, &padded, style, controls)?.output;
        planar_to_rgb8(&output, h, w)
    }

    /// Everything after the prior: `content` `[1, 3, H, W]` and its reflect-padded copy `padded`.
    fn edit(
        &self,
        prior: Tensor,
        content: &Tensor,
        padded: &Tensor,
        style: &NeatStyle,
        controls: Controls,
    ) -> Result<Trace> {
        let (_, _, h, w) = content.dims4()?;
        let prior = match controls.alpha_prior {
            true => blend(&(content * self.config.prior.weight)?, &prior, controls.alpha)?,
            false => prior,
        };
        let content_features = self.vgg.forward_last(padded, 4)?;
        let mut transformed = content_features.clone();
        for (i, (block, block_style)) in self.align.iter().zip(&style.blocks).enumerate() {
            let _span = tracing::trace_span!("pama", block = i + 1).entered();
            transformed = block.forward(&transformed, block_style)?;
        }
        let decoder_input = blend(&content_features, &transformed, controls.alpha)?;
        let deltas = self.decoder.forward(&decoder_input)?.narrow(2, 0, h)?.narrow(3, 0, w)?;
        let output = (&prior + &deltas)?;
        Ok(Trace { prior, content_features, decoder_input, deltas, output })
    }
}
