//! `stylestream eval-quality`: the quality table and contact sheet of one or more models on held-out
//! content and style folders (see `quality`).
use std::path::PathBuf;

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};

use crate::checkpoint::{self, WeightSource};
use crate::image_io;
use crate::models::neat::Controls;
use crate::quality::{self, Evaluated, Setup, StyleStats, Summary};
use crate::train::data::ImageFolder;

#[derive(Debug, clap::Args)]
pub struct EvalQualityArgs {
    /// Folder of content images (recursive; JPEG, PNG, WebP).
    #[arg(long)]
    pub content: PathBuf,
    /// Folder of style images; every content is paired with every style.
    #[arg(long)]
    pub style: PathBuf,
    /// Model to evaluate (repeat for several: one table row and one sheet column each).
    #[arg(long, required = true, value_name = "PATH|default|default-neat|formula:SEED|formula-neat:SEED")]
    pub model: Vec<WeightSource>,
    /// Longer side of content and style as the models see them, pixels.
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u32).range(16..=4096))]
    pub max_side: u32,
    /// Style strength passed to every model.
    #[arg(long, default_value_t = 1.0, value_parser = crate::cli::parse_alpha)]
    pub alpha: f64,
    /// Seed of the random VGG-19 whose mean/std statistics are compared; choose one the models were
    /// not trained with.
    #[arg(long, default_value_t = 7)]
    pub feature_seed: u64,
    /// Write every pair's scores and the summaries as JSON.
    #[arg(long, value_name = "F")]
    pub json: Option<PathBuf>,
    /// Contact sheet PNG: content | style | each model's output, one row per pair.
    #[arg(long, value_name = "F.png", default_value = "contact-sheet.png")]
    pub sheet: PathBuf,
    /// Height of a contact-sheet row, pixels.
    #[arg(long, default_value_t = 128, value_parser = clap::value_parser!(u32).range(16..=1024))]
    pub sheet_height: u32,
    /// Replace existing --json / --sheet files.
    #[arg(long)]
    pub overwrite: bool,
}

pub fn eval_quality(args: EvalQualityArgs) -> Result<()> {
    for out in args.json.iter().chain([&args.sheet]) {
        if !args.overwrite && out.exists() {
            anyhow::bail!("{}: already exists (pass --overwrite to replace it)", out.display());
        }
    }
    let contents = ImageFolder::scan(&args.content, 0)?.files;
    let styles = ImageFolder::scan(&args.style, 0)?.files;
    let device = candle_core::Device::Cpu;
    let stats = StyleStats::new(args.feature_seed, &device)?;
    let vgg16 = StyleStats::vgg16(&device)?;
    let setup = Setup {
        contents: &contents,
        styles: &styles,
        max_side: args.max_side,
        controls: Controls { alpha: args.alpha, alpha_prior: false },
        stats: &stats,
        vgg16: &vgg16,
        device: &device,
    };
    let pairs = (contents.len() * styles.len()) as u64;
    let bar = ProgressBar::new(pairs * args.model.len() as u64).with_style(
        ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} pairs, {elapsed} (eta {eta})")
            .expect("static template"),
    );
    let mut runs: Vec<(String, Vec<Evaluated>)> = Vec::new();
    for source in &args.model {
        let name = source.to_string();
        bar.set_message(name.clone());
        let network = checkpoint::load(source, &device)?;
        runs.push((name, quality::evaluate(&network, &setup, || bar.inc(1))?));
    }
    bar.finish_and_clear();

    let scores: Vec<(&String, Vec<quality::PairScore>)> =
        runs.iter().map(|(name, e)| (name, e.iter().map(|e| e.score.clone()).collect())).collect();
    let summaries: Vec<Summary> = scores.iter().map(|(name, s)| Summary::new(name.to_string(), s)).collect();
    let by_style: Vec<(PathBuf, Summary)> =
        scores.iter().flat_map(|(name, s)| Summary::by_style(name, s)).collect();
    print_table(&summaries, contents.len(), styles.len(), &args);
    print_style_table(&by_style);

    if let Some(path) = &args.json {
        let pairs: Vec<_> = runs
            .iter()
            .flat_map(|(name, e)| {
                e.iter().map(move |e| serde_json::json!({ "model": name, "scores": e.score }))
            })
            .collect();
        let json = serde_json::json!({
            "conventions": "chamfer: RGB 0..255, squared distance, mean over each image's pixels (<= 4096 sampled), both directions summed; ssim: luma, 11x11 Gaussian sigma 1.5, valid region; stats: sum over relu1_1..relu4_1 of |mu|_2 + |sigma|_2 differences, random VGG-19; vgg16: the same on torchvision's ImageNet VGG-16",
            "max_side": args.max_side,
            "feature_seed": args.feature_seed,
            "alpha": args.alpha,
            "summaries": summaries,
            "by_style": by_style.iter().map(|(style, s)| serde_json::json!({ "style": style, "summary": s })).collect::<Vec<_>>(),
            "pairs": pairs,
        });
        crate::output::write_atomically(path, serde_json::to_string_pretty(&json)?.as_bytes())
            .with_context(|| format!("{}: cannot write", path.display()))?;
    }
    let rows: Vec<Vec<&image::RgbImage>> = (0..pairs as usize)
        .map(|i| {
            let first = &runs[0].1[i].images;
            [&first[0], &first[1]].into_iter().chain(runs.iter().map(|(_, e)| &e[i].images[2])).collect()
        })
        .collect();
    let sheet = quality::contact_sheet(&rows, args.sheet_height);
    image_io::write_picture(&args.sheet, sheet, None, args.overwrite)?;
    eprintln!("contact sheet: {}", args.sheet.display());
    Ok(())
}

fn print_table(summaries: &[Summary], contents: usize, styles: usize, args: &EvalQualityArgs) {
    println!(
        "{} contents x {} styles, longer side {} px, alpha {}, statistics of random:{}",
        contents, styles, args.max_side, args.alpha, args.feature_seed
    );
    println!("| model | Chamfer(out, style) | Chamfer(content, style) | ratio | SSIM(out, content) | stats(out, style) | stats(content, style) | VGG-16(out, style) | VGG-16(content, style) |");
    println!("|---|---|---|---|---|---|---|---|---|");
    for s in summaries {
        println!(
            "| {} | {:.1} | {:.1} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} |",
            s.model,
            s.chamfer_output,
            s.chamfer_content,
            s.chamfer_ratio,
            s.ssim,
            s.stats_output,
            s.stats_content,
            s.vgg16_output,
            s.vgg16_content
        );
    }
}

/// Per model and style: the Chamfer ratio, SSIM and the VGG-16 style distance (output and content).
fn print_style_table(by_style: &[(PathBuf, Summary)]) {
    println!();
    println!("| model | style | ratio | SSIM(out, content) | VGG-16(out, style) | VGG-16(content, style) |");
    println!("|---|---|---|---|---|---|");
    for (style, s) in by_style {
        let name =
            style.file_name().map_or_else(|| style.display().to_string(), |n| n.to_string_lossy().into());
        println!(
            "| {} | {} | {:.3} | {:.3} | {:.3} | {:.3} |",
            s.model, name, s.chamfer_ratio, s.ssim, s.vgg16_output, s.vgg16_content
        );
    }
}
