//! One file in, one file out: decode with GStreamer, stylise every frame, encode H.264 into MP4 or
//! Matroska with the audio kept, timestamps carried frame by frame.
//!
//! Safety rules: the output is written under a temporary sibling name and renamed only when the muxer
//! has finished; an interrupt ends the stream cleanly (end-of-stream into every muxer input) so the
//! file is playable; an existing output is kept unless `overwrite`; errors name the element at fault.
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;

use super::consistency::{self, Consistency, ConsistencyOptions};
use super::pipeline::{
    app_element, element_error, fill, launch, require, source_name, startup_error, template,
};
use super::probe::{file_uri, probe, MediaInfo};
use super::stages::{puller, Stages, Stats};
use super::{Frame, Stylizer, VideoError};
use crate::output::temp_sibling;
use crate::temporal::MonitorReading;

/// How often the driver looks at the bus, the interrupt flag and the progress.
const TICK: Duration = Duration::from_millis(100);

/// Output size policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Size {
    /// The source's size.
    Keep,
    /// Scale down (never up) so the longer side is at most N, keeping the aspect ratio.
    MaxSide(u32),
    /// Exactly W x H.
    Exact(u32, u32),
}

/// H.264 settings (x264enc).
#[derive(Debug, Clone, PartialEq)]
pub struct Encoding {
    /// Constant-quality factor (x264 `pass=qual quantizer=N`, lower is better); used unless `bitrate`.
    pub crf: u32,
    /// Average bitrate in kbit/s, instead of constant quality.
    pub bitrate: Option<u32>,
    /// x264 speed preset (ultrafast .. veryslow).
    pub preset: String,
}

impl Default for Encoding {
    fn default() -> Self {
        Encoding { crf: 20, bitrate: None, preset: "medium".into() }
    }
}

impl Encoding {
    fn x264_properties(&self) -> String {
        let rate = match self.bitrate {
            Some(kbps) => format!("bitrate={kbps}"),
            None => format!("pass=qual quantizer={}", self.crf),
        };
        format!("speed-preset={} {rate}", self.preset)
    }
}

/// One transcode.
#[derive(Debug, Clone)]
pub struct FileJob {
    pub input: PathBuf,
    pub output: PathBuf,
    pub size: Size,
    pub encoding: Encoding,
    pub overwrite: bool,
    pub consistency: ConsistencyOptions,
}

/// What a finished (or interrupted) transcode did.
#[derive(Debug, Clone)]
pub struct FileReport {
    pub frames: u64,
    pub seconds: f64,
    /// True when an interrupt ended it early (the file is complete up to there and playable).
    pub interrupted: bool,
    /// The flicker monitor's last reading, when it ran.
    pub monitor: Option<MonitorReading>,
    /// What was changed to make the input fit the output, one line each (for the user to read).
    pub notes: Vec<String>,
}

/// The output container, from the file extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Container {
    Mp4,
    Mkv,
}

impl Container {
    fn of(path: &Path) -> Result<Self, VideoError> {
        match path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
            Some("mp4" | "m4v" | "mov") => Ok(Container::Mp4),
            Some("mkv") => Ok(Container::Mkv),
            _ => Err(VideoError::Output {
                path: path.to_path_buf(),
                reason: "unsupported extension, use .mp4 or .mkv".into(),
            }),
        }
    }

    fn template(self) -> &'static str {
        match self {
            Container::Mp4 => "file-mp4",
            Container::Mkv => "file-mkv",
        }
    }

    /// Compressed audio this container takes as it is: (caps to stop decoding at, parser before the
    /// muxer). The parser also frames and timestamps the stream: AVI and MPEG-TS deliver audio in
    /// chunks without presentation times, which the muxer refuses ("Buffer has no PTS").
    fn passthrough(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Container::Mp4 => &[
                ("audio/mpeg,mpegversion=4", "aacparse"),
                ("audio/mpeg,mpegversion=1", "mpegaudioparse"),
                ("audio/x-ac3", "ac3parse"),
            ],
            Container::Mkv => &[
                ("audio/mpeg,mpegversion=4", "aacparse"),
                ("audio/mpeg,mpegversion=1", "mpegaudioparse"),
                ("audio/x-ac3", "ac3parse"),
                ("audio/x-eac3", "ac3parse"),
                ("audio/x-opus", "opusparse"),
                ("audio/x-vorbis", "vorbisparse"),
                ("audio/x-flac", "flacparse"),
            ],
        }
    }

    /// Encoder for audio that cannot pass through.
    fn audio_encoder(self) -> (&'static str, &'static str) {
        match self {
            Container::Mp4 => ("avenc_aac", "avenc_aac ! aacparse"),
            Container::Mkv => ("opusenc", "opusenc"),
        }
    }
}

/// Name of the queue that starts the audio branch (an interrupt sends end-of-stream into it).
const AUDIO_QUEUE: &str = "audioq";

/// The caps at which decoding stops and the audio branch of the description, for the file's audio.
fn audio_plan(container: Container, audio: Option<&gst::Caps>) -> Result<(String, String), VideoError> {
    let raw = "video/x-raw(ANY);audio/x-raw(ANY)".to_string();
    let Some(caps) = audio else { return Ok((raw, String::new())) };
    let queue = format!("queue name={AUDIO_QUEUE} max-size-buffers=0 max-size-bytes=0 max-size-time=0");
    for (pass_caps, parser) in container.passthrough() {
        let wanted: gst::Caps = pass_caps.parse().expect("the passthrough table holds valid caps");
        if caps.can_intersect(&wanted) {
            require(parser)?;
            return Ok((
                format!("{raw};{pass_caps}"),
                format!("dec. ! {pass_caps} ! {queue} ! {parser} ! mux."),
            ));
        }
    }
    let (element, encoder) = container.audio_encoder();
    require(element)?;
    Ok((raw, format!("dec. ! audio/x-raw ! {queue} ! audioconvert ! audioresample ! {encoder} ! mux.")))
}

/// Frame step when the file states no frame rate and a frame no duration.
const FALLBACK_STEP: gst::ClockTime = gst::ClockTime::from_nseconds(1_000_000_000 / 30);

/// Closest two frames may follow each other: Matroska stores milliseconds, so frames nearer than that
/// collapse onto one time.
const MIN_GAP: gst::ClockTime = gst::ClockTime::from_mseconds(1);

/// Makes every frame's presentation time later than the one before, as the muxer requires. AVI stores
/// no presentation times, so a decoder of MPEG-4 Part 2 with B-frames derives them from decode times
/// and some come out repeated or missing. Such a frame (or one less than [`MIN_GAP`] after the one
/// before) gets the previous frame's time plus one frame; times that increase pass unchanged, so
/// variable frame rates are kept frame by frame.
#[derive(Debug)]
struct Timestamper {
    /// One frame at the nominal rate, for frames without a duration of their own.
    step: gst::ClockTime,
    last: Option<gst::ClockTime>,
    /// Frames that were given a new time.
    retimed: Arc<AtomicU64>,
    /// Where the last frame so far ends, nanoseconds.
    end: Arc<AtomicU64>,
}

impl Timestamper {
    fn new(framerate: gst::Fraction) -> Self {
        let (n, d) = (framerate.numer(), framerate.denom());
        let step = if n > 0 && d > 0 {
            gst::ClockTime::from_nseconds(1_000_000_000 * d as u64 / n as u64)
        } else {
            FALLBACK_STEP
        };
        Timestamper { step, last: None, retimed: Arc::default(), end: Arc::default() }
    }

    fn apply(&mut self, frame: &mut Frame) {
        let pts = match (frame.pts, self.last) {
            (Some(pts), Some(last)) if pts >= last + MIN_GAP => pts,
            (Some(pts), None) => pts,
            (_, last) => {
                self.retimed.fetch_add(1, Ordering::Relaxed);
                let step = frame.duration.filter(|d| !d.is_zero()).unwrap_or(self.step);
                last.map_or(gst::ClockTime::ZERO, |last| last + step)
            }
        };
        frame.pts = Some(pts);
        self.last = Some(pts);
        let end = pts + frame.duration.unwrap_or(self.step);
        self.end.store(end.nseconds(), Ordering::Relaxed);
    }
}

/// A note when the video ends well before the duration the file declares (more than half a second and
/// a tenth of it): a file cut short or damaged, of which the output holds what could be read. (The
/// declared duration covers every stream, so audio that outlasts the video by that much reads the same.)
fn cut_short(end: gst::ClockTime, declared: gst::ClockTime) -> Option<String> {
    let missing = declared.saturating_sub(end);
    (missing > gst::ClockTime::from_mseconds(500) && missing > declared / 10).then(|| {
        format!(
            "the video ends at {:.2} s but the file declares {:.2} s: cut short or damaged? (the output holds what could be read)",
            end.nseconds() as f64 / 1e9,
            declared.nseconds() as f64 / 1e9
        )
    })
}

/// Output frame size for a source size: the policy, then rounded up to even numbers because H.264 in
/// 4:2:0 needs them (at most one pixel of stretch).
pub fn output_size(source: (u32, u32), size: Size) -> (u32, u32) {
    let (w, h) = source;
    let (w, h) = match size {
        Size::Keep => (w, h),
        Size::Exact(w, h) => (w, h),
        Size::MaxSide(max) if w.max(h) > max => {
            let scale = max as f64 / w.max(h) as f64;
            (((w as f64 * scale).round() as u32).max(1), ((h as f64 * scale).round() as u32).max(1))
        }
        Size::MaxSide(_) => (w, h),
    };
    (w + (w & 1), h + (h & 1))
}

/// Transcodes one file. `progress` is called with the frames written so far; `interrupt` ends the
/// run early but cleanly.
pub fn transcode(
    job: &FileJob,
    stylizer: Box<dyn Stylizer>,
    progress: &dyn Fn(u64),
    interrupt: &AtomicBool,
) -> Result<FileReport, VideoError> {
    let container = Container::of(&job.output)?;
    if !job.overwrite && job.output.exists() {
        return Err(VideoError::Exists { path: job.output.clone() });
    }
    let info = probe(&job.input)?;
    let tmp = temp_sibling(&job.output);
    let result = run(job, container, &info, &tmp, stylizer, progress, interrupt).and_then(|report| {
        // A video track without a single frame (a recording that never started) would give a file
        // with no picture at all.
        if report.frames == 0 && !report.interrupted {
            return Err(VideoError::Input { path: job.input.clone(), reason: "has no video frames".into() });
        }
        let notes = info.left_out().into_iter().chain(report.notes).collect();
        Ok(FileReport { notes, ..report })
    });
    match result {
        Ok(report) => {
            std::fs::rename(&tmp, &job.output).map_err(|e| {
                let _ = std::fs::remove_file(&tmp);
                VideoError::Output { path: job.output.clone(), reason: e.to_string() }
            })?;
            Ok(report)
        }
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            // The muxer wrote to the temporary name; the user knows the file by its final one.
            Err(match e {
                VideoError::Element { element, message } => VideoError::Element {
                    element,
                    message: message.replace(&tmp.display().to_string(), &job.output.display().to_string()),
                },
                other => other,
            })
        }
    }
}

/// Expected frame count of a file, for progress bars (`None` when unknown).
pub fn estimated_frames(input: &Path) -> Option<u64> {
    probe(input).ok()?.estimated_frames()
}

fn run(
    job: &FileJob,
    container: Container,
    info: &MediaInfo,
    tmp: &Path,
    stylizer: Box<dyn Stylizer>,
    progress: &dyn Fn(u64),
    interrupt: &AtomicBool,
) -> Result<FileReport, VideoError> {
    let (width, height) = output_size((info.width, info.height), job.size);
    let (decode_caps, audio) = audio_plan(container, info.audio.as_ref())?;
    let framerate = (info.framerate.numer() > 0).then_some(info.framerate);
    let styled_caps = super::frame::rgb_caps(width as usize, height as usize, framerate);
    let description = fill(
        &template(container.template())?,
        &[
            ("input_uri", file_uri(&job.input)?),
            ("decode_caps", decode_caps),
            ("scale", format!(",width={width},height={height},pixel-aspect-ratio=1/1")),
            ("styled_caps", format!("\"{styled_caps}\"")),
            ("x264", job.encoding.x264_properties()),
            ("output", tmp.display().to_string().replace('"', "\\\"")),
            ("audio", audio),
        ],
    )?;
    tracing::debug!(%description, "file pipeline");
    let pipeline = launch(&description)?;
    let timestamper = Timestamper::new(info.framerate);
    let end = timestamper.end.clone();
    let result =
        drive(&pipeline, stylizer, Consistency::new(&job.consistency)?, timestamper, progress, interrupt);
    let _ = pipeline.set_state(gst::State::Null);
    let mut report = result?;
    let end = gst::ClockTime::from_nseconds(end.load(Ordering::Relaxed));
    if let Some(note) = info.duration.filter(|_| !report.interrupted).and_then(|d| cut_short(end, d)) {
        report.notes.push(note);
    }
    Ok(report)
}

/// Runs a built file pipeline to its end.
fn drive(
    pipeline: &gst::Pipeline,
    stylizer: Box<dyn Stylizer>,
    post: Option<Consistency>,
    mut timestamper: Timestamper,
    progress: &dyn Fn(u64),
    interrupt: &AtomicBool,
) -> Result<FileReport, VideoError> {
    let appsink = app_element::<gst_app::AppSink>(pipeline, "frames")?;
    let appsrc = app_element::<gst_app::AppSrc>(pipeline, "styled")?;
    let stats = Arc::new(Stats::default());
    let stop = Arc::new(AtomicBool::new(false));
    let pull = puller(appsink, stop.clone());
    let push_src = appsrc.clone();
    let retimed = timestamper.retimed.clone();
    let push = Box::new(move |mut frame: Frame| {
        timestamper.apply(&mut frame);
        push_src.push_buffer(frame.to_buffer()?).map(|_| ()).map_err(|e| VideoError::Element {
            element: "styled".into(),
            message: format!("could not hand a frame to the encoder: {e:?}"),
        })
    });
    let finish = Box::new(move || {
        let _ = appsrc.end_of_stream();
    });
    let started = Instant::now();
    pipeline.set_state(gst::State::Playing).map_err(|_| startup_error(pipeline))?;
    let monitor = post.as_ref().and_then(Consistency::monitor);
    let stages = Stages::spawn(pull, stylizer, None, post, push, finish, stats.clone(), stop.clone(), false);
    let bus = pipeline.bus().expect("a pipeline has a bus");
    let written = file_complete(pipeline);
    let mut audio_ended = false;
    let mut warnings: Vec<String> = Vec::new();
    let outcome = loop {
        if let Some(msg) = bus.timed_pop(gst::ClockTime::from_nseconds(TICK.as_nanos() as u64)) {
            match msg.view() {
                gst::MessageView::Eos(_) => break Ok(()),
                gst::MessageView::Error(err) => break Err(element_error(&msg, err)),
                // Damage a demuxer or decoder works around (an MPEG-TS continuity error) is a warning.
                gst::MessageView::Warning(w) => {
                    warnings.push(format!("{} ({})", source_name(&msg), w.error()))
                }
                _ => {}
            }
        }
        // After an interrupt the decoder side never ends (nobody pulls), so the pipeline posts no
        // end-of-stream: the file is done when the muxer's end-of-stream has reached the file sink.
        if written.load(Ordering::Relaxed) {
            break Ok(());
        }
        progress(stats.frames_out.load(Ordering::Relaxed));
        if stages.failed() {
            break Ok(());
        }
        if interrupt.load(Ordering::Relaxed) {
            stop.store(true, Ordering::Relaxed);
            // Once the video side has drained, end the audio branch too so the muxer can finish.
            if stages.finished() && !audio_ended {
                audio_ended = true;
                end_audio_branch(pipeline);
            }
        }
    };
    stop.store(true, Ordering::Relaxed);
    let _ = pipeline.set_state(gst::State::Null);
    let staged = stages.join();
    outcome?;
    staged?;
    let monitor = consistency::finish(monitor)?;
    let frames = stats.frames_out.load(Ordering::Relaxed);
    progress(frames);
    let mut notes = Vec::new();
    match retimed.load(Ordering::Relaxed) {
        0 => {}
        n => notes.push(format!(
            "{n} frames had no presentation time or repeated the previous one; each was placed one frame after it"
        )),
    }
    if let Some(first) = warnings.first() {
        notes.push(format!("GStreamer warned {} time(s), first: {first}", warnings.len()));
    }
    Ok(FileReport {
        frames,
        seconds: started.elapsed().as_secs_f64(),
        interrupted: interrupt.load(Ordering::Relaxed),
        monitor,
        notes,
    })
}

/// A flag set when end-of-stream reaches the element after the muxer (the file sink): from then on
/// the file is complete.
fn file_complete(pipeline: &gst::Pipeline) -> Arc<AtomicBool> {
    let done = Arc::new(AtomicBool::new(false));
    let flag = done.clone();
    let sink_pad = pipeline.by_name("mux").and_then(|m| m.static_pad("src")).and_then(|p| p.peer());
    if let Some(pad) = sink_pad {
        pad.add_probe(gst::PadProbeType::EVENT_DOWNSTREAM, move |_, info| {
            if let Some(gst::PadProbeData::Event(ev)) = &info.data {
                if ev.type_() == gst::EventType::Eos {
                    flag.store(true, Ordering::Relaxed);
                }
            }
            gst::PadProbeReturn::Ok
        });
    }
    done
}

fn end_audio_branch(pipeline: &gst::Pipeline) {
    if let Some(pad) = pipeline.by_name(AUDIO_QUEUE).and_then(|q| q.static_pad("sink")) {
        pad.send_event(gst::event::Eos::new());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_keep_aspect_and_are_even() {
        assert_eq!(output_size((322, 242), Size::Keep), (322, 242));
        assert_eq!(output_size((321, 241), Size::Keep), (322, 242));
        assert_eq!(output_size((1920, 1080), Size::MaxSide(640)), (640, 360));
        assert_eq!(output_size((240, 320), Size::MaxSide(100)), (76, 100));
        assert_eq!(output_size((100, 50), Size::MaxSide(640)), (100, 50));
        assert_eq!(output_size((100, 50), Size::Exact(33, 20)), (34, 20));
    }

    #[test]
    fn timestamper_keeps_increasing_times_and_places_missing_or_repeated_ones_one_frame_on() {
        let ms = gst::ClockTime::from_mseconds;
        let frame = |pts: Option<u64>, duration: Option<u64>| Frame {
            width: 1,
            height: 1,
            data: vec![0; 3],
            pts: pts.map(ms),
            duration: duration.map(ms),
            index: 0,
        };
        let mut t = Timestamper::new(gst::Fraction::new(25, 1));
        let mut times = Vec::new();
        // A variable rate passes as it is; a repeat and a gap in time take one frame (its own
        // duration, else the nominal 40 ms); the first frame without a time starts at 0.
        let input = [(None, None), (Some(10), None), (Some(30), None), (Some(30), Some(20)), (None, None)];
        for (pts, duration) in input {
            let mut f = frame(pts, duration);
            t.apply(&mut f);
            times.push(f.pts.unwrap().mseconds());
        }
        assert_eq!(times, [0, 10, 30, 50, 90]);
        assert_eq!(t.retimed.load(Ordering::Relaxed), 3);
        assert_eq!(t.end.load(Ordering::Relaxed), ms(130).nseconds());
    }

    #[test]
    fn a_video_ending_well_before_the_declared_duration_is_noted() {
        let ms = gst::ClockTime::from_mseconds;
        assert!(cut_short(ms(1120), ms(2000)).is_some_and(|n| n.contains("1.12 s") && n.contains("2.00 s")));
        assert!(cut_short(ms(1960), ms(2000)).is_none());
        assert!(cut_short(ms(9000), ms(10_000)).is_none(), "a tenth or less is rounding, not damage");
    }
}
