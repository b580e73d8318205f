//! Many files into one folder: one overall progress bar, outputs that already exist are skipped (so a
//! re-run resumes), a bad file is reported and the rest still run. A batch may be one shard of several
//! ([`super::shard`]); each run keeps its shard's manifest ([`super::manifest`]) in the output folder.
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use super::file::{estimated_frames, transcode, FileJob};
use super::manifest::{Manifest, Record, Status};
use super::{Stylizer, VideoError};

/// File extensions taken from a folder.
const VIDEO_EXTENSIONS: [&str; 11] =
    ["mp4", "m4v", "mov", "mkv", "webm", "avi", "ts", "mts", "flv", "mpg", "mpeg"];

/// One planned transcode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchItem {
    /// The shard key: the input's path relative to the folder it was listed from, which is its file
    /// name (folders are read one level deep; a file given by itself is its own folder's entry).
    /// Names that are not UTF-8 are converted lossily (U+FFFD).
    pub key: String,
    pub input: PathBuf,
    pub output: PathBuf,
}

/// Expands `inputs` (files, or folders whose video files are taken, sorted by name) into jobs writing
/// `<out_dir>/<stem>.<extension>`. Two inputs with the same stem would collide: that is an error (so
/// keys, file names, are unique too).
pub fn plan(inputs: &[PathBuf], out_dir: &Path, extension: &str) -> Result<Vec<BatchItem>, VideoError> {
    let mut files = Vec::new();
    for input in inputs {
        if input.is_dir() {
            let entries = std::fs::read_dir(input)
                .map_err(|e| VideoError::Input { path: input.clone(), reason: e.to_string() })?;
            let mut found: Vec<PathBuf> = entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_file() && has_video_extension(p))
                .collect();
            found.sort();
            files.extend(found);
        } else {
            files.push(input.clone());
        }
    }
    let mut items: Vec<BatchItem> = Vec::new();
    for input in files {
        let stem = input.file_stem().map(|s| s.to_os_string()).unwrap_or_default();
        let mut output = out_dir.join(stem);
        output.set_extension(extension);
        if let Some(other) = items.iter().find(|i| i.output == output) {
            return Err(VideoError::Input {
                path: input.clone(),
                reason: format!("would write {} like {}", output.display(), other.input.display()),
            });
        }
        let key = input.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        items.push(BatchItem { key, input, output });
    }
    Ok(items)
}

fn has_video_extension(p: &Path) -> bool {
    let ext = p.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
    ext.is_some_and(|e| VIDEO_EXTENSIONS.contains(&e.as_str()))
}

/// What a batch did.
#[derive(Debug, Default)]
pub struct BatchOutcome {
    pub done: Vec<PathBuf>,
    /// Outputs that existed before the run (kept as they were).
    pub skipped: Vec<PathBuf>,
    pub failed: Vec<(PathBuf, VideoError)>,
    /// An interrupt stopped the batch; the file in progress was finished early (recorded as failed in
    /// the manifest, so the next run redoes it) and the rest were not started.
    pub interrupted: bool,
}

/// Runs every item, keeping `manifest` up to date. `template` gives the size/encoding/overwrite
/// settings; `stylizer` makes a model per file; `progress(done, total)` counts frames over the whole
/// batch. An existing output is skipped unless `template.overwrite`, or unless the manifest's previous
/// run recorded it as failed: a failed transcode leaves no output, so an output beside a failure is
/// one an interrupt cut short. Errs only when the manifest cannot be written.
pub fn run(
    items: &[BatchItem],
    template: &FileJob,
    stylizer: &dyn Fn() -> Box<dyn Stylizer>,
    progress: &dyn Fn(u64, u64),
    interrupt: &AtomicBool,
    manifest: &mut Manifest,
) -> Result<BatchOutcome, VideoError> {
    let mut outcome = BatchOutcome::default();
    let mut todo: Vec<(&BatchItem, bool)> = Vec::new();
    let mut records = Vec::new();
    for item in items {
        let previous = manifest.previous(&item.key);
        let cut_short = previous.is_some_and(|p| p.status == Status::Failed) && item.output.exists();
        let mut record = pending(item);
        if !template.overwrite && !cut_short && item.output.exists() {
            outcome.skipped.push(item.output.clone());
            let earlier = previous.filter(|p| p.is_done());
            record.status = Status::Skipped;
            record.frames = earlier.and_then(|p| p.frames);
            record.fps = earlier.and_then(|p| p.fps);
        } else {
            todo.push((item, cut_short));
        }
        records.push(record);
    }
    manifest.begin(records)?;
    let total: u64 = todo.iter().filter_map(|(i, _)| estimated_frames(&i.input)).sum();
    let mut finished_frames = 0;
    for (item, cut_short) in todo {
        if interrupt.load(Ordering::Relaxed) {
            outcome.interrupted = true;
            break;
        }
        let job = FileJob {
            input: item.input.clone(),
            output: item.output.clone(),
            overwrite: template.overwrite || cut_short,
            ..template.clone()
        };
        let report = transcode(&job, stylizer(), &|n| progress(finished_frames + n, total), interrupt);
        let mut record = pending(item);
        match report {
            Ok(r) => {
                finished_frames += r.frames;
                record.frames = Some(r.frames);
                record.fps = Some(r.frames as f64 / r.seconds.max(1e-9));
                if r.interrupted {
                    record.status = Status::Failed;
                    record.error =
                        Some(format!("interrupted after {} frames; the next run redoes it", r.frames));
                } else {
                    record.status = Status::Ok;
                }
                outcome.interrupted |= r.interrupted;
                outcome.done.push(item.output.clone());
            }
            Err(e) => {
                record.status = Status::Failed;
                record.error = Some(e.to_string());
                outcome.failed.push((item.input.clone(), e));
            }
        }
        manifest.update(record)?;
    }
    Ok(outcome)
}

fn pending(item: &BatchItem) -> Record {
    Record {
        key: item.key.clone(),
        input: item.input.display().to_string(),
        output: item.output.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
        status: Status::Pending,
        frames: None,
        fps: None,
        error: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folders_expand_sorted_and_collisions_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["b.mp4", "a.mkv", "notes.txt"] {
            std::fs::write(dir.path().join(name), b"").unwrap();
        }
        let out = dir.path().join("out");
        let items = plan(&[dir.path().to_path_buf()], &out, "mp4").unwrap();
        let outputs: Vec<_> = items.iter().map(|i| i.output.clone()).collect();
        assert_eq!(outputs, vec![out.join("a.mp4"), out.join("b.mp4")]);
        let keys: Vec<_> = items.iter().map(|i| i.key.as_str()).collect();
        assert_eq!(keys, ["a.mkv", "b.mp4"], "keys are the names inside the listed folder");
        let clash = plan(&[dir.path().join("b.mp4"), dir.path().join("sub").join("b.mkv")], &out, "mp4");
        assert!(clash.is_err());
    }
}
