//! The `video` subcommand: arguments, model choice, progress bar, interrupt handling, batch summary.
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use candle_core::Device;
use indicatif::{ProgressBar, ProgressStyle};

use crate::checkpoint;
use crate::cli::NeatArgs;
use crate::image_io;
use crate::models::Network;
use crate::video::shard::Shard;
use crate::video::stylizer::ModelChoice;
use crate::video::{
    self, batch, file, live, manifest, Identity, NeatStylizer, OnDevice, StyA2kStylizer, Stylizer,
};

/// The model and its style, shared by `video` and `stream`.
#[derive(Debug, clap::Args)]
pub struct ModelArgs {
    /// Style image (not needed with `--model identity`); in `stream`, rewriting the file switches the
    /// style while running.
    #[arg(long)]
    pub style: Option<PathBuf>,
    /// Model bundle (.safetensors, StyA2K or NeAT), `default` / `default-neat` (the shipped StyA2K /
    /// NeAT, built into the binary), `formula:SEED` / `formula-neat:SEED` (untrained StyA2K / NeAT test
    /// weights) or `identity`.
    #[arg(
        long,
        default_value = "default",
        value_name = "PATH|default|default-neat|formula:SEED|formula-neat:SEED|identity"
    )]
    pub model: ModelChoice,
    /// Style strength: 0 keeps the content, 1 is the full style, up to 2 exaggerates.
    #[arg(long, default_value_t = 1.0, value_parser = crate::cli::parse_alpha)]
    pub alpha: f64,
    /// Scale the style image down so its longer side is at most N pixels.
    #[arg(long, value_name = "N", default_value_t = 512)]
    pub style_size: u32,
    #[command(flatten)]
    pub neat: NeatArgs,
    /// Where the model runs: cpu, cuda or cuda:N (CUDA needs a build with `--features cuda`).
    #[arg(long, default_value = "cpu", value_name = "cpu|cuda[:N]")]
    pub device: crate::device::DeviceChoice,
    /// Storage type of weights and activations (attention and normalisation sums stay f32).
    #[arg(long, value_enum, default_value_t = crate::device::Precision::F32)]
    pub precision: crate::device::Precision,
}

/// Temporal-consistency options shared by `video` and `stream`.
#[derive(Debug, clap::Args)]
pub struct ConsistencyArgs {
    /// Stabilise: blend each frame with the flow-warped previous output where the flow is reliable
    /// (0 = off, up to 1); resets at scene cuts.
    #[arg(long, value_name = "STRENGTH", default_value_t = 0.0, value_parser = parse_unit)]
    pub stabilize: f32,
    /// Measure flicker while running (rolling warping error on a downscaled copy, off the hot path).
    #[arg(long)]
    pub monitor: bool,
    /// Also write the monitor's per-pair measurements to this CSV file.
    #[arg(long, value_name = "FILE")]
    pub monitor_csv: Option<PathBuf>,
}

impl ConsistencyArgs {
    fn options(&self) -> video::consistency::ConsistencyOptions {
        video::consistency::ConsistencyOptions {
            stabilize: self.stabilize,
            monitor: self.monitor,
            monitor_csv: self.monitor_csv.clone(),
        }
    }
}

#[derive(Debug, clap::Args)]
pub struct VideoArgs {
    /// Input video file(s) or folder(s); more than one file, or a folder, makes a batch.
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
    /// Output file (.mp4 or .mkv), or the output folder of a batch.
    #[arg(short, long)]
    pub output: PathBuf,
    #[command(flatten)]
    pub model: ModelArgs,
    /// Scale frames down so the longer side is at most N pixels (aspect kept).
    #[arg(long, value_name = "N", conflicts_with = "size")]
    pub max_side: Option<u32>,
    /// Scale frames to exactly WIDTHxHEIGHT.
    #[arg(long, value_name = "WxH", value_parser = parse_size)]
    pub size: Option<(u32, u32)>,
    /// H.264 constant quality (lower is better, 0..=51).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(0..=51), conflicts_with = "bitrate")]
    pub crf: u32,
    /// H.264 average bitrate in kbit/s instead of constant quality.
    #[arg(long, value_name = "KBPS")]
    pub bitrate: Option<u32>,
    /// x264 speed preset.
    #[arg(long, default_value = "medium", value_parser = ["ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow"])]
    pub preset: String,
    /// Container of batch outputs.
    #[arg(long, default_value = "mp4", value_parser = ["mp4", "mkv"])]
    pub container: String,
    /// Replace existing outputs (a batch otherwise skips them, so a re-run resumes).
    #[arg(long)]
    pub overwrite: bool,
    #[command(flatten)]
    pub consistency: ConsistencyArgs,
    #[command(flatten)]
    pub shard: ShardArgs,
}

/// Splitting a batch over independent workers (Slurm arrays, Kubernetes Indexed Jobs, GNU parallel).
#[derive(Debug, clap::Args)]
#[command(next_help_heading = "Sharding")]
pub struct ShardArgs {
    /// Run only shard K of N of the batch (OUT is then a folder), K counting from 0 (0/4 .. 3/4): an
    /// input goes to shard FNV-1a-64(its file name) mod N, the same on every run and machine. Without
    /// it, a batch takes K and N from a Slurm array (the task's place in SLURM_ARRAY_TASK_MIN..MAX, of
    /// SLURM_ARRAY_TASK_COUNT; with --shard-count, K is SLURM_ARRAY_TASK_ID itself) or from
    /// JOB_COMPLETION_INDEX with --shard-count. Each shard keeps OUT/.stylestream-manifest-K-of-N.jsonl
    /// (see batch-report); a re-run skips finished outputs and retries failed ones.
    #[arg(long, value_name = "K/N")]
    pub shard: Option<Shard>,
    /// Number of shards N with JOB_COMPLETION_INDEX (the Job's completions) or SLURM_ARRAY_TASK_ID
    /// [env: STYLESTREAM_SHARD_COUNT].
    #[arg(long, value_name = "N", conflicts_with = "shard", value_parser = clap::value_parser!(u32).range(1..))]
    pub shard_count: Option<u32>,
}

#[derive(Debug, clap::Args)]
pub struct StreamArgs {
    /// `webcam[:/dev/videoN]`, `test` (moving pattern), a URI (rtsp://, http://, file://) or a file.
    #[arg(long, default_value = "webcam")]
    pub source: live::Source,
    /// `display`, `file:PATH` (fragmented MP4), `v4l2:/dev/videoN` (virtual camera), `rtmp://...`,
    /// `srt://...` or `null`.
    #[arg(long, default_value = "display")]
    pub sink: live::Sink,
    /// A named pipeline (webcam-display, webcam-v4l2loopback, rtmp, srt, test-pattern; NAME-element
    /// runs the model as the `stylestream` element) or a `.pipeline` file, instead of --source/--sink.
    #[arg(long, value_name = "NAME|FILE")]
    pub pipeline: Option<String>,
    #[command(flatten)]
    pub model: ModelArgs,
    /// Frame size asked of the source, WIDTHxHEIGHT.
    #[arg(long, value_name = "WxH", value_parser = parse_size)]
    pub size: Option<(u32, u32)>,
    /// Frame rate asked of cameras and the test pattern.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..=240))]
    pub fps: u32,
    /// Stop after this many seconds.
    #[arg(long, value_name = "SECONDS", value_parser = parse_seconds)]
    pub duration: Option<f64>,
    /// Replace the output file of `--sink file:PATH` if it exists.
    #[arg(long)]
    pub overwrite: bool,
    /// At the end, write the run's stats to this JSON file: frames in/out, fps in/out, drops, and the
    /// capture-to-sink latency p50/p95/p99 in milliseconds.
    #[arg(long, value_name = "FILE")]
    pub stats_json: Option<PathBuf>,
    #[command(flatten)]
    pub consistency: ConsistencyArgs,
}

fn parse_seconds(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 && v < 1e9 => Ok(v),
        _ => Err(format!("`{s}`: expected a positive number of seconds")),
    }
}

fn parse_unit(s: &str) -> Result<f32, String> {
    let v: f32 = s.parse().map_err(|_| format!("`{s}` is not a number"))?;
    if (0.0..=1.0).contains(&v) {
        Ok(v)
    } else {
        Err(format!("{v} is outside 0..=1"))
    }
}

fn parse_size(s: &str) -> Result<(u32, u32), String> {
    let (w, h) = s.split_once('x').ok_or_else(|| format!("`{s}`: expected WIDTHxHEIGHT, e.g. 640x360"))?;
    let parse = |v: &str| v.parse::<u32>().ok().filter(|v| (2..=16384).contains(v));
    match (parse(w), parse(h)) {
        (Some(w), Some(h)) => Ok((w, h)),
        _ => Err(format!("`{s}`: width and height must be whole numbers from 2 to 16384")),
    }
}

/// Builds the model once; the returned closure hands out a stylizer per file (clones share weights).
fn stylizer_factory(args: &ModelArgs) -> Result<Box<dyn Fn() -> Box<dyn Stylizer>>> {
    let (style, alpha, style_size) = (args.style.as_ref(), args.alpha, args.style_size);
    match &args.model {
        ModelChoice::Identity => Ok(Box::new(|| Box::new(Identity) as Box<dyn Stylizer>)),
        ModelChoice::Network(source) => {
            let style_path = style.context("--style is needed with this model")?;
            let (device, dtype) = (args.device.open()?, args.precision.dtype());
            let network = checkpoint::load_as(source, &device, dtype)?;
            let style = image_io::read_picture(style_path, Some(style_size), &Device::Cpu)?;
            let encoding = || format!("{}: encoding the style", style_path.display());
            match network {
                Network::StyA2K(model) => {
                    args.neat.refuse_for_stya2k()?;
                    let prototype =
                        OnDevice::new(&style.rgb, device, dtype, |s| StyA2kStylizer::new(*model, s, alpha))
                            .with_context(encoding)?;
                    Ok(Box::new(move || Box::new(prototype.clone()) as Box<dyn Stylizer>))
                }
                Network::Neat(mut model) => {
                    args.neat.apply(&mut model)?;
                    let controls = args.neat.controls(alpha);
                    let prototype =
                        OnDevice::new(&style.rgb, device, dtype, |s| NeatStylizer::new(model, s, controls))
                            .with_context(encoding)?;
                    Ok(Box::new(move || Box::new(prototype.clone()) as Box<dyn Stylizer>))
                }
            }
        }
    }
}

fn progress_bar(total: Option<u64>) -> ProgressBar {
    let bar = ProgressBar::new(total.unwrap_or(0));
    let style = ProgressStyle::with_template(
        "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} frames {per_sec} ETA {eta}",
    )
    .expect("the template is valid");
    bar.set_style(style);
    bar
}

pub fn video(args: VideoArgs) -> Result<()> {
    video::init()?;
    let template = file::FileJob {
        input: PathBuf::new(),
        output: PathBuf::new(),
        size: match (args.max_side, args.size) {
            (Some(n), _) => file::Size::MaxSide(n),
            (_, Some((w, h))) => file::Size::Exact(w, h),
            _ => file::Size::Keep,
        },
        encoding: file::Encoding { crf: args.crf, bitrate: args.bitrate, preset: args.preset.clone() },
        overwrite: args.overwrite,
        consistency: args.consistency.options(),
    };
    let is_batch = args.inputs.len() > 1
        || args.inputs[0].is_dir()
        || args.output.is_dir()
        || args.shard.shard.is_some();
    let make = stylizer_factory(&args.model)?;
    let interrupt = crate::interrupt::flag("finishing the output file");
    if !is_batch {
        let job = file::FileJob { input: args.inputs[0].clone(), output: args.output.clone(), ..template };
        let bar = progress_bar(file::estimated_frames(&job.input));
        let report = file::transcode(&job, make(), &|n| bar.set_position(n), interrupt);
        bar.finish_and_clear();
        let report = report?;
        eprintln!(
            "{}: {} frames in {:.1} s ({:.2} fps){}",
            job.output.display(),
            report.frames,
            report.seconds,
            report.frames as f64 / report.seconds.max(1e-9),
            if report.interrupted { ", interrupted: the file ends there" } else { "" }
        );
        for note in &report.notes {
            eprintln!("note: {}: {note}", job.input.display());
        }
        if let Some(m) = report.monitor {
            eprintln!(
                "monitor: {} pairs, rolling E_warp {:?} (source {:?}), {} dropped",
                m.pairs, m.rolling_e_warp_stylised, m.rolling_e_warp_source, m.dropped
            );
        }
        return Ok(());
    }
    if args.consistency.monitor_csv.is_some() {
        bail!("--monitor-csv writes one file: use it with a single input, not a batch");
    }
    let shard = Shard::resolve(args.shard.shard, args.shard.shard_count, &|name| std::env::var(name).ok())?;
    std::fs::create_dir_all(&args.output)
        .with_context(|| format!("{}: cannot create", args.output.display()))?;
    let planned = batch::plan(&args.inputs, &args.output, &args.container)?;
    let planned_count = planned.len();
    let items: Vec<batch::BatchItem> = planned.into_iter().filter(|item| shard.takes(&item.key)).collect();
    let mut record = manifest::Manifest::open(&args.output, shard)?;
    let bar = progress_bar(None);
    let outcome = batch::run(
        &items,
        &template,
        make.as_ref(),
        &|done, total| {
            bar.set_length(total.max(done));
            bar.set_position(done);
        },
        interrupt,
        &mut record,
    );
    bar.finish_and_clear();
    let outcome = outcome?;
    let of_shard = match shard {
        Shard::ALL => String::new(),
        _ => format!(" (shard {shard}: {} of {planned_count} inputs)", items.len()),
    };
    eprintln!(
        "batch{of_shard}: {} written, {} skipped (already there), {} failed{}; manifest {}",
        outcome.done.len(),
        outcome.skipped.len(),
        outcome.failed.len(),
        if outcome.interrupted { ", interrupted" } else { "" },
        record.path().display()
    );
    for (input, e) in &outcome.failed {
        eprintln!("failed: {}: {e}", input.display());
    }
    if !outcome.failed.is_empty() {
        bail!("{} of {} inputs failed", outcome.failed.len(), items.len());
    }
    // A scheduler must not count a stopped worker (SIGTERM at a time limit, a pod evicted) as done.
    if outcome.interrupted {
        bail!("interrupted before the batch finished: run the same command again to resume");
    }
    Ok(())
}

pub fn stream(args: StreamArgs) -> Result<()> {
    video::init()?;
    let make = stylizer_factory(&args.model)?;
    let opts = live::LiveOptions {
        source: args.source,
        sink: args.sink,
        size: args.size,
        fps: args.fps,
        duration: args.duration.map(std::time::Duration::from_secs_f64),
        watch_style: args.model.style.clone(),
        style_size: args.model.style_size,
        overwrite: args.overwrite,
        consistency: args.consistency.options(),
    };
    let stats = live::run(
        &opts,
        args.pipeline.as_deref(),
        make(),
        &|s| eprintln!("{s}"),
        crate::interrupt::flag("stopping the stream"),
    )?;
    eprintln!("done: {stats}");
    if let Some(path) = &args.stats_json {
        let json = serde_json::to_string_pretty(&stats.to_json())?;
        std::fs::write(path, json + "\n").with_context(|| format!("{}: cannot write", path.display()))?;
    }
    Ok(())
}
