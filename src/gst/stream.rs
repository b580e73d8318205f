//! `stylestream stream --pipeline NAME` for descriptions that use the element itself (the
//! `*-element` pipelines): no appsink/appsrc and no stage threads; the model runs in the element on
//! GStreamer's streaming thread, behind a leaky queue so a live source never waits for it.
use std::cell::Cell;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use gstreamer as gst;
use gstreamer::prelude::*;

use super::{Stylestream, MONITOR_MESSAGE};
use crate::video::live::{LiveOptions, LiveStats};
use crate::video::pipeline::{drive_live, startup_error, LiveHooks};
use crate::video::{Stylizer, VideoError};

/// Frames between two monitor messages: about one a second at 30 fps, the CLI's stats-line pace.
const MONITOR_EVERY: u32 = 30;
/// Recent latencies kept for the percentiles.
const LATENCY_WINDOW: usize = 256;

/// The `stylestream` element of a parsed description, if it has one.
pub fn find(pipeline: &gst::Pipeline) -> Option<Stylestream> {
    pipeline.iterate_recurse().into_iter().flatten().find_map(|e| e.downcast::<Stylestream>().ok())
}

/// Counts buffers through a pad and, at the element's output, how late they are.
#[derive(Default)]
struct Counters {
    frames_in: AtomicU64,
    frames_out: AtomicU64,
    /// Running time at the element's output minus the buffer's pts (a live source stamps buffers
    /// with the running time of capture), seconds.
    latencies: Mutex<Vec<f64>>,
}

impl Counters {
    fn latency_percentiles(&self) -> (f64, f64) {
        let mut l = self.latencies.lock().map(|l| l.clone()).unwrap_or_default();
        if l.is_empty() {
            return (0.0, 0.0);
        }
        l.sort_by(f64::total_cmp);
        let at = |q: f64| l[((l.len() - 1) as f64 * q).round() as usize];
        (at(0.5), at(0.95))
    }
}

/// Counts frames in where they enter the queue before the element (so frames the leaky queue drops
/// count as dropped), else at the element's input; frames out and their latency at its output.
fn count(element: &Stylestream, counters: &Arc<Counters>) {
    let sink = element.static_pad("sink").expect("a filter has a sink pad");
    let queue = sink
        .peer()
        .and_then(|p| p.parent_element())
        .filter(|e| e.factory().is_some_and(|f| f.name() == "queue"));
    let input = queue.and_then(|q| q.static_pad("sink")).unwrap_or(sink);
    let c = counters.clone();
    input.add_probe(gst::PadProbeType::BUFFER, move |_, _| {
        c.frames_in.fetch_add(1, Ordering::Relaxed);
        gst::PadProbeReturn::Ok
    });
    let c = counters.clone();
    let weak = element.downgrade();
    let src = element.static_pad("src").expect("a filter has a src pad");
    src.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
        c.frames_out.fetch_add(1, Ordering::Relaxed);
        let now = weak.upgrade().and_then(|e| e.current_running_time());
        if let (Some(now), Some(pts)) = (now, info.buffer().and_then(|b| b.pts())) {
            if let Ok(mut l) = c.latencies.lock() {
                if l.len() == LATENCY_WINDOW {
                    l.remove(0);
                }
                l.push(now.saturating_sub(pts).seconds_f64());
            }
        }
        gst::PadProbeReturn::Ok
    });
}

/// Runs an element pipeline until `interrupt`, the duration, or the end of the source, with the
/// CLI's `stylizer`, style (re-read when the file changes) and consistency options; `report` receives
/// the stats about once a second.
pub fn run(
    pipeline: &gst::Pipeline,
    element: &Stylestream,
    opts: &LiveOptions,
    stylizer: Box<dyn Stylizer>,
    report: &dyn Fn(&LiveStats),
    interrupt: &AtomicBool,
) -> Result<LiveStats, VideoError> {
    if opts.consistency.monitor_csv.is_some() {
        return Err(VideoError::Pipeline(
            "--monitor-csv needs an appsink/appsrc pipeline, not the element".into(),
        ));
    }
    // Checked here: GObject refuses an out-of-range value with a panic.
    if !(16..=4096).contains(&opts.style_size) {
        return Err(VideoError::Pipeline(format!(
            "--style-size {}: the stylestream element takes 16 to 4096",
            opts.style_size
        )));
    }
    element.set_stylizer(stylizer);
    let style = opts.watch_style.as_ref().map(|p| p.display().to_string());
    element.set_property("style", style);
    element.set_property("style-size", opts.style_size);
    element.set_property("stabilize", opts.consistency.stabilize);
    element.set_property("monitor", if opts.consistency.monitor { MONITOR_EVERY } else { 0 });
    let counters = Arc::new(Counters::default());
    count(element, &counters);

    pipeline.set_state(gst::State::Playing).map_err(|_| startup_error(pipeline))?;
    let started = Instant::now();
    let e_warp = Cell::new(None);
    let snapshot = |e_warp: Option<(f64, f64)>| {
        let frames_in = counters.frames_in.load(Ordering::Relaxed);
        let frames_out = counters.frames_out.load(Ordering::Relaxed);
        let (latency_p50, latency_p95) = counters.latency_percentiles();
        LiveStats {
            seconds: started.elapsed().as_secs_f64(),
            frames_in,
            frames_out,
            // The queue holds at most one frame and the element one more: not dropped yet.
            dropped: frames_in.saturating_sub(frames_out + 2),
            latency_p50,
            latency_p95,
            e_warp,
        }
    };
    let mut style_file = opts.watch_style.clone().map(StyleFile::new);
    let hooks = LiveHooks {
        message: |msg: &gst::Message| {
            let gst::MessageView::Element(m) = msg.view() else { return };
            if let Some(s) = m.structure().filter(|s| s.name() == MONITOR_MESSAGE) {
                if let (Ok(styled), Ok(source)) = (s.get::<f64>("e-warp"), s.get::<f64>("e-warp-source")) {
                    e_warp.set(Some((styled, source)));
                }
            }
        },
        stop_now: || {
            if style_file.as_mut().is_some_and(StyleFile::changed) {
                // Setting `style` again makes the element re-read the file before its next frame.
                element.set_property("style", opts.watch_style.as_ref().map(|p| p.display().to_string()));
            }
            false
        },
        report: || report(&snapshot(e_warp.get())),
        ending: || {},
    };
    let outcome = drive_live(pipeline, opts.duration.map(|d| started + d), interrupt, hooks);
    let stats = snapshot(e_warp.get());
    let _ = pipeline.set_state(gst::State::Null);
    outcome.map(|()| stats)
}

/// A style file watched by its modification time.
struct StyleFile {
    path: PathBuf,
    seen: Option<SystemTime>,
    checked: Instant,
}

impl StyleFile {
    fn new(path: PathBuf) -> Self {
        let seen = Self::modified(&path);
        StyleFile { path, seen, checked: Instant::now() }
    }

    fn modified(path: &PathBuf) -> Option<SystemTime> {
        std::fs::metadata(path).and_then(|m| m.modified()).ok()
    }

    /// Whether the file changed since the last call (looked at every 300 ms, as the CLI's watcher).
    fn changed(&mut self) -> bool {
        if self.checked.elapsed() < Duration::from_millis(300) {
            return false;
        }
        self.checked = Instant::now();
        let now = Self::modified(&self.path);
        let changed = now.is_some() && now != self.seen;
        self.seen = now;
        changed
    }
}
