//! What a training run leaves to look at: `loss.csv` (one row per step) and sample grids
//! (`samples/step-NNNNNNNN.png`, one row per sample: content | style | output).
use std::io::Write;
use std::path::{Path, PathBuf};

use candle_core::Tensor;
use image::RgbImage;

use super::TrainError;
use crate::output::write_atomically;

/// One step's numbers.
pub struct Row<'a> {
    pub step: u64,
    pub lr: f64,
    pub total: f32,
    /// The objective's terms, in the order of the header's term columns.
    pub terms: &'a [f32],
    /// Wall time of the step.
    pub seconds: f64,
    pub samples_per_second: f64,
}

/// `loss.csv`, appended and flushed row by row. Columns: `step,lr,total`, the trainee's terms,
/// `seconds,samples_per_second`.
pub struct LossLog {
    path: PathBuf,
    file: std::fs::File,
}

impl LossLog {
    /// Opens `out/loss.csv` for a run starting after step `resumed_step`: rows of later steps (written
    /// after the checkpoint a resumed run starts from) are dropped, so the curve continues without
    /// duplicates.
    pub fn open(out: &Path, resumed_step: u64, terms: &[&str]) -> Result<Self, TrainError> {
        let path = out.join("loss.csv");
        let io = |source| TrainError::Io { path: path.clone(), source };
        let kept: Vec<String> = match std::fs::read_to_string(&path) {
            Ok(text) if resumed_step > 0 => text
                .lines()
                .skip(1)
                .filter(|l| {
                    l.split(',').next().and_then(|s| s.parse::<u64>().ok()).is_some_and(|s| s <= resumed_step)
                })
                .map(str::to_string)
                .collect(),
            _ => Vec::new(),
        };
        let mut text = format!("step,lr,total,{},seconds,samples_per_second\n", terms.join(","));
        for line in kept {
            text.push_str(&line);
            text.push('\n');
        }
        write_atomically(&path, text.as_bytes()).map_err(io)?;
        let file = std::fs::OpenOptions::new().append(true).open(&path).map_err(io)?;
        Ok(Self { path, file })
    }

    pub fn push(&mut self, r: &Row) -> Result<(), TrainError> {
        let terms: String = r.terms.iter().map(|t| format!("{t},")).collect();
        writeln!(
            self.file,
            "{},{:e},{},{terms}{:.4},{:.3}",
            r.step, r.lr, r.total, r.seconds, r.samples_per_second
        )
        .and_then(|()| self.file.flush())
        .map_err(|source| TrainError::Io { path: self.path.clone(), source })
    }
}

/// Rows (at most this many samples) of a sample grid.
const GRID_ROWS: usize = 4;

/// Writes `out/samples/step-NNNNNNNN.png`: per sample, content | style | output (clamped), from
/// `[B, 3, h, w]` batches.
pub fn sample_grid(
    out: &Path,
    step: u64,
    content: &Tensor,
    style: &Tensor,
    output: &Tensor,
) -> Result<PathBuf, TrainError> {
    let dir = out.join("samples");
    let path = dir.join(format!("step-{step:08}.png"));
    let fail = |reason: String| TrainError::Image { path: path.clone(), reason };
    std::fs::create_dir_all(&dir).map_err(|source| TrainError::Io { path: dir.clone(), source })?;
    let (b, _, h, w) = output.dims4().map_err(|e| fail(e.to_string()))?;
    let rows = b.min(GRID_ROWS);
    let mut grid = RgbImage::new(3 * w as u32, (rows * h) as u32);
    for i in 0..rows {
        for (col, t) in [content, style, output].into_iter().enumerate() {
            let tile =
                t.get(i).and_then(|t| crate::image_io::to_rgb8(&t)).map_err(|e| fail(e.to_string()))?;
            image::imageops::replace(&mut grid, &tile, (col * w) as i64, (i * h) as i64);
        }
    }
    let mut bytes = std::io::Cursor::new(Vec::new());
    grid.write_to(&mut bytes, image::ImageFormat::Png).map_err(|e| fail(e.to_string()))?;
    write_atomically(&path, bytes.get_ref()).map_err(|e| fail(e.to_string()))?;
    Ok(path)
}
