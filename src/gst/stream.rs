//! `stylestream stream --pipeline NAME` for descriptions that use the element itself (the
//! `*-element` pipelines): no appsink/appsrc and no stage threads; the model runs in the element on
//! GStreamer's streaming thread, behind a leaky queue so a live source never waits for it.
use std::cell::Cell;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use gstreamer as gst;
use gstreamer::prelude::*;

use super::{Stylestream, MONITOR_MESSAGE};
use crate::video::live::{Arrivals, LiveOptions, LiveStats};
use crate::video::pipeline::{drive_live, startup_error, LiveHooks};
use crate::video::{Stylizer, VideoError};

/// Frames between two monitor messages: about one a second at 30 fps, the CLI's stats-line pace.
const MONITOR_EVERY: u32 = 30;

/// The `stylestream` element of a parsed description, if it has one.
pub fn find(pipeline: &gst::Pipeline) -> Option<Stylestream> {
    pipeline.iterate_recurse().into_iter().flatten().find_map(|e| e.downcast::<Stylestream>().ok())
}

/// Counts frames in where they enter the queue before the element (so frames the leaky queue drops
/// count as dropped), else at the element's input; frames out and their capture-to-sink latency at
/// its output (the queue's wait and the element's processing included).
fn count(element: &Stylestream, frames_in: &Arc<AtomicU64>, arrivals: &Arc<Arrivals>) {
    let sink = element.static_pad("sink").expect("a filter has a sink pad");
    let queue = sink
        .peer()
        .and_then(|p| p.parent_element())
        .filter(|e| e.factory().is_some_and(|f| f.name() == "queue"));
    let input = queue.and_then(|q| q.static_pad("sink")).unwrap_or(sink);
    let c = frames_in.clone();
    input.add_probe(gst::PadProbeType::BUFFER, move |_, _| {
        c.fetch_add(1, Ordering::Relaxed);
        gst::PadProbeReturn::Ok
    });
    arrivals.watch(&element.static_pad("src").expect("a filter has a src pad"), element.upcast_ref());
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
    let frames_in = Arc::new(AtomicU64::new(0));
    let arrivals = Arc::new(Arrivals::default());
    count(element, &frames_in, &arrivals);

    pipeline.set_state(gst::State::Playing).map_err(|_| startup_error(pipeline))?;
    let started = Instant::now();
    let e_warp = Cell::new(None);
    let snapshot = |e_warp: Option<(f64, f64)>| {
        let frames_in = frames_in.load(Ordering::Relaxed);
        let frames_out = arrivals.frames();
        let [latency_p50, latency_p95, latency_p99] = arrivals.percentiles();
        LiveStats {
            seconds: started.elapsed().as_secs_f64(),
            frames_in,
            frames_out,
            // The queue holds at most one frame and the element one more: not dropped yet.
            dropped: frames_in.saturating_sub(frames_out + 2),
            latency_p50,
            latency_p95,
            latency_p99,
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
