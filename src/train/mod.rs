//! `stylestream train`: StyA2K trained with the official objective (shared/docs/stya2k.md section 7)
//! on two image folders, producing checkpoints that `image`, `video` and `stream` load directly.
//!
//! - `data`: folders, the crop recipe, batches decoded on worker threads, deterministic by seed;
//! - `loss`: the global mean/std loss and the non-parametric A2K feature loss;
//! - `adam`: the optimizer, with its state saved in checkpoints;
//! - `trainee`: StyA2K with a frozen encoder and trainable variables;
//! - `state`: checkpoints, rotation, resume; `report`: loss CSV and sample grids.
pub mod adam;
pub mod data;
pub mod loss;
mod report;
mod state;
pub mod trainee;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use candle_core::{Device, Tensor};
use indicatif::{ProgressBar, ProgressStyle};

use crate::checkpoint::{CheckpointError, Encoder, TRAINING_STATE};
use data::{ImageFolder, Recipe, Sampler};
use loss::{Objective, Weights};
use trainee::Trainee;

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

/// Everything a run is defined by; stored in every checkpoint.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct TrainConfig {
    /// Content images (searched recursively).
    pub content: PathBuf,
    /// Style images (searched recursively; a single image is fine: every sample then uses it).
    pub style: PathBuf,
    /// Output folder: checkpoints, `loss.csv`, `samples/`, the final `stya2k.safetensors`.
    pub out: PathBuf,
    /// `random:SEED` or a file (see `checkpoint::Encoder`).
    pub encoder: String,
    pub steps: u64,
    pub batch: usize,
    pub recipe: Recipe,
    pub schedule: Schedule,
    pub weights: Weights,
    /// Seeds the initial weights, the data order, crops and flips.
    pub seed: u64,
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
        if self.batch == 0 || self.steps == 0 || self.checkpoint_every == 0 || self.sample_every == 0 {
            return bad("batch, steps and the checkpoint/sample intervals must be at least 1".into());
        }
        Ok(())
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
        check(self.weights == saved.weights, "loss weights");
        diff
    }
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
    // A seed describes a random encoder completely; a file's tensors travel in every checkpoint.
    let frozen_saved = if matches!(encoder, Encoder::Random(_)) { HashMap::new() } else { vgg.clone() };
    let trainee = Trainee::new(vgg, config.seed, device)?;
    let mut adam = adam::Adam::new(trainee.params.clone())?;
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
        let restored = trainee
            .load(&r.tensors)
            .and_then(|()| adam.restore(&format!("{TRAINING_STATE}adam."), &r.tensors, r.meta.adam_steps));
        restored.map_err(|e| TrainError::Resume { path: r.path.clone(), reason: e.to_string() })?;
        step = r.meta.step;
        eprintln!("resuming from {} (step {step})", r.path.display());
    }
    let mut log = report::LossLog::open(out, step)?;

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
    let meta =
        |step: u64, adam: &adam::Adam| state::Meta { step, adam_steps: adam.steps(), config: config.clone() };
    let save = |step: u64, adam: &adam::Adam| {
        state::save(out, &meta(step, adam), &encoder_text, trainee.tensors(), &frozen_saved, adam)
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
        let (objective, output) = train_step(&trainee, &batch, config.weights).map_err(at_step)?;
        let grads = objective.total.backward().map_err(at_step)?;
        adam.step(&grads, lr).map_err(at_step)?;
        step += 1;

        let total: f32 = objective.total.to_scalar().map_err(at_step)?;
        if !total.is_finite() {
            return Err(at_step(candle_core::Error::Msg(format!("the loss is {total}; lower --lr"))));
        }
        let seconds = started.elapsed().as_secs_f64();
        log.push(&report::Row {
            step,
            lr,
            total,
            global: objective.global,
            a2k: objective.a2k,
            seconds,
            samples_per_second: config.batch as f64 / seconds,
        })?;
        summary.first_loss.get_or_insert(total);
        summary.last_loss = Some(total);
        bar.set_message(format!(
            "loss {total:.4} (global {:.4}, a2k {:.4})",
            objective.global, objective.a2k
        ));
        bar.inc(1);
        if step % config.sample_every == 0 {
            report::sample_grid(out, step, &batch.content, &batch.style, &output)?;
        }
        if step % config.checkpoint_every == 0 || step == config.steps {
            summary.last_checkpoint = Some(save(step, &adam)?);
        }
    }
    bar.finish_and_clear();
    summary.step = step;
    if summary.interrupted {
        let already = summary.last_checkpoint.as_ref().is_some_and(|p| *p == state::path_for(out, step));
        if step > 0 && !already {
            summary.last_checkpoint = Some(save(step, &adam)?);
        }
    } else {
        let model = out.join("stya2k.safetensors");
        state::export(&model, &meta(step, &adam), &encoder_text, trainee.tensors(), &frozen_saved)?;
        summary.model = Some(model);
    }
    Ok(summary)
}

/// One forward pass: the objective and the stylised batch `[B, 3, crop, crop]` (detached).
fn train_step(
    trainee: &Trainee,
    batch: &data::Batch,
    weights: Weights,
) -> candle_core::Result<(Objective, Tensor)> {
    let vgg = trainee.model.encoder();
    let fc = vgg.forward(&batch.content)?;
    let fs = vgg.forward(&batch.style)?;
    let targets = loss::a2k_targets(&fc, &fs)?;
    let output = trainee.model.forward_pairs(&fc, &fs)?;
    let fo = vgg.forward(&output)?;
    Ok((Objective::new(&fo, &fs, &targets, weights)?, output.detach()))
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
