//! StyA2K: "All-to-Key Attention for Arbitrary Style Transfer" (Zhu et al., ICCV 2023).
//!
//! VGG-19 encoder (`models::vgg`) -> all-to-key attention (A2K) at relu3_1, relu4_1 and relu5_1 ->
//! decoder with a relu3_1 skip. Field names equal the official checkpoint keys (`a2k`, `transform`,
//! `decoder` and `vgg` namespaces of a stylestream bundle, see `checkpoint`).
//! Weights: `stylestream import-official --vgg vgg_normalised.pth --a2k latest_net_A2K.pth
//! --transform latest_net_transform.pth --decoder latest_net_decoder.pth -o stya2k.safetensors`.
//! Run: `stylestream image --content photo.jpg --style art.jpg -o out.png --model stya2k.safetensors`.
//!
//! Beyond the official code (which only runs square, equal-sized inputs with sides a multiple of 64),
//! any content and style sizes run: see [`PAD_MULTIPLE`].
use candle_core::{Module, Result, Tensor};
use candle_nn::{Conv2d, VarBuilder};

use crate::models::vgg::{Architecture, Vgg};
use crate::nn::{blend, conv1x1, mean_variance_norm, reflect_pad, upsample2, Conv3x3, Padding};
use crate::ops::blocked_attention::{
    aggregate_style_patches, block, distributed_attention, progressive_attention, HEADS,
};

/// Both images are reflect-padded at the bottom and right up to a multiple of 64 in each dimension,
/// and the output is cropped back to the content's size.
///
/// Why 64: the A2K regions are 8 at relu3_1 (1/4 scale), 8 at relu4_1 (1/8) and 4 at relu5_1 (1/16),
/// so 64 input pixels make whole patches at every level, every position is attended, and the ceil-mode
/// pyramid halves exactly (relu4_1 = 2 relu5_1, relu3_1 = 2 relu4_1). Padding at the bottom/right
/// keeps the patch grid anchored at the top-left pixel, as the official blocking is, so sizes that are
/// already multiples of 64 give the official result unchanged. Reflection, not zeros, so the padded
/// border looks like image to the encoder's statistics.
pub const PAD_MULTIPLE: usize = 64;

/// Region (patch side R) of the A2K at relu3_1, relu4_1 and relu5_1.
const REGION_RELU3_1: usize = 8;
const REGION_RELU4_1: usize = 8;
const REGION_RELU5_1: usize = 4;

/// The all-to-key attention module for `C` channels (`C` divisible by 8 heads).
#[derive(Debug, Clone)]
pub struct A2k {
    sim_alpha: Tensor,
    sim_beta: Tensor,
    q: Conv2d,
    k: Conv2d,
    v: Conv2d,
    q2: Conv2d,
    k2: Conv2d,
    v2: Conv2d,
    fusion1: Conv2d,
    fusion2: Conv2d,
    region: usize,
}

/// Everything an A2K needs from one style image, computed once per style (shapes for `C` channels,
/// `d = C / 8`, `n` style patches, `r = R^2`).
#[derive(Debug, Clone)]
pub struct A2kStyle {
    /// Distributed attention's aggregated keys and values, `[8, n, d]` each.
    k_bar: Tensor,
    v_bar: Tensor,
    /// Progressive attention's blocked keys and values, `[8, n, r, d]` each.
    k2: Tensor,
    v2: Tensor,
}

impl A2k {
    /// Loads `sim_alpha`, `sim_beta` (`[1]`) and the eight 1x1 convs `C -> C`.
    pub fn new(channels: usize, region: usize, vb: VarBuilder) -> Result<Self> {
        if channels % HEADS != 0 {
            candle_core::bail!("A2K needs channels divisible by {HEADS} heads, got {channels}");
        }
        let conv = |name: &str| conv1x1(channels, channels, vb.pp(name));
        Ok(Self {
            sim_alpha: vb.get(1, "sim_alpha")?,
            sim_beta: vb.get(1, "sim_beta")?,
            q: conv("q")?,
            k: conv("k")?,
            v: conv("v")?,
            q2: conv("q2")?,
            k2: conv("k2")?,
            v2: conv("v2")?,
            fusion1: conv("fusion1")?,
            fusion2: conv("fusion2")?,
            region,
        })
    }

    /// Style side from the style features `F_s` `[1, C, H_s, W_s]`: keys see the normalised features,
    /// values the raw ones.
    pub fn style(&self, fs: &Tensor) -> Result<A2kStyle> {
        let ns = mean_variance_norm(fs)?;
        let blocked = |x: Tensor| block(&x, self.region, HEADS);
        let k1 = blocked(self.k.forward(&ns)?)?;
        let v1 = blocked(self.v.forward(fs)?)?;
        let (k_bar, v_bar) = aggregate_style_patches(&k1, &v1, &self.sim_alpha, &self.sim_beta)?;
        Ok(A2kStyle { k_bar, v_bar, k2: blocked(self.k2.forward(&ns)?)?, v2: blocked(self.v2.forward(fs)?)? })
    }

    /// `Z = fusion1(DA) + fusion2(PA) + F_c` for content features `F_c` `[1, C, H, W]` -> `[1, C, H, W]`.
    /// The residual adds the raw, un-normalised content.
    pub fn forward(&self, fc: &Tensor, style: &A2kStyle) -> Result<Tensor> {
        let nc = mean_variance_norm(fc)?;
        let da = distributed_attention(&self.q.forward(&nc)?, &style.k_bar, &style.v_bar, self.region)?;
        let pa = progressive_attention(&self.q2.forward(&nc)?, &style.k2, &style.v2, self.region)?;
        (self.fusion1.forward(&da)? + self.fusion2.forward(&pa)?)? + fc
    }
}

/// relu4_1 + relu5_1 attention and their merge: `T = merge_conv(pad(A2K_4 + up2(A2K_5)))`,
/// `[1, 512, H/8, W/8]`.
#[derive(Debug, Clone)]
pub struct Transform {
    attn_adain_4_1: A2k,
    attn_adain_5_1: A2k,
    merge_conv: Conv3x3,
}

impl Transform {
    pub fn new(vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            attn_adain_4_1: A2k::new(512, REGION_RELU4_1, vb.pp("attn_adain_4_1"))?,
            attn_adain_5_1: A2k::new(512, REGION_RELU5_1, vb.pp("attn_adain_5_1"))?,
            merge_conv: Conv3x3::new(512, 512, Padding::Reflect, vb.pp("merge_conv"))?,
        })
    }

    fn forward(&self, fc4: &Tensor, fc5: &Tensor, style: &StyleFeatures) -> Result<Tensor> {
        let a5 = self.attn_adain_5_1.forward(fc5, &style.relu5_1)?;
        let a4 = self.attn_adain_4_1.forward(fc4, &style.relu4_1)?;
        let (_, _, h, w) = a4.dims4()?;
        self.merge_conv.forward(&(a4 + a5.upsample_nearest2d(h, w)?)?)
    }
}

/// The decoder with the relu3_1 skip: `T [1, 512, H/8, W/8]` and `Z_3 [1, 256, H/4, W/4]` ->
/// `[1, 3, H, W]`, unclamped (values leave [0, 1]).
#[derive(Debug, Clone)]
pub struct Decoder {
    decoder_layer_1: Conv3x3,
    decoder_layer_2: Vec<DecoderStep>,
}

#[derive(Debug, Clone)]
enum DecoderStep {
    /// Padded 3x3 conv, followed by a ReLU unless it is the last layer.
    Conv(Conv3x3, bool),
    Upsample,
}

/// `decoder_layer_2`: `(sequential index, C_in, C_out)` of each conv, `None` for a nearest x2 upsample.
const DECODER_LAYER_2: [Option<(usize, usize, usize)>; 10] = [
    Some((1, 512, 256)),
    Some((4, 256, 256)),
    Some((7, 256, 256)),
    Some((10, 256, 128)),
    None,
    Some((14, 128, 128)),
    Some((17, 128, 64)),
    None,
    Some((21, 64, 64)),
    Some((24, 64, 3)),
];

impl Decoder {
    pub fn new(vb: VarBuilder) -> Result<Self> {
        let last = DECODER_LAYER_2.len() - 1;
        let vb2 = vb.pp("decoder_layer_2");
        let decoder_layer_2 = DECODER_LAYER_2
            .iter()
            .enumerate()
            .map(|(i, step)| match *step {
                Some((idx, c_in, c_out)) => Ok(DecoderStep::Conv(
                    Conv3x3::new(c_in, c_out, Padding::Reflect, vb2.pp(idx))?,
                    i != last,
                )),
                None => Ok(DecoderStep::Upsample),
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            decoder_layer_1: Conv3x3::new(512, 256, Padding::Reflect, vb.pp("decoder_layer_1").pp(1))?,
            decoder_layer_2,
        })
    }

    pub fn forward(&self, t: &Tensor, z3: &Tensor) -> Result<Tensor> {
        let x = self.decoder_layer_1.forward_relu(t)?;
        let x = upsample2(&x)?;
        // Main path first, then the relu3_1 A2K output: [1, 256 + 256, H/4, W/4].
        let mut x = Tensor::cat(&[&x, z3], 1)?;
        for step in &self.decoder_layer_2 {
            x = match step {
                DecoderStep::Conv(conv, true) => conv.forward_relu(&x)?,
                DecoderStep::Conv(conv, false) => conv.forward(&x)?,
                DecoderStep::Upsample => upsample2(&x)?,
            };
        }
        Ok(x)
    }
}

/// A style image, encoded once and reused for every frame (the style half of the network).
#[derive(Debug, Clone)]
pub struct StyleFeatures {
    relu3_1: A2kStyle,
    relu4_1: A2kStyle,
    relu5_1: A2kStyle,
}

/// Intermediate results of one forward pass, at the padded size (for tests and diagnostics).
#[derive(Debug, Clone)]
pub struct Trace {
    /// Content encoder taps relu1_1 .. relu5_1.
    pub content_taps: Vec<Tensor>,
    /// relu3_1 A2K output `Z_3`, `[1, 256, H/4, W/4]`.
    pub a2k3: Tensor,
    /// Transform output `T`, `[1, 512, H/8, W/8]`.
    pub transform: Tensor,
    /// Decoder output `[1, 3, H, W]`, unclamped.
    pub output: Tensor,
}

/// The whole network.
#[derive(Debug, Clone)]
pub struct StyA2K {
    vgg: Vgg,
    a2k: A2k,
    transform: Transform,
    decoder: Decoder,
}

impl StyA2K {
    /// Loads the `vgg`, `a2k`, `transform` and `decoder` namespaces of `vb`, on the normalised VGG-19.
    pub fn new(vb: VarBuilder) -> Result<Self> {
        Self::with_encoder(Architecture::Normalised19, vb)
    }

    /// As [`StyA2K::new`], on an encoder of `architecture`. Inputs are padded to multiples of
    /// [`PAD_MULTIPLE`] either way, so VGG-16's floor pools drop nothing.
    pub fn with_encoder(architecture: Architecture, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            vgg: Vgg::build(architecture, 5, vb.pp("vgg"))?,
            a2k: A2k::new(256, REGION_RELU3_1, vb.pp("a2k"))?,
            transform: Transform::new(vb.pp("transform"))?,
            decoder: Decoder::new(vb.pp("decoder"))?,
        })
    }

    pub fn encoder(&self) -> &Vgg {
        &self.vgg
    }

    /// Encodes a style image `[1, 3, H_s, W_s]` (RGB in [0, 1], any size of at least one pixel).
    pub fn encode_style(&self, style: &Tensor) -> Result<StyleFeatures> {
        let _span = tracing::debug_span!("encode_style").entered();
        self.style_features(&self.vgg.forward(&pad_to_multiple(style)?)?)
    }

    /// The style half from the encoder taps relu1_1 .. relu5_1 of one style image.
    fn style_features(&self, taps: &[Tensor]) -> Result<StyleFeatures> {
        Ok(StyleFeatures {
            relu3_1: self.a2k.style(&taps[2])?,
            relu4_1: self.transform.attn_adain_4_1.style(&taps[3])?,
            relu5_1: self.transform.attn_adain_5_1.style(&taps[4])?,
        })
    }

    /// The training forward (`crate::train`): content `i` stylised with style `i` at full strength.
    /// Takes the encoder taps relu1_1 .. relu5_1 of a content batch and a style batch (`[B, C, h, w]`
    /// per level, from inputs whose sides are multiples of [`PAD_MULTIPLE`]) and returns the decoder
    /// output `[B, 3, H, W]`, unclamped. The attention runs one pair at a time; encoder and decoder see
    /// the whole batch.
    pub fn forward_pairs(&self, content_taps: &[Tensor], style_taps: &[Tensor]) -> Result<Tensor> {
        let batch = content_taps[0].dim(0)?;
        let pick = |taps: &[Tensor], i: usize| -> Result<Vec<Tensor>> {
            taps.iter().map(|t| t.narrow(0, i, 1)).collect()
        };
        let (mut z3, mut t) = (Vec::with_capacity(batch), Vec::with_capacity(batch));
        for i in 0..batch {
            let style = self.style_features(&pick(style_taps, i)?)?;
            let fc = pick(content_taps, i)?;
            z3.push(self.a2k.forward(&fc[2], &style.relu3_1)?);
            t.push(self.transform.forward(&fc[3], &fc[4], &style)?);
        }
        self.decoder.forward(&Tensor::cat(&t, 0)?, &Tensor::cat(&z3, 0)?)
    }

    /// Stylises content `[1, 3, H, W]` (RGB in [0, 1]) -> `[1, 3, H, W]` unclamped.
    ///
    /// `alpha` interpolates the attended features with the content features before decoding, at both
    /// decoder inputs (`T` against relu4_1, `Z_3` against relu3_1): 0 reconstructs the content, 1 is
    /// the full style, above 1 extrapolates.
    pub fn stylize(&self, content: &Tensor, style: &StyleFeatures, alpha: f64) -> Result<Tensor> {
        let (_, _, h, w) = content.dims4()?;
        let trace = self.trace(&pad_to_multiple(content)?, style, alpha)?;
        trace.output.narrow(2, 0, h)?.narrow(3, 0, w)
    }

    /// The forward pass on content whose sides are already multiples of [`PAD_MULTIPLE`], keeping
    /// every intermediate.
    pub fn trace(&self, content: &Tensor, style: &StyleFeatures, alpha: f64) -> Result<Trace> {
        let _span = tracing::debug_span!("stylize").entered();
        let content_taps = self.vgg.forward(content)?;
        let (fc3, fc4, fc5) = (&content_taps[2], &content_taps[3], &content_taps[4]);
        let a2k3 = self.a2k.forward(fc3, &style.relu3_1)?;
        let transform = self.transform.forward(fc4, fc5, style)?;
        let output = self.decoder.forward(&blend(fc4, &transform, alpha)?, &blend(fc3, &a2k3, alpha)?)?;
        Ok(Trace { content_taps, a2k3, transform, output })
    }
}

/// Reflect-pads `[1, 3, H, W]` at the bottom and right to multiples of [`PAD_MULTIPLE`].
pub fn pad_to_multiple(x: &Tensor) -> Result<Tensor> {
    let (_, _, h, w) = x.dims4()?;
    let up = |n: usize| n.div_ceil(PAD_MULTIPLE) * PAD_MULTIPLE - n;
    reflect_pad(x, 0, up(h), 0, up(w))
}
