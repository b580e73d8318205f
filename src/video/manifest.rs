//! What a batch worker did, as JSON lines beside its outputs: `OUT/.stylestream-manifest-K-of-N.jsonl`,
//! one record per input the shard was assigned, in plan order:
//!
//! ```json
//! {"key":"a.mp4","input":"/data/in/a.mp4","output":"a.mp4","status":"ok","frames":300,"fps":12.5,"error":null}
//! ```
//!
//! `key` is the shard key (see [`super::shard`]), `output` a file name inside OUT (the volume may be
//! mounted elsewhere on the machine that reads the report), `frames`/`fps` what the transcode did (a
//! skipped output carries the numbers of the run that wrote it, when this shard's manifest knew them).
//!
//! The worker writes every assigned input as `pending` before it starts, and rewrites the whole file
//! (temporary name + rename) after each input: a worker killed at any point leaves a readable manifest
//! in which what it never finished is still `pending`. `batch-report` ([`merge`]) reads all shards'
//! manifests and tells what failed and what is missing.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::shard::Shard;
use super::VideoError;
use crate::output::write_atomically;

const PREFIX: &str = ".stylestream-manifest-";
const SUFFIX: &str = ".jsonl";

/// Where an input stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Assigned, not finished (yet, or ever: the worker stopped first).
    Pending,
    /// Written by this run.
    Ok,
    /// Transcode failed, or was interrupted (then the partial output is redone on the next run).
    Failed,
    /// Its output existed before this run and was kept.
    Skipped,
}

/// One input of a shard.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub key: String,
    pub input: String,
    pub output: String,
    pub status: Status,
    pub frames: Option<u64>,
    pub fps: Option<f64>,
    pub error: Option<String>,
}

impl Record {
    pub fn is_done(&self) -> bool {
        matches!(self.status, Status::Ok | Status::Skipped)
    }
}

/// `.stylestream-manifest-K-of-N.jsonl`.
pub fn file_name(shard: Shard) -> String {
    format!("{PREFIX}{}-of-{}{SUFFIX}", shard.index, shard.count)
}

/// The shard a manifest file name belongs to.
fn shard_of_file_name(name: &str) -> Option<Shard> {
    let (k, n) = name.strip_prefix(PREFIX)?.strip_suffix(SUFFIX)?.split_once("-of-")?;
    Shard::new(k.parse().ok()?, n.parse().ok()?).ok()
}

/// Reads a manifest; a line that is not a record is an error naming the file and the line.
pub fn read(path: &Path) -> Result<Vec<Record>, VideoError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| VideoError::Input { path: path.to_path_buf(), reason: e.to_string() })?;
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(i, line)| {
            serde_json::from_str(line).map_err(|e| VideoError::Input {
                path: path.to_path_buf(),
                reason: format!("line {}: not a manifest record: {e}", i + 1),
            })
        })
        .collect()
}

/// A shard's manifest being kept up to date by a running worker.
#[derive(Debug)]
pub struct Manifest {
    path: PathBuf,
    /// What the previous run of this shard recorded, if it ran.
    previous: Vec<Record>,
    records: Vec<Record>,
}

impl Manifest {
    /// Opens the manifest of `shard` in `out_dir`, reading what an earlier run of the shard left there.
    pub fn open(out_dir: &Path, shard: Shard) -> Result<Self, VideoError> {
        let path = out_dir.join(file_name(shard));
        let previous = if path.exists() { read(&path)? } else { Vec::new() };
        Ok(Manifest { path, previous, records: Vec::new() })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The earlier run's record of `key`.
    pub fn previous(&self, key: &str) -> Option<&Record> {
        self.previous.iter().find(|r| r.key == key)
    }

    /// Starts this run's record with every assigned input and writes it.
    pub fn begin(&mut self, records: Vec<Record>) -> Result<(), VideoError> {
        self.records = records;
        self.write()
    }

    /// Replaces the record with the same key and writes the file.
    pub fn update(&mut self, record: Record) -> Result<(), VideoError> {
        match self.records.iter_mut().find(|r| r.key == record.key) {
            Some(slot) => *slot = record,
            None => self.records.push(record),
        }
        self.write()
    }

    fn write(&self) -> Result<(), VideoError> {
        let mut text = String::new();
        for record in &self.records {
            text += &serde_json::to_string(record).expect("a record serialises");
            text.push('\n');
        }
        write_atomically(&self.path, text.as_bytes())
            .map_err(|e| VideoError::Output { path: self.path.clone(), reason: e.to_string() })
    }
}

/// An input that is not done, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Gap {
    pub key: String,
    /// The shard that was (or would be) assigned the input, where known.
    pub shard: Option<Shard>,
    pub why: String,
}

/// All shards' manifests of one output folder, merged.
#[derive(Debug, Default)]
pub struct Summary {
    pub manifests: Vec<(Shard, PathBuf)>,
    /// Distinct inputs: recorded in any manifest, or expected.
    pub inputs: usize,
    /// Inputs whose output exists and was written (now or earlier) without error.
    pub done: usize,
    /// Inputs that failed, each with the failing shard's record (its `error`).
    pub failed: Vec<(Shard, Record)>,
    /// Inputs assigned but never finished, expected but never assigned, or whose output is gone.
    pub missing: Vec<Gap>,
    /// Shards with no manifest although other shards of the same count have one: a worker that
    /// never started (or wrote elsewhere), whose inputs are unknown unless `expected` is given.
    pub missing_shards: Vec<Shard>,
}

impl Summary {
    pub fn is_complete(&self) -> bool {
        self.failed.is_empty() && self.missing.is_empty() && self.missing_shards.is_empty()
    }
}

/// Merges the manifests in `dir`. An input is done when any manifest records it ok or skipped and its
/// output is in `dir` (so a failure retried by a later run, even with another shard count, counts as
/// done); else failed when any manifest records a failure; else missing. `expected` (shard keys, e.g.
/// from re-planning the batch's inputs) adds inputs that no manifest mentions as missing.
pub fn merge(dir: &Path, expected: Option<&[String]>) -> Result<Summary, VideoError> {
    let listing = std::fs::read_dir(dir)
        .map_err(|e| VideoError::Input { path: dir.to_path_buf(), reason: e.to_string() })?;
    let mut manifests: Vec<(Shard, PathBuf)> = listing
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter_map(|path| Some((shard_of_file_name(path.file_name()?.to_str()?)?, path)))
        .collect();
    manifests.sort_by_key(|(shard, _)| (shard.count, shard.index));
    if manifests.is_empty() && expected.is_none() {
        return Err(VideoError::Input {
            path: dir.to_path_buf(),
            reason: format!("no {PREFIX}K-of-N{SUFFIX} here: not the output folder of a batch run?"),
        });
    }
    // The most telling record of each input over all manifests: done > failed > pending.
    let rank = |r: &Record| match r.status {
        Status::Ok | Status::Skipped => 2,
        Status::Failed => 1,
        Status::Pending => 0,
    };
    let mut best: BTreeMap<String, (Shard, Record)> = BTreeMap::new();
    for (shard, path) in &manifests {
        for record in read(path)? {
            let better = best.get(&record.key).is_none_or(|(_, b)| rank(&record) > rank(b));
            if better {
                best.insert(record.key.clone(), (*shard, record));
            }
        }
    }
    let mut summary = Summary::default();
    for (key, (shard, record)) in &best {
        let gap = |why: String| Gap { key: key.clone(), shard: Some(*shard), why };
        match record.status {
            _ if record.is_done() && dir.join(&record.output).is_file() => summary.done += 1,
            Status::Ok | Status::Skipped => {
                summary.missing.push(gap(format!("recorded as done, but {} is gone", record.output)))
            }
            Status::Failed => summary.failed.push((*shard, record.clone())),
            Status::Pending => summary.missing.push(gap("assigned, never finished".into())),
        }
    }
    let counts: std::collections::BTreeSet<u32> = manifests.iter().map(|(s, _)| s.count).collect();
    for &count in &counts {
        for index in 0..count {
            let shard = Shard { index, count };
            if !manifests.iter().any(|(s, _)| *s == shard) {
                summary.missing_shards.push(shard);
            }
        }
    }
    let mut inputs = best.len();
    for key in expected.unwrap_or_default() {
        if !best.contains_key(key) {
            inputs += 1;
            // With one shard count in use, say which worker should have taken it.
            let shard = (counts.len() == 1).then(|| {
                let count = *counts.first().expect("one count");
                Shard { index: Shard::of_key(key, count), count }
            });
            summary.missing.push(Gap { key: key.clone(), shard, why: "in no manifest".into() });
        }
    }
    summary.inputs = inputs;
    summary.manifests = manifests;
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(key: &str, status: Status) -> Record {
        let error = (status == Status::Failed).then(|| "boom".to_string());
        Record {
            key: key.into(),
            input: format!("in/{key}"),
            output: key.into(),
            status,
            frames: None,
            fps: None,
            error,
        }
    }

    #[test]
    fn file_names_round_trip() {
        let shard = Shard::new(2, 7).unwrap();
        assert_eq!(file_name(shard), ".stylestream-manifest-2-of-7.jsonl");
        assert_eq!(shard_of_file_name(&file_name(shard)), Some(shard));
        for other in [".stylestream-manifest-7-of-7.jsonl", ".stylestream-manifest-1-of-3.json", "a.mp4"] {
            assert_eq!(shard_of_file_name(other), None, "{other}");
        }
    }

    #[test]
    fn every_update_leaves_a_readable_file() {
        let dir = tempfile::tempdir().unwrap();
        let mut m = Manifest::open(dir.path(), Shard::ALL).unwrap();
        m.begin(vec![record("a.mp4", Status::Pending), record("b.mp4", Status::Pending)]).unwrap();
        let ok = Record { frames: Some(3), fps: Some(1.5), ..record("a.mp4", Status::Ok) };
        m.update(ok.clone()).unwrap();
        assert_eq!(read(m.path()).unwrap(), vec![ok.clone(), record("b.mp4", Status::Pending)]);
        let reopened = Manifest::open(dir.path(), Shard::ALL).unwrap();
        assert_eq!(reopened.previous("a.mp4"), Some(&ok));
        std::fs::write(m.path(), "{\"key\":1}\n").unwrap();
        let err = Manifest::open(dir.path(), Shard::ALL).unwrap_err().to_string();
        assert!(err.contains(".stylestream-manifest-0-of-1.jsonl") && err.contains("line 1"), "{err}");
    }

    #[test]
    fn merge_prefers_done_over_failed_over_pending_and_finds_gaps() {
        let dir = tempfile::tempdir().unwrap();
        let write = |shard: Shard, records: Vec<Record>| {
            let mut m = Manifest::open(dir.path(), shard).unwrap();
            m.begin(records).unwrap();
        };
        // Shard 0/3 failed c, a later 1-shard run wrote it; d failed everywhere; e never finished;
        // f is recorded ok but its output was deleted; shard 2/3 never ran.
        write(Shard::new(0, 3).unwrap(), vec![record("a.mp4", Status::Ok), record("c.mp4", Status::Failed)]);
        write(
            Shard::new(1, 3).unwrap(),
            vec![record("d.mp4", Status::Failed), record("e.mp4", Status::Pending)],
        );
        write(Shard::ALL, vec![record("c.mp4", Status::Ok), record("f.mp4", Status::Skipped)]);
        for name in ["a.mp4", "c.mp4"] {
            std::fs::write(dir.path().join(name), b"video").unwrap();
        }
        let expected: Vec<String> =
            ["a.mp4", "c.mp4", "d.mp4", "e.mp4", "f.mp4", "g.mp4"].map(String::from).into();
        let s = merge(dir.path(), Some(&expected)).unwrap();
        assert_eq!((s.inputs, s.done), (6, 2));
        assert_eq!(s.failed.iter().map(|(_, r)| r.key.as_str()).collect::<Vec<_>>(), ["d.mp4"]);
        let missing: Vec<&str> = s.missing.iter().map(|g| g.key.as_str()).collect();
        assert_eq!(missing, ["e.mp4", "f.mp4", "g.mp4"]);
        assert_eq!(s.missing.last().unwrap().shard, None, "two shard counts: no single owner");
        assert_eq!(s.missing_shards, [Shard::new(2, 3).unwrap()]);
        assert!(!s.is_complete());
    }
}
