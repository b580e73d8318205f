//! Reads a video file frame by frame (decoded RGB at the source size), for measurements: only the
//! frames in flight are held, never the whole video.
use std::path::Path;

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;

use super::pipeline::{app_element, element_error, launch, startup_error};
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
        // The frames as a viewer sees them (and as `video` hands them to the model): turned by the
        // orientation tag, stretched to square pixels.
        let description = format!(
            "uridecodebin uri=\"{}\" caps=video/x-raw ! videoconvert ! videoflip video-direction=auto ! videoscale ! video/x-raw,format=RGB,width={},height={},pixel-aspect-ratio=1/1 ! appsink name=frames sync=false max-buffers=2",
            file_uri(path)?,
            info.width,
            info.height
        );
        let pipeline = launch(&description)?;
        let appsink = app_element::<gst_app::AppSink>(&pipeline, "frames")?;
        pipeline.set_state(gst::State::Playing).map_err(|_| {
            let cause = startup_error(&pipeline);
            VideoError::Input { path: path.to_path_buf(), reason: format!("cannot start decoding: {cause}") }
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

    /// Waits for the next frame, checking the bus every 100 ms so a decoding error that never reaches
    /// the appsink as end-of-stream still ends the iteration (with the error).
    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(sample) = self.appsink.try_pull_sample(gst::ClockTime::from_mseconds(100)) {
                self.index += 1;
                return Some(Frame::from_sample(&sample, self.index - 1));
            }
            if let Some(err) = self.bus_error() {
                return Some(Err(err));
            }
            if self.appsink.is_eos() {
                return None;
            }
        }
    }
}

impl Drop for FrameReader {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}
