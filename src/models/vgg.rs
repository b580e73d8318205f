//! The "normalised" VGG-19 encoder of AdaIN/StyA2K (`vgg_normalised.pth`), up to relu5_1.
//!
//! A 1x1 colour convolution (ImageNet mean/std and BGR order folded into its weights, so inputs are plain
//! RGB in [0, 1]), then VGG-19's 3x3 convolutions with reflection padding and 2x2 ceil-mode max pools.
//! Keys are the official `nn.Sequential` positions (`0`, `2`, `5`, ... `42`); conv5_2..conv5_4 (`45`,
//! `48`, `51`) are stored in the official file but never run, so they are not loaded.
//! Weights: `stylestream import-official --vgg vgg_normalised.pth ...`, or a fixed random encoder.
use candle_core::{Module, Result, Tensor};
use candle_nn::{Conv2d, VarBuilder};

use crate::nn::{conv1x1, max_pool2x2_ceil, Conv3x3, Padding};

/// One step of the encoder after the colour conv: a padded 3x3 conv + ReLU, or a pool.
#[derive(Debug, Clone)]
enum Layer {
    ConvRelu(Conv3x3),
    Pool,
}

/// `(sequential index, C_in, C_out)` of a 3x3 conv, `None` for a max pool.
type LayerSpec = Option<(usize, usize, usize)>;

/// The layers grouped into the five official slices whose outputs are relu1_1 .. relu5_1.
const SLICES: [&[LayerSpec]; 5] = [
    &[Some((2, 3, 64))],
    &[Some((5, 64, 64)), None, Some((9, 64, 128))],
    &[Some((12, 128, 128)), None, Some((16, 128, 256))],
    &[Some((19, 256, 256)), Some((22, 256, 256)), Some((25, 256, 256)), None, Some((29, 256, 512))],
    &[Some((32, 512, 512)), Some((35, 512, 512)), Some((38, 512, 512)), None, Some((42, 512, 512))],
];

/// Channel counts of relu1_1 .. relu5_1.
pub const TAP_CHANNELS: [usize; 5] = [64, 128, 256, 512, 512];

/// The encoder. Input `[B, 3, H, W]` RGB in [0, 1]; taps `relu{k}_1` at `[B, TAP_CHANNELS[k-1],
/// ceil(H / 2^(k-1)), ceil(W / 2^(k-1))]`.
#[derive(Debug, Clone)]
pub struct Vgg {
    colour: Conv2d,
    slices: Vec<Vec<Layer>>,
}

impl Vgg {
    /// Loads the used layers from `vb` (keys `0.weight`, `0.bias`, `2.weight`, ...).
    pub fn new(vb: VarBuilder) -> Result<Self> {
        Self::new_to(5, vb)
    }

    /// Loads only the first `depth` slices (1..=5), up to relu{depth}_1: NeAT stops at relu4_1, so its
    /// bundles leave out conv5_1's 2.4 M parameters.
    pub fn new_to(depth: usize, vb: VarBuilder) -> Result<Self> {
        if !(1..=SLICES.len()).contains(&depth) {
            candle_core::bail!("the VGG encoder has taps relu1_1 .. relu5_1, asked for depth {depth}");
        }
        let colour = conv1x1(3, 3, vb.pp("0"))?;
        let slices = SLICES[..depth]
            .iter()
            .map(|slice| {
                slice
                    .iter()
                    .map(|layer| match *layer {
                        Some((idx, c_in, c_out)) => {
                            Ok(Layer::ConvRelu(Conv3x3::new(c_in, c_out, Padding::Reflect, vb.pp(idx))?))
                        }
                        None => Ok(Layer::Pool),
                    })
                    .collect::<Result<Vec<_>>>()
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { colour, slices })
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
        let mut x = self.colour.forward(x)?;
        for (i, slice) in self.slices.iter().take(depth).enumerate() {
            let _span = tracing::trace_span!("vgg_slice", tap = i + 1).entered();
            for layer in slice {
                x = match layer {
                    Layer::ConvRelu(conv) => conv.forward_relu(&x)?,
                    Layer::Pool => max_pool2x2_ceil(&x)?,
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
