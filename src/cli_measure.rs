//! The `measure` subcommand: temporal consistency of a stylised video against its source, with the
//! source's own numbers as the floor, to CSV/JSON/PNG.
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};

use crate::temporal::{DisPreset, Evaluator, FlowMethod, MeasureConfig, Report};
use crate::video::{self, reader::FrameReader};

#[derive(Debug, clap::Args)]
pub struct MeasureArgs {
    /// The input video the stylised one was made from (flow is computed on it).
    #[arg(long)]
    pub source: PathBuf,
    /// The stylised video (same frame count and size).
    #[arg(long)]
    pub stylized: PathBuf,
    /// Frame intervals k, comma-separated (1: short-term, 10: the usual long-term).
    #[arg(long, value_delimiter = ',', default_value = "1", value_parser = clap::value_parser!(usize))]
    pub interval: Vec<usize>,
    /// Optical flow: dis-medium, dis-fast, dis-ultrafast or farneback.
    #[arg(long, default_value = "dis-medium", value_parser = parse_flow)]
    pub flow: FlowMethod,
    /// Per-frame rows as CSV (conventions in the header); `.k<N>` is added per interval when several.
    #[arg(long, value_name = "FILE")]
    pub csv: Option<PathBuf>,
    /// Summary and rows as JSON.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Plot of per-frame E_warp, stylised vs source, as PNG.
    #[arg(long, value_name = "FILE")]
    pub plot: Option<PathBuf>,
    /// Replace output files that exist.
    #[arg(long)]
    pub overwrite: bool,
}

fn parse_flow(s: &str) -> Result<FlowMethod, String> {
    Ok(match s {
        "dis-medium" => FlowMethod::Dis(DisPreset::Medium),
        "dis-fast" => FlowMethod::Dis(DisPreset::Fast),
        "dis-ultrafast" => FlowMethod::Dis(DisPreset::UltraFast),
        "farneback" => FlowMethod::Farneback,
        _ => return Err(format!("`{s}`: expected dis-medium, dis-fast, dis-ultrafast or farneback")),
    })
}

/// `out.csv` for one interval, `out.k10.csv` when several are measured.
fn per_interval(path: &Path, k: usize, several: bool) -> PathBuf {
    if !several {
        return path.to_path_buf();
    }
    let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let ext = path.extension().map(|e| format!(".{}", e.to_string_lossy())).unwrap_or_default();
    path.with_file_name(format!("{stem}.k{k}{ext}"))
}

pub fn measure(args: MeasureArgs) -> Result<()> {
    video::init()?;
    if args.interval.contains(&0) {
        bail!("--interval: frame intervals start at 1");
    }
    let several = args.interval.len() > 1;
    let outputs: Vec<PathBuf> = args
        .interval
        .iter()
        .flat_map(|&k| {
            [&args.csv, &args.json, &args.plot]
                .into_iter()
                .flatten()
                .map(move |p| per_interval(p, k, several))
        })
        .collect();
    if let Some(existing) = outputs.iter().find(|p| !args.overwrite && p.exists()) {
        bail!("{}: already exists (pass --overwrite to replace it)", existing.display());
    }
    let mut source = FrameReader::open(&args.source)?;
    let mut stylized = FrameReader::open(&args.stylized)?;
    let mut evaluators = args
        .interval
        .iter()
        .map(|&interval| Evaluator::new(MeasureConfig { flow: args.flow, interval }))
        .collect::<Result<Vec<_>, _>>()?;
    let bar = ProgressBar::new(source.info.estimated_frames().unwrap_or(0));
    bar.set_style(ProgressStyle::with_template(
        "{spinner} {wide_bar} {pos}/{len} frames {per_sec} ETA {eta}",
    )?);
    let mut count = 0u64;
    loop {
        let (a, b) = match (source.next().transpose()?, stylized.next().transpose()?) {
            (Some(a), Some(b)) => (a, b),
            (None, None) => break,
            (a, _) => {
                let longer = if a.is_some() { &args.source } else { &args.stylized };
                bail!(
                    "{}: has more frames than the other video (which ends after {count})",
                    longer.display()
                );
            }
        };
        // `video` rounds odd sizes up to even for H.264: a stylised frame one pixel larger than its
        // source is that padding, cropped away here rather than reported as a size mismatch.
        let extra = (b.width.wrapping_sub(a.width), b.height.wrapping_sub(a.height));
        let b =
            if extra != (0, 0) && extra.0 <= 1 && extra.1 <= 1 { b.cropped(a.width, a.height) } else { b };
        let pts = Duration::from_nanos(a.pts.map(|t| t.nseconds()).unwrap_or(0));
        let (a, b) = (a.to_image()?, b.to_image()?);
        for e in &mut evaluators {
            e.push(a.clone(), b.clone(), pts).with_context(|| format!("{}", args.stylized.display()))?;
        }
        count += 1;
        bar.set_position(count);
    }
    bar.finish_and_clear();
    for (evaluator, &k) in evaluators.into_iter().zip(&args.interval) {
        let report = evaluator.finish().with_context(|| format!("{}", args.source.display()))?;
        print_summary(&report, k);
        if let Some(p) = &args.csv {
            report.write_csv(&per_interval(p, k, several))?;
        }
        if let Some(p) = &args.json {
            report.write_json(&per_interval(p, k, several))?;
        }
        if let Some(p) = &args.plot {
            report.write_plot(&per_interval(p, k, several))?;
        }
    }
    Ok(())
}

fn print_summary(report: &Report, k: usize) {
    let s = &report.summary;
    println!("interval {k}: {} pairs", s.pairs);
    for (name, styl, src) in [
        ("E_warp", s.e_warp_stylised, s.e_warp_source),
        ("Ruder MSE", s.ruder_mse_stylised, s.ruder_mse_source),
        ("masked RMSE", s.masked_rmse_stylised, s.masked_rmse_source),
    ] {
        println!(
            "  {name:<12} stylised mean {:.6} median {:.6} p95 {:.6} | source mean {:.6} median {:.6} p95 {:.6}",
            styl.mean, styl.median, styl.p95, src.mean, src.median, src.p95
        );
    }
}
