//! `stylestream train`: StyA2K trained with the official objective (shared/docs/stya2k.md section 7) or
//! NeAT with the paper's full objective (shared/docs/neat.md, "Training losses"), on two image folders,
//! producing checkpoints that `image`, `video` and `stream` load directly.
//!
//! The loop (this file) is model-agnostic: it drives a [`Trainee`] and owns the data, the schedule,
//! checkpoints, resume, progress, the loss CSV and sample grids.
//! - `data`: folders, the crop recipe, batches decoded on worker threads, deterministic by seed;
//! - `adam`: the optimizer, with its state saved in checkpoints;
//! - `trainee`: a network built by its own constructor with a frozen encoder and trainable variables;
//! - `stya2k`, `loss`: StyA2K's trainee and its objective (global mean/std + A2K feature loss);
//! - `neat`, `neat_loss`, `contrastive`, `discriminator`, `patch`: NeAT's trainee, its generator
//!   losses, the projection heads and contrastive loss, the GAN discriminators, and the Sobel-guided
//!   patch sampling;
//! - `state`: checkpoints, rotation, resume; `report`: loss CSV and sample grids.
pub mod adam;
pub mod contrastive;
pub mod data;
pub mod discriminator;
pub mod loss;
pub mod neat;
pub mod neat_loss;
pub mod patch;
mod report;
mod state;
pub mod stya2k;
pub mod trainee;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use candle_core::{Device, Tensor};
use indicatif::{ProgressBar, ProgressStyle};

use crate::checkpoint::{CheckpointError, Encoder};
use data::{Batch, ImageFolder, Recipe, Sampler};

/// Batches decoded ahead of the training step.
const PREFETCH: usize = 2;

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("{path}: {reason}")]
    Folder { path: PathBuf, reason: String },
    #[error("{path}: no readable JPEG, PNG or WebP image ({skipped} unreadable skipped)")]
    EmptyFolder { path: PathBuf, skipped: usize },
    #[error("{path}: {reason}")]
    Image { path: PathBuf, reason: String },
    #[error("{0}")]
    Config(String),
    #[error("{path}: {reason}")]
    Resume { path: PathBuf, reason: String },
    /// The `--init` bundle does not fit the run.
    #[error("{path} (--init): {reason}")]
    Init { path: PathBuf, reason: String },
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("training step {step}: {source}")]
    Step { step: u64, source: candle_core::Error },
    #[error(transparent)]
    Tensor(#[from] candle_core::Error),
}

/// The learning rate schedule: the official "linear" policy as it actually behaves, a step decay.
/// `lr(step) = lr * decay^k`, `k` the number of boundaries `decay_start + j * decay_every` (j >= 0)
/// at or before `step`. The official 5 epochs (2 + 3 decaying) are `decay_start = 0.4 * steps`,
/// `decay_every = 0.2 * steps`, `decay = 0.3`: factors 1, 1, 0.3, 0.09, 0.027.
#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct Schedule {
    pub lr: f64,
    pub decay: f64,
    pub decay_start: u64,
    pub decay_every: u64,
}

impl Schedule {
    /// The official shape for a run of `steps`.
    pub fn official(lr: f64, steps: u64) -> Self {
        Self { lr, decay: 0.3, decay_start: steps * 2 / 5, decay_every: (steps / 5).max(1) }
    }

    pub fn at(&self, step: u64) -> f64 {
        if step < self.decay_start {
            return self.lr;
        }
        let k = (step - self.decay_start) / self.decay_every.max(1) + 1;
        self.lr * self.decay.powi(k.min(i32::MAX as u64) as i32)
    }
}

/// Which network is trained, with its objective's settings.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq)]
#[serde(rename_all = "lowercase")]
pub enum ModelSettings {
    Stya2k(loss::Weights),
    Neat(neat::NeatSettings),
}

/// Everything a run is defined by; stored in every checkpoint.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct TrainConfig {
    /// Content images (searched recursively).
    pub content: PathBuf,
    /// Style images (searched recursively; a single image is fine: every sample then uses it).
    pub style: PathBuf,
    /// Output folder: checkpoints, `loss.csv`, `samples/`, the final `<model>.safetensors`.
    pub out: PathBuf,
    /// `vgg16`, `random:SEED` or a file (see `checkpoint::Encoder`).
    pub encoder: String,
    pub steps: u64,
    pub batch: usize,
    pub recipe: Recipe,
    /// The (generator's) learning rate schedule.
    pub schedule: Schedule,
    pub model: ModelSettings,
    /// Seeds the initial weights, the data order, crops and flips.
    pub seed: u64,
    /// A bundle or checkpoint of the same model and encoder whose weights replace the seeded ones at
    /// step 0 (fine-tuning; optimizers, heads and discriminators start fresh).
    #[serde(default)]
    pub init: Option<PathBuf>,
    pub checkpoint_every: u64,
    /// Checkpoints kept (the newest).
    pub keep: usize,
    pub sample_every: u64,
}

impl TrainConfig {
    fn validate(&self) -> Result<(), TrainError> {
        let Recipe { load, crop } = self.recipe;
        let bad = |m: String| Err(TrainError::Config(m));
        if crop < 64 || crop % 64 != 0 {
            return bad(format!(
                "crop {crop}: must be a multiple of 64 (whole attention patches at every level)"
            ));
        }
        if load < crop {
            return bad(format!("load size {load} is smaller than the crop {crop}"));
        }
        if !(self.schedule.lr.is_finite() && self.schedule.lr >= 0.0) {
            return bad(format!("learning rate {}: must be finite and >= 0", self.schedule.lr));
        }
        if self.batch == 0 || self.steps == 0 || self.checkpoint_every == 0 || self.sample_every == 0 {
            return bad("batch, steps and the checkpoint/sample intervals must be at least 1".into());
        }
        match &self.model {
            ModelSettings::Stya2k(_) => Ok(()),
            ModelSettings::Neat(settings) => settings.validate(crop).map_err(TrainError::Config),
        }
    }

    /// Fields that define the trajectory: a resumed run must agree on them.
    fn trajectory_differences(&self, saved: &TrainConfig) -> Vec<&'static str> {
        let mut diff = Vec::new();
        let mut check = |same: bool, name| {
            if !same {
                diff.push(name);
            }
        };
        check(self.content == saved.content, "content");
        check(self.style == saved.style, "style");
        check(self.encoder == saved.encoder, "encoder");
        check(self.batch == saved.batch, "batch");
        check(self.recipe == saved.recipe, "load/crop");
        check(self.seed == saved.seed, "seed");
        check(self.model == saved.model, "model or loss settings");
        diff
    }
}

/// Steps taken by a trainee's optimizers (Adam's bias-correction exponents), saved in checkpoints.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AdamSteps {
    /// The generator's (for StyA2K, the only) optimizer.
    pub generator: u64,
    /// The discriminators' optimizer (0 where there is none).
    pub critic: u64,
}

/// What one training step reports.
pub struct Outcome {
    /// The (generator's) objective, the scalar that was minimised.
    pub total: f32,
    /// The objective's terms, in the order of [`Trainee::terms`].
    pub terms: Vec<f32>,
    /// The stylised batch `[B, 3, crop, crop]`, detached (for the sample grids).
    pub output: Tensor,
}

/// A network under training, as the loop drives it. Implementations own their optimizers.
pub trait Trainee {
    /// `stylestream.model` of its bundles; also names the exported `<model>.safetensors`.
    fn model(&self) -> &'static str;
    /// `stylestream.config` of its bundles (the network's configuration, JSON).
    fn network_config(&self) -> String;
    /// Names of the objective's terms: the loss CSV's columns after `total`.
    fn terms(&self) -> Vec<&'static str>;
    /// One optimisation step on `batch`; `step` is the 1-based step being taken (it seeds any
    /// sampling inside the step, so a resumed run repeats it exactly), `lr` the generator's rate.
    fn step(&mut self, batch: &Batch, step: u64, lr: f64) -> candle_core::Result<Outcome>;
    fn adam_steps(&self) -> AdamSteps;
    /// Everything a resume needs: the inference tensors plus the training state (under
    /// `checkpoint::TRAINING_STATE`).
    fn checkpoint(&self) -> HashMap<String, Tensor>;
    /// The tensors of the inference bundle.
    fn export(&self) -> HashMap<String, Tensor>;
    /// Overwrites the network's weights with those of `tensors` (a bundle's inference tensors); the
    /// training state stays as built.
    fn initialise(&mut self, tensors: &HashMap<String, Tensor>) -> candle_core::Result<()>;
    /// Restores what [`Trainee::checkpoint`] saved.
    fn restore(&mut self, tensors: &HashMap<String, Tensor>, steps: AdamSteps) -> candle_core::Result<()>;
}

/// How a run ended.
#[derive(Debug)]
pub struct Summary {
    /// Steps completed (including those before a resume).
    pub step: u64,
    pub resumed_from: Option<PathBuf>,
    pub last_checkpoint: Option<PathBuf>,
    /// The exported model, when the run reached its last step.
    pub model: Option<PathBuf>,
    pub interrupted: bool,
    pub first_loss: Option<f32>,
    pub last_loss: Option<f32>,
}

/// Builds the trainee `config.model` asks for, on the encoder `vgg`.
fn trainee(
    config: &TrainConfig,
    encoder: &Encoder,
    vgg: HashMap<String, Tensor>,
    device: &Device,
) -> Result<Box<dyn Trainee>, TrainError> {
    Ok(match &config.model {
        ModelSettings::Stya2k(weights) => {
            // A seed describes a random encoder completely, and VGG-16 is compiled in (bundles name it
            // by hash); a file's tensors travel in every checkpoint.
            let frozen_saved = match encoder {
                Encoder::Random(_) | Encoder::Vgg16 => HashMap::new(),
                Encoder::File(_) => vgg.clone(),
            };
            Box::new(stya2k::Stya2kTrainee::new(&vgg, frozen_saved, config.seed, *weights, device)?)
        }
        ModelSettings::Neat(settings) => {
            Box::new(neat::NeatTrainee::new(&vgg, config.seed, settings.clone(), config.schedule.lr, device)?)
        }
    })
}

/// Loads the weights of bundle `path` into `trainee`, which must be the same model on the same encoder.
fn initialise(trainee: &mut dyn Trainee, path: &Path, encoder: &str) -> Result<(), TrainError> {
    let (info, tensors) = crate::checkpoint::read_bundle(path)?;
    let refuse = |reason: String| TrainError::Init { path: path.to_path_buf(), reason };
    if info.model != trainee.model() {
        return Err(refuse(format!("holds {}, this run trains {}", info.model, trainee.model())));
    }
    if info.encoder != encoder {
        return Err(refuse(format!("was trained on encoder {}, this run uses {encoder}", info.encoder)));
    }
    if info.config != trainee.network_config() {
        let run = trainee.network_config();
        return Err(refuse(format!("has network configuration {}, this run {run}", info.config)));
    }
    trainee.initialise(&tensors).map_err(|e| refuse(e.to_string()))
}

/// Trains until `config.steps` or until `interrupt` is set (then a checkpoint is saved first).
/// With `resume`, continues from the newest readable checkpoint in the output folder; without it,
/// refuses a folder that already holds checkpoints unless `overwrite`.
pub fn run(
    config: TrainConfig,
    resume: bool,
    overwrite: bool,
    device: &Device,
    interrupt: &AtomicBool,
) -> Result<Summary, TrainError> {
    config.validate()?;
    let out = &config.out;
    std::fs::create_dir_all(out).map_err(|source| TrainError::Io { path: out.clone(), source })?;
    let resumed = if resume { state::latest(out)? } else { None };
    if !resume && !overwrite && state::latest(out)?.is_some() {
        return Err(TrainError::Config(format!(
            "{}: holds checkpoints of an earlier run (pass --resume to continue it, --overwrite to start over)",
            out.display()
        )));
    }

    let content = ImageFolder::scan(&config.content, config.recipe.crop)?;
    let style = ImageFolder::scan(&config.style, config.recipe.crop)?;
    for f in [&content, &style] {
        eprintln!(
            "{}: {} images ({} unreadable skipped, {} smaller than the crop are upscaled)",
            f.root.display(),
            f.files.len(),
            f.skipped,
            f.small
        );
    }

    let encoder: Encoder = config.encoder.parse().map_err(TrainError::Config)?;
    let (encoder_text, vgg) = encoder.load()?;
    let mut trainee = trainee(&config, &encoder, vgg, device)?;
    let mut step = 0;
    if let Some(r) = &resumed {
        let differs = config.trajectory_differences(&r.meta.config);
        if !differs.is_empty() {
            return Err(TrainError::Resume {
                path: r.path.clone(),
                reason: format!(
                    "was trained with a different {}; resume with the same settings",
                    differs.join(", ")
                ),
            });
        }
        let steps = AdamSteps { generator: r.meta.adam_steps, critic: r.meta.critic_adam_steps };
        trainee
            .restore(&r.tensors, steps)
            .map_err(|e| TrainError::Resume { path: r.path.clone(), reason: e.to_string() })?;
        step = r.meta.step;
        eprintln!("resuming from {} (step {step})", r.path.display());
    } else if let Some(path) = &config.init {
        initialise(trainee.as_mut(), path, &encoder_text)?;
        eprintln!("starting from the weights of {}", path.display());
    }
    let terms = trainee.terms();
    let mut log = report::LossLog::open(out, step, &terms)?;

    let sampler = Arc::new(Sampler::new(content, style, config.recipe, config.seed));
    let (batches, _loader) = data::spawn_batches(sampler, config.batch, step, PREFETCH, device.clone());
    let bar = progress_bar(config.steps, step);
    let mut summary = Summary {
        step,
        resumed_from: resumed.map(|r| r.path),
        last_checkpoint: None,
        model: None,
        interrupted: false,
        first_loss: None,
        last_loss: None,
    };
    let meta = |step: u64, trainee: &dyn Trainee| {
        let AdamSteps { generator, critic } = trainee.adam_steps();
        state::Meta { step, adam_steps: generator, critic_adam_steps: critic, config: config.clone() }
    };
    let save = |step: u64, trainee: &dyn Trainee| {
        let bundle = state::Bundle::new(trainee, &encoder_text);
        state::save(out, &meta(step, trainee), &bundle, trainee.checkpoint())
    };

    while step < config.steps {
        if interrupt.load(Ordering::SeqCst) {
            summary.interrupted = true;
            break;
        }
        let started = Instant::now();
        let batch = batches.recv().map_err(|_| TrainError::Config("the data loader stopped".into()))??;
        let lr = config.schedule.at(step);
        let this_step = step + 1;
        let at_step = move |source| TrainError::Step { step: this_step, source };
        let outcome = trainee.step(&batch, this_step, lr).map_err(at_step)?;
        step += 1;

        let total = outcome.total;
        if !total.is_finite() {
            return Err(at_step(candle_core::Error::Msg(format!("the loss is {total}; lower --lr"))));
        }
        let seconds = started.elapsed().as_secs_f64();
        log.push(&report::Row {
            step,
            lr,
            total,
            terms: &outcome.terms,
            seconds,
            samples_per_second: config.batch as f64 / seconds,
        })?;
        summary.first_loss.get_or_insert(total);
        summary.last_loss = Some(total);
        let shown: Vec<String> =
            terms.iter().zip(&outcome.terms).take(3).map(|(n, v)| format!("{n} {v:.4}")).collect();
        bar.set_message(format!("loss {total:.4} ({})", shown.join(", ")));
        bar.inc(1);
        if step % config.sample_every == 0 {
            report::sample_grid(out, step, &batch.content, &batch.style, &outcome.output)?;
        }
        if step % config.checkpoint_every == 0 || step == config.steps {
            summary.last_checkpoint = Some(save(step, trainee.as_ref())?);
        }
    }
    bar.finish_and_clear();
    summary.step = step;
    if summary.interrupted {
        let already = summary.last_checkpoint.as_ref().is_some_and(|p| *p == state::path_for(out, step));
        if step > 0 && !already {
            summary.last_checkpoint = Some(save(step, trainee.as_ref())?);
        }
    } else {
        let model = out.join(format!("{}.safetensors", trainee.model()));
        let bundle = state::Bundle::new(trainee.as_ref(), &encoder_text);
        state::export(&model, &meta(step, trainee.as_ref()), &bundle, trainee.export())?;
        summary.model = Some(model);
    }
    Ok(summary)
}

fn progress_bar(steps: u64, done: u64) -> ProgressBar {
    let bar = ProgressBar::new(steps).with_position(done);
    let style = ProgressStyle::with_template(
        "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} steps {per_sec} {msg}",
    )
    .expect("the template is valid");
    bar.set_style(style);
    bar
}

/// The checkpoint a run in `out` would resume from (for tools and tests).
pub fn latest_checkpoint(out: &Path) -> Result<Option<PathBuf>, TrainError> {
    Ok(state::latest(out)?.map(|r| r.path))
}
