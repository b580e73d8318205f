//! Training checkpoints: `step-NNNNNNNN.safetensors` in the output folder.
//!
//! Each is a StyA2K bundle that `image`, `video` and `stream` load as it is, plus the Adam moments under
//! [`TRAINING_STATE`] and, in the `stylestream.training` metadata, the step, Adam's step count and the
//! whole configuration. Files are written atomically (temporary name + rename) and only the newest
//! `keep` are kept, so a crash at any moment leaves complete checkpoints only.
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::Tensor;

use super::adam::Adam;
use super::{TrainConfig, TrainError};
use crate::checkpoint::{self, BundleInfo, TRAINING_STATE};

const PREFIX: &str = "step-";
const SUFFIX: &str = ".safetensors";

/// The checkpoint file of `step`.
pub fn path_for(out: &Path, step: u64) -> PathBuf {
    out.join(format!("{PREFIX}{step:08}{SUFFIX}"))
}

/// Checkpoint files in `out`, oldest first.
fn list(out: &Path) -> Result<Vec<(u64, PathBuf)>, TrainError> {
    let io = |source| TrainError::Io { path: out.to_path_buf(), source };
    let mut found = Vec::new();
    for entry in std::fs::read_dir(out).map_err(io)? {
        let path = entry.map_err(io)?.path();
        let step = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_prefix(PREFIX)?.strip_suffix(SUFFIX)?.parse().ok());
        if let Some(step) = step {
            found.push((step, path));
        }
    }
    found.sort();
    Ok(found)
}

/// What a checkpoint's `stylestream.training` metadata holds.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct Meta {
    /// Training steps completed.
    pub step: u64,
    /// Adam's step count.
    pub adam_steps: u64,
    pub config: TrainConfig,
}

/// Writes the checkpoint of `meta.step`: `params` (and `frozen`, the encoder tensors when the encoder
/// is not a seed) and the optimizer state. Then deletes all but the newest `keep` checkpoints.
pub fn save(
    out: &Path,
    meta: &Meta,
    encoder: &str,
    params: HashMap<String, Tensor>,
    frozen: &HashMap<String, Tensor>,
    adam: &Adam,
) -> Result<PathBuf, TrainError> {
    let mut tensors = params;
    tensors.extend(frozen.iter().map(|(k, v)| (k.clone(), v.clone())));
    tensors.extend(adam.state(&format!("{TRAINING_STATE}adam.")));
    let training = serde_json::to_string(meta).map_err(|e| TrainError::Config(e.to_string()))?;
    let info = BundleInfo { model: "stya2k".into(), encoder: encoder.into(), training, config: "{}".into() };
    let path = path_for(out, meta.step);
    checkpoint::write_bundle(&path, &info, &tensors)?;
    let all = list(out)?;
    for (_, old) in all.iter().take(all.len().saturating_sub(meta.config.keep.max(1))) {
        std::fs::remove_file(old).map_err(|source| TrainError::Io { path: old.clone(), source })?;
    }
    Ok(path)
}

/// The exported model: the trained tensors (and file-encoder tensors), no optimizer state.
pub fn export(
    path: &Path,
    meta: &Meta,
    encoder: &str,
    params: HashMap<String, Tensor>,
    frozen: &HashMap<String, Tensor>,
) -> Result<(), TrainError> {
    let mut tensors = params;
    tensors.extend(frozen.iter().map(|(k, v)| (k.clone(), v.clone())));
    let training = serde_json::to_string(meta).map_err(|e| TrainError::Config(e.to_string()))?;
    let info = BundleInfo { model: "stya2k".into(), encoder: encoder.into(), training, config: "{}".into() };
    Ok(checkpoint::write_bundle(path, &info, &tensors)?)
}

/// A checkpoint read back for `--resume`.
pub struct Resumed {
    pub path: PathBuf,
    pub meta: Meta,
    pub tensors: HashMap<String, Tensor>,
}

/// The newest checkpoint in `out` that reads back whole; unreadable ones are reported and passed over.
pub fn latest(out: &Path) -> Result<Option<Resumed>, TrainError> {
    for (_, path) in list(out)?.into_iter().rev() {
        let read = checkpoint::read_bundle(&path).map_err(TrainError::from).and_then(|(info, tensors)| {
            let meta = serde_json::from_str(&info.training).map_err(|e| TrainError::Resume {
                path: path.clone(),
                reason: format!("training metadata: {e}"),
            })?;
            Ok(Resumed { path: path.clone(), meta, tensors })
        });
        match read {
            Ok(resumed) => return Ok(Some(resumed)),
            Err(e) => tracing::warn!("{e}; trying an older checkpoint"),
        }
    }
    Ok(None)
}
