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
    /// The picture as a viewer shows it: the coded size stretched to square pixels (pixel aspect
    /// ratio), then turned by the orientation tag (a phone's portrait video is coded landscape).
    pub width: u32,
    pub height: u32,
    /// Nominal frame rate (0/1 when variable or unknown).
    pub framerate: gst::Fraction,
    pub duration: Option<gst::ClockTime>,
    /// Caps of the first audio stream as the demuxer gives it (compressed), if there is one.
    pub audio: Option<gst::Caps>,
    /// How many audio and subtitle streams the file has (only the first audio stream is used).
    pub audio_streams: usize,
    pub subtitle_streams: usize,
}

impl MediaInfo {
    /// Frame count from duration x rate, for the progress bar (an estimate for variable rates).
    pub fn estimated_frames(&self) -> Option<u64> {
        let (n, d) = (self.framerate.numer(), self.framerate.denom());
        let seconds = self.duration?.nseconds() as f64 / 1e9;
        (n > 0 && d > 0).then(|| (seconds * n as f64 / d as f64).round() as u64)
    }

    /// What of the file the output leaves out, one line each.
    pub fn left_out(&self) -> Vec<String> {
        let mut notes = Vec::new();
        if self.audio_streams > 1 {
            notes.push(format!("{} audio tracks; only the first is kept", self.audio_streams));
        }
        if self.subtitle_streams > 0 {
            notes.push(format!(
                "{} subtitle track(s) dropped (not carried to the output)",
                self.subtitle_streams
            ));
        }
        notes
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

/// The size a viewer shows a `width x height` picture at: widened (or narrowed) to square pixels,
/// as players do, then with the sides swapped when the `image-orientation` tag turns it a quarter.
fn displayed_size(width: u32, height: u32, par: gst::Fraction, orientation: Option<&str>) -> (u32, u32) {
    let (n, d) = (par.numer(), par.denom());
    let width = if n > 0 && d > 0 {
        ((width as u64 * n as u64 + d as u64 / 2) / d as u64).max(1) as u32
    } else {
        width
    };
    match orientation {
        Some("rotate-90" | "rotate-270" | "flip-rotate-90" | "flip-rotate-270") => (height, width),
        _ => (width, height),
    }
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
    let audio_streams = info.audio_streams();
    let audio = audio_streams.first().and_then(|a| a.caps());
    let orientation =
        video.tags().and_then(|t| t.get::<gst::tags::ImageOrientation>().map(|o| o.get().to_owned()));
    let (width, height) = displayed_size(video.width(), video.height(), video.par(), orientation.as_deref());
    Ok(MediaInfo {
        width,
        height,
        framerate: video.framerate(),
        duration: info.duration(),
        audio,
        audio_streams: audio_streams.len(),
        subtitle_streams: info.subtitle_streams().len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn displayed_size_applies_pixel_aspect_then_orientation() {
        let square = gst::Fraction::new(1, 1);
        assert_eq!(displayed_size(320, 180, square, None), (320, 180));
        assert_eq!(displayed_size(320, 180, square, Some("rotate-90")), (180, 320));
        assert_eq!(displayed_size(320, 180, square, Some("rotate-180")), (320, 180));
        assert_eq!(displayed_size(320, 180, square, Some("flip-rotate-270")), (180, 320));
        // DVD PAL 16:9: 720x576 with 64:45 pixels shows at 1024x576.
        assert_eq!(displayed_size(720, 576, gst::Fraction::new(64, 45), None), (1024, 576));
        assert_eq!(displayed_size(720, 576, gst::Fraction::new(64, 45), Some("rotate-270")), (576, 1024));
        assert_eq!(displayed_size(320, 180, gst::Fraction::new(0, 1), None), (320, 180));
    }
}
