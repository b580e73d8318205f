//! The stage graph between the appsink and the appsrc: pull, pre-process, stylise, post-process and
//! push each run on their own thread.
//!
//! Files: the stages are joined by bounded queues, so a slow stage applies back-pressure and every
//! frame arrives. Live sources: the model's thread pulls a frame itself when it is ready for one (the
//! appsink keeps only the newest) and converts it then, and the hand-overs after the model are one-slot
//! mailboxes that a newer frame overwrites. No frame waits behind a busy stage, so the frame the model
//! starts on is at most one source interval plus its conversion old, and the sink gets it one model
//! pass later.
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use candle_core::{Device, Tensor};
use crossbeam_channel::Receiver;
use gstreamer as gst;
use gstreamer_app as gst_app;

use super::link;
use super::{Frame, Stylizer, VideoError};

/// Frames allowed to wait between two stages of a file.
const CHANNEL_DEPTH: usize = 2;

/// Counters the stages update and the driver reads.
#[derive(Debug, Default)]
pub struct Stats {
    /// Frames pulled from the source.
    pub frames_in: AtomicU64,
    /// Frames handed to `push`.
    pub frames_out: AtomicU64,
    /// Frames replaced in a mailbox by a newer one before the next stage took them (live sources).
    pub skipped: AtomicU64,
}

impl Stats {
    /// Counts `replaced` (what a mailbox hand-over returned) as skipped.
    fn replaced<T>(&self, replaced: Option<T>) {
        if replaced.is_some() {
            self.skipped.fetch_add(1, Ordering::Relaxed);
        }
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
/// The model's next frame with its input tensor; `None` at the end.
type Next = Box<dyn FnMut() -> Option<Result<(Frame, Tensor), VideoError>> + Send>;

/// A hand-over after the model: a mailbox for live sources, else a bounded queue.
fn hand_over<T>(newest_only: bool) -> (link::Sender<T>, link::Receiver<T>) {
    if newest_only {
        link::mailbox()
    } else {
        link::bounded(CHANNEL_DEPTH)
    }
}

/// The model input of a frame (the pre-process step).
fn convert(frame: &Frame) -> Result<Tensor, VideoError> {
    let _span = tracing::trace_span!("pre-process", frame = frame.index).entered();
    Ok(frame.to_tensor(&Device::Cpu)?)
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
    /// `restyle` delivers new style images, applied between two frames. `newest_only` (live sources)
    /// picks the live graph of the module header: `pull` is called by the model's thread when it is
    /// ready, so it must return the newest frame (an appsink with `max-buffers=1 drop=true` does).
    pub fn spawn(
        pull: Pull,
        mut stylizer: Box<dyn Stylizer>,
        restyle: Option<Receiver<Tensor>>,
        mut post: Option<Post>,
        mut push: Push,
        finish: Finish,
        stats: Arc<Stats>,
        stop: Arc<AtomicBool>,
        newest_only: bool,
    ) -> Self {
        let (styled_tx, styled_rx) = hand_over::<(Frame, Tensor)>(newest_only);
        let (out_tx, out_rx) = hand_over::<Frame>(newest_only);
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

        let mut next: Next = if newest_only {
            let in_stats = stats.clone();
            let mut pull = pull;
            Box::new(move || {
                let frame = pull()?;
                in_stats.frames_in.fetch_add(1, Ordering::Relaxed);
                Some(frame.and_then(|frame| {
                    let tensor = convert(&frame)?;
                    Ok((frame, tensor))
                }))
            })
        } else {
            let (decoded_tx, decoded_rx) = link::bounded::<Frame>(CHANNEL_DEPTH);
            let (input_tx, input_rx) = link::bounded::<(Frame, Tensor)>(CHANNEL_DEPTH);
            let in_stats = stats.clone();
            let decode_stop = stop.clone();
            let mut pull = pull;
            threads.push(spawn(
                "decode",
                Box::new(move || {
                    while !decode_stop.load(Ordering::Relaxed) {
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
                    for frame in decoded_rx {
                        let tensor = convert(&frame)?;
                        if input_tx.send((frame, tensor)).is_err() {
                            break;
                        }
                    }
                    Ok(())
                }),
            ));
            Box::new(move || input_rx.recv().map(Ok))
        };
        let model_stats = stats.clone();
        let post_stats = stats.clone();
        threads.push(spawn(
            "stylise",
            Box::new(move || {
                loop {
                    // Before taking a frame: a style change takes a while, and the frame would age.
                    if let Some(style) = restyle.as_ref().and_then(|r| r.try_iter().last()) {
                        stylizer.set_style(&style)?;
                    }
                    let Some(item) = next() else { break };
                    let (frame, tensor) = item?;
                    // Once stopped, frames still queued are dropped: only the one in the model finishes.
                    if stop.load(Ordering::Relaxed) {
                        continue;
                    }
                    let _span = tracing::debug_span!("stylise", frame = frame.index).entered();
                    let out = stylizer.stylize(&tensor)?;
                    match styled_tx.send((frame, out)) {
                        Ok(replaced) => model_stats.replaced(replaced),
                        Err(_) => break,
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
                    match out_tx.send(styled) {
                        Ok(replaced) => post_stats.replaced(replaced),
                        Err(_) => break,
                    }
                }
                Ok(())
            }),
        ));
        threads.push(spawn(
            "encode",
            Box::new(move || {
                let mut frames = out_rx;
                let result = frames.try_for_each(|frame| {
                    let _span = tracing::trace_span!("encode", frame = frame.index).entered();
                    push(frame)?;
                    stats.frames_out.fetch_add(1, Ordering::Relaxed);
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

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::time::{Duration, Instant};

    use super::*;

    /// A 50 ms identity model that notes, for each frame, the index it received (read from the first
    /// pixel), when it started, and when it had become ready for it (its previous return).
    struct StandIn {
        ready: Instant,
        starts: Arc<Mutex<Vec<(u64, Instant, Instant)>>>,
    }

    impl Stylizer for StandIn {
        fn stylize(&mut self, frame: &Tensor) -> candle_core::Result<Tensor> {
            let start = Instant::now();
            // Channel 0 of the first pixel holds the low byte of the index, channel 1 the high byte.
            let byte = |c: usize| -> candle_core::Result<u64> {
                Ok((frame.get(0)?.get(c)?.get(0)?.get(0)?.to_scalar::<f32>()? * 255.0).round() as u64)
            };
            let index = byte(0)? + 256 * byte(1)?;
            self.starts.lock().unwrap().push((index, start, self.ready));
            std::thread::sleep(Duration::from_millis(50));
            self.ready = Instant::now();
            Ok(frame.clone())
        }

        fn set_style(&mut self, _: &Tensor) -> candle_core::Result<()> {
            Ok(())
        }
    }

    /// A live 60 fps source on its own clock, as an appsink with `max-buffers=1 drop=true` presents
    /// it: frame n is captured at `start + n / 60 s`, and a pull returns the newest frame captured so
    /// far, or waits for the next one when that was already taken.
    fn camera(start: Instant, interval: Duration, stop: Arc<AtomicBool>) -> Pull {
        let mut last: Option<u64> = None;
        Box::new(move || {
            if stop.load(Ordering::Relaxed) {
                return None;
            }
            let newest = (start.elapsed().as_secs_f64() / interval.as_secs_f64()) as u64;
            let n = match last {
                Some(l) if newest <= l => l + 1,
                _ => newest,
            };
            std::thread::sleep((start + interval * n as u32).saturating_duration_since(Instant::now()));
            last = Some(n);
            let (width, height) = (320, 240);
            let mut data = vec![90; width * height * 3];
            data[..2].copy_from_slice(&[(n % 256) as u8, (n / 256) as u8]);
            let pts = Some(gst::ClockTime::from_nseconds((interval * n as u32).as_nanos() as u64));
            Some(Ok(Frame { width, height, data, pts, duration: None, index: n }))
        })
    }

    /// Issue 26's check: with a 50 ms stand-in at 60 fps, the frame the model receives is never older
    /// than one frame interval plus its conversion when the model starts. (The file graph, which
    /// converts ahead, fails it: "frame 1 reached the model after frame 3 was captured".)
    #[test]
    fn live_the_model_starts_on_a_frame_at_most_one_interval_plus_its_conversion_old() {
        let interval = Duration::from_secs(1) / 60;
        let stop = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(Stats::default());
        let starts = Arc::new(Mutex::new(Vec::new()));
        let pushed = Arc::new(Mutex::new(Vec::new()));
        let start = Instant::now();
        let record = pushed.clone();
        let stages = Stages::spawn(
            camera(start, interval, stop.clone()),
            Box::new(StandIn { ready: start, starts: starts.clone() }),
            None,
            None,
            Box::new(move |frame: Frame| {
                record.lock().unwrap().push(frame.index);
                Ok(())
            }),
            Box::new(|| {}),
            stats.clone(),
            stop.clone(),
            true,
        );
        std::thread::sleep(Duration::from_secs(2));
        stop.store(true, Ordering::Relaxed);
        stages.join().unwrap();

        let starts = starts.lock().unwrap();
        assert!(starts.len() >= 10, "the model ran: {} frames", starts.len());
        let captured = |n: u64| start + interval * n as u32;
        for &(index, started, ready) in starts.iter() {
            // The newest frame captured when the model became ready: the model gets it or a later one.
            let newest = ((ready - start).as_secs_f64() / interval.as_secs_f64()) as u64;
            assert!(index >= newest, "frame {index} reached the model after frame {newest} was captured");
            // So its age at the model's start is under one interval plus what the model's thread
            // did between its frames: taking and converting this one.
            let age = started.saturating_duration_since(captured(index));
            let conversion = started - ready;
            assert!(
                age < interval + conversion,
                "frame {index}: {age:?} old at the model's start, conversion {conversion:?}"
            );
        }
        // A 50 ms model at 60 fps: most frames are never pulled; every model output is pushed, or
        // replaced in a mailbox by the next one and counted.
        assert!(starts.windows(2).all(|w| w[1].0 > w[0].0), "frames reach the model in order");
        assert!(starts.last().unwrap().0 > 2 * starts.len() as u64, "frames were skipped");
        let pushed = pushed.lock().unwrap();
        assert!(pushed.windows(2).all(|w| w[1] > w[0]), "frames reach the sink in order");
        assert_eq!(pushed.len() as u64 + stats.skipped.load(Ordering::Relaxed), starts.len() as u64);
        assert_eq!(stats.frames_in.load(Ordering::Relaxed), starts.len() as u64);
    }
}
