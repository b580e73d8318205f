//! Many files into one folder: one overall progress bar, outputs that already exist are skipped (so a
//! re-run resumes), a bad file is reported and the rest still run.
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use super::file::{estimated_frames, transcode, FileJob};
use super::{Stylizer, VideoError};

/// File extensions taken from a folder.
const VIDEO_EXTENSIONS: [&str; 11] =
    ["mp4", "m4v", "mov", "mkv", "webm", "avi", "ts", "mts", "flv", "mpg", "mpeg"];

/// One planned transcode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchItem {
    pub input: PathBuf,
    pub output: PathBuf,
}

/// Expands `inputs` (files, or folders whose video files are taken, sorted by name) into jobs writing
/// `<out_dir>/<stem>.<extension>`. Two inputs with the same stem would collide: that is an error.
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
        items.push(BatchItem { input, output });
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
    pub interrupted: bool,
}

/// Runs every item. `template` gives the size/encoding/overwrite settings; `stylizer` makes a model
/// per file; `progress(done, total)` counts frames over the whole batch.
pub fn run(
    items: &[BatchItem],
    template: &FileJob,
    stylizer: &dyn Fn() -> Box<dyn Stylizer>,
    progress: &dyn Fn(u64, u64),
    interrupt: &AtomicBool,
) -> BatchOutcome {
    let mut outcome = BatchOutcome::default();
    let todo: Vec<&BatchItem> = items
        .iter()
        .filter(|item| {
            let exists = !template.overwrite && item.output.exists();
            if exists {
                outcome.skipped.push(item.output.clone());
            }
            !exists
        })
        .collect();
    let total: u64 = todo.iter().filter_map(|i| estimated_frames(&i.input)).sum();
    let mut finished_frames = 0;
    for item in todo {
        if interrupt.load(Ordering::Relaxed) {
            outcome.interrupted = true;
            break;
        }
        let job = FileJob { input: item.input.clone(), output: item.output.clone(), ..template.clone() };
        let report = transcode(&job, stylizer(), &|n| progress(finished_frames + n, total), interrupt);
        match report {
            Ok(r) => {
                finished_frames += r.frames;
                outcome.interrupted |= r.interrupted;
                outcome.done.push(item.output.clone());
            }
            Err(e) => outcome.failed.push((item.input.clone(), e)),
        }
    }
    outcome
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
        let clash = plan(&[dir.path().join("b.mp4"), dir.path().join("sub").join("b.mkv")], &out, "mp4");
        assert!(clash.is_err());
    }
}
