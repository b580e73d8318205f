//! The `stylestream` GStreamer element in pipelines built by `gst::parse::launch`: frames, sizes and
//! timestamps through it, its output against the CLI's per-frame path on the same frames (bit for
//! bit), a style switch while playing, load failures naming the file, the monitor's messages, and
//! packed formats other than RGB.
//!
//! Frames are 64x48 (128x96 for the monitor) so the CPU model stays fast; the style is scaled to 64
//! px (`style-size`) because encoding a 512 px style costs more than the frames.
#![cfg(feature = "gst-plugin")]

use candle_core::Device;
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use stylestream::checkpoint::{self, WeightSource};
use stylestream::image_io;
use stylestream::models::Network;
use stylestream::video::{Frame, StyA2kStylizer, Stylizer};

const MODEL: &str = "formula:20261122";
const STYLE: &str = "tests/fixtures/images/hubble_deep_field.jpg";
const OTHER_STYLE: &str = "tests/fixtures/images/chelsea.png";
const STYLE_SIZE: u32 = 64;
const CAPS: &str = "video/x-raw,format=RGB,width=64,height=48,framerate=30/1";

fn init() {
    // `video::init` is what the CLI calls: GStreamer plus the element, registered in-process.
    stylestream::video::init().unwrap();
}

/// Everything appsink `out` receives until end-of-stream; a bus error fails the test.
fn run_to_end(description: &str) -> Vec<gst::Sample> {
    let pipeline = gst::parse::launch(description).unwrap().downcast::<gst::Pipeline>().unwrap();
    let sink = pipeline.by_name("out").unwrap().downcast::<gst_app::AppSink>().unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    let mut samples = Vec::new();
    while let Some(sample) = sink.try_pull_sample(gst::ClockTime::from_seconds(60)) {
        samples.push(sample);
    }
    assert!(sink.is_eos(), "the stream ended early after {} frames", samples.len());
    assert_no_error(&pipeline);
    pipeline.set_state(gst::State::Null).unwrap();
    samples
}

fn assert_no_error(pipeline: &gst::Pipeline) {
    let bus = pipeline.bus().unwrap();
    while let Some(msg) = bus.pop_filtered(&[gst::MessageType::Error]) {
        if let gst::MessageView::Error(e) = msg.view() {
            panic!("bus error from {:?}: {} ({:?})", msg.src().map(|s| s.name()), e.error(), e.debug());
        }
    }
}

fn frames(samples: &[gst::Sample]) -> Vec<Frame> {
    samples.iter().enumerate().map(|(i, s)| Frame::from_sample(s, i as u64).unwrap()).collect()
}

/// The CLI's stylizer for `style`, built as `video`/`stream` build it (checkpoint, style picture,
/// StyA2K stylizer on the CPU).
fn cli_stylizer(style: &str) -> StyA2kStylizer {
    let Network::StyA2K(model) =
        checkpoint::load(&MODEL.parse::<WeightSource>().unwrap(), &Device::Cpu).unwrap()
    else {
        panic!("formula weights are StyA2K")
    };
    let style = image_io::read_picture(style.as_ref(), Some(STYLE_SIZE), &Device::Cpu).unwrap();
    StyA2kStylizer::new(*model, &style.rgb, 1.0).unwrap()
}

/// What the CLI's stage graph makes of one frame (`video::stages`: pre-process, stylise,
/// post-process without stabiliser or monitor).
fn cli_output(stylizer: &mut dyn Stylizer, frame: &Frame) -> Vec<u8> {
    let tensor = frame.to_tensor(&Device::Cpu).unwrap();
    frame.with_pixels(&stylizer.stylize(&tensor).unwrap()).unwrap().data
}

/// Source frames: videotestsrc's SMPTE bars (deterministic), `n` of them.
fn source_frames(n: usize) -> Vec<Frame> {
    frames(&run_to_end(&format!("videotestsrc num-buffers={n} ! {CAPS} ! appsink name=out sync=false")))
}

#[test]
fn thirty_frames_keep_count_size_and_pts_and_equal_the_cli_output() {
    init();
    let element = format!("stylestream model={MODEL} style={STYLE} style-size={STYLE_SIZE}");
    let samples = run_to_end(&format!(
        "videotestsrc num-buffers=30 ! {CAPS} ! {element} ! appsink name=out sync=false"
    ));
    assert_eq!(samples.len(), 30);
    let source = source_frames(30);
    let mut stylizer = cli_stylizer(STYLE);
    for (i, (sample, input)) in samples.iter().zip(&source).enumerate() {
        let caps = gst_video_info(sample);
        assert_eq!((caps.width(), caps.height(), caps.format()), (64, 48, gstreamer_video::VideoFormat::Rgb));
        // videotestsrc stamps frame i at i/30 s (rounded down to the nanosecond), 1/30 s long.
        let buffer = sample.buffer().unwrap();
        assert_eq!(
            buffer.pts(),
            Some(gst::ClockTime::from_nseconds(i as u64 * 1_000_000_000 / 30)),
            "frame {i}"
        );
        assert_eq!(buffer.pts(), input.pts, "frame {i}");
        let out = Frame::from_sample(sample, i as u64).unwrap();
        assert_ne!(out.data, input.data, "frame {i} went through the model");
        assert!(out.data == cli_output(&mut stylizer, input), "frame {i} differs from the CLI's output");
    }
}

fn gst_video_info(sample: &gst::Sample) -> gstreamer_video::VideoInfo {
    gstreamer_video::VideoInfo::from_caps(sample.caps().unwrap()).unwrap()
}

#[test]
fn bgrx_gives_the_same_pixels_as_rgb_and_rgba_keeps_its_alpha() {
    init();
    // videoconvert between RGB and BGRx only reorders bytes, so the element sees the same pixels.
    let element = format!("stylestream model={MODEL} style={STYLE} style-size={STYLE_SIZE}");
    let samples = run_to_end(&format!(
        "videotestsrc num-buffers=5 ! {CAPS} ! videoconvert ! video/x-raw,format=BGRx ! {element} ! videoconvert ! video/x-raw,format=RGB ! appsink name=out sync=false"
    ));
    let mut stylizer = cli_stylizer(STYLE);
    for (i, (out, input)) in frames(&samples).iter().zip(&source_frames(5)).enumerate() {
        assert!(out.data == cli_output(&mut stylizer, input), "frame {i} differs from the CLI's output");
    }
    // RGBA: the model changes the colours of a translucent frame (ARGB 0x80ff4020), its alpha stays.
    let samples = run_to_end(&format!(
        "videotestsrc num-buffers=2 pattern=solid-color foreground-color=0x80ff4020 ! video/x-raw,format=RGBA,width=64,height=48 ! {element} ! appsink name=out sync=false"
    ));
    for sample in &samples {
        let bytes = sample.buffer().unwrap().map_readable().unwrap();
        assert!(bytes.as_slice().chunks(4).all(|p| p[3] == 0x80), "alpha kept");
        assert!(bytes.as_slice().chunks(4).any(|p| p[..3] != [0xff, 0x40, 0x20]), "colours stylised");
    }
}

#[test]
fn identity_keeps_every_pixel_byte_alpha_included() {
    init();
    // A translucent RGBA frame (ARGB 0x80ff4020: the element writes R, G, B and leaves alpha alone),
    // and RGB bars in rows of 33 pixels (99 bytes in a 100-byte stride; the padding byte is whatever
    // the allocator left there, so only the 99 are compared).
    for (source, pixel) in [
        ("pattern=solid-color foreground-color=0x80ff4020 ! video/x-raw,format=RGBA", 4),
        ("pattern=smpte ! video/x-raw,format=RGB", 3),
    ] {
        let source = format!("videotestsrc num-buffers=3 {source},width=33,height=7");
        let input = run_to_end(&format!("{source} ! appsink name=out sync=false"));
        let output =
            run_to_end(&format!("{source} ! stylestream model=identity ! appsink name=out sync=false"));
        assert_eq!((input.len(), output.len()), (3, 3));
        let rows = |sample: &gst::Sample| -> Vec<u8> {
            let stride = gst_video_info(sample).stride()[0] as usize;
            let bytes = sample.buffer().unwrap().map_readable().unwrap();
            bytes.as_slice().chunks(stride).flat_map(|row| row[..33 * pixel].to_vec()).collect()
        };
        for (a, b) in input.iter().zip(&output) {
            let (a, b) = (rows(a), rows(b));
            assert_eq!(a.len(), 33 * 7 * pixel);
            if pixel == 4 {
                assert!(a.chunks(4).all(|p| p == [0xff, 0x40, 0x20, 0x80]), "RGBA bytes of ARGB 0x80ff4020");
            }
            assert_eq!(a, b, "{source}");
        }
    }
}

#[test]
fn changing_the_style_while_playing_takes_effect_within_a_few_frames() {
    init();
    let n = 14;
    let description = format!(
        "videotestsrc num-buffers={n} ! {CAPS} ! stylestream name=s model={MODEL} style={STYLE} style-size={STYLE_SIZE} ! appsink name=out sync=false max-buffers=1"
    );
    let pipeline = gst::parse::launch(&description).unwrap().downcast::<gst::Pipeline>().unwrap();
    let sink = pipeline.by_name("out").unwrap().downcast::<gst_app::AppSink>().unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    let switch_after = 5;
    let mut out = Vec::new();
    while let Some(sample) = sink.try_pull_sample(gst::ClockTime::from_seconds(60)) {
        out.push(Frame::from_sample(&sample, out.len() as u64).unwrap());
        if out.len() == switch_after {
            pipeline.by_name("s").unwrap().set_property("style", OTHER_STYLE);
        }
    }
    assert!(sink.is_eos());
    assert_no_error(&pipeline);
    assert_eq!(pipeline.current_state(), gst::State::Playing, "the pipeline kept playing");
    pipeline.set_state(gst::State::Null).unwrap();
    assert_eq!(out.len(), n, "no frame dropped");

    let source = source_frames(n);
    let (mut first, mut second) = (cli_stylizer(STYLE), cli_stylizer(OTHER_STYLE));
    let styles: Vec<u8> = source
        .iter()
        .zip(&out)
        .map(|(input, out)| {
            let a = out.data == cli_output(&mut first, input);
            let b = out.data == cli_output(&mut second, input);
            assert!(a != b, "frame {} is exactly one style's output (a {a}, b {b})", out.index);
            if a {
                0
            } else {
                1
            }
        })
        .collect();
    // Up to the switch the first style, from some frame on the second: the queue between the
    // element and the test holds at most a couple of frames already stylised.
    let switched = styles.iter().position(|&s| s == 1).expect("the new style arrived");
    assert!(styles[switched..].iter().all(|&s| s == 1), "{styles:?}");
    assert!(
        (switch_after..=switch_after + 3).contains(&switched),
        "switched at frame {switched}: {styles:?}"
    );
}

/// The error a pipeline posts when it cannot start.
fn start_error(description: &str) -> String {
    let pipeline = gst::parse::launch(description).unwrap().downcast::<gst::Pipeline>().unwrap();
    assert!(pipeline.set_state(gst::State::Playing).is_err(), "the pipeline started: {description}");
    let msg = pipeline
        .bus()
        .unwrap()
        .timed_pop_filtered(gst::ClockTime::from_seconds(5), &[gst::MessageType::Error])
        .expect("an error message");
    let _ = pipeline.set_state(gst::State::Null);
    match msg.view() {
        gst::MessageView::Error(e) => e.error().to_string(),
        _ => unreachable!(),
    }
}

#[test]
fn a_missing_model_or_style_file_stops_the_start_naming_the_file() {
    init();
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("no-such-model.safetensors");
    let style = dir.path().join("no-such-style.jpg");
    let e = start_error(&format!(
        "videotestsrc num-buffers=1 ! {CAPS} ! stylestream model={} style={STYLE} ! fakesink",
        model.display()
    ));
    assert!(e.contains(&model.display().to_string()), "{e}");
    let e = start_error(&format!(
        "videotestsrc num-buffers=1 ! {CAPS} ! stylestream model={MODEL} style={} ! fakesink",
        style.display()
    ));
    assert!(e.contains(&style.display().to_string()), "{e}");
    let e =
        start_error(&format!("videotestsrc num-buffers=1 ! {CAPS} ! stylestream model={MODEL} ! fakesink"));
    assert!(e.contains("`style` is not set"), "{e}");
}

#[test]
fn without_a_model_the_element_runs_the_shipped_default() {
    init();
    let element = gst::ElementFactory::make("stylestream").build().unwrap();
    assert_eq!(element.property::<String>("model"), "default");
    let samples = run_to_end(&format!(
        "videotestsrc num-buffers=2 ! {CAPS} ! stylestream style={STYLE} style-size={STYLE_SIZE} ! appsink name=out sync=false"
    ));
    let source = source_frames(2);
    assert_eq!(samples.len(), 2);
    for (i, (sample, input)) in samples.iter().zip(&source).enumerate() {
        assert_ne!(Frame::from_sample(sample, i as u64).unwrap().data, input.data, "frame {i}");
    }
}

#[test]
fn the_monitor_posts_the_rolling_warping_error_every_n_frames() {
    init();
    // Real time (sync=true), so the monitor, which samples a pair every 250 ms, sees several.
    let description = "videotestsrc num-buffers=40 pattern=ball ! video/x-raw,format=RGB,width=128,height=96,framerate=30/1 ! stylestream model=identity monitor=10 ! appsink name=out sync=true";
    let pipeline = gst::parse::launch(description).unwrap().downcast::<gst::Pipeline>().unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    let bus = pipeline.bus().unwrap();
    let mut readings = Vec::new();
    for msg in bus.iter_timed(gst::ClockTime::from_seconds(30)) {
        match msg.view() {
            gst::MessageView::Eos(_) => break,
            gst::MessageView::Error(e) => panic!("{}", e.error()),
            gst::MessageView::Element(m) => {
                let s = m.structure().unwrap();
                if s.name() == stylestream::gst::MONITOR_MESSAGE {
                    let e_warp = s.get::<f64>("e-warp").ok().zip(s.get::<f64>("e-warp-source").ok());
                    readings.push((s.get::<u64>("frames").unwrap(), s.get::<u64>("pairs").unwrap(), e_warp));
                }
            }
            _ => {}
        }
    }
    pipeline.set_state(gst::State::Null).unwrap();
    let frames: Vec<u64> = readings.iter().map(|r| r.0).collect();
    assert_eq!(frames, [10, 20, 30, 40]);
    assert!(readings.windows(2).all(|w| w[0].1 <= w[1].1), "pairs only grow: {readings:?}");
    let (styled, source) = readings.last().unwrap().2.expect("a measured pair within 1.3 s");
    // The identity's output is its input: both warping errors are the same number, and the moving
    // ball leaves some error where the flow is imperfect.
    assert_eq!(styled, source);
    assert!(styled.is_finite() && styled >= 0.0, "{styled}");
}

#[test]
fn max_side_runs_the_model_smaller_and_keeps_the_frame_size() {
    init();
    let run = |pattern: &str| {
        let source = format!("videotestsrc num-buffers=2 pattern={pattern} ! {CAPS}");
        let input = frames(&run_to_end(&format!("{source} ! appsink name=out sync=false")));
        let output = frames(&run_to_end(&format!(
            "{source} ! stylestream model=identity max-side=16 ! appsink name=out sync=false"
        )));
        assert_eq!(output.len(), 2);
        assert!(output.iter().all(|f| (f.width, f.height) == (64, 48)));
        (input, output)
    };
    // A flat frame survives scaling down to 16x12 and back up; the bars lose detail.
    let (input, output) = run("white");
    assert_eq!(input[0].data, output[0].data);
    let (input, output) = run("smpte");
    assert_ne!(input[0].data, output[0].data);
}

#[test]
fn stream_runs_an_element_pipeline_with_the_cli_model_and_monitor() {
    use std::sync::atomic::AtomicBool;
    use stylestream::video::consistency::ConsistencyOptions;
    use stylestream::video::live::{self, LiveOptions, Sink, Source};

    init();
    // `stream --pipeline FILE`, as pipelines/test-pattern-element.pipeline with a fakesink.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("element.pipeline");
    std::fs::write(
        &file,
        "videotestsrc is-live=true pattern=ball ! video/x-raw,width={width},height={height},framerate={fps}/1 \
         ! videoconvert ! video/x-raw,format=RGB ! queue leaky=downstream max-size-buffers=1 ! stylestream \
         ! fakesink sync=false",
    )
    .unwrap();
    let opts = LiveOptions {
        source: Source::Test,
        sink: Sink::Null,
        size: Some((128, 96)),
        fps: 30,
        duration: Some(std::time::Duration::from_secs(3)),
        watch_style: None,
        style_size: 512,
        overwrite: false,
        consistency: ConsistencyOptions { monitor: true, ..Default::default() },
    };
    let stylizer = Box::new(stylestream::video::Identity);
    let stats =
        live::run(&opts, Some(file.to_str().unwrap()), stylizer, &|_| {}, &AtomicBool::new(false)).unwrap();
    // 3 s of a 30 fps live source, every frame through the fast identity (allowing a loaded machine).
    assert!(stats.frames_in >= 60 && stats.frames_out + 2 >= stats.frames_in / 2, "{stats}");
    // Capture-to-sink latency is measured at the element's output (the queue and the element included).
    let latency = [stats.latency_p50, stats.latency_p95, stats.latency_p99];
    assert!(0.0 < latency[0] && latency[0] <= latency[1] && latency[1] <= latency[2], "{stats}");
    // The monitor posts every 30 frames; the identity's warping error is the source's.
    let (styled, source) = stats.e_warp.expect("a monitor reading");
    assert_eq!(styled, source, "{stats}");
}
