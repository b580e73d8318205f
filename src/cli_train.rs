//! The `train` subcommand: arguments and the run summary.
use std::path::PathBuf;

use anyhow::{Context, Result};

use crate::models::neat::NeatConfig;
use crate::train::data::Recipe;
use crate::train::loss::Weights;
use crate::train::neat::NeatSettings;
use crate::train::neat_loss::{Lambdas, Term};
use crate::train::{self, ModelSettings, Schedule, TrainConfig};

/// Which network `train` trains.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TrainedModel {
    /// StyA2K with the official objective.
    Stya2k,
    /// NeAT with the paper's full objective.
    Neat,
}

/// NeAT's objective. Every value is written into the checkpoints' metadata. Defaults: the paper's where
/// it gives one (patch weights 0.25 / 0.75, 8 patches), ours otherwise (see `train::neat_loss`).
#[derive(Debug, clap::Args)]
#[command(next_help_heading = "NeAT objective (with --model neat)")]
pub struct NeatArgs {
    /// l1, weight of L_s (mean/std over relu1_1..relu4_1) [default: 3]
    #[arg(long)]
    pub lambda_style: Option<f64>,
    /// l2, weight of L_adv (domain discriminator) [default: 0.1]
    #[arg(long)]
    pub lambda_adv: Option<f64>,
    /// l3, weight of L_c (conv4_2 perceptual) [default: 1]
    #[arg(long)]
    pub lambda_content: Option<f64>,
    /// l4, weight of L_identity [default: 1]
    #[arg(long)]
    pub lambda_identity: Option<f64>,
    /// lambda_id1, the pixel part of L_identity [default: 50]
    #[arg(long)]
    pub lambda_id_pixel: Option<f64>,
    /// lambda_id2, the feature part of L_identity [default: 1]
    #[arg(long)]
    pub lambda_id_feature: Option<f64>,
    /// l5, weight of L_s-contra [default: 0.3]
    #[arg(long)]
    pub lambda_style_contra: Option<f64>,
    /// l6, weight of L_c-contra [default: 0.3]
    #[arg(long)]
    pub lambda_content_contra: Option<f64>,
    /// l7 (lambda_ps), weight of L_patch_simple [default: 0.25]
    #[arg(long)]
    pub lambda_patch_simple: Option<f64>,
    /// l8 (lambda_pc), weight of L_patch_complex [default: 0.75]
    #[arg(long)]
    pub lambda_patch_complex: Option<f64>,
    /// Temperature of the contrastive losses [default: 0.2]
    #[arg(long)]
    pub tau: Option<f64>,
    /// Side of the co-occurrence patches in pixels, a multiple of 8 [default: 32]
    #[arg(long)]
    pub patch_size: Option<usize>,
    /// Patches per image (split into simple and complex halves by Sobel score) [default: 8]
    #[arg(long)]
    pub patches: Option<usize>,
    /// The discriminators' Adam learning rate (decays with --lr's schedule) [default: 2e-4]
    #[arg(long)]
    pub lr_d: Option<f64>,
    /// PAMA blocks chained at relu4_1 (each holds 6.3 M parameters, 12.6 MB in f16) [default: 4, the paper's]
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=16))]
    pub pama_blocks: Option<u64>,
    /// Remove a term from the objective (repeatable); its discriminator or head is not trained.
    #[arg(long, value_enum, value_name = "TERM")]
    pub loss_off: Vec<Term>,
}

impl NeatArgs {
    fn given(&self) -> bool {
        let values = [
            self.lambda_style,
            self.lambda_adv,
            self.lambda_content,
            self.lambda_identity,
            self.lambda_id_pixel,
            self.lambda_id_feature,
            self.lambda_style_contra,
            self.lambda_content_contra,
            self.lambda_patch_simple,
            self.lambda_patch_complex,
            self.tau,
            self.lr_d,
        ];
        values.iter().any(Option::is_some)
            || self.patch_size.is_some()
            || self.patches.is_some()
            || self.pama_blocks.is_some()
            || !self.loss_off.is_empty()
    }

    fn settings(&self) -> NeatSettings {
        let d = NeatSettings::default();
        let l = Lambdas::default();
        NeatSettings {
            lambdas: Lambdas {
                style: self.lambda_style.unwrap_or(l.style),
                adv: self.lambda_adv.unwrap_or(l.adv),
                content: self.lambda_content.unwrap_or(l.content),
                identity: self.lambda_identity.unwrap_or(l.identity),
                style_contra: self.lambda_style_contra.unwrap_or(l.style_contra),
                content_contra: self.lambda_content_contra.unwrap_or(l.content_contra),
                patch_simple: self.lambda_patch_simple.unwrap_or(l.patch_simple),
                patch_complex: self.lambda_patch_complex.unwrap_or(l.patch_complex),
                identity_pixel: self.lambda_id_pixel.unwrap_or(l.identity_pixel),
                identity_feature: self.lambda_id_feature.unwrap_or(l.identity_feature),
            },
            off: Term::ALL.into_iter().filter(|t| self.loss_off.contains(t)).collect(),
            tau: self.tau.unwrap_or(d.tau),
            patch_size: self.patch_size.unwrap_or(d.patch_size),
            patches: self.patches.unwrap_or(d.patches),
            lr_d: self.lr_d.unwrap_or(d.lr_d),
            network: NeatConfig {
                pama_blocks: self.pama_blocks.map_or(d.network.pama_blocks, |n| n as usize),
                ..d.network
            },
        }
    }
}

#[derive(Debug, clap::Args)]
pub struct TrainArgs {
    /// The network to train.
    #[arg(long, value_enum, default_value = "stya2k")]
    pub model: TrainedModel,
    /// Folder of content images (JPEG/PNG/WebP, searched recursively; unreadable files are skipped).
    #[arg(long)]
    pub content: PathBuf,
    /// Folder of style images (one image is fine: every content image is then paired with it).
    #[arg(long)]
    pub style: PathBuf,
    /// Output folder: step-N.safetensors checkpoints, loss.csv, samples/, and stya2k.safetensors (or
    /// neat.safetensors) at the end.
    #[arg(short, long)]
    pub out: PathBuf,
    /// Frozen encoder: `vgg16` (torchvision's ImageNet VGG-16, compiled in; bundles name it by
    /// sha256), `random:SEED` (fixed random VGG-19, only the seed is stored), an official
    /// vgg_normalised.pth, or a bundle whose encoder to reuse.
    #[arg(long, default_value = "vgg16", value_name = "vgg16|random:SEED|PATH")]
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
    /// Weight of the global mean/std loss (StyA2K).
    #[arg(long, default_value_t = 10.0)]
    pub lambda_global: f64,
    /// Weight of the A2K feature loss (StyA2K).
    #[arg(long, default_value_t = 1.25)]
    pub lambda_a2k: f64,
    /// Weight of the pixel range penalty (StyA2K): squared distance of output values outside [0, 1].
    /// Not in the official objective (0 restores it); keeps random-encoder training from drifting to
    /// negative, all-black outputs.
    #[arg(long, default_value_t = 10.0)]
    pub lambda_range: f64,
    /// Weight of the RGB mean/std loss against the style (StyA2K); not in the official objective.
    #[arg(long, default_value_t = 0.0)]
    pub lambda_colour: f64,
    /// Weight of the pixel identity loss (StyA2K): the content stylised with itself must come back
    /// unchanged; one more generator pass per step. Not in the official objective.
    #[arg(long, default_value_t = 0.0)]
    pub lambda_reconstruct: f64,
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
    /// Start from the weights of this bundle or checkpoint (same model, encoder and network
    /// configuration) instead of seeded random ones: fine-tuning with a new objective or data; the
    /// optimizer starts fresh at step 0. Ignored by --resume, whose checkpoint already holds them.
    #[arg(long, value_name = "BUNDLE")]
    pub init: Option<PathBuf>,
    /// Continue from the newest checkpoint in OUT (same data, seed, batch and crop settings).
    #[arg(long)]
    pub resume: bool,
    /// Start over in an OUT that holds checkpoints of an earlier run.
    #[arg(long)]
    pub overwrite: bool,
    /// Boxed: its many optional values would make `train` the largest `Command` variant by far.
    #[command(flatten)]
    pub neat: Box<NeatArgs>,
}

pub fn train(args: TrainArgs) -> Result<()> {
    let model = match args.model {
        TrainedModel::Stya2k if args.neat.given() => {
            anyhow::bail!(
                "the NeAT objective flags (--lambda-style, --tau, --loss-off, ...) need --model neat"
            )
        }
        TrainedModel::Stya2k => ModelSettings::Stya2k(Weights {
            global: args.lambda_global,
            a2k: args.lambda_a2k,
            range: args.lambda_range,
            colour: args.lambda_colour,
            identity: args.lambda_reconstruct,
        }),
        TrainedModel::Neat => ModelSettings::Neat(args.neat.settings()),
    };
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
        model,
        seed: args.seed,
        init: args.init.as_ref().map(absolute).transpose()?,
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
