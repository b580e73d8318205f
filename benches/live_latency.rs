//! One live run of `stream` with a stand-in model (an identity that sleeps for the model time), for
//! `benches/live_latency.sh`: a 320x240 moving test pattern at FPS through the appsink/appsrc path
//! (`--source test --sink null`) or the `stylestream` element behind its leaky queue, for SECONDS.
//! Prints one line: `RUN PATH FPS MODEL_MS p50_ms p95_ms p99_ms fps_in fps_out dropped_per_s`.
//!
//! Usage: cargo bench --profile dev --bench live_latency -- appsink|element FPS MODEL_MS SECONDS
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use candle_core::{Result, Tensor};
use stylestream::video::live::{self, LiveOptions, Sink, Source};
use stylestream::video::Stylizer;

/// The element path: `pipelines/test-pattern-element.pipeline` with a sink that takes every frame.
const ELEMENT: &str = "videotestsrc is-live=true pattern=ball ! video/x-raw,width={width},height={height},framerate={fps}/1 \
    ! videoconvert ! video/x-raw,format=RGB ! queue leaky=downstream max-size-buffers=1 max-size-bytes=0 max-size-time=0 \
    ! stylestream ! fakesink sync=false async=false";

/// An identity model that takes a fixed time per frame.
struct StandIn(Duration);

impl Stylizer for StandIn {
    fn stylize(&mut self, frame: &Tensor) -> Result<Tensor> {
        std::thread::sleep(self.0);
        Ok(frame.clone())
    }
    fn set_style(&mut self, _: &Tensor) -> Result<()> {
        Ok(())
    }
}

fn main() {
    // `cargo bench` adds `--bench`; the positional arguments are ours. `cargo test --all-targets` runs
    // this binary with neither: then one short case checks that it still runs.
    let mut args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    if args.is_empty() && !std::env::args().any(|a| a == "--bench") {
        args = ["appsink", "30", "5", "1"].map(String::from).to_vec();
    }
    let [path, fps, model_ms, seconds] = args.as_slice() else {
        eprintln!("usage: live_latency appsink|element FPS MODEL_MS SECONDS");
        std::process::exit(2);
    };
    let number = |s: &str| s.parse::<u32>().unwrap_or_else(|_| panic!("`{s}` is not a whole number"));
    let (fps, model_ms, seconds) = (number(fps), number(model_ms), number(seconds));
    stylestream::video::init().expect("GStreamer starts");
    let dir = tempfile::tempdir().expect("a temporary folder");
    let pipeline = match path.as_str() {
        "appsink" => None,
        "element" => {
            let file = dir.path().join("element.pipeline");
            std::fs::write(&file, ELEMENT).expect("the pipeline file is written");
            Some(file.display().to_string())
        }
        other => panic!("`{other}`: expected appsink or element"),
    };
    let opts = LiveOptions {
        source: Source::Test,
        sink: Sink::Null,
        size: Some((320, 240)),
        fps,
        duration: Some(Duration::from_secs(seconds.into())),
        watch_style: None,
        style_size: 512,
        overwrite: false,
        consistency: Default::default(),
    };
    let model = Box::new(StandIn(Duration::from_millis(model_ms.into())));
    let s = live::run(&opts, pipeline.as_deref(), model, &|_| {}, &AtomicBool::new(false)).expect("the run");
    let t = s.seconds;
    println!(
        "RUN {path} {fps} {model_ms} {:.1} {:.1} {:.1} {:.2} {:.2} {:.2}",
        s.latency_p50 * 1e3,
        s.latency_p95 * 1e3,
        s.latency_p99 * 1e3,
        s.frames_in as f64 / t,
        s.frames_out as f64 / t,
        s.dropped as f64 / t
    );
}
