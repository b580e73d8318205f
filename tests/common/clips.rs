//! Test clips rendered with GStreamer's test sources.
use std::path::Path;

use gstreamer as gst;
use gstreamer::prelude::*;

/// Renders a test clip: `frames` frames of `w x h` at `fps`, with an AAC track unless `audio` is false.
pub fn make_clip(path: &Path, w: u32, h: u32, fps: u32, frames: u32, audio: bool) {
    gst::init().unwrap();
    let mux = if path.extension().unwrap() == "mkv" { "matroskamux" } else { "mp4mux" };
    let audio_branch = if audio {
        let seconds = frames as f64 / fps as f64;
        format!("audiotestsrc num-buffers={} samplesperbuffer=1024 ! audio/x-raw,rate=48000 ! avenc_aac ! aacparse ! m.", (seconds * 48000.0 / 1024.0).ceil())
    } else {
        String::new()
    };
    let desc = format!(
        "videotestsrc num-buffers={frames} pattern=ball ! video/x-raw,width={w},height={h},framerate={fps}/1 ! \
         videoconvert ! video/x-raw,format=I420 ! x264enc speed-preset=ultrafast ! h264parse ! {mux} name=m ! \
         filesink location={} {audio_branch}",
        path.display()
    );
    let pipeline = gst::parse::launch(&desc).unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    let bus = pipeline.bus().unwrap();
    for msg in bus.iter_timed(gst::ClockTime::from_seconds(60)) {
        match msg.view() {
            gst::MessageView::Eos(_) => break,
            gst::MessageView::Error(e) => panic!("making {}: {}", path.display(), e.error()),
            _ => {}
        }
    }
    pipeline.set_state(gst::State::Null).unwrap();
}
