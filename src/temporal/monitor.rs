//! Live flicker monitor: a rolling Lai E_warp over the last N consecutive frame pairs, computed on
//! downscaled copies in its own thread. The video thread only downscales (a box filter) and hands the
//! pair over with `try_send` on a small bounded channel: when the worker is behind, the pair is dropped
//! and counted, never waited for.
//!
//! Pairs are built on the caller's side from consecutive frames, so a dropped pair never turns into a
//! comparison of frames further apart (which would read as more flicker).
use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TrySendError};

use super::flow::{DisPreset, FlowEstimator, FlowMethod};
use super::metrics::lai_e_warp;
use super::occlusion::occlusion_mask;
use super::warp::warp_image;
use super::{check_pair, Image, Result, TemporalError};

#[derive(Debug, Clone, PartialEq)]
pub struct MonitorConfig {
    /// N: pairs in the rolling mean.
    pub window: usize,
    /// Integer box-filter factor applied before sending (4: 1920x1080 -> 480x270). Lowered automatically
    /// so that each side keeps at least 16 pixels (the flow's minimum).
    pub downscale: usize,
    /// Default DIS ULTRAFAST: the monitor must keep up, not be exact.
    pub flow: FlowMethod,
    /// Pairs waiting for the worker; beyond this they are dropped.
    pub queue: usize,
    /// If set, one CSV row per measured pair, written as it comes (a live log, not atomic).
    pub csv: Option<PathBuf>,
    /// At most one pair per this interval: a rolling value needs samples, not every pair, and on a
    /// small machine measuring every pair would take the cores the video needs. Frames in between
    /// are skipped before any conversion ([`Monitor::wants`]). Zero measures every pair it can.
    pub min_interval: Duration,
}

impl Default for MonitorConfig {
    fn default() -> Self {
        Self {
            window: 30,
            downscale: 4,
            flow: FlowMethod::Dis(DisPreset::UltraFast),
            queue: 2,
            csv: None,
            min_interval: Duration::from_millis(250),
        }
    }
}

/// The monitor's state at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct MonitorReading {
    /// Pairs measured since the start.
    pub pairs: u64,
    /// Mean E_warp of the stylised video over the last N measured pairs; `None` before the first.
    pub rolling_e_warp_stylised: Option<f64>,
    /// The same on the source video (the flow's own floor).
    pub rolling_e_warp_source: Option<f64>,
    /// Index of frame `t + 1` of the latest measured pair.
    pub last_frame: Option<u64>,
    /// Pairs dropped because the worker was busy.
    pub dropped: u64,
    /// Pairs the worker could not measure (flow failed, e.g. frames too small).
    pub failed: u64,
}

struct Pair {
    frame: u64,
    pts: Duration,
    source: [Arc<Image>; 2],
    stylised: [Arc<Image>; 2],
}

/// What the worker shares with the handle; locked briefly, never across I/O or flow.
#[derive(Default)]
struct Shared {
    reading: MonitorReading,
    csv_error: Option<std::io::Error>,
}

fn lock(shared: &Mutex<Shared>) -> MutexGuard<'_, Shared> {
    // A panic elsewhere while holding the lock leaves plain numbers behind: still worth reading.
    shared.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Handle held by the video thread. Dropping it stops the worker after the queued pairs.
pub struct Monitor {
    sender: Option<Sender<Pair>>,
    worker: Option<JoinHandle<()>>,
    shared: Arc<Mutex<Shared>>,
    dropped: u64,
    downscale: usize,
    previous: Option<(Arc<Image>, Arc<Image>)>,
    frames: u64,
    csv: Option<PathBuf>,
    min_interval: Duration,
    /// When the last pair was queued (or dropped).
    last_pair: Option<Instant>,
}

impl Monitor {
    /// Starts the worker thread (and creates the CSV, if any).
    pub fn start(config: MonitorConfig) -> Result<Self> {
        for (name, value) in
            [("window", config.window), ("downscale", config.downscale), ("queue", config.queue)]
        {
            if value == 0 {
                return Err(TemporalError::Parameter { name, value: "0".into(), expected: "at least 1" });
            }
        }
        let csv = match &config.csv {
            Some(path) => {
                let io = |source| TemporalError::Io { path: path.clone(), source };
                let mut file = BufWriter::new(File::create(path).map_err(io)?);
                write!(
                    file,
                    "# stylestream live monitor: Lai E_warp between consecutive frames, downscaled {}x (box \
                     filter), flow {} on source luma, RGB in [0, 1], denominator = valid pixels x 3 channels\n\
                     frame,pts_s,e_warp_stylised,e_warp_source,valid_fraction\n",
                    config.downscale, config.flow
                )
                .map_err(io)?;
                Some(file)
            }
            None => None,
        };
        // The estimator is made here so a creation failure is reported now, not lost in the thread.
        let estimator = FlowEstimator::new(config.flow)?;
        let (sender, receiver) = crossbeam_channel::bounded::<Pair>(config.queue);
        let shared = Arc::new(Mutex::new(Shared::default()));
        let worker_shared = Arc::clone(&shared);
        let window = config.window;
        let worker = std::thread::Builder::new()
            .name("temporal-monitor".into())
            .spawn(move || work(receiver, estimator, csv, &worker_shared, window))
            .map_err(|e| TemporalError::Monitor(format!("cannot start the worker thread: {e}")))?;
        Ok(Self {
            sender: Some(sender),
            worker: Some(worker),
            shared,
            dropped: 0,
            downscale: config.downscale,
            previous: None,
            frames: 0,
            csv: config.csv,
            min_interval: config.min_interval,
            last_pair: None,
        })
    }

    /// Whether the next frame is needed: it completes a started pair, or [`MonitorConfig::min_interval`]
    /// has passed since the last pair. When not, call [`Monitor::skip`] instead of converting it.
    pub fn wants(&self) -> bool {
        self.previous.is_some() || self.last_pair.is_none_or(|t| t.elapsed() >= self.min_interval)
    }

    /// Counts a frame that is not measured (see [`Monitor::wants`]).
    pub fn skip(&mut self) {
        self.frames += 1;
        self.previous = None;
    }

    /// Offers the next frame: its source and stylised versions (`[H, W, 3]`, same size) and its pts.
    /// Never blocks: returns `Ok(true)` if the pair (previous frame, this frame) was queued, `Ok(false)`
    /// if it was dropped (worker busy) or there is no previous frame of the same size.
    pub fn offer(&mut self, source: &Image, stylised: &Image, pts: Duration) -> Result<bool> {
        let frame = self.frames;
        check_pair(frame, source, stylised)?;
        self.frames += 1;
        let current = (
            Arc::new(box_downscale(source, self.downscale)),
            Arc::new(box_downscale(stylised, self.downscale)),
        );
        let previous = self.previous.replace(current.clone());
        let Some((prev_source, prev_stylised)) = previous.filter(|(s, _)| s.size() == current.0.size())
        else {
            return Ok(false);
        };
        let pair =
            Pair { frame, pts, source: [prev_source, current.0], stylised: [prev_stylised, current.1] };
        if !self.min_interval.is_zero() {
            // The pair is complete: wait for the interval before starting the next one.
            self.previous = None;
        }
        self.last_pair = Some(Instant::now());
        let sender = self.sender.as_ref().ok_or_else(|| TemporalError::Monitor("already stopped".into()))?;
        match sender.try_send(pair) {
            Ok(()) => Ok(true),
            Err(TrySendError::Full(_)) => {
                self.dropped += 1;
                Ok(false)
            }
            Err(TrySendError::Disconnected(_)) => {
                Err(TemporalError::Monitor("the worker thread has stopped".into()))
            }
        }
    }

    /// Pairs dropped so far because the worker was busy.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// The latest rolling values; cheap (one short lock).
    pub fn reading(&self) -> MonitorReading {
        let reading = lock(&self.shared).reading;
        MonitorReading { dropped: self.dropped(), ..reading }
    }

    /// Lets the worker finish the queued pairs, stops it, and returns the final reading (or the CSV's
    /// write error).
    pub fn finish(mut self) -> Result<MonitorReading> {
        self.stop()?;
        let error = lock(&self.shared).csv_error.take();
        match (error, &self.csv) {
            (Some(source), Some(path)) => Err(TemporalError::Io { path: path.clone(), source }),
            _ => Ok(self.reading()),
        }
    }

    fn stop(&mut self) -> Result<()> {
        // Closing the channel ends the worker's loop once the queue is empty.
        self.sender = None;
        match self.worker.take().map(JoinHandle::join) {
            Some(Err(_)) => Err(TemporalError::Monitor("the worker thread panicked".into())),
            _ => Ok(()),
        }
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        // Nobody can receive a panic report from a drop; `finish` is the way to see it.
        let _ = self.stop();
    }
}

/// The worker thread: measures pairs until the channel closes, then flushes the CSV.
fn work(
    receiver: Receiver<Pair>,
    mut estimator: FlowEstimator,
    mut csv: Option<BufWriter<File>>,
    shared: &Mutex<Shared>,
    window: usize,
) {
    let mut values: VecDeque<(f64, f64)> = VecDeque::with_capacity(window);
    let mut csv_error = None;
    for pair in receiver {
        let Ok((stylised, source, valid)) = measure(&mut estimator, &pair) else {
            lock(shared).reading.failed += 1;
            continue;
        };
        if values.len() == window {
            values.pop_front();
        }
        values.push_back((stylised, source));
        let n = values.len() as f64;
        let (sum_o, sum_i) = values.iter().fold((0.0, 0.0), |(a, b), (o, i)| (a + o, b + i));
        {
            let mut shared = lock(shared);
            shared.reading.pairs += 1;
            shared.reading.rolling_e_warp_stylised = Some(sum_o / n);
            shared.reading.rolling_e_warp_source = Some(sum_i / n);
            shared.reading.last_frame = Some(pair.frame);
        }
        if let (Some(file), None) = (csv.as_mut(), csv_error.as_ref()) {
            let pts = pair.pts.as_secs_f64();
            if let Err(e) = writeln!(file, "{},{pts},{stylised},{source},{valid}", pair.frame) {
                csv_error = Some(e);
            }
        }
    }
    let flushed = csv.map_or(Ok(()), |mut file| file.flush());
    lock(shared).csv_error = csv_error.or(flushed.err());
}

/// `(E_warp stylised, E_warp source, valid fraction)` of one downscaled pair.
fn measure(estimator: &mut FlowEstimator, pair: &Pair) -> Result<(f64, f64, f64)> {
    let [a, b] = &pair.source;
    let forward = estimator.compute(a, b)?;
    let backward = estimator.compute(b, a)?;
    let mask = occlusion_mask(&forward, &backward)?;
    let e_warp = |frames: &[Arc<Image>; 2]| -> Result<f64> {
        let (b_on_a, _) = warp_image(&frames[1], &forward)?;
        lai_e_warp(&frames[0], &b_on_a, &mask)
    };
    Ok((e_warp(&pair.stylised)?, e_warp(&pair.source)?, mask.valid_fraction()))
}

/// Averages `f x f` blocks (the remainder rows/columns are dropped), with `f` lowered so that each side
/// keeps at least 16 pixels; `f = 1` copies.
fn box_downscale(image: &Image, factor: usize) -> Image {
    let f = factor.min(image.width / 16).min(image.height / 16).max(1);
    let (w, h) = (image.width / f, image.height / f);
    let mut data = vec![0.0f32; w * h * 3];
    let scale = 1.0 / (f * f) as f32;
    for y in 0..h {
        for x in 0..w {
            let out = &mut data[3 * (y * w + x)..3 * (y * w + x) + 3];
            for sy in y * f..(y + 1) * f {
                let row = &image.data[3 * (sy * image.width + x * f)..3 * (sy * image.width + (x + 1) * f)];
                for p in row.chunks_exact(3) {
                    for c in 0..3 {
                        out[c] += p[c];
                    }
                }
            }
            out.iter_mut().for_each(|v| *v *= scale);
        }
    }
    Image { width: w, height: h, data }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn box_downscale_averages_blocks() {
        // 32x32, value = x (in all channels): 2x2 blocks average x and x+1 -> 2X + 0.5 at output column X.
        let data = (0..32).flat_map(|_| (0..32).flat_map(|x| [x as f32; 3])).collect();
        let out = box_downscale(&Image::new(32, 32, data).unwrap(), 4);
        // Factor 4 would leave 8 < 16 pixels per side, so it drops to 2.
        assert_eq!(out.size(), (16, 16));
        assert_eq!(&out.data[3 * 5..3 * 5 + 3], &[10.5, 10.5, 10.5]);
    }

    #[test]
    fn zero_window_is_rejected() {
        let err = Monitor::start(MonitorConfig { window: 0, ..MonitorConfig::default() }).err();
        assert_eq!(err.map(|e| e.to_string()).as_deref(), Some("window = 0: expected at least 1"));
    }
}
