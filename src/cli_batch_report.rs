//! The `batch-report` subcommand: merge the shards' manifests of a batch output folder, list what
//! failed and what is missing, exit non-zero unless every input is done.
use std::path::PathBuf;

use anyhow::{bail, Result};

use crate::video::{batch, manifest};

#[derive(Debug, clap::Args)]
pub struct BatchReportArgs {
    /// The batch's output folder (holding .stylestream-manifest-K-of-N.jsonl files).
    pub dir: PathBuf,
    /// The batch's inputs (files or folders, as given to `video`): inputs that no manifest mentions,
    /// e.g. those of a shard that never started, are listed as missing too.
    #[arg(long, value_name = "IN", num_args = 1..)]
    pub inputs: Vec<PathBuf>,
}

pub fn batch_report(args: BatchReportArgs) -> Result<()> {
    let expected: Option<Vec<String>> = if args.inputs.is_empty() {
        None
    } else {
        // The output names are not compared, only the keys: any extension plans the same keys.
        let items = batch::plan(&args.inputs, &args.dir, "mp4")?;
        Some(items.into_iter().map(|item| item.key).collect())
    };
    let summary = manifest::merge(&args.dir, expected.as_deref())?;
    let shards = |shard: Option<crate::video::shard::Shard>| {
        shard.map(|s| format!(" (shard {s})")).unwrap_or_default()
    };
    for (shard, record) in &summary.failed {
        let error = record.error.as_deref().unwrap_or("no error recorded");
        println!("failed: {}{}: {error}", record.input, shards(Some(*shard)));
    }
    for gap in &summary.missing {
        println!("missing: {}{}: {}", gap.key, shards(gap.shard), gap.why);
    }
    for shard in &summary.missing_shards {
        println!("missing: shard {shard}: no manifest (the worker never started, or wrote elsewhere)");
    }
    println!(
        "{}: {} manifests, {} inputs: {} done, {} failed, {} missing{}",
        args.dir.display(),
        summary.manifests.len(),
        summary.inputs,
        summary.done,
        summary.failed.len(),
        summary.missing.len(),
        match summary.missing_shards.len() {
            0 => String::new(),
            n => format!(", missing manifests: {n}"),
        }
    );
    if !summary.is_complete() {
        bail!(
            "{}: the batch is not complete ({} failed, {} missing, missing manifests: {})",
            args.dir.display(),
            summary.failed.len(),
            summary.missing.len(),
            summary.missing_shards.len()
        );
    }
    Ok(())
}
