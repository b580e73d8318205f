//! NeAT's contrastive terms L_s-contra and L_c-contra: projection heads and the contrastive loss.
//!
//! The loss is the supervised contrastive loss (InfoNCE with label-defined positives, Khosla et al.
//! 2020) over L2-normalised embeddings `z_1 .. z_N` with labels `y` and temperature `tau`. For an anchor
//! `i` with positives `P(i) = {p != i : y_p = y_i}`:
//!
//!     l_i = -1/|P(i)| sum_{p in P(i)} log( exp(z_i.z_p / tau) / sum_{a != i} exp(z_i.z_a / tau) )
//!
//! and the loss is the mean of `l_i` over the anchors that have a positive (0 when none has). Every
//! other item is a negative. Nothing depends on the order of the items.
//!
//! How NeAT fills it (`train::neat`): for L_s-contra the items are the outputs' style embeddings
//! `l_s(E(I_sc))` labelled by their style, plus `l_s` of two random crops of each style image (the
//! "output vs two crops of its real style image" positives); the anchors are the outputs. For
//! L_c-contra the items and anchors are the outputs' content embeddings `l_c(E(I_sc))` labelled by their
//! content.
//!
//! The heads (ours; the paper gives no architecture): l_s reads the per-channel mean and std of
//! relu1_1 .. relu4_1 (what "style" means to L_s, and independent of the image size, so crops of any
//! size embed alike); l_c reads relu4_1 pooled to a 4x4 grid (where things are, not their texture).
//! Both are two-layer MLPs to a 128-dimensional embedding.
use candle_core::{Module, Result, Tensor};
use candle_nn::{Linear, VarBuilder};

use crate::models::vgg::TAP_CHANNELS;
use crate::nn::mean_std;

/// Embedding width of both heads.
pub const EMBEDDING: usize = 128;

/// Hidden width of both heads.
const HIDDEN: usize = 256;

/// The content head's pooling grid side.
const GRID: usize = 4;

/// Taps the style head reads: relu1_1 .. relu4_1.
const STYLE_TAPS: usize = 4;

/// Added to the squared norm before the square root when normalising embeddings.
const NORM_EPS: f64 = 1e-12;

/// A two-layer MLP with a ReLU between.
#[derive(Debug, Clone)]
struct Mlp {
    fc1: Linear,
    fc2: Linear,
}

impl Mlp {
    fn new(c_in: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            fc1: candle_nn::linear(c_in, HIDDEN, vb.pp("fc1"))?,
            fc2: candle_nn::linear(HIDDEN, EMBEDDING, vb.pp("fc2"))?,
        })
    }
}

impl Module for Mlp {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.fc2.forward(&self.fc1.forward(x)?.relu()?)
    }
}

/// l_s: encoder taps relu1_1 .. relu4_1 (`[B, C_i, h_i, w_i]`, any size) -> `[B, 128]`.
#[derive(Debug, Clone)]
pub struct StyleHead {
    mlp: Mlp,
}

impl StyleHead {
    pub fn new(vb: VarBuilder) -> Result<Self> {
        let stats = 2 * TAP_CHANNELS[..STYLE_TAPS].iter().sum::<usize>();
        Ok(Self { mlp: Mlp::new(stats, vb)? })
    }

    pub fn forward(&self, taps: &[Tensor]) -> Result<Tensor> {
        let mut stats = Vec::with_capacity(2 * STYLE_TAPS);
        for tap in &taps[..STYLE_TAPS] {
            let (mean, std) = mean_std(tap)?;
            // [B, C, 1, 1] -> [B, C]
            stats.push(mean.flatten_from(1)?);
            stats.push(std.flatten_from(1)?);
        }
        self.mlp.forward(&Tensor::cat(&stats, 1)?)
    }
}

/// l_c: relu4_1 `[B, 512, h, w]` (h, w multiples of 4) -> `[B, 128]`.
#[derive(Debug, Clone)]
pub struct ContentHead {
    mlp: Mlp,
}

impl ContentHead {
    pub fn new(vb: VarBuilder) -> Result<Self> {
        Ok(Self { mlp: Mlp::new(TAP_CHANNELS[3] * GRID * GRID, vb)? })
    }

    pub fn forward(&self, relu4_1: &Tensor) -> Result<Tensor> {
        let (b, c, h, w) = relu4_1.dims4()?;
        // [B, C, h, w] -> [B, C, 4, h/4, 4, w/4] -> mean over the cells -> [B, C * 16]
        let pooled = relu4_1.reshape((b, c, GRID, h / GRID, GRID, w / GRID))?.mean(5)?.mean(3)?;
        self.mlp.forward(&pooled.flatten_from(1)?)
    }
}

/// The supervised contrastive loss of the module doc. `z` `[N, d]` (normalised here), `labels` and
/// `anchors` of length N; returns a scalar of `z`'s type.
pub fn contrastive_loss(z: &Tensor, labels: &[usize], anchors: &[bool], tau: f64) -> Result<Tensor> {
    let n = z.dim(0)?;
    if labels.len() != n || anchors.len() != n {
        candle_core::bail!(
            "contrastive loss: {n} embeddings, {} labels, {} anchor flags",
            labels.len(),
            anchors.len()
        );
    }
    // positives[i][p] / (|P(i)| * anchors with a positive): the weight of log-ratio (i, p).
    let positives: Vec<Vec<bool>> =
        (0..n).map(|i| (0..n).map(|p| anchors[i] && p != i && labels[p] == labels[i]).collect()).collect();
    let counts: Vec<usize> = positives.iter().map(|row| row.iter().filter(|&&x| x).count()).collect();
    let active = counts.iter().filter(|&&c| c > 0).count();
    if active == 0 {
        return Tensor::zeros((), z.dtype(), z.device());
    }
    let weights: Vec<f64> = (0..n * n)
        .map(|k| match positives[k / n][k % n] {
            true => 1.0 / (counts[k / n] * active) as f64,
            false => 0.0,
        })
        .collect();
    let weights = Tensor::from_vec(weights, (n, n), z.device())?.to_dtype(z.dtype())?;
    let mut self_mask = vec![0f64; n * n];
    (0..n).for_each(|i| self_mask[i * n + i] = 1.0);
    let self_mask = Tensor::from_vec(self_mask, (n, n), z.device())?.to_dtype(z.dtype())?;

    let norm = (z.sqr()?.sum_keepdim(1)? + NORM_EPS)?.sqrt()?;
    let z = z.broadcast_div(&norm)?;
    // [N, d] x [d, N] -> [N, N] similarities / tau
    let logits = (z.matmul(&z.t()?)? / tau)?;
    // Row i's log-sum-exp over a != i: the diagonal is pushed far below every other logit (they lie
    // in [-1/tau, 1/tau]) so its exponential is exactly 0; the shift by the row maximum is a constant
    // of the row, detached, as it cancels in value and gradient.
    let masked = (&logits - (self_mask * (4.0 / tau + 1e4))?)?;
    let shift = masked.max_keepdim(1)?.detach();
    let lse = (masked.broadcast_sub(&shift)?.exp()?.sum_keepdim(1)?.log()? + &shift)?;
    // sum_{i, p} w_ip (lse_i - logit_ip)
    (weights * lse.broadcast_sub(&logits)?)?.sum_all()
}
