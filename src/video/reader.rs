//! Reads a video file frame by frame (decoded RGB at the source size), for measurements: only the
//! frames in flight are held, never the whole video.
use std::path::Path;

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;

use super::pipeline::{app_element, element_error, launch};
use super::probe::{file_uri, probe, MediaInfo};
use super::{Frame, VideoError};

/// An open file yielding its frames in presentation order.
pub struct FrameReader {
    pipeline: gst::Pipeline,
    appsink: gst_app::AppSink,
    index: u64,
    pub info: MediaInfo,
}

impl FrameReader {
    pub fn open(path: &Path) -> Result<Self, VideoError> {
        let info = probe(path)?;
        let description = format!(
            "uridecodebin uri=\"{}\" caps=video/x-raw ! videoconvert ! video/x-raw,format=RGB ! appsink name=frames sync=false max-buffers=2",
            file_uri(path)?
        );
        let pipeline = launch(&description)?;
        let appsink = app_element::<gst_app::AppSink>(&pipeline, "frames")?;
        pipeline.set_state(gst::State::Playing).map_err(|_| VideoError::Input {
            path: path.to_path_buf(),
            reason: "cannot start decoding".into(),
        })?;
        Ok(FrameReader { pipeline, appsink, index: 0, info })
    }

    fn bus_error(&self) -> Option<VideoError> {
        let bus = self.pipeline.bus()?;
        let msg = bus.pop_filtered(&[gst::MessageType::Error])?;
        match msg.view() {
            gst::MessageView::Error(err) => Some(element_error(&msg, err)),
            _ => None,
        }
    }
}

impl Iterator for FrameReader {
    type Item = Result<Frame, VideoError>;

    fn next(&mut self) -> Option<Self::Item> {
        match self.appsink.pull_sample() {
            Ok(sample) => {
                self.index += 1;
                Some(Frame::from_sample(&sample, self.index - 1))
            }
            Err(_) => self.bus_error().map(Err),
        }
    }
}

impl Drop for FrameReader {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}
