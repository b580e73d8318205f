//! The VGG encoders, up to relu5_1: two [`Architecture`]s with the same taps and channel counts.
//!
//! - The "normalised" VGG-19 of AdaIN/StyA2K (`vgg_normalised.pth`, and `random:SEED`): a 1x1 colour
//!   convolution (ImageNet mean/std and BGR order folded into its weights, so inputs are plain RGB in
//!   [0, 1]), then VGG-19's 3x3 convolutions with reflection padding and 2x2 ceil-mode max pools. Keys
//!   are the official `nn.Sequential` positions (`0`, `2`, `5`, ... `42`); conv5_2..conv5_4 (`45`, `48`,
//!   `51`) are stored in the official file but never run, so they are not loaded.
//!   Weights: `stylestream import-official --vgg vgg_normalised.pth ...`, or a fixed random encoder.
//! - torchvision's ImageNet VGG-16 (`--encoder vgg16`, `weights/vgg16.safetensors`), computed as
//!   torchvision computes it: RGB in [0, 1] normalised with the ImageNet mean (0.485, 0.456, 0.406) and
//!   std (0.229, 0.224, 0.225), 3x3 convolutions with **zero** padding, 2x2 **floor**-mode max pools.
//!   Keys are torchvision's `features.N` (`features.0` conv1_1 .. `features.24` conv5_1).
//!   Weights: `bash weights/make-vgg16.sh` (`stylestream import-vgg16`).
//!
//! Why the two differ: they are two different trained networks, and each is only right computed the
//! way it was trained. The official encoder was converted from Caffe by AdaIN's authors, who folded
//! Caffe's BGR mean subtraction into the 1x1 conv and ran it with reflection padding and ceil pools;
//! torchvision trained its VGG-16 with zero padding, floor pools and the normalisation outside the
//! network. VGG-16 has three convs per block at relu4/5 where VGG-19 has four, but the same taps with
//! the same channel counts (64, 128, 256, 512, 512), so everything built on the taps is unchanged.
//!
//! Odd sizes: a ceil pool keeps every row (`ceil(H / 2)`), a floor pool drops an odd side's last one
//! (`floor(H / 2)`), so at relu{k}_1 VGG-16 sees only the top-left `2^(k-1) * floor(H / 2^(k-1))` rows.
//! StyA2K pads its inputs to multiples of 64 and NeAT its content to multiples of 8 before encoding,
//! so their decoders upsample back to exactly the padded size either way; NeAT's style and other
//! callers that need every pixel seen use [`Vgg::pad_for_pools`].
use candle_core::{Module, Result, Tensor};
use candle_nn::{Conv2d, VarBuilder};

use crate::nn::{conv1x1, max_pool2x2_ceil, max_pool2x2_floor, reflect_pad, Conv3x3, Padding};

/// Which VGG an encoder is (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Architecture {
    /// The normalised VGG-19 of AdaIN/StyA2K (official or random weights).
    Normalised19,
    /// torchvision's VGG-16.
    Torchvision16,
}

/// torchvision's ImageNet normalisation, per RGB channel.
const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

impl Architecture {
    /// The architecture of an encoder whose tensors (bundle keys, `vgg.` namespace) are `keys`:
    /// torchvision's VGG-16 keys its layers `features.N`, the normalised VGG-19 plain `N`.
    pub fn of_keys<'a>(keys: impl IntoIterator<Item = &'a String>) -> Self {
        match keys.into_iter().any(|k| k.starts_with("vgg.features.")) {
            true => Self::Torchvision16,
            false => Self::Normalised19,
        }
    }

    fn slices(self) -> &'static [&'static [LayerSpec]; 5] {
        match self {
            Self::Normalised19 => &NORMALISED19,
            Self::Torchvision16 => &TORCHVISION16,
        }
    }

    /// The key (under `vgg.`) and padding of conv4_2, whose output NeAT's content loss compares.
    pub fn conv4_2(self) -> (&'static str, Padding) {
        match self {
            Self::Normalised19 => ("32", Padding::Reflect),
            Self::Torchvision16 => ("features.19", Padding::Zero),
        }
    }

    /// The key of the `(sequential index)` layer.
    fn key(self, index: usize) -> String {
        match self {
            Self::Normalised19 => index.to_string(),
            Self::Torchvision16 => format!("features.{index}"),
        }
    }
}

/// One step of the encoder after the colour conv: a padded 3x3 conv + ReLU, or a pool.
#[derive(Debug, Clone)]
enum Layer {
    ConvRelu(Conv3x3),
    Pool,
}

/// `(sequential index, C_in, C_out)` of a 3x3 conv, `None` for a max pool.
type LayerSpec = Option<(usize, usize, usize)>;

/// torchvision's VGG-16 `features` grouped as [`NORMALISED19`]: each slice ends at relu{k}_1
/// (`features.1`, `6`, `11`, `18`, `25` are those ReLUs; pools at `4`, `9`, `16`, `23`).
const TORCHVISION16: [&[LayerSpec]; 5] = [
    &[Some((0, 3, 64))],
    &[Some((2, 64, 64)), None, Some((5, 64, 128))],
    &[Some((7, 128, 128)), None, Some((10, 128, 256))],
    &[Some((12, 256, 256)), Some((14, 256, 256)), None, Some((17, 256, 512))],
    &[Some((19, 512, 512)), Some((21, 512, 512)), None, Some((24, 512, 512))],
];

/// The normalised VGG-19's layers grouped into the five official slices whose outputs are relu1_1 ..
/// relu5_1.
const NORMALISED19: [&[LayerSpec]; 5] = [
    &[Some((2, 3, 64))],
    &[Some((5, 64, 64)), None, Some((9, 64, 128))],
    &[Some((12, 128, 128)), None, Some((16, 128, 256))],
    &[Some((19, 256, 256)), Some((22, 256, 256)), Some((25, 256, 256)), None, Some((29, 256, 512))],
    &[Some((32, 512, 512)), Some((35, 512, 512)), Some((38, 512, 512)), None, Some((42, 512, 512))],
];

/// Channel counts of relu1_1 .. relu5_1.
pub const TAP_CHANNELS: [usize; 5] = [64, 128, 256, 512, 512];

/// The encoder. Input `[B, 3, H, W]` RGB in [0, 1]; taps `relu{k}_1` at `[B, TAP_CHANNELS[k-1],
/// h_k, w_k]` with `h_k = ceil(H / 2^(k-1))` for the normalised VGG-19 and `floor(H / 2^(k-1))` for
/// VGG-16 (likewise `w_k`).
#[derive(Debug, Clone)]
pub struct Vgg {
    architecture: Architecture,
    /// The normalised VGG-19's learned colour conv; `None` for VGG-16, which normalises with the
    /// fixed ImageNet statistics.
    colour: Option<Conv2d>,
    slices: Vec<Vec<Layer>>,
}

impl Vgg {
    /// Loads the normalised VGG-19's used layers from `vb` (keys `0.weight`, `0.bias`, `2.weight`, ...).
    pub fn new(vb: VarBuilder) -> Result<Self> {
        Self::new_to(5, vb)
    }

    /// Loads only the first `depth` slices (1..=5) of the normalised VGG-19, up to relu{depth}_1: NeAT
    /// stops at relu4_1, so its bundles leave out conv5_1's 2.4 M parameters.
    pub fn new_to(depth: usize, vb: VarBuilder) -> Result<Self> {
        Self::build(Architecture::Normalised19, depth, vb)
    }

    /// Loads the first `depth` slices (1..=5) of `architecture` from `vb`.
    pub fn build(architecture: Architecture, depth: usize, vb: VarBuilder) -> Result<Self> {
        let slices = architecture.slices();
        if !(1..=slices.len()).contains(&depth) {
            candle_core::bail!("the VGG encoder has taps relu1_1 .. relu5_1, asked for depth {depth}");
        }
        let (colour, padding) = match architecture {
            Architecture::Normalised19 => (Some(conv1x1(3, 3, vb.pp("0"))?), Padding::Reflect),
            Architecture::Torchvision16 => (None, Padding::Zero),
        };
        let slices = slices[..depth]
            .iter()
            .map(|slice| {
                slice
                    .iter()
                    .map(|layer| match *layer {
                        Some((idx, c_in, c_out)) => Ok(Layer::ConvRelu(Conv3x3::new(
                            c_in,
                            c_out,
                            padding,
                            vb.pp(architecture.key(idx)),
                        )?)),
                        None => Ok(Layer::Pool),
                    })
                    .collect::<Result<Vec<_>>>()
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { architecture, colour, slices })
    }

    pub fn architecture(&self) -> Architecture {
        self.architecture
    }

    /// `x` `[B, C, H, W]` reflect-padded at the bottom and right so that the pools before
    /// relu{depth}_1 drop nothing: to multiples of `2^(depth-1)` for VGG-16's floor pools, unchanged for
    /// the normalised VGG-19, whose ceil pools keep every row already.
    pub fn pad_for_pools(&self, x: &Tensor, depth: usize) -> Result<Tensor> {
        if self.architecture == Architecture::Normalised19 {
            return Ok(x.clone());
        }
        let (_, _, h, w) = x.dims4()?;
        let multiple = 1 << depth.saturating_sub(1);
        let up = |n: usize| n.div_ceil(multiple) * multiple - n;
        reflect_pad(x, 0, up(h), 0, up(w))
    }

    /// Runs the first `depth` slices (1..=5) and returns their outputs relu1_1 .. relu{depth}_1.
    pub fn forward_to(&self, x: &Tensor, depth: usize) -> Result<Vec<Tensor>> {
        let mut taps = Vec::with_capacity(depth);
        self.run(x, depth, |tap| taps.push(tap.clone()))?;
        Ok(taps)
    }

    /// Runs the first `depth` slices (1..=5) and returns only relu{depth}_1. Earlier taps are freed as
    /// soon as the next layer has read them: at 3840x2160, relu1_1 alone is 2 GB of f32.
    pub fn forward_last(&self, x: &Tensor, depth: usize) -> Result<Tensor> {
        self.run(x, depth, |_| ())
    }

    /// The first `depth` slices, handing each tap to `on_tap`; returns the last one.
    fn run(&self, x: &Tensor, depth: usize, mut on_tap: impl FnMut(&Tensor)) -> Result<Tensor> {
        if depth > self.slices.len() {
            candle_core::bail!(
                "this encoder was loaded to relu{}_1, asked for relu{depth}_1",
                self.slices.len()
            );
        }
        let mut x = match &self.colour {
            Some(colour) => colour.forward(x)?,
            None => {
                let (_, _, h, w) = x.dims4()?;
                let need = 1 << depth.saturating_sub(1);
                if h < need || w < need {
                    candle_core::bail!(
                        "VGG-16 halves a {h}x{w} input {} times on the way to relu{depth}_1, dropping odd \
                         rows: it needs at least {need}x{need} pixels",
                        depth.saturating_sub(1)
                    );
                }
                let stat =
                    |v: [f32; 3]| Tensor::new(&v, x.device())?.to_dtype(x.dtype())?.reshape((1, 3, 1, 1));
                x.broadcast_sub(&stat(IMAGENET_MEAN)?)?.broadcast_div(&stat(IMAGENET_STD)?)?
            }
        };
        for (i, slice) in self.slices.iter().take(depth).enumerate() {
            let _span = tracing::trace_span!("vgg_slice", tap = i + 1).entered();
            for layer in slice {
                x = match (layer, self.architecture) {
                    (Layer::ConvRelu(conv), _) => conv.forward_relu(&x)?,
                    (Layer::Pool, Architecture::Normalised19) => max_pool2x2_ceil(&x)?,
                    (Layer::Pool, Architecture::Torchvision16) => max_pool2x2_floor(&x)?,
                };
            }
            on_tap(&x);
        }
        Ok(x)
    }

    /// All five taps relu1_1 .. relu5_1.
    pub fn forward(&self, x: &Tensor) -> Result<Vec<Tensor>> {
        self.forward_to(x, 5)
    }
}
