//! Temporal consistency inside the video stages: the optional stabiliser and flicker monitor of
//! `crate::temporal`, applied to each stylised frame together with its source frame.
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::temporal::{Monitor, MonitorConfig, MonitorReading, Stabilizer, StabilizerConfig};

use super::{Frame, VideoError};

/// What to do for temporal consistency.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ConsistencyOptions {
    /// Stabiliser strength in [0, 1]; 0 is off.
    pub stabilize: f32,
    /// Measure the rolling warping error of the output.
    pub monitor: bool,
    /// Also log every measured pair here (implies `monitor`).
    pub monitor_csv: Option<PathBuf>,
}

/// The stabiliser and monitor of one run. The monitor is shared so the driver can read it for its
/// stats line while the post-process stage feeds it.
pub struct Consistency {
    stabilizer: Option<Stabilizer>,
    monitor: Option<Arc<Mutex<Monitor>>>,
    /// Index and pts of the last frame seen, to notice frames dropped in between.
    last: Option<(u64, Option<gstreamer::ClockTime>)>,
}

impl Consistency {
    /// `None` when nothing is asked for.
    pub fn new(opts: &ConsistencyOptions) -> Result<Option<Self>, VideoError> {
        let stabilizer = (opts.stabilize > 0.0)
            .then(|| Stabilizer::new(StabilizerConfig { strength: opts.stabilize, ..Default::default() }))
            .transpose()?;
        let monitor = (opts.monitor || opts.monitor_csv.is_some())
            .then(|| Monitor::start(MonitorConfig { csv: opts.monitor_csv.clone(), ..Default::default() }))
            .transpose()?
            .map(|m| Arc::new(Mutex::new(m)));
        Ok((stabilizer.is_some() || monitor.is_some()).then_some(Consistency {
            stabilizer,
            monitor,
            last: None,
        }))
    }

    /// A handle for reading the monitor from another thread.
    pub fn monitor(&self) -> Option<Arc<Mutex<Monitor>>> {
        self.monitor.clone()
    }

    /// Stabilises `styled` against its source frame (if asked) and offers the pair to the monitor
    /// (which drops it rather than wait when busy).
    pub fn apply(&mut self, source: &Frame, styled: Frame) -> Result<Frame, VideoError> {
        let styled = match self.stabilizer.as_mut() {
            Some(stabilizer) => {
                let out = stabilizer.process(&source.to_image()?, &styled.to_image()?)?;
                Frame { data: out.frame.to_rgb8(), ..styled }
            }
            None => styled,
        };
        if let Some(monitor) = &self.monitor {
            let pts = Duration::from_nanos(styled.pts.map(|t| t.nseconds()).unwrap_or(0));
            if let Ok(mut m) = monitor.lock() {
                // The warping error is defined between consecutive frames: after a gap (frames dropped
                // by a live source or skipped for the newest one) no pair spans it.
                if self.last.is_some_and(|last| is_gap(last, &styled)) {
                    m.skip();
                }
                if m.wants() {
                    m.offer(&source.to_image()?, &styled.to_image()?, pts)?;
                } else {
                    m.skip();
                }
            }
        }
        self.last = Some((styled.index, styled.pts));
        Ok(styled)
    }
}

/// Whether frames are missing between the previous frame `(index, pts)` and `frame`: a skipped index,
/// or a pts step of more than 1.5 frame durations (the source dropped frames before we pulled them).
fn is_gap(previous: (u64, Option<gstreamer::ClockTime>), frame: &Frame) -> bool {
    let (index, pts) = previous;
    let pts_gap = match (pts, frame.pts, frame.duration) {
        (Some(a), Some(b), Some(d)) if d.nseconds() > 0 => {
            b.saturating_sub(a).nseconds() * 2 > d.nseconds() * 3
        }
        _ => false,
    };
    frame.index != index + 1 || pts_gap
}

/// Stops the monitor once the stages have released it: waits for its queued pairs, reports CSV errors,
/// and returns the final reading.
pub fn finish(monitor: Option<Arc<Mutex<Monitor>>>) -> Result<Option<MonitorReading>, VideoError> {
    let Some(monitor) = monitor else { return Ok(None) };
    match Arc::try_unwrap(monitor) {
        Ok(m) => {
            let m =
                m.into_inner().map_err(|_| VideoError::Pipeline("the monitor's lock was poisoned".into()))?;
            Ok(Some(m.finish()?))
        }
        // Still shared (a stage did not end): the latest reading is the best there is.
        Err(shared) => Ok(reading(&Some(shared))),
    }
}

/// The monitor's current reading, if there is a monitor.
pub fn reading(monitor: &Option<Arc<Mutex<Monitor>>>) -> Option<MonitorReading> {
    monitor.as_ref().and_then(|m| m.lock().ok().map(|m| m.reading()))
}
