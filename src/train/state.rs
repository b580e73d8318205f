//! Training checkpoints: `step-NNNNNNNN.safetensors` in the output folder.
//!
//! Each is a bundle of the trained model plus its training state under [`checkpoint::TRAINING_STATE`] (Adam
//! moments; for NeAT also the projection heads and discriminators) and, in the `stylestream.training`
//! metadata, the step, the Adam step counts and the whole configuration. A StyA2K checkpoint runs in
//! `image`, `video` and `stream` as it is (they drop the training state); NeAT's loader is strict, so
//! a NeAT run is used through its export. Files are written atomically (temporary name + rename) and only the newest
//! `keep` are kept, so a crash at any moment leaves complete checkpoints only.
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::Tensor;

use super::{TrainConfig, TrainError, Trainee};
use crate::checkpoint::{self, BundleInfo};

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
    /// The (generator's) Adam step count.
    pub adam_steps: u64,
    /// The discriminators' Adam step count (NeAT; absent and 0 for StyA2K).
    #[serde(default)]
    pub critic_adam_steps: u64,
    pub config: TrainConfig,
}

/// The bundle metadata a trainee's files carry besides the training metadata.
pub struct Bundle {
    model: &'static str,
    config: String,
    encoder: String,
}

impl Bundle {
    pub fn new(trainee: &dyn Trainee, encoder: &str) -> Self {
        Bundle { model: trainee.model(), config: trainee.network_config(), encoder: encoder.into() }
    }

    fn write(&self, path: &Path, meta: &Meta, tensors: &HashMap<String, Tensor>) -> Result<(), TrainError> {
        let training = serde_json::to_string(meta).map_err(|e| TrainError::Config(e.to_string()))?;
        let info = BundleInfo {
            model: self.model.into(),
            encoder: self.encoder.clone(),
            training,
            config: self.config.clone(),
        };
        Ok(checkpoint::write_bundle(path, &info, tensors)?)
    }
}

/// Writes the checkpoint of `meta.step` (`tensors`: the trainee's [`Trainee::checkpoint`]), then
/// deletes all but the newest `keep` checkpoints.
pub fn save(
    out: &Path,
    meta: &Meta,
    bundle: &Bundle,
    tensors: HashMap<String, Tensor>,
) -> Result<PathBuf, TrainError> {
    let path = path_for(out, meta.step);
    bundle.write(&path, meta, &tensors)?;
    let all = list(out)?;
    for (_, old) in all.iter().take(all.len().saturating_sub(meta.config.keep.max(1))) {
        std::fs::remove_file(old).map_err(|source| TrainError::Io { path: old.clone(), source })?;
    }
    Ok(path)
}

/// The exported model (`tensors`: the trainee's [`Trainee::export`], no training state).
pub fn export(
    path: &Path,
    meta: &Meta,
    bundle: &Bundle,
    tensors: HashMap<String, Tensor>,
) -> Result<(), TrainError> {
    bundle.write(path, meta, &tensors)
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
