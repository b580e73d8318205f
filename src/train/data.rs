//! Training data: image folders, the official crop recipe, and batches decoded on worker threads.
//!
//! Every sample is a pure function of `(seed, sample index)`: which content image (an epoch-wise
//! permutation), which style image (a uniform draw), the crop offsets and the flips. So a run resumed
//! at step `s` sees exactly the batches an uninterrupted run would, without saving any RNG state.
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use candle_core::{Device, Tensor};
use crossbeam_channel::{bounded, Receiver};
use image::imageops::FilterType;
use rayon::prelude::*;

use super::TrainError;
use crate::checkpoint::formula;

/// File extensions read as images (case-insensitive).
const EXTENSIONS: [&str; 4] = ["jpg", "jpeg", "png", "webp"];

/// The images under a folder, recursively, in sorted path order (so the sample order does not depend
/// on how the file system lists them). Files whose header cannot be read are skipped with a warning.
#[derive(Debug, Clone)]
pub struct ImageFolder {
    pub root: PathBuf,
    pub files: Vec<PathBuf>,
    /// Image files that could not be read.
    pub skipped: usize,
    /// Readable images with a side shorter than the crop (they are upscaled with everything else).
    pub small: usize,
}

impl ImageFolder {
    /// Lists and probes the images under `root`; `crop` only feeds the count of small images.
    pub fn scan(root: &Path, crop: usize) -> Result<Self, TrainError> {
        let mut candidates = Vec::new();
        walk(root, &mut candidates)?;
        candidates.sort();
        let (mut files, mut skipped, mut small) = (Vec::new(), 0, 0);
        for path in candidates {
            let probed = image::ImageReader::open(&path)
                .and_then(|r| r.with_guessed_format())
                .map_err(|e| e.to_string())
                .and_then(|r| r.into_dimensions().map_err(|e| e.to_string()));
            match probed {
                Ok((w, h)) if w > 0 && h > 0 => {
                    small += usize::from((w.min(h) as usize) < crop);
                    files.push(path);
                }
                Ok(_) => {
                    tracing::warn!("{}: image has no pixels, skipped", path.display());
                    skipped += 1;
                }
                Err(e) => {
                    tracing::warn!("{}: unreadable image, skipped ({e})", path.display());
                    skipped += 1;
                }
            }
        }
        if files.is_empty() {
            return Err(TrainError::EmptyFolder { path: root.to_path_buf(), skipped });
        }
        Ok(Self { root: root.to_path_buf(), files, skipped, small })
    }
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), TrainError> {
    let folder_err =
        |e: std::io::Error| TrainError::Folder { path: dir.to_path_buf(), reason: e.to_string() };
    for entry in std::fs::read_dir(dir).map_err(folder_err)? {
        let path = entry.map_err(folder_err)?.path();
        if path.is_dir() {
            walk(&path, out)?;
        } else if path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
        {
            out.push(path);
        }
    }
    Ok(())
}

/// The official data recipe: both images resized to `load x load` (aspect ignored), a random
/// `crop x crop` window, a random horizontal flip.
#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct Recipe {
    pub load: usize,
    pub crop: usize,
}

/// Uniform in [0, 1), a pure function of `(seed, stream, index)`.
fn draw(seed: u64, stream: &str, index: u64) -> f64 {
    (formula::uniform(stream, seed, index) + 1.0) / 2.0
}

/// Index uniform in `0..n`.
fn pick(seed: u64, stream: &str, index: u64, n: usize) -> usize {
    ((draw(seed, stream, index) * n as f64) as usize).min(n - 1)
}

/// Content/style pairs by sample index.
pub struct Sampler {
    content: ImageFolder,
    style: ImageFolder,
    recipe: Recipe,
    seed: u64,
    /// The content permutation of the most recent epoch asked for.
    epoch: Mutex<Option<(u64, Arc<Vec<usize>>)>>,
}

/// One decoded pair, each `[3, crop, crop]` RGB in [0, 1].
pub struct Pair {
    pub content: Tensor,
    pub style: Tensor,
}

impl Sampler {
    pub fn new(content: ImageFolder, style: ImageFolder, recipe: Recipe, seed: u64) -> Self {
        Self { content, style, recipe, seed, epoch: Mutex::new(None) }
    }

    /// The content permutation of `epoch` (Fisher-Yates driven by the seed).
    fn permutation(&self, epoch: u64) -> Arc<Vec<usize>> {
        let mut cached = self.epoch.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((e, perm)) = cached.as_ref() {
            if *e == epoch {
                return perm.clone();
            }
        }
        let n = self.content.files.len();
        let mut perm: Vec<usize> = (0..n).collect();
        for i in (1..n).rev() {
            let j = pick(self.seed, "epoch", epoch * n as u64 + i as u64, i + 1);
            perm.swap(i, j);
        }
        let perm = Arc::new(perm);
        *cached = Some((epoch, perm.clone()));
        perm
    }

    /// Which images sample `index` pairs: `(content, style)` indices into the folders' files.
    pub fn files(&self, index: u64) -> (usize, usize) {
        let n = self.content.files.len() as u64;
        let content = self.permutation(index / n)[(index % n) as usize];
        (content, pick(self.seed, "style", index, self.style.files.len()))
    }

    /// Decodes and crops sample `index`.
    pub fn pair(&self, index: u64, device: &Device) -> Result<Pair, TrainError> {
        let (content, style) = self.files(index);
        Ok(Pair {
            content: self.crop_readable(&self.content, content, "content", index, device)?,
            style: self.crop_readable(&self.style, style, "style", index, device)?,
        })
    }

    /// Crops image `file` of `folder`; if its body turns out to be corrupt (the scan only read
    /// headers), warns and takes the next image of the folder instead, deterministically.
    fn crop_readable(
        &self,
        folder: &ImageFolder,
        file: usize,
        role: &str,
        index: u64,
        device: &Device,
    ) -> Result<Tensor, TrainError> {
        let n = folder.files.len();
        for k in 0..n {
            match self.crop(&folder.files[(file + k) % n], role, index, device) {
                Ok(t) => return Ok(t),
                Err(e) => tracing::warn!("{e}; using the next image instead"),
            }
        }
        Err(TrainError::EmptyFolder { path: folder.root.clone(), skipped: n })
    }

    fn crop(&self, path: &Path, role: &str, index: u64, device: &Device) -> Result<Tensor, TrainError> {
        let Recipe { load, crop } = self.recipe;
        let img = image::ImageReader::open(path)
            .and_then(|r| r.with_guessed_format())
            .map_err(|e| e.to_string())
            .and_then(|r| r.decode().map_err(|e| e.to_string()))
            .map_err(|reason| TrainError::Image { path: path.to_path_buf(), reason })?;
        let mut img = img.resize_exact(load as u32, load as u32, FilterType::Triangle);
        let room = (load - crop + 1) as u32;
        let x = (draw(self.seed, &format!("{role}-x"), index) * room as f64) as u32;
        let y = (draw(self.seed, &format!("{role}-y"), index) * room as f64) as u32;
        img = img.crop_imm(x.min(room - 1), y.min(room - 1), crop as u32, crop as u32);
        if draw(self.seed, &format!("{role}-flip"), index) < 0.5 {
            img = img.fliph();
        }
        let t = crate::image_io::to_tensor(&img, device).and_then(|t| t.squeeze(0));
        t.map_err(|e| TrainError::Image { path: path.to_path_buf(), reason: e.to_string() })
    }
}

/// One training step's data: `[B, 3, crop, crop]` content and style batches.
pub struct Batch {
    pub step: u64,
    pub content: Tensor,
    pub style: Tensor,
}

/// Decodes the batches of steps `first_step..` on a background thread (each batch's images in
/// parallel) and hands them over through a channel holding `prefetch` batches. The thread stops when
/// the receiver is dropped.
pub fn spawn_batches(
    sampler: Arc<Sampler>,
    batch: usize,
    first_step: u64,
    prefetch: usize,
    device: Device,
) -> (Receiver<Result<Batch, TrainError>>, JoinHandle<()>) {
    let (tx, rx) = bounded(prefetch);
    let handle = std::thread::spawn(move || {
        for step in first_step.. {
            let pairs: Result<Vec<Pair>, TrainError> = (0..batch as u64)
                .into_par_iter()
                .map(|j| sampler.pair(step * batch as u64 + j, &Device::Cpu))
                .collect();
            let made = pairs.and_then(|pairs| {
                let stack = |f: fn(&Pair) -> &Tensor| {
                    Tensor::stack(&pairs.iter().map(f).collect::<Vec<_>>(), 0)?.to_device(&device)
                };
                Ok(Batch { step, content: stack(|p| &p.content)?, style: stack(|p| &p.style)? })
            });
            if tx.send(made).is_err() {
                return;
            }
        }
    });
    (rx, handle)
}
