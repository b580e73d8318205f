//! The stage graph between the appsink and the appsrc: pull, pre-process, stylise, post-process and
//! push each run on their own thread, joined by bounded channels so a slow stage applies back-pressure
//! instead of queueing frames without limit.
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use candle_core::{Device, Tensor};
use crossbeam_channel::{bounded, Receiver};
use gstreamer as gst;
use gstreamer_app as gst_app;

use super::{Frame, Stylizer, VideoError};

/// Frames allowed to wait between two stages.
const CHANNEL_DEPTH: usize = 2;
/// Latency samples kept for the percentiles.
const LATENCY_WINDOW: usize = 256;

/// Counters the stages update and the driver reads.
#[derive(Debug, Default)]
pub struct Stats {
    pub frames_in: AtomicU64,
    pub frames_out: AtomicU64,
    /// Frames skipped inside the graph because a newer one was waiting (newest-only mode).
    pub skipped: AtomicU64,
    /// Source-to-sink latency of the most recent frames, seconds.
    latencies: Mutex<Vec<f64>>,
}

impl Stats {
    fn record_latency(&self, seconds: f64) {
        if let Ok(mut l) = self.latencies.lock() {
            if l.len() == LATENCY_WINDOW {
                l.remove(0);
            }
            l.push(seconds);
        }
    }

    /// (p50, p95) of the recent latencies in seconds, if any frame came through.
    pub fn latency_percentiles(&self) -> Option<(f64, f64)> {
        let mut l = self.latencies.lock().ok()?.clone();
        if l.is_empty() {
            return None;
        }
        l.sort_by(f64::total_cmp);
        let at = |q: f64| l[((l.len() - 1) as f64 * q).round() as usize];
        Some((at(0.5), at(0.95)))
    }
}

/// Where frames come from: `None` at the end of the stream.
pub type Pull = Box<dyn FnMut() -> Option<Result<Frame, VideoError>> + Send>;
/// Where stylised frames go.
pub type Push = Box<dyn FnMut(Frame) -> Result<(), VideoError> + Send>;
/// Called once after the last frame was pushed (to send end-of-stream).
pub type Finish = Box<dyn FnOnce() + Send>;
/// Applied to every stylised frame with its source frame, in the post-process stage.
pub type Post = super::consistency::Consistency;

/// The newest of `item` and whatever waits behind it in `rx`; the older ones count as skipped.
fn newest<T>(mut item: T, rx: &Receiver<T>, stats: &Stats) -> T {
    while let Ok(newer) = rx.try_recv() {
        item = newer;
        stats.skipped.fetch_add(1, Ordering::Relaxed);
    }
    item
}

/// Pulls frames from an appsink until end-of-stream or `stop`, checking `stop` every 100 ms.
pub fn puller(appsink: gst_app::AppSink, stop: Arc<AtomicBool>) -> Pull {
    let mut index = 0;
    Box::new(move || loop {
        if stop.load(Ordering::Relaxed) {
            return None;
        }
        match appsink.try_pull_sample(gst::ClockTime::from_mseconds(100)) {
            Some(sample) => {
                index += 1;
                return Some(Frame::from_sample(&sample, index - 1));
            }
            None if appsink.is_eos() => return None,
            None => continue,
        }
    })
}

/// The running stages.
pub struct Stages {
    threads: Vec<JoinHandle<Result<(), VideoError>>>,
    failed: Arc<AtomicBool>,
}

impl Stages {
    /// Starts the graph. `post` (stabiliser, monitor) runs on each stylised frame; `stop` ends it early
    /// (the puller stops, queued frames are dropped, the frame in the model is still pushed);
    /// `restyle` delivers new style images, applied between two frames. With `newest_only` (live
    /// sources) the pre-process and stylise stages skip to the newest waiting frame, so latency stays
    /// about one model step instead of growing with the queues.
    pub fn spawn(
        mut pull: Pull,
        mut stylizer: Box<dyn Stylizer>,
        restyle: Option<Receiver<Tensor>>,
        mut post: Option<Post>,
        mut push: Push,
        finish: Finish,
        stats: Arc<Stats>,
        stop: Arc<AtomicBool>,
        newest_only: bool,
    ) -> Self {
        let (decoded_tx, decoded_rx) = bounded::<Frame>(CHANNEL_DEPTH);
        let (input_tx, input_rx) = bounded::<(Frame, Tensor)>(CHANNEL_DEPTH);
        let (styled_tx, styled_rx) = bounded::<(Frame, Tensor)>(CHANNEL_DEPTH);
        let (out_tx, out_rx) = bounded::<Frame>(CHANNEL_DEPTH);
        let mut threads = Vec::new();
        let failed = Arc::new(AtomicBool::new(false));
        let spawn = |name: &str, body: Box<dyn FnOnce() -> Result<(), VideoError> + Send>| {
            let failed = failed.clone();
            std::thread::Builder::new()
                .name(name.to_string())
                .spawn(move || {
                    // A panic counts as a failure too, so the driver stops instead of waiting forever.
                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(body))
                        .unwrap_or_else(|_| Err(VideoError::Pipeline("a stage thread panicked".into())))
                        .inspect_err(|_| failed.store(true, Ordering::Relaxed))
                })
                .expect("the OS can start a thread")
        };

        let in_stats = stats.clone();
        let pre_stats = stats.clone();
        let model_stats = stats.clone();
        let model_stop = stop.clone();
        threads.push(spawn(
            "decode",
            Box::new(move || {
                while !stop.load(Ordering::Relaxed) {
                    let Some(frame) = pull() else { break };
                    in_stats.frames_in.fetch_add(1, Ordering::Relaxed);
                    if decoded_tx.send(frame?).is_err() {
                        break;
                    }
                }
                Ok(())
            }),
        ));
        threads.push(spawn(
            "pre-process",
            Box::new(move || {
                for frame in decoded_rx.iter() {
                    let frame = if newest_only { newest(frame, &decoded_rx, &pre_stats) } else { frame };
                    let _span = tracing::trace_span!("pre-process", frame = frame.index).entered();
                    let tensor = frame.to_tensor(&Device::Cpu)?;
                    if input_tx.send((frame, tensor)).is_err() {
                        break;
                    }
                }
                Ok(())
            }),
        ));
        threads.push(spawn(
            "stylise",
            Box::new(move || {
                for item in input_rx.iter() {
                    let (frame, tensor) =
                        if newest_only { newest(item, &input_rx, &model_stats) } else { item };
                    // Once stopped, frames still queued are dropped: only the one in the model finishes.
                    if model_stop.load(Ordering::Relaxed) {
                        continue;
                    }
                    if let Some(style) = restyle.as_ref().and_then(|r| r.try_iter().last()) {
                        stylizer.set_style(&style)?;
                    }
                    let _span = tracing::debug_span!("stylise", frame = frame.index).entered();
                    let out = stylizer.stylize(&tensor)?;
                    if styled_tx.send((frame, out)).is_err() {
                        break;
                    }
                }
                Ok(())
            }),
        ));
        threads.push(spawn(
            "post-process",
            Box::new(move || {
                for (frame, tensor) in styled_rx {
                    let _span = tracing::trace_span!("post-process", frame = frame.index).entered();
                    let styled = frame.with_pixels(&tensor)?;
                    let styled = match post.as_mut() {
                        Some(post) => post.apply(&frame, styled)?,
                        None => styled,
                    };
                    if out_tx.send(styled).is_err() {
                        break;
                    }
                }
                Ok(())
            }),
        ));
        threads.push(spawn(
            "encode",
            Box::new(move || {
                let result = out_rx.iter().try_for_each(|frame| {
                    let latency = frame.captured.elapsed().as_secs_f64();
                    let _span = tracing::trace_span!("encode", frame = frame.index).entered();
                    push(frame)?;
                    stats.frames_out.fetch_add(1, Ordering::Relaxed);
                    stats.record_latency(latency);
                    Ok(())
                });
                finish();
                result
            }),
        ));
        Stages { threads, failed }
    }

    /// Waits for every stage; the first error wins.
    pub fn join(self) -> Result<(), VideoError> {
        let mut first = Ok(());
        for t in self.threads {
            let r = t.join().unwrap_or_else(|_| Err(VideoError::Pipeline("a stage thread panicked".into())));
            if first.is_ok() {
                first = r;
            }
        }
        first
    }

    /// Whether every stage has ended.
    pub fn finished(&self) -> bool {
        self.threads.iter().all(|t| t.is_finished())
    }

    /// Whether a stage has failed (the driver then aborts the pipeline rather than wait for it).
    pub fn failed(&self) -> bool {
        self.failed.load(Ordering::Relaxed)
    }
}
