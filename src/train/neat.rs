//! NeAT under training (shared/docs/neat.md, "Training losses"): the generator (PAMA blocks and
//! decoder, built by `models::neat::Neat::new` on a frozen encoder), the projection heads l_s and l_c,
//! and three discriminators (domain, patch-simple, patch-complex).
//!
//! One step:
//! 1. Generator forward. Outputs `I_sc = prior(I_c, I_s) + D(T(E(I_c), E(I_s)))` for the pairs `(i, i)`
//!    of the batch and, with a batch of 2 or more, `(i, i + 1 mod B)`, so every output shares its style
//!    with one other output and its content with another (the contrastive positives); `I_cc` and `I_ss`
//!    for L_identity. The prior is image processing on the inputs (`crate::prior`, weight 0.5 in
//!    training) and carries no gradient.
//! 2. Discriminator step: each discriminator on real data vs the outputs *detached*, the non-saturating
//!    log loss (`discriminator`), one Adam over the three. They are separate networks, so their summed
//!    losses give each only its own gradient; no weights are needed between them.
//! 3. Generator step: the weighted objective of `neat_loss`, with the adversarial terms read from the
//!    discriminators just updated; a second Adam updates PAMA, decoder and the heads (the heads
//!    minimise the contrastive terms together with the generator).
//!
//! Every random draw inside a step (patch positions, style crops) is a function of `(seed, step)`, so a
//! resumed run repeats the steps exactly. Heads and discriminators are saved under
//! `checkpoint::TRAINING_STATE` in training checkpoints and left out of the exported bundle.
use std::collections::HashMap;

use candle_core::{Device, Module, Result, Tensor};
use candle_nn::VarBuilder;

use super::adam::Adam;
use super::contrastive::{contrastive_loss, ContentHead, StyleHead};
use super::data::Batch;
use super::discriminator::{
    discriminator_loss, generator_loss, CooccurrenceDiscriminator, DomainDiscriminator,
};
use super::neat_loss::{content_loss, identity_loss, style_loss, IdentityPair, Lambdas, Term};
use super::patch::{self, Patch, SobelMap};
use super::trainee::Trainable;
use super::{AdamSteps, Outcome, Trainee};
use crate::checkpoint::{NEAT, TRAINING_STATE};
use crate::models::neat::{Controls, Neat, NeatConfig};
use crate::models::vgg::Architecture;
use crate::nn::Conv3x3;

/// Taps the losses read: relu1_1 .. relu4_1.
const TAPS: usize = 4;

/// Loss CSV columns after the generator's terms: the discriminators' own losses.
const CRITIC_COLUMNS: [&str; 3] = ["d_adv", "d_patch_simple", "d_patch_complex"];

/// Everything NeAT's objective is set by; stored in every checkpoint's metadata.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct NeatSettings {
    pub lambdas: Lambdas,
    /// Terms removed from the objective (`--loss-off`); their networks are not trained.
    pub off: Vec<Term>,
    /// Temperature of both contrastive losses (ours: 0.2, a usual InfoNCE value).
    pub tau: f64,
    /// Side of the co-occurrence patches in pixels, a multiple of 8 (ours: 32, 1/8 of the 256 crop,
    /// the small end of the Swapping Autoencoder's 1/8 .. 1/4).
    pub patch_size: usize,
    /// Patches drawn per image for each of output targets, style targets and style references, split
    /// in halves by Sobel score (paper: 8).
    pub patches: usize,
    /// The discriminators' learning rate (the generator's schedule's decay applies to it too).
    pub lr_d: f64,
    /// The network (PAMA blocks, the training prior).
    pub network: NeatConfig,
}

impl Default for NeatSettings {
    fn default() -> Self {
        NeatSettings {
            lambdas: Lambdas::default(),
            off: Vec::new(),
            tau: 0.2,
            patch_size: 32,
            patches: 8,
            lr_d: 2e-4,
            network: NeatConfig::default(),
        }
    }
}

impl NeatSettings {
    /// Checks the settings for crops of `crop` pixels; the message names the flag.
    pub fn validate(&self, crop: usize) -> std::result::Result<(), String> {
        for term in Term::ALL {
            let l = self.lambdas.of(term);
            if !(l.is_finite() && l >= 0.0) {
                return Err(format!(
                    "the weight of `{}` is {l}; weights must be finite and >= 0",
                    term.column()
                ));
            }
        }
        let id = [self.lambdas.identity_pixel, self.lambdas.identity_feature];
        if id.iter().any(|l| !(l.is_finite() && *l >= 0.0)) {
            return Err(format!("identity weights {id:?}: must be finite and >= 0"));
        }
        if !(self.tau.is_finite() && self.tau > 0.0) {
            return Err(format!("--tau {}: must be positive", self.tau));
        }
        if self.patch_size < 8 || self.patch_size % 8 != 0 || self.patch_size > crop {
            return Err(format!(
                "--patch-size {}: must be a multiple of 8 (three 2x pools in the patch encoder), at most the crop {crop}",
                self.patch_size
            ));
        }
        if self.patches < 2 || self.patches % 2 != 0 {
            return Err(format!("--patches {}: must be even and at least 2 (two halves)", self.patches));
        }
        if !(self.lr_d.is_finite() && self.lr_d > 0.0) {
            return Err(format!("--lr-d {}: must be positive", self.lr_d));
        }
        Ok(())
    }

    pub fn on(&self, term: Term) -> bool {
        !self.off.contains(&term)
    }
}

/// The projection heads, keys `heads.style.*`, `heads.content.*` (under the training state).
pub struct Heads {
    pub style: StyleHead,
    pub content: ContentHead,
}

impl Heads {
    pub fn new(vb: VarBuilder) -> Result<Self> {
        Ok(Self { style: StyleHead::new(vb.pp("style"))?, content: ContentHead::new(vb.pp("content"))? })
    }
}

/// The discriminators, keys `critics.{domain,patch_simple,patch_complex}.*` (under the training state).
pub struct Critics {
    pub domain: DomainDiscriminator,
    /// Judges the low-Sobel ("simple") half of the patches.
    pub simple: CooccurrenceDiscriminator,
    /// Judges the high-Sobel ("complex") half.
    pub complex: CooccurrenceDiscriminator,
}

impl Critics {
    pub fn new(vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            domain: DomainDiscriminator::new(vb.pp("domain"))?,
            simple: CooccurrenceDiscriminator::new(vb.pp("patch_simple"))?,
            complex: CooccurrenceDiscriminator::new(vb.pp("patch_complex"))?,
        })
    }
}

/// The patches one output gives one co-occurrence discriminator, each `[n, 3, p, p]`.
pub struct PatchSet {
    /// Output patches (in the generator's graph).
    pub fake: Tensor,
    /// Style patches judged as real.
    pub real: Tensor,
    /// Style patches both are judged against.
    pub references: Tensor,
}

/// The generator's forward pass of one step, shared by the two updates.
pub struct Forward {
    /// The stylised pairs `[N, 3, H, W]`, in the graph; the first B rows are the pairs `(i, i)`.
    pub outputs: Tensor,
    /// `(content, style)` batch indices of each output row.
    pub pairs: Vec<(usize, usize)>,
    /// `I_cc` and `I_ss`, `[B, 3, H, W]` each (None with identity off).
    identity: Option<(Tensor, Tensor)>,
    /// Per output row: the simple and the complex half (empty with both patch terms off).
    patches: Vec<[PatchSet; 2]>,
    /// Two random half-size crops of each style image, `[2B, 3, H/2, W/2]` (style `j` at rows 2j, 2j+1).
    style_crops: Option<Tensor>,
    content: Tensor,
    style: Tensor,
    /// Encoder taps relu1_1 .. relu4_1 of the content and style batches.
    fc: Vec<Tensor>,
    fs: Vec<Tensor>,
}

pub struct NeatTrainee {
    pub generator: Trainable<Neat>,
    pub heads: Trainable<Heads>,
    pub critics: Trainable<Critics>,
    /// The frozen encoder's conv4_2 (`32` of the normalised VGG-19, `features.19` of VGG-16), for L_c.
    conv4_2: Conv3x3,
    adam_g: Adam,
    adam_d: Adam,
    settings: NeatSettings,
    /// The generator schedule's base rate: the discriminators' rate decays with the same factor.
    base_lr: f64,
    seed: u64,
    /// The encoder tensors NeAT runs, which its bundles must hold (none for VGG-16: bundles name the
    /// compiled-in file by hash).
    encoder: HashMap<String, Tensor>,
}

/// Rows `rows` of every tap.
fn select(taps: &[Tensor], rows: &[u32]) -> Result<Vec<Tensor>> {
    let idx = Tensor::new(rows, taps[0].device())?;
    taps.iter().map(|t| t.index_select(&idx, 0)).collect()
}

fn sample(t: &Tensor, i: usize) -> Result<Tensor> {
    t.narrow(0, i, 1)
}

impl NeatTrainee {
    /// NeAT on the frozen encoder tensors `vgg` (`vgg.` keys, through conv4_2), fresh heads and
    /// discriminators; initial weights drawn from `seed`.
    pub fn new(
        vgg: &HashMap<String, Tensor>,
        seed: u64,
        settings: NeatSettings,
        base_lr: f64,
        device: &Device,
    ) -> Result<Self> {
        let state = TRAINING_STATE.trim_end_matches('.');
        let architecture = Architecture::of_keys(vgg.keys());
        let generator =
            Trainable::new(vgg, seed, device, |vb| Neat::with_encoder(settings.network, architecture, vb))?;
        let heads = Trainable::new(vgg, seed, device, |vb| Heads::new(vb.pp(state).pp("heads")))?;
        let critics = Trainable::new(vgg, seed, device, |vb| Critics::new(vb.pp(state).pp("critics")))?;
        let (conv4_2_key, padding) = architecture.conv4_2();
        let conv4_2 = Trainable::new(vgg, seed, device, |vb| {
            Conv3x3::new(512, 512, padding, vb.pp("vgg").pp(conv4_2_key))
        })
        .map_err(|e| candle_core::Error::Msg(format!("L_c needs the encoder's conv4_2: {e}")))?
        .model;
        let encoder = match architecture {
            Architecture::Torchvision16 => HashMap::new(),
            Architecture::Normalised19 => {
                generator.frozen_used.iter().map(|k| (k.clone(), vgg[k].clone())).collect()
            }
        };
        let adam_g = Adam::new([generator.params.clone(), heads.params.clone()].concat())?;
        let adam_d = Adam::new(critics.params.clone())?;
        Ok(Self { generator, heads, critics, conv4_2, adam_g, adam_d, settings, base_lr, seed, encoder })
    }

    /// Step 1: the generator's outputs and everything both updates read, for training step `step`.
    pub fn forward(&self, batch: &Batch, step: u64) -> Result<Forward> {
        let neat = &self.generator.model;
        let vgg = neat.encoder();
        let (b, _, h, w) = batch.content.dims4()?;
        let styles =
            (0..b).map(|j| neat.encode_style(&sample(&batch.style, j)?)).collect::<Result<Vec<_>>>()?;
        let mut pairs: Vec<(usize, usize)> = (0..b).map(|i| (i, i)).collect();
        if b >= 2 {
            pairs.extend((0..b).map(|i| (i, (i + 1) % b)));
        }
        let outputs = pairs
            .iter()
            .map(|&(i, j)| neat.stylize(&sample(&batch.content, i)?, &styles[j], Controls::default()))
            .collect::<Result<Vec<_>>>()?;
        let outputs = Tensor::cat(&outputs, 0)?;

        let identity = match self.settings.on(Term::Identity) {
            false => None,
            true => {
                let with_itself = |images: &Tensor| -> Result<Tensor> {
                    let rows = (0..b)
                        .map(|i| {
                            let x = sample(images, i)?;
                            neat.stylize(&x, &neat.encode_style(&x)?, Controls::default())
                        })
                        .collect::<Result<Vec<_>>>()?;
                    Tensor::cat(&rows, 0)
                };
                Some((with_itself(&batch.content)?, with_itself(&batch.style)?))
            }
        };

        let (n, p) = (self.settings.patches, self.settings.patch_size);
        let mut patches = Vec::new();
        if self.settings.on(Term::PatchSimple) || self.settings.on(Term::PatchComplex) {
            let sobel = |t: &Tensor| (0..b).map(|i| SobelMap::of(&sample(t, i)?)).collect::<Result<Vec<_>>>();
            let (sobel_c, sobel_s) = (sobel(&batch.content)?, sobel(&batch.style)?);
            for (k, &(i, j)) in pairs.iter().enumerate() {
                let draw =
                    |role: &str| patch::sample(self.seed, &format!("patch-{role}-{k}"), step, n, p, h, w);
                let (out, real, refs) = (
                    patch::split(&sobel_c[i], &draw("output"), p),
                    patch::split(&sobel_s[j], &draw("real"), p),
                    patch::split(&sobel_s[j], &draw("reference"), p),
                );
                let (o, s) = (sample(&outputs, k)?, sample(&batch.style, j)?);
                let set = |fake: &[Patch], real: &[Patch], references: &[Patch]| -> Result<PatchSet> {
                    Ok(PatchSet {
                        fake: patch::crop(&o, fake, p)?,
                        real: patch::crop(&s, real, p)?,
                        references: patch::crop(&s, references, p)?,
                    })
                };
                patches.push([set(&out.0, &real.0, &refs.0)?, set(&out.1, &real.1, &refs.1)?]);
            }
        }

        let style_crops = match self.settings.on(Term::StyleContra) {
            false => None,
            true => {
                let half = h.min(w) / 2;
                let crops = (0..b)
                    .map(|j| {
                        let at = patch::sample(self.seed, &format!("style-crop-{j}"), step, 2, half, h, w);
                        patch::crop(&sample(&batch.style, j)?, &at, half)
                    })
                    .collect::<Result<Vec<_>>>()?;
                Some(Tensor::cat(&crops, 0)?)
            }
        };

        Ok(Forward {
            outputs,
            pairs,
            identity,
            patches,
            style_crops,
            content: batch.content.clone(),
            style: batch.style.clone(),
            fc: vgg.forward_to(&batch.content, TAPS)?,
            fs: vgg.forward_to(&batch.style, TAPS)?,
        })
    }

    /// Step 2: one update of the discriminators at learning rate `lr`; returns their losses
    /// (adv, patch simple, patch complex; None where the term is off). Only discriminator weights move.
    pub fn discriminator_step(&mut self, fwd: &Forward, lr: f64) -> Result<[Option<f32>; 3]> {
        let critics = &self.critics.model;
        let fake = fwd.outputs.detach();
        let mut losses: [Option<Tensor>; 3] = [None, None, None];
        if self.settings.on(Term::Adv) {
            losses[0] = Some(discriminator_loss(
                &critics.domain.forward(&fwd.style)?,
                &critics.domain.forward(&fake)?,
            )?);
        }
        for (half, (term, d)) in
            [(Term::PatchSimple, &critics.simple), (Term::PatchComplex, &critics.complex)]
                .into_iter()
                .enumerate()
        {
            if self.settings.on(term) {
                let per_output = fwd
                    .patches
                    .iter()
                    .map(|sets| {
                        let s = &sets[half];
                        discriminator_loss(
                            &d.forward(&s.real, &s.references)?,
                            &d.forward(&s.fake.detach(), &s.references)?,
                        )
                    })
                    .collect::<Result<Vec<_>>>()?;
                losses[half + 1] = Some(Tensor::stack(&per_output, 0)?.mean_all()?);
            }
        }
        let active: Vec<&Tensor> = losses.iter().flatten().collect();
        if let Some((first, rest)) = active.split_first() {
            let total = rest.iter().try_fold((*first).clone(), |acc, l| acc + *l)?;
            self.adam_d.step(&total.backward()?, lr)?;
        }
        let mut values = [None; 3];
        for (v, l) in values.iter_mut().zip(&losses) {
            *v = l.as_ref().map(|l| l.to_scalar::<f32>()).transpose()?;
        }
        Ok(values)
    }

    /// The generator's terms on `fwd`, in the order of [`Term::ALL`] (None where off), unweighted.
    pub fn generator_terms(&self, fwd: &Forward) -> Result<Vec<Option<Tensor>>> {
        let vgg = self.generator.model.encoder();
        let (heads, critics) = (&self.heads.model, &self.critics.model);
        let on = |t| self.settings.on(t);
        let fo = vgg.forward_to(&fwd.outputs, TAPS)?;
        let contents: Vec<u32> = fwd.pairs.iter().map(|p| p.0 as u32).collect();
        let styles: Vec<u32> = fwd.pairs.iter().map(|p| p.1 as u32).collect();
        let patch_term = |half: usize, d: &CooccurrenceDiscriminator| -> Result<Tensor> {
            let per_output = fwd
                .patches
                .iter()
                .map(|sets| generator_loss(&d.forward(&sets[half].fake, &sets[half].references)?))
                .collect::<Result<Vec<_>>>()?;
            Tensor::stack(&per_output, 0)?.mean_all()
        };
        Term::ALL
            .iter()
            .map(|&term| {
                if !on(term) {
                    return Ok(None);
                }
                let value = match term {
                    Term::Style => style_loss(&fo, &select(&fwd.fs, &styles)?)?,
                    Term::Adv => generator_loss(&critics.domain.forward(&fwd.outputs)?)?,
                    Term::Content => content_loss(&self.conv4_2, &fo[3], &select(&fwd.fc, &contents)?[3])?,
                    Term::Identity => {
                        let (icc, iss) = fwd.identity.as_ref().expect("made when identity is on");
                        let (tcc, tss) = (vgg.forward_to(icc, TAPS)?, vgg.forward_to(iss, TAPS)?);
                        let pairs = [
                            IdentityPair {
                                output: icc,
                                output_taps: &tcc,
                                image: &fwd.content,
                                image_taps: &fwd.fc,
                            },
                            IdentityPair {
                                output: iss,
                                output_taps: &tss,
                                image: &fwd.style,
                                image_taps: &fwd.fs,
                            },
                        ];
                        let l = &self.settings.lambdas;
                        identity_loss(&pairs, l.identity_pixel, l.identity_feature)?
                    }
                    Term::StyleContra => {
                        let crops = fwd.style_crops.as_ref().expect("made when style-contra is on");
                        let z = Tensor::cat(
                            &[heads.style.forward(&fo)?, heads.style.forward(&vgg.forward_to(crops, TAPS)?)?],
                            0,
                        )?;
                        let crop_styles = (0..crops.dim(0)? / 2).flat_map(|j| [j, j]);
                        let labels: Vec<usize> =
                            styles.iter().map(|&j| j as usize).chain(crop_styles).collect();
                        let anchors: Vec<bool> = (0..labels.len()).map(|r| r < styles.len()).collect();
                        contrastive_loss(&z, &labels, &anchors, self.settings.tau)?
                    }
                    Term::ContentContra => {
                        let labels: Vec<usize> = contents.iter().map(|&i| i as usize).collect();
                        let z = heads.content.forward(&fo[3])?;
                        contrastive_loss(&z, &labels, &vec![true; labels.len()], self.settings.tau)?
                    }
                    Term::PatchSimple => patch_term(0, &critics.simple)?,
                    Term::PatchComplex => patch_term(1, &critics.complex)?,
                };
                Ok(Some(value))
            })
            .collect()
    }

    /// Step 3: one update of the generator and heads at learning rate `lr`; returns the weighted
    /// objective and its unweighted terms (0 where off). Only generator and head weights move.
    pub fn generator_step(&mut self, fwd: &Forward, lr: f64) -> Result<(f32, Vec<f32>)> {
        let terms = self.generator_terms(fwd)?;
        let mut total = Tensor::zeros((), fwd.outputs.dtype(), fwd.outputs.device())?;
        for (term, value) in Term::ALL.iter().zip(&terms) {
            if let Some(v) = value {
                total = (total + (v * self.settings.lambdas.of(*term))?)?;
            }
        }
        self.adam_g.step(&total.backward()?, lr)?;
        let values = terms
            .iter()
            .map(|t| t.as_ref().map_or(Ok(0.0), |t| t.to_scalar::<f32>()))
            .collect::<Result<Vec<_>>>()?;
        Ok((total.to_scalar()?, values))
    }

    fn adam_prefix(which: &str) -> String {
        format!("{TRAINING_STATE}adam.{which}.")
    }
}

impl Trainee for NeatTrainee {
    fn model(&self) -> &'static str {
        NEAT
    }

    fn network_config(&self) -> String {
        serde_json::to_string(&self.settings.network).expect("the config serialises")
    }

    fn terms(&self) -> Vec<&'static str> {
        Term::ALL.iter().map(|t| t.column()).chain(CRITIC_COLUMNS).collect()
    }

    fn step(&mut self, batch: &Batch, step: u64, lr: f64) -> Result<Outcome> {
        let fwd = self.forward(batch, step)?;
        let critic = self.discriminator_step(&fwd, self.settings.lr_d * lr / self.base_lr)?;
        let (total, mut terms) = self.generator_step(&fwd, lr)?;
        terms.extend(critic.iter().map(|c| c.unwrap_or(0.0)));
        let b = batch.content.dim(0)?;
        Ok(Outcome { total, terms, output: fwd.outputs.narrow(0, 0, b)?.detach() })
    }

    fn adam_steps(&self) -> AdamSteps {
        AdamSteps { generator: self.adam_g.steps(), critic: self.adam_d.steps() }
    }

    fn checkpoint(&self) -> HashMap<String, Tensor> {
        let mut tensors = self.export();
        tensors.extend(self.heads.tensors());
        tensors.extend(self.critics.tensors());
        tensors.extend(self.adam_g.state(&Self::adam_prefix("g")));
        tensors.extend(self.adam_d.state(&Self::adam_prefix("d")));
        tensors
    }

    fn export(&self) -> HashMap<String, Tensor> {
        let mut tensors = self.generator.tensors();
        tensors.extend(self.encoder.iter().map(|(k, v)| (k.clone(), v.clone())));
        tensors
    }

    fn initialise(&mut self, tensors: &HashMap<String, Tensor>) -> Result<()> {
        self.generator.load(tensors)
    }

    fn restore(&mut self, tensors: &HashMap<String, Tensor>, steps: AdamSteps) -> Result<()> {
        self.generator.load(tensors)?;
        self.heads.load(tensors)?;
        self.critics.load(tensors)?;
        self.adam_g.restore(&Self::adam_prefix("g"), tensors, steps.generator)?;
        self.adam_d.restore(&Self::adam_prefix("d"), tensors, steps.critic)
    }
}
