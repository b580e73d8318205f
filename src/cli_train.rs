//! The `train` subcommand: arguments and the run summary.
use std::path::PathBuf;

use anyhow::{Context, Result};

use crate::train::data::Recipe;
use crate::train::loss::Weights;
use crate::train::{self, Schedule, TrainConfig};

#[derive(Debug, clap::Args)]
pub struct TrainArgs {
    /// Folder of content images (JPEG/PNG/WebP, searched recursively; unreadable files are skipped).
    #[arg(long)]
    pub content: PathBuf,
    /// Folder of style images (one image is fine: every content image is then paired with it).
    #[arg(long)]
    pub style: PathBuf,
    /// Output folder: step-N.safetensors checkpoints, loss.csv, samples/, and stya2k.safetensors at the end.
    #[arg(short, long)]
    pub out: PathBuf,
    /// Frozen encoder: `random:SEED` (fixed random VGG-19, only the seed is stored), an official
    /// vgg_normalised.pth, or a bundle whose encoder to reuse.
    #[arg(long, default_value = "random:0", value_name = "random:SEED|PATH")]
    pub encoder: String,
    /// Training steps (optimizer updates).
    #[arg(long, default_value_t = 160_000)]
    pub steps: u64,
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub batch: u64,
    /// Both images are resized to LOAD x LOAD (aspect ignored, as the official recipe) ...
    #[arg(long, default_value_t = 512, value_parser = clap::value_parser!(u64).range(64..=4096))]
    pub load_size: u64,
    /// ... then a random CROP x CROP window is taken (a multiple of 64) and flipped at random.
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u64).range(64..=4096))]
    pub crop: u64,
    /// Adam learning rate.
    #[arg(long, default_value_t = 2e-4)]
    pub lr: f64,
    /// Learning-rate decay factor; the official schedule decays from 40% of the steps, every 20%.
    #[arg(long, default_value_t = 0.3)]
    pub lr_decay: f64,
    /// Step of the first decay (default: 40% of --steps).
    #[arg(long)]
    pub lr_decay_start: Option<u64>,
    /// Steps between decays (default: 20% of --steps).
    #[arg(long)]
    pub lr_decay_every: Option<u64>,
    /// Weight of the global mean/std loss.
    #[arg(long, default_value_t = 10.0)]
    pub lambda_global: f64,
    /// Weight of the A2K feature loss.
    #[arg(long, default_value_t = 1.25)]
    pub lambda_a2k: f64,
    /// Seeds the initial weights, data order, crops and flips.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Write a checkpoint every N steps (and at the last step, and on Ctrl-C).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..))]
    pub checkpoint_every: u64,
    /// Checkpoints kept (older ones are deleted).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..))]
    pub keep: u64,
    /// Write a content | style | output grid every N steps.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u64).range(1..))]
    pub sample_every: u64,
    /// Where to train: cpu, cuda or cuda:N (CUDA needs a build with `--features cuda`).
    #[arg(long, default_value = "cpu", value_name = "cpu|cuda[:N]")]
    pub device: crate::device::DeviceChoice,
    /// Continue from the newest checkpoint in OUT (same data, seed, batch and crop settings).
    #[arg(long)]
    pub resume: bool,
    /// Start over in an OUT that holds checkpoints of an earlier run.
    #[arg(long)]
    pub overwrite: bool,
}

pub fn train(args: TrainArgs) -> Result<()> {
    let absolute = |p: &PathBuf| std::fs::canonicalize(p).with_context(|| format!("{}", p.display()));
    let official = Schedule::official(args.lr, args.steps);
    let config = TrainConfig {
        content: absolute(&args.content)?,
        style: absolute(&args.style)?,
        out: args.out.clone(),
        encoder: args.encoder.clone(),
        steps: args.steps,
        batch: args.batch as usize,
        recipe: Recipe { load: args.load_size as usize, crop: args.crop as usize },
        schedule: Schedule {
            lr: args.lr,
            decay: args.lr_decay,
            decay_start: args.lr_decay_start.unwrap_or(official.decay_start),
            decay_every: args.lr_decay_every.unwrap_or(official.decay_every),
        },
        weights: Weights { global: args.lambda_global, a2k: args.lambda_a2k },
        seed: args.seed,
        checkpoint_every: args.checkpoint_every,
        keep: args.keep as usize,
        sample_every: args.sample_every,
    };
    let interrupt = crate::interrupt::flag("saving a checkpoint");
    let summary = train::run(config, args.resume, args.overwrite, &args.device.open()?, interrupt)?;
    if let (Some(first), Some(last)) = (summary.first_loss, summary.last_loss) {
        eprintln!("loss {first:.4} -> {last:.4} (x{:.2} lower)", first / last);
    }
    if let Some(path) = &summary.last_checkpoint {
        eprintln!("checkpoint {}", path.display());
    }
    match (&summary.model, summary.interrupted) {
        (Some(model), _) => eprintln!("step {}: wrote {}", summary.step, model.display()),
        (None, true) => eprintln!("interrupted at step {}: continue with --resume", summary.step),
        (None, false) => {}
    }
    Ok(())
}
