//! Pipeline descriptions: the named templates in `pipelines/` (embedded in the binary), placeholder
//! filling, and parsing with missing elements reported by name and Debian package.
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use gstreamer as gst;
use gstreamer::prelude::*;

use super::VideoError;

/// The named descriptions shipped in `pipelines/`, by name.
const NAMED: [(&str, &str); 12] = [
    ("file-mp4", include_str!("../../pipelines/file-mp4.pipeline")),
    ("file-mkv", include_str!("../../pipelines/file-mkv.pipeline")),
    ("test-pattern", include_str!("../../pipelines/test-pattern.pipeline")),
    ("webcam-display", include_str!("../../pipelines/webcam-display.pipeline")),
    ("webcam-v4l2loopback", include_str!("../../pipelines/webcam-v4l2loopback.pipeline")),
    ("rtmp", include_str!("../../pipelines/rtmp.pipeline")),
    ("srt", include_str!("../../pipelines/srt.pipeline")),
    // The same with the model as the `stylestream` element (feature gst-plugin) instead of appsink/appsrc.
    ("test-pattern-element", include_str!("../../pipelines/test-pattern-element.pipeline")),
    ("webcam-display-element", include_str!("../../pipelines/webcam-display-element.pipeline")),
    ("webcam-v4l2loopback-element", include_str!("../../pipelines/webcam-v4l2loopback-element.pipeline")),
    ("rtmp-element", include_str!("../../pipelines/rtmp-element.pipeline")),
    ("srt-element", include_str!("../../pipelines/srt-element.pipeline")),
];

/// Which Debian package provides each element our descriptions use, for "not installed" errors.
const PACKAGES: [(&str, &str); 30] = [
    ("opusparse", "gstreamer1.0-plugins-bad"),
    ("vorbisparse", "gstreamer1.0-plugins-base"),
    ("x264enc", "gstreamer1.0-plugins-ugly"),
    ("avenc_aac", "gstreamer1.0-libav"),
    ("avdec_h264", "gstreamer1.0-libav"),
    ("opusenc", "gstreamer1.0-plugins-base"),
    ("vorbisenc", "gstreamer1.0-plugins-base"),
    ("videoconvert", "gstreamer1.0-plugins-base"),
    ("videoscale", "gstreamer1.0-plugins-base"),
    ("videorate", "gstreamer1.0-plugins-base"),
    ("videotestsrc", "gstreamer1.0-plugins-base"),
    ("audioconvert", "gstreamer1.0-plugins-base"),
    ("audioresample", "gstreamer1.0-plugins-base"),
    ("uridecodebin", "gstreamer1.0-plugins-base"),
    ("appsink", "gstreamer1.0-plugins-base"),
    ("appsrc", "gstreamer1.0-plugins-base"),
    ("mp4mux", "gstreamer1.0-plugins-good"),
    ("matroskamux", "gstreamer1.0-plugins-good"),
    ("flvmux", "gstreamer1.0-plugins-good"),
    ("v4l2src", "gstreamer1.0-plugins-good"),
    ("v4l2sink", "gstreamer1.0-plugins-good"),
    ("aacparse", "gstreamer1.0-plugins-good"),
    ("ac3parse", "gstreamer1.0-plugins-good"),
    ("mpegaudioparse", "gstreamer1.0-plugins-good"),
    ("flacparse", "gstreamer1.0-plugins-good"),
    ("videoflip", "gstreamer1.0-plugins-good"),
    ("h264parse", "gstreamer1.0-plugins-bad"),
    ("mpegtsmux", "gstreamer1.0-plugins-bad"),
    ("srtsink", "gstreamer1.0-plugins-bad"),
    ("rtmp2sink", "gstreamer1.0-plugins-bad"),
];

/// A named description (see `pipelines/`) or the contents of a `.pipeline` file. `#` lines are
/// comments; the remaining lines are joined into one description.
pub fn template(name_or_path: &str) -> Result<String, VideoError> {
    let text = match NAMED.iter().find(|(name, _)| *name == name_or_path) {
        Some((_, text)) => text.to_string(),
        None => std::fs::read_to_string(name_or_path).map_err(|e| {
            let names: Vec<&str> = NAMED.iter().map(|(n, _)| *n).collect();
            VideoError::Pipeline(format!(
                "`{name_or_path}` is neither a named pipeline ({}) nor a readable file: {e}",
                names.join(", ")
            ))
        })?,
    };
    Ok(text.lines().filter(|l| !l.trim_start().starts_with('#')).collect::<Vec<_>>().join("\n"))
}

/// Replaces every `{key}` placeholder of the template (a name of letters, digits and `_`) by its
/// value, in one pass: values are never searched for placeholders, so paths may contain braces. A
/// placeholder without a value is an error naming it.
pub fn fill(template: &str, values: &[(&str, String)]) -> Result<String, VideoError> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        let name_len = after.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(after.len());
        if name_len > 0 && after[name_len..].starts_with('}') {
            let name = &after[..name_len];
            let value = values.iter().find(|(k, _)| *k == name).map(|(_, v)| v);
            out.push_str(
                value.ok_or_else(|| VideoError::Pipeline(format!("placeholder {{{name}}} has no value")))?,
            );
            rest = &after[name_len + 1..];
        } else {
            out.push('{');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// Parses a description into a pipeline; a missing element is named with the package that has it.
pub fn launch(description: &str) -> Result<gst::Pipeline, VideoError> {
    let mut context = gst::ParseContext::new();
    let element = gst::parse::launch_full(description, Some(&mut context), gst::ParseFlags::FATAL_ERRORS)
        .map_err(|e| match e.kind::<gst::ParseError>() {
            Some(gst::ParseError::NoSuchElement) => {
                let element = context.missing_elements().into_iter().next().unwrap_or_default();
                let package = PACKAGES.iter().find(|(name, _)| *name == element).map(|(_, p)| *p);
                VideoError::MissingElement { element, package }
            }
            _ => VideoError::Pipeline(e.to_string()),
        })?;
    element.downcast::<gst::Pipeline>().map_err(|_| VideoError::Pipeline("not a pipeline".into()))
}

/// Checks up front that an element exists (e.g. before building a branch that needs it).
pub fn require(element: &str) -> Result<(), VideoError> {
    if gst::ElementFactory::find(element).is_some() {
        Ok(())
    } else {
        let package = PACKAGES.iter().find(|(name, _)| *name == element).map(|(_, p)| *p);
        Err(VideoError::MissingElement { element: element.to_string(), package })
    }
}

/// The element an error message came from, by name (`?` if unknown).
pub fn source_name(msg: &gst::MessageRef) -> String {
    msg.src().map(|s| s.name().to_string()).unwrap_or_else(|| "?".into())
}

/// The app element called `name` (appsink "frames" or appsrc "styled") of a description.
pub fn app_element<T: IsA<gst::Element>>(pipeline: &gst::Pipeline, name: &str) -> Result<T, VideoError> {
    pipeline
        .by_name(name)
        .and_then(|e| e.downcast::<T>().ok())
        .ok_or_else(|| VideoError::Pipeline(format!("the description has no {name} app element")))
}

/// An error message from the bus as a [`VideoError`] naming the element it came from.
pub fn element_error(msg: &gst::Message, err: &gst::message::Error) -> VideoError {
    let debug = err.debug().map(|d| d.to_string()).unwrap_or_default();
    // GStreamer's debug strings start with source locations; their last line says what happened.
    let detail = debug.lines().last().unwrap_or_default();
    let message =
        if detail.is_empty() { err.error().to_string() } else { format!("{} ({detail})", err.error()) };
    VideoError::Element { element: source_name(msg), message }
}

/// The error that made a state change fail, read from the bus.
pub fn startup_error(pipeline: &gst::Pipeline) -> VideoError {
    let bus = pipeline.bus().expect("a pipeline has a bus");
    while let Some(msg) = bus.timed_pop_filtered(gst::ClockTime::from_seconds(1), &[gst::MessageType::Error])
    {
        if let gst::MessageView::Error(err) = msg.view() {
            return element_error(&msg, err);
        }
    }
    VideoError::Pipeline("the pipeline refused to start".into())
}

/// What a live run does on its bus besides ending: `message` sees every message but end-of-stream and
/// errors, `stop_now` is asked every turn (at most 100 ms apart; `true` ends the run at once), `report`
/// runs once a second, and `ending` once when an interrupt or the time limit starts the ending.
pub struct LiveHooks<M, S, R, E> {
    pub message: M,
    pub stop_now: S,
    pub report: R,
    pub ending: E,
}

/// Drives a playing live pipeline until end-of-stream, an error, `stop_now`, or the ending that
/// `interrupt` or `limit` (the instant the time is up) starts: end-of-stream is sent into the sources so
/// every sink, a file muxer included, finishes, and a sink that has not within 5 s is abandoned.
pub fn drive_live<M, S, R, E>(
    pipeline: &gst::Pipeline,
    limit: Option<Instant>,
    interrupt: &AtomicBool,
    mut hooks: LiveHooks<M, S, R, E>,
) -> Result<(), VideoError>
where
    M: FnMut(&gst::Message),
    S: FnMut() -> bool,
    R: FnMut(),
    E: FnMut(),
{
    let bus = pipeline.bus().expect("a pipeline has a bus");
    let mut last_report = Instant::now();
    let mut ending_since: Option<Instant> = None;
    loop {
        if let Some(msg) = bus.timed_pop(gst::ClockTime::from_mseconds(100)) {
            match msg.view() {
                gst::MessageView::Eos(_) => return Ok(()),
                gst::MessageView::Error(err) => return Err(element_error(&msg, err)),
                _ => (hooks.message)(&msg),
            }
        }
        if (hooks.stop_now)() {
            return Ok(());
        }
        if last_report.elapsed() >= Duration::from_secs(1) {
            (hooks.report)();
            last_report = Instant::now();
        }
        let timed_out = limit.is_some_and(|t| Instant::now() >= t);
        if interrupt.load(Ordering::Relaxed) || timed_out {
            let since = *ending_since.get_or_insert_with(|| {
                (hooks.ending)();
                pipeline.send_event(gst::event::Eos::new());
                Instant::now()
            });
            if since.elapsed() > Duration::from_secs(5) {
                return Ok(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_named_template_fills_and_parses_and_missing_elements_are_named() {
        super::super::init().unwrap();
        assert!(matches!(fill("a {x} b", &[]), Err(VideoError::Pipeline(m)) if m.contains("{x}")));
        assert_eq!(fill("a {x} b", &[("x", "1".into())]).unwrap(), "a 1 b");
        // Values are not re-scanned: braces in paths survive, a value naming another key stays as it is.
        let values = [("x", "/v/{draft}/{y}".to_string()), ("y", "2".to_string())];
        assert_eq!(fill("{x} {y}", &values).unwrap(), "/v/{draft}/{y} 2");
        let e = launch("videotestsrc ! no-such-element-here ! fakesink").unwrap_err();
        assert!(e.to_string().contains("no-such-element-here"), "{e}");
        let e = launch("videotestsrc num-buffers=1 ! x264enc ! fakesink");
        assert!(e.is_ok(), "x264enc should be installed here: {e:?}");
        let dummy: Vec<(&str, String)> = [
            "input_uri",
            "decode_caps",
            "scale",
            "styled_caps",
            "x264",
            "output",
            "audio",
            "device",
            "width",
            "height",
            "fps",
            "location",
            "output_device",
        ]
        .iter()
        .map(|k| {
            let v = match *k {
                "input_uri" => "file:///nonexistent.mp4",
                "decode_caps" => "video/x-raw(ANY)",
                "styled_caps" => "video/x-raw,format=RGB,width=64,height=64,framerate=30/1",
                "width" | "height" => "64",
                "fps" => "30",
                "device" | "output_device" => "/dev/video99",
                "location" => "srt://127.0.0.1:9",
                "output" => "/tmp/x.mp4",
                _ => "",
            };
            (*k, v.to_string())
        })
        .collect();
        for (name, _) in NAMED {
            let t = template(name).unwrap();
            if name.ends_with("-element") {
                assert!(t.contains("! stylestream !"), "{name} lacks the stylestream element");
                if cfg!(not(feature = "gst-plugin")) {
                    continue;
                }
            } else {
                assert!(
                    t.contains("name=frames") && t.contains("name=styled"),
                    "{name} lacks the app elements"
                );
            }
            // Every element exists and every link parses (nothing is started).
            let description = fill(&t, &dummy).unwrap();
            launch(&description).unwrap_or_else(|e| panic!("{name}: {e}\n{description}"));
        }
        assert!(template("no-such-pipeline").is_err());
    }
}
