//! What a media file holds, read before building its pipeline (so only existing branches are built:
//! an audio branch with no audio stream would never preroll).
use std::path::Path;

use gstreamer as gst;
use gstreamer_pbutils as pbutils;
use gstreamer_pbutils::prelude::*;

use super::VideoError;

/// How long discovery may take before the file is declared unreadable.
const DISCOVER_TIMEOUT: gst::ClockTime = gst::ClockTime::from_seconds(15);

/// The streams of a file.
#[derive(Debug, Clone)]
pub struct MediaInfo {
    pub width: u32,
    pub height: u32,
    /// Nominal frame rate (0/1 when variable or unknown).
    pub framerate: gst::Fraction,
    pub duration: Option<gst::ClockTime>,
    /// Caps of the first audio stream as the demuxer gives it (compressed), if there is one.
    pub audio: Option<gst::Caps>,
}

impl MediaInfo {
    /// Frame count from duration x rate, for the progress bar (an estimate for variable rates).
    pub fn estimated_frames(&self) -> Option<u64> {
        let (n, d) = (self.framerate.numer(), self.framerate.denom());
        let seconds = self.duration?.nseconds() as f64 / 1e9;
        (n > 0 && d > 0).then(|| (seconds * n as f64 / d as f64).round() as u64)
    }
}

/// `file://` URI of a local path.
pub fn file_uri(path: &Path) -> Result<String, VideoError> {
    let absolute = std::path::absolute(path)
        .map_err(|e| VideoError::Input { path: path.to_path_buf(), reason: e.to_string() })?;
    gst::glib::filename_to_uri(&absolute, None)
        .map(|u| u.to_string())
        .map_err(|e| VideoError::Input { path: path.to_path_buf(), reason: e.to_string() })
}

/// Reads the streams of a local file; errors name the file and say why it cannot be used.
pub fn probe(path: &Path) -> Result<MediaInfo, VideoError> {
    if !path.exists() {
        return Err(VideoError::Missing { path: path.to_path_buf() });
    }
    let bad = |reason: String| VideoError::Input { path: path.to_path_buf(), reason };
    let discoverer = pbutils::Discoverer::new(DISCOVER_TIMEOUT).map_err(|e| bad(e.to_string()))?;
    let info = discoverer
        .discover_uri(&file_uri(path)?)
        .map_err(|e| bad(format!("not a readable media file ({e})")))?;
    let video = info.video_streams().into_iter().find(|v| !v.is_image());
    let video = video.ok_or_else(|| bad("has no video stream".into()))?;
    let audio = info.audio_streams().into_iter().next().and_then(|a| a.caps());
    Ok(MediaInfo {
        width: video.width(),
        height: video.height(),
        framerate: video.framerate(),
        duration: info.duration(),
        audio,
    })
}
