//! The second decoder: what FFmpeg (ffmpeg-next) sees in a file GStreamer wrote, and test inputs made
//! with the FFmpeg command line (shapes GStreamer's encoders do not write: display matrices, AVI
//! with B-frames, 10-bit 4:2:2, variable rates).
use std::path::Path;
use std::process::Command;

use ffmpeg_next as ffmpeg;

/// What FFmpeg sees in a file.
#[derive(Debug)]
pub struct Probe {
    pub width: u32,
    pub height: u32,
    /// Presentation times of the decoded frames in seconds, in presentation order (NaN, sorted last,
    /// for a frame FFmpeg has no time for: AVI with B-frames).
    pub pts: Vec<f64>,
    pub duration: f64,
    pub has_audio: bool,
    /// Codec of each audio stream, in stream order ("aac", "ac3", ...).
    pub audio_codecs: Vec<String>,
    /// Seconds from the first audio packet's start to the last one's end (best audio stream).
    pub audio_seconds: f64,
    /// Whether the video stream carries a display matrix (rotation) for players to apply.
    pub display_matrix: bool,
    /// Sample (pixel) aspect ratio the video stream declares, `(0, 1)` when unset.
    pub sample_aspect: (i32, i32),
    /// The luma plane of the first frame in decode order (the first frame shown), `width x height`.
    pub first_luma: Vec<u8>,
}

pub fn ffprobe(path: &Path) -> Probe {
    ffmpeg::init().unwrap();
    let mut input = ffmpeg::format::input(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let audio_codecs = input
        .streams()
        .filter(|s| s.parameters().medium() == ffmpeg::media::Type::Audio)
        .map(|s| s.parameters().id().name().to_string())
        .collect::<Vec<_>>();
    let audio = input.streams().best(ffmpeg::media::Type::Audio).map(|s| (s.index(), s.time_base()));
    let stream = input.streams().best(ffmpeg::media::Type::Video).expect("a video stream");
    let (index, tb) = (stream.index(), stream.time_base());
    let display_matrix =
        stream.side_data().any(|d| d.kind() == ffmpeg::codec::packet::side_data::Type::DisplayMatrix);
    let context = ffmpeg::codec::context::Context::from_parameters(stream.parameters()).unwrap();
    let mut decoder = context.decoder().video().unwrap();
    let seconds = |t: i64, tb: ffmpeg::Rational| t as f64 * tb.numerator() as f64 / tb.denominator() as f64;
    let mut pts = Vec::new();
    let mut first_luma = Vec::new();
    let mut frame = ffmpeg::frame::Video::empty();
    let mut take = |frame: &ffmpeg::frame::Video, pts: &mut Vec<f64>| {
        pts.push(frame.timestamp().or(frame.pts()).map_or(f64::NAN, |t| seconds(t, tb)));
        if first_luma.is_empty() {
            let (w, h, stride) = (frame.width() as usize, frame.height() as usize, frame.stride(0));
            first_luma = frame.data(0).chunks(stride).take(h).flat_map(|row| &row[..w]).copied().collect();
        }
    };
    let (mut audio_start, mut audio_end) = (f64::INFINITY, f64::NEG_INFINITY);
    for (s, packet) in input.packets() {
        if s.index() == index {
            decoder.send_packet(&packet).unwrap();
            while decoder.receive_frame(&mut frame).is_ok() {
                take(&frame, &mut pts);
            }
        } else if let (Some((audio_index, audio_tb)), Some(p)) = (audio, packet.pts()) {
            if s.index() == audio_index {
                audio_start = audio_start.min(seconds(p, audio_tb));
                audio_end = audio_end.max(seconds(p + packet.duration(), audio_tb));
            }
        }
    }
    decoder.send_eof().unwrap();
    while decoder.receive_frame(&mut frame).is_ok() {
        take(&frame, &mut pts);
    }
    pts.sort_by(f64::total_cmp);
    let duration = input.duration() as f64 / ffmpeg::ffi::AV_TIME_BASE as f64;
    Probe {
        width: decoder.width(),
        height: decoder.height(),
        pts,
        duration,
        has_audio: audio.is_some(),
        audio_codecs,
        audio_seconds: if audio_end > audio_start { audio_end - audio_start } else { 0.0 },
        display_matrix,
        sample_aspect: (decoder.aspect_ratio().numerator(), decoder.aspect_ratio().denominator()),
        first_luma,
    }
}

/// Same frame count, the same PTS sequence frame by frame (relative to the first frame, within 1 ms),
/// the same duration within one frame, audio present.
pub fn assert_same_timing(input: &Probe, output: &Probe, fps: f64) {
    assert_eq!(output.pts.len(), input.pts.len(), "frame count");
    let rel = |p: &Probe| p.pts.iter().map(|t| t - p.pts[0]).collect::<Vec<_>>();
    for (i, (a, b)) in rel(input).iter().zip(rel(output)).enumerate() {
        assert!((a - b).abs() < 1e-3, "frame {i}: pts {a} in, {b} out");
    }
    assert!(
        (output.duration - input.duration).abs() <= 1.0 / fps + 1e-3,
        "duration {} vs {}",
        output.duration,
        input.duration
    );
    assert!(output.has_audio, "audio stream missing");
}

/// Runs the FFmpeg command line (quiet, overwriting) with `args`; a failure stops the test.
pub fn ffmpeg_cli(args: &[&str]) {
    let o = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-y"])
        .args(args)
        .output()
        .expect("the ffmpeg command line is installed (.ci/install)");
    assert!(o.status.success(), "ffmpeg {args:?}: {}", String::from_utf8_lossy(&o.stderr));
}
