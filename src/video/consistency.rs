//! Temporal consistency inside the video stages: the optional stabiliser and flicker monitor of
//! `crate::temporal`, applied to each stylised frame together with its source frame.
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::temporal::{Image, Monitor, MonitorConfig, MonitorReading, Stabilizer, StabilizerConfig};

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
        Ok((stabilizer.is_some() || monitor.is_some()).then_some(Consistency { stabilizer, monitor }))
    }

    /// A handle for reading the monitor from another thread.
    pub fn monitor(&self) -> Option<Arc<Mutex<Monitor>>> {
        self.monitor.clone()
    }

    /// Stabilises `styled` against its source frame (if asked) and offers the pair to the monitor
    /// (which drops it rather than wait when busy).
    pub fn apply(&mut self, source: &Frame, styled: Frame) -> Result<Frame, VideoError> {
        let to_image = |f: &Frame| Image::from_rgb8(f.width, f.height, f.width * 3, &f.data);
        let styled = match self.stabilizer.as_mut() {
            Some(stabilizer) => {
                let out = stabilizer.process(&to_image(source)?, &to_image(&styled)?)?;
                Frame { data: out.frame.to_rgb8(), ..styled }
            }
            None => styled,
        };
        if let Some(monitor) = &self.monitor {
            let pts = Duration::from_nanos(styled.pts.map(|t| t.nseconds()).unwrap_or(0));
            if let Ok(mut m) = monitor.lock() {
                if m.wants() {
                    m.offer(&to_image(source)?, &to_image(&styled)?, pts)?;
                } else {
                    m.skip();
                }
            }
        }
        Ok(styled)
    }
}

/// The monitor's current reading, if there is a monitor.
pub fn reading(monitor: &Option<Arc<Mutex<Monitor>>>) -> Option<MonitorReading> {
    monitor.as_ref().and_then(|m| m.lock().ok().map(|m| m.reading()))
}
