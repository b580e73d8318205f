//! Command-line interface: arguments (clap derive) and the dispatch to each subcommand.
use std::path::PathBuf;

use anyhow::{Context, Result};
use candle_core::DType;
use clap::{Parser, Subcommand};

use crate::checkpoint::{self, WeightSource};
use crate::device::{DeviceChoice, Precision};
use crate::image_io;

#[derive(Debug, Parser)]
#[command(name = "stylestream", version, about = "Stylise images and video with StyA2K")]
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
    /// Model bundle (.safetensors), or `formula:SEED` for untrained deterministic weights.
    #[arg(long, value_name = "PATH|formula:SEED")]
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
        #[cfg(feature = "media")]
        Command::Video(args) => crate::cli_video::video(args),
        #[cfg(feature = "media")]
        Command::Stream(args) => crate::cli_video::stream(args),
        #[cfg(feature = "media")]
        Command::Measure(args) => crate::cli_measure::measure(args),
    }
}

fn image(args: ImageArgs) -> Result<()> {
    if !args.overwrite && args.output.exists() {
        anyhow::bail!("{}: already exists (pass --overwrite to replace it)", args.output.display());
    }
    let device = args.device.open()?;
    let dtype = args.precision.dtype();
    let model = checkpoint::load_stya2k_as(&args.model, &device, dtype)?;
    let content = image_io::read_picture(&args.content, args.max_side, &device)?;
    let style = image_io::read_picture(&args.style, Some(args.style_size), &device)?;
    let features = model
        .encode_style(&style.rgb.to_dtype(dtype)?)
        .with_context(|| format!("{}: encoding the style", args.style.display()))?;
    let out = model
        .stylize(&content.rgb.to_dtype(dtype)?, &features, args.alpha)
        .and_then(|out| out.to_dtype(DType::F32))
        .with_context(|| format!("{}: stylising", args.content.display()))?;
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
