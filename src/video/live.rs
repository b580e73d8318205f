//! Live mode: a camera, test pattern or network stream through the model to a window, a virtual
//! camera, a file, RTMP or SRT. Nothing waits for the model: the appsink keeps only the newest frame,
//! the model takes it when it is ready, every later hand-over up to the sink is a one-slot mailbox
//! (the appsrc's queue included), and replaced frames are counted as dropped. A frame reaches the sink
//! about one model pass after its capture, however slow the model. The style can be replaced while
//! running by rewriting the style file.
use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use candle_core::{Device, Tensor};
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;

use super::consistency::{reading, Consistency, ConsistencyOptions};
use super::pipeline::{app_element, drive_live, fill, launch, require, startup_error, template, LiveHooks};
use super::stages::{puller, Stages, Stats};
use super::{Frame, Stylizer, VideoError};

/// Where live frames come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A V4L2 camera device.
    Webcam(String),
    /// A moving test pattern (no camera needed).
    Test,
    /// Anything `uridecodebin` reads (file://, rtsp://, http://, ...), played at its own pace.
    Uri(String),
}

impl std::str::FromStr for Source {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "test" => Source::Test,
            "webcam" => Source::Webcam("/dev/video0".into()),
            _ if s.starts_with("webcam:") => Source::Webcam(s["webcam:".len()..].into()),
            _ if s.contains("://") => Source::Uri(s.into()),
            _ => {
                let path = std::path::absolute(s).map_err(|e| format!("`{s}`: {e}"))?;
                let uri = gst::glib::filename_to_uri(&path, None).map_err(|e| format!("`{s}`: {e}"))?;
                Source::Uri(uri.to_string())
            }
        })
    }
}

/// Where stylised frames go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sink {
    /// A window (needs a display).
    Display,
    /// A fragmented MP4 file (playable even after a crash), written under a temporary name.
    File(PathBuf),
    /// A V4L2 output device, e.g. a v4l2loopback virtual camera.
    V4l2(String),
    Rtmp(String),
    Srt(String),
    /// Discard (benchmarks and tests).
    Null,
}

impl std::str::FromStr for Sink {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "display" => Sink::Display,
            "null" => Sink::Null,
            _ if s.starts_with("file:") => Sink::File(s["file:".len()..].into()),
            _ if s.starts_with("v4l2:") => Sink::V4l2(s["v4l2:".len()..].into()),
            _ if s.starts_with("rtmp://") || s.starts_with("rtmps://") => Sink::Rtmp(s.into()),
            _ if s.starts_with("srt://") => Sink::Srt(s.into()),
            _ => {
                return Err(format!(
                    "`{s}`: expected display, file:PATH, v4l2:DEVICE, rtmp://..., srt://... or null"
                ))
            }
        })
    }
}

/// A live run.
#[derive(Debug, Clone)]
pub struct LiveOptions {
    pub source: Source,
    pub sink: Sink,
    /// Frame size asked of the source (cameras and the test pattern); `None` keeps the source's.
    pub size: Option<(u32, u32)>,
    /// Frame rate asked of cameras and the test pattern.
    pub fps: u32,
    /// Stop after this long (`None`: until interrupted or the source ends).
    pub duration: Option<Duration>,
    /// Re-read this style image whenever the file changes.
    pub watch_style: Option<PathBuf>,
    /// Longer side of the style image after loading.
    pub style_size: u32,
    pub overwrite: bool,
    pub consistency: ConsistencyOptions,
}

/// Counters of a live run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LiveStats {
    pub seconds: f64,
    /// Frames the source produced.
    pub frames_in: u64,
    /// Frames that reached the sink side.
    pub frames_out: u64,
    /// Frames dropped because a stage (the model, mostly) was busy.
    pub dropped: u64,
    /// Capture-to-sink latency percentiles over the recent frames ([`Arrivals`]), seconds; 0 before
    /// the first frame.
    pub latency_p50: f64,
    pub latency_p95: f64,
    pub latency_p99: f64,
    /// Rolling warping error of the output (and of the source, the flow's floor), with `--monitor`.
    pub e_warp: Option<(f64, f64)>,
}

impl LiveStats {
    pub fn fps_in(&self) -> f64 {
        self.frames_in as f64 / self.seconds.max(1e-9)
    }

    pub fn fps_out(&self) -> f64 {
        self.frames_out as f64 / self.seconds.max(1e-9)
    }

    /// The summary `stream --stats-json` writes: counts, rates, latency percentiles in milliseconds.
    pub fn to_json(&self) -> serde_json::Value {
        let ms = |s: f64| s * 1e3;
        serde_json::json!({
            "seconds": self.seconds,
            "frames_in": self.frames_in,
            "frames_out": self.frames_out,
            "dropped": self.dropped,
            "fps_in": self.fps_in(),
            "fps_out": self.fps_out(),
            "latency_ms": {
                "p50": ms(self.latency_p50),
                "p95": ms(self.latency_p95),
                "p99": ms(self.latency_p99),
                "frames": format!("the last {LATENCY_WINDOW} frames out at most"),
                "from": "capture: the buffer's pts, a running time on the pipeline clock",
                "to": "the sink side: the appsrc's output, or the stylestream element's",
            },
            "e_warp": self.e_warp.map(|(styled, source)| serde_json::json!({"styled": styled, "source": source})),
        })
    }
}

impl std::fmt::Display for LiveStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "fps in {:.1} | fps out {:.1} | latency p50 {:.0} ms p95 {:.0} ms p99 {:.0} ms | dropped {}",
            self.fps_in(),
            self.fps_out(),
            self.latency_p50 * 1e3,
            self.latency_p95 * 1e3,
            self.latency_p99 * 1e3,
            self.dropped
        )?;
        match self.e_warp {
            Some((styled, source)) => write!(f, " | E_warp {styled:.5} (source {source:.5})"),
            None => Ok(()),
        }
    }
}

/// Latency samples kept for the percentiles: the most recent frames.
const LATENCY_WINDOW: usize = 1024;

/// Frames reaching the sink side of a live pipeline and how late each was: the running time when it
/// got there minus its pts. A live source stamps each buffer with the running time of its capture on
/// the pipeline clock, so this is capture-to-sink latency on the source's own clock, every queue and
/// the model included.
#[derive(Debug, Default)]
pub struct Arrivals {
    frames: AtomicU64,
    latencies: Mutex<VecDeque<f64>>,
}

impl Arrivals {
    /// Counts every buffer leaving `pad`, timed by the running time of `element` (in the pipeline).
    pub fn watch(self: &Arc<Self>, pad: &gst::Pad, element: &gst::Element) {
        let arrivals = self.clone();
        let element = element.downgrade();
        pad.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
            arrivals.frames.fetch_add(1, Ordering::Relaxed);
            let now = element.upgrade().and_then(|e| e.current_running_time());
            if let (Some(now), Some(pts)) = (now, info.buffer().and_then(|b| b.pts())) {
                arrivals.record(now.saturating_sub(pts).seconds_f64());
            }
            gst::PadProbeReturn::Ok
        });
    }

    /// Buffers counted so far.
    pub fn frames(&self) -> u64 {
        self.frames.load(Ordering::Relaxed)
    }

    fn record(&self, seconds: f64) {
        let mut latencies = self.latencies.lock().unwrap_or_else(PoisonError::into_inner);
        if latencies.len() == LATENCY_WINDOW {
            latencies.pop_front();
        }
        latencies.push_back(seconds);
    }

    /// p50, p95 and p99 of the recent latencies in seconds: the samples at rank `round((n - 1) q)`
    /// of the sorted window (zeros before any frame).
    pub fn percentiles(&self) -> [f64; 3] {
        let mut l: Vec<f64> =
            self.latencies.lock().unwrap_or_else(PoisonError::into_inner).iter().copied().collect();
        if l.is_empty() {
            return [0.0; 3];
        }
        l.sort_by(f64::total_cmp);
        [0.5, 0.95, 0.99].map(|q| l[((l.len() - 1) as f64 * q).round() as usize])
    }
}

fn source_fragment(source: &Source, size: Option<(u32, u32)>, fps: u32) -> String {
    let scale = size.map(|(w, h)| format!(",width={w},height={h}")).unwrap_or_default();
    match source {
        Source::Test => {
            let (w, h) = size.unwrap_or((640, 480));
            format!("videotestsrc is-live=true pattern=ball ! video/x-raw,width={w},height={h},framerate={fps}/1")
        }
        Source::Webcam(dev) => format!(
            "v4l2src device=\"{dev}\" ! videoconvert ! videoscale ! videorate drop-only=true ! video/x-raw{scale},framerate={fps}/1"
        ),
        Source::Uri(uri) => format!("uridecodebin uri=\"{uri}\" caps=video/x-raw ! videoconvert ! videoscale ! video/x-raw{scale}"),
    }
}

/// The output side after the appsrc. Every sink is kept out of prerolling (`async=false`, or
/// `async-handling` for the auto-plugging bin): frames only reach it once the pipeline plays, so a
/// sink waiting for its first frame before letting the pipeline play would wait forever.
fn sink_fragment(sink: &Sink, tmp: Option<&PathBuf>) -> Result<String, VideoError> {
    let h264 = "videoconvert ! video/x-raw,format=I420 ! x264enc tune=zerolatency speed-preset=veryfast key-int-max=30 ! h264parse config-interval=-1";
    Ok(match sink {
        Sink::Display => {
            if std::env::var_os("DISPLAY").is_none() && std::env::var_os("WAYLAND_DISPLAY").is_none() {
                return Err(VideoError::Pipeline(
                    "--sink display needs a display (DISPLAY or WAYLAND_DISPLAY is unset)".into(),
                ));
            }
            "videoconvert ! autovideosink sync=false async-handling=true".into()
        }
        Sink::Null => "fakesink sync=false async=false".into(),
        Sink::File(_) => {
            let tmp = tmp.expect("a file sink has a temporary path");
            format!(
                "{h264} ! mp4mux fragment-duration=1000 ! filesink async=false location=\"{}\"",
                tmp.display()
            )
        }
        Sink::V4l2(dev) => {
            format!(
                "videoconvert ! video/x-raw,format=YUY2 ! v4l2sink device=\"{dev}\" sync=false async=false"
            )
        }
        Sink::Rtmp(url) => {
            format!("{h264} ! flvmux streamable=true ! rtmp2sink async=false location=\"{url}\"")
        }
        Sink::Srt(url) => format!("{h264} ! mpegtsmux alignment=7 ! srtsink async=false uri=\"{url}\""),
    })
}

/// The description of a live run: `--pipeline` (named or a file) if given, else source + sink.
fn description(
    opts: &LiveOptions,
    pipeline: Option<&str>,
    tmp: Option<&PathBuf>,
) -> Result<String, VideoError> {
    let (w, h) = opts.size.unwrap_or((640, 480));
    if let Some(name) = pipeline {
        let device = match &opts.source {
            Source::Webcam(dev) => dev.clone(),
            _ => "/dev/video0".into(),
        };
        let location = match &opts.sink {
            Sink::Rtmp(url) | Sink::Srt(url) => url.clone(),
            _ => String::new(),
        };
        let output_device = match &opts.sink {
            Sink::V4l2(dev) => dev.clone(),
            _ => "/dev/video10".into(),
        };
        return fill(
            &template(name)?,
            &[
                ("device", device),
                ("width", w.to_string()),
                ("height", h.to_string()),
                ("fps", opts.fps.to_string()),
                ("location", location),
                ("output_device", output_device),
            ],
        );
    }
    // Non-live sources (files, streams) play at their own pace: the appsink syncs to the clock.
    let sync = matches!(opts.source, Source::Uri(_));
    Ok(format!(
        "{} ! videoconvert ! video/x-raw,format=RGB ! appsink name=frames sync={sync} max-buffers=1 drop=true wait-on-eos=false\n\
         appsrc name=styled format=time is-live=true ! {}",
        source_fragment(&opts.source, opts.size, opts.fps),
        sink_fragment(&opts.sink, tmp)?
    ))
}

/// Runs live until `interrupt`, the duration, or the end of the source. `report` receives the stats
/// about once a second.
pub fn run(
    opts: &LiveOptions,
    pipeline_name: Option<&str>,
    stylizer: Box<dyn Stylizer>,
    report: &dyn Fn(&LiveStats),
    interrupt: &AtomicBool,
) -> Result<LiveStats, VideoError> {
    if pipeline_name.is_some() && matches!(opts.sink, Sink::File(_)) {
        return Err(VideoError::Pipeline(
            "--pipeline describes its own sink; use --sink file:PATH without --pipeline".into(),
        ));
    }
    let final_path = match &opts.sink {
        Sink::File(path) => {
            if !opts.overwrite && path.exists() {
                return Err(VideoError::Exists { path: path.clone() });
            }
            Some(path.clone())
        }
        Sink::Rtmp(_) => {
            require("rtmp2sink")?;
            None
        }
        Sink::Srt(_) => {
            require("srtsink")?;
            None
        }
        _ => None,
    };
    let tmp = final_path.as_deref().map(crate::output::temp_sibling);
    let pipeline = launch(&description(opts, pipeline_name, tmp.as_ref())?)?;
    // A description with the `stylestream` element runs the model there (`pipelines/*-element`).
    #[cfg(feature = "gst-plugin")]
    if let Some(element) = crate::gst::stream::find(&pipeline) {
        let result = crate::gst::stream::run(&pipeline, &element, opts, stylizer, report, interrupt);
        let _ = pipeline.set_state(gst::State::Null);
        return result;
    }
    let result = drive(&pipeline, opts, stylizer, report, interrupt);
    let _ = pipeline.set_state(gst::State::Null);
    match (result, final_path, tmp) {
        (Ok(stats), Some(path), Some(tmp)) => {
            std::fs::rename(&tmp, &path).map_err(|e| {
                let _ = std::fs::remove_file(&tmp);
                VideoError::Output { path, reason: e.to_string() }
            })?;
            Ok(stats)
        }
        (Err(e), _, Some(tmp)) => {
            let _ = std::fs::remove_file(tmp);
            Err(e)
        }
        (result, _, _) => result,
    }
}

fn drive(
    pipeline: &gst::Pipeline,
    opts: &LiveOptions,
    stylizer: Box<dyn Stylizer>,
    report: &dyn Fn(&LiveStats),
    interrupt: &AtomicBool,
) -> Result<LiveStats, VideoError> {
    let appsink = app_element::<gst_app::AppSink>(pipeline, "frames")?;
    let appsrc = app_element::<gst_app::AppSrc>(pipeline, "styled")?;
    // Every buffer reaching the appsink counts as produced; those never pulled were dropped.
    let produced = Arc::new(AtomicU64::new(0));
    let counter = produced.clone();
    appsink.static_pad("sink").expect("appsink has a sink pad").add_probe(
        gst::PadProbeType::BUFFER,
        move |_, _| {
            counter.fetch_add(1, Ordering::Relaxed);
            gst::PadProbeReturn::Ok
        },
    );
    // The sink side is a one-slot mailbox too: a frame the sink is not ready for yet is replaced by
    // the next one rather than queued behind it (whatever the description says about the appsrc).
    appsrc.set_max_bytes(0);
    appsrc.set_max_buffers(1);
    appsrc.set_leaky_type(gst_app::AppLeakyType::Downstream);
    let arrivals = Arc::new(Arrivals::default());
    arrivals.watch(&appsrc.static_pad("src").expect("appsrc has a src pad"), appsrc.upcast_ref());

    let stats = Arc::new(Stats::default());
    let stop = Arc::new(AtomicBool::new(false));
    let pull = puller(appsink.clone(), stop.clone());
    let push_src = appsrc.clone();
    let mut caps_set = false;
    let push = Box::new(move |frame: Frame| {
        if !caps_set {
            push_src.set_caps(Some(&super::frame::rgb_caps(frame.width, frame.height, None)));
            caps_set = true;
        }
        match push_src.push_buffer(frame.to_buffer()?) {
            // Flushing/Eos: the run is ending and the sink no longer takes frames.
            Ok(_) | Err(gst::FlowError::Flushing | gst::FlowError::Eos) => Ok(()),
            Err(e) => Err(VideoError::Element {
                element: "styled".into(),
                message: format!("sink refused a frame: {e:?}"),
            }),
        }
    });
    let finish_src = appsrc.clone();
    let finish = Box::new(move || {
        let _ = finish_src.end_of_stream();
    });

    pipeline.set_state(gst::State::Playing).map_err(|_| startup_error(pipeline))?;
    let started = Instant::now();
    let post = Consistency::new(&opts.consistency)?;
    let monitor = post.as_ref().and_then(Consistency::monitor);
    let restyle = opts.watch_style.clone().map(|path| watch_style(path, opts.style_size, stop.clone()));
    let stages =
        Stages::spawn(pull, stylizer, restyle, post, push, finish, stats.clone(), stop.clone(), true);
    let snapshot = || {
        let frames_in = produced.load(Ordering::Relaxed);
        let pulled = stats.frames_in.load(Ordering::Relaxed);
        let pushed = stats.frames_out.load(Ordering::Relaxed);
        let frames_out = arrivals.frames();
        let [latency_p50, latency_p95, latency_p99] = arrivals.percentiles();
        // Dropped where each happens: never pulled from the appsink (one may still wait there),
        // replaced in a mailbox between the stages, replaced in the appsrc's slot.
        let dropped = frames_in.saturating_sub(pulled + 1)
            + stats.skipped.load(Ordering::Relaxed)
            + pushed.saturating_sub(frames_out + appsrc.current_level_buffers());
        LiveStats {
            seconds: started.elapsed().as_secs_f64(),
            frames_in,
            frames_out,
            dropped,
            latency_p50,
            latency_p95,
            latency_p99,
            e_warp: reading(&monitor).and_then(|r| r.rolling_e_warp_stylised.zip(r.rolling_e_warp_source)),
        }
    };
    let hooks = LiveHooks {
        message: |_: &gst::Message| {},
        stop_now: || stages.failed(),
        report: || report(&snapshot()),
        ending: || stop.store(true, Ordering::Relaxed),
    };
    let outcome = drive_live(pipeline, opts.duration.map(|d| started + d), interrupt, hooks);
    stop.store(true, Ordering::Relaxed);
    let stats_now = snapshot();
    let _ = pipeline.set_state(gst::State::Null);
    let staged = stages.join();
    outcome?;
    staged?;
    Ok(stats_now)
}

/// Polls the style file's modification time; each change sends the reloaded image to the stylise stage.
fn watch_style(path: PathBuf, style_size: u32, stop: Arc<AtomicBool>) -> crossbeam_channel::Receiver<Tensor> {
    // Unbounded: a change saved while the model is busy must not be lost (the stage takes the last).
    let (tx, rx) = crossbeam_channel::unbounded();
    let modified = |p: &PathBuf| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    std::thread::spawn(move || {
        let mut seen: Option<SystemTime> = modified(&path);
        while !stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(300));
            let now = modified(&path);
            if now.is_some() && now != seen {
                seen = now;
                match crate::image_io::read_picture(&path, Some(style_size), &Device::Cpu) {
                    Ok(picture) => {
                        tracing::info!("style changed: {}", path.display());
                        let _ = tx.send(picture.rgb);
                    }
                    Err(e) => tracing::warn!("keeping the previous style: {e}"),
                }
            }
        }
    });
    rx
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_and_sinks_parse() {
        assert_eq!("webcam:/dev/video2".parse::<Source>().unwrap(), Source::Webcam("/dev/video2".into()));
        assert_eq!("test".parse::<Source>().unwrap(), Source::Test);
        assert!(matches!("rtsp://cam/1".parse::<Source>().unwrap(), Source::Uri(u) if u == "rtsp://cam/1"));
        assert_eq!("v4l2:/dev/video10".parse::<Sink>().unwrap(), Sink::V4l2("/dev/video10".into()));
        assert_eq!("srt://127.0.0.1:9000".parse::<Sink>().unwrap(), Sink::Srt("srt://127.0.0.1:9000".into()));
        assert!("ftp://x".parse::<Sink>().is_err());
    }

    #[test]
    fn latency_percentiles_cover_the_most_recent_window() {
        let arrivals = Arrivals::default();
        assert_eq!(arrivals.percentiles(), [0.0; 3]);
        // 500 slow frames that leave the 1024-frame window, then 1..=1024 ms in a shuffled order.
        for _ in 0..500 {
            arrivals.record(9.0);
        }
        for i in 0..1024u32 {
            arrivals.record(f64::from(i * 613 % 1024 + 1) / 1e3);
        }
        // Ranks round(1023 q): 512, 972 and 1013, holding 513, 973 and 1014 ms.
        assert_eq!(arrivals.percentiles(), [0.513, 0.973, 1.014]);
    }
}
