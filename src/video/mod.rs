//! Video through the model with GStreamer: decode -> appsink "frames" -> stage graph (pre-process,
//! stylise, post-process on their own threads, joined by bounded queues for files and one-slot
//! mailboxes for live sources, `link`) -> appsrc "styled" -> encode/mux/sink.
//!
//! - [`file`]: one file to one file (audio kept, timestamps kept, temp name + rename, interrupt-safe).
//! - [`batch`]: many files to a folder, resumable; [`shard`] splits a batch over workers, [`manifest`]
//!   records what each did.
//! - [`live`]: cameras and network streams, never blocking the source on the model.
pub mod batch;
pub mod consistency;
pub mod file;
pub mod frame;
mod link;
pub mod live;
pub mod manifest;
pub mod pipeline;
pub mod probe;
pub mod reader;
pub mod shard;
mod stages;
pub mod stylizer;

use std::path::PathBuf;

pub use frame::Frame;
pub use stylizer::{Identity, NeatStylizer, OnDevice, StyA2kStylizer, Stylizer};

/// What went wrong in the video path; each message names the file or element at fault.
#[derive(Debug, thiserror::Error)]
pub enum VideoError {
    #[error("GStreamer could not start: {0}")]
    Init(String),
    #[error("{path}: no such file")]
    Missing { path: PathBuf },
    #[error("{path}: {reason}")]
    Input { path: PathBuf, reason: String },
    #[error("{path}: {reason}")]
    Output { path: PathBuf, reason: String },
    #[error("{path}: already exists (pass --overwrite to replace it)")]
    Exists { path: PathBuf },
    #[error("GStreamer element `{element}` is not installed{}", package_hint(.package))]
    MissingElement { element: String, package: Option<&'static str> },
    #[error("pipeline description: {0}")]
    Pipeline(String),
    #[error("element `{element}`: {message}")]
    Element { element: String, message: String },
    #[error("model: {0}")]
    Model(#[from] candle_core::Error),
    #[error("temporal consistency: {0}")]
    Temporal(#[from] crate::temporal::TemporalError),
}

fn package_hint(package: &Option<&'static str>) -> String {
    package.map(|p| format!(" (Debian package {p})")).unwrap_or_default()
}

/// Initialises GStreamer once (and registers the `stylestream` element, with feature gst-plugin).
pub fn init() -> Result<(), VideoError> {
    gstreamer::init().map_err(|e| VideoError::Init(e.to_string()))?;
    #[cfg(feature = "gst-plugin")]
    crate::gst::register_once().map_err(|e| VideoError::Init(format!("the stylestream element: {e}")))?;
    Ok(())
}
