//! Live mode with a source faster than the model: the source never waits, latency stays bounded,
//! drops are counted and memory stays flat.
#![cfg(feature = "media")]

use std::sync::atomic::AtomicBool;
use std::sync::Mutex;
use std::time::Duration;

use candle_core::{Result, Tensor};
use stylestream::video::live::{self, LiveOptions, LiveStats, Sink, Source};
use stylestream::video::Stylizer;

/// An identity model that takes 50 ms a frame: at most 20 fps against a 60 fps source.
struct Slow;

impl Stylizer for Slow {
    fn stylize(&mut self, frame: &Tensor) -> Result<Tensor> {
        std::thread::sleep(Duration::from_millis(50));
        Ok(frame.clone())
    }
    fn set_style(&mut self, _: &Tensor) -> Result<()> {
        Ok(())
    }
}

/// Resident set size of this process in bytes.
fn rss() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    statm.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() * 4096
}

#[test]
fn a_slow_model_drops_frames_keeps_latency_bounded_and_memory_flat() {
    stylestream::video::init().unwrap();
    let seconds = 60;
    let opts = LiveOptions {
        source: Source::Test,
        sink: Sink::Null,
        size: Some((320, 240)),
        fps: 60,
        duration: Some(Duration::from_secs(seconds)),
        watch_style: None,
        style_size: 512,
        overwrite: false,
        consistency: Default::default(),
    };
    let samples = Mutex::new(Vec::<(LiveStats, u64)>::new());
    let stats = live::run(
        &opts,
        None,
        Box::new(Slow),
        &|s| samples.lock().unwrap().push((*s, rss())),
        &AtomicBool::new(false),
    )
    .unwrap();
    println!("{stats}");
    let samples = samples.into_inner().unwrap();
    assert!(stats.frames_in as f64 > 0.9 * 60.0 * seconds as f64, "the source ran at its own rate: {stats}");
    let out_fps = stats.frames_out as f64 / stats.seconds;
    assert!((10.0..=21.0).contains(&out_fps), "the model's pace: {stats}");
    assert!(stats.dropped as f64 > 0.5 * stats.frames_in as f64, "drops counted: {stats}");
    // Capture to sink is one model pass plus up to one frame interval (77 ms at p50 by issue 26's
    // target; the graph that queued converted frames measured 116 ms): bounds with room for a loaded
    // machine. The stage graph's own test checks the frame's age at the model structurally.
    assert!(stats.latency_p50 < 0.1, "about one model step behind the camera: {stats}");
    assert!(stats.latency_p95 < 0.15, "{stats}");
    assert!(stats.latency_p50 <= stats.latency_p95 && stats.latency_p95 <= stats.latency_p99, "{stats}");
    // Every frame is counted: out, dropped, or one of the few in flight at the end.
    // (In flight: one frame in each of the appsink, the model, post-process, push and the two mailboxes.)
    let counted = stats.frames_out + stats.dropped;
    assert!(counted <= stats.frames_in && stats.frames_in - counted <= 6, "{stats}");
    // Memory after warm-up (10 s) against the end: flat within 20 MB.
    let warm = samples.iter().find(|(s, _)| s.seconds >= 10.0).unwrap().1;
    let end = samples.last().unwrap().1;
    println!("rss at 10 s {} MB, at end {} MB", warm >> 20, end >> 20);
    assert!(end < warm + (20 << 20), "memory grew from {warm} to {end} bytes");
}

/// Counts style changes; otherwise the identity.
struct Restyled(std::sync::Arc<std::sync::atomic::AtomicUsize>);

impl Stylizer for Restyled {
    fn stylize(&mut self, frame: &Tensor) -> Result<Tensor> {
        Ok(frame.clone())
    }
    fn set_style(&mut self, style: &Tensor) -> Result<()> {
        assert_eq!(style.dims(), &[1, 3, 20, 30], "the rewritten style image arrives");
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok(())
    }
}

#[test]
fn rewriting_the_style_file_switches_the_style_without_restarting() {
    stylestream::video::init().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let style = dir.path().join("style.png");
    image::RgbImage::new(16, 16).save(&style).unwrap();
    let opts = LiveOptions {
        source: Source::Test,
        sink: Sink::Null,
        size: Some((160, 120)),
        fps: 30,
        duration: Some(Duration::from_secs(4)),
        watch_style: Some(style.clone()),
        style_size: 512,
        overwrite: false,
        consistency: Default::default(),
    };
    let changes = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let writer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(1500));
        image::RgbImage::from_pixel(30, 20, image::Rgb([200, 10, 10])).save(&style).unwrap();
    });
    let stats = live::run(&opts, None, Box::new(Restyled(changes.clone())), &|_| {}, &AtomicBool::new(false))
        .unwrap();
    writer.join().unwrap();
    assert_eq!(changes.load(std::sync::atomic::Ordering::SeqCst), 1, "{stats}");
    assert!(stats.frames_out > 60, "frames kept flowing: {stats}");
}

#[test]
fn stats_json_reports_counts_rates_and_latency_percentiles() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("stats.json");
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_stylestream"))
        .args(["stream", "--source", "test", "--sink", "null", "--model", "identity"])
        .args(["--size", "64x48", "--fps", "30", "--duration", "2", "--stats-json"])
        .arg(&json)
        .status()
        .unwrap();
    assert!(status.success());
    let stats: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let number =
        |path: &str| stats.pointer(path).and_then(|v| v.as_f64()).unwrap_or_else(|| panic!("{path}"));
    // 2 s of a 30 fps source (allowing a loaded machine), the identity keeping up with most of it.
    assert!((40.0..=70.0).contains(&number("/frames_in")), "{stats}");
    assert!(number("/frames_out") + number("/dropped") <= number("/frames_in"), "{stats}");
    assert!(number("/frames_out") >= 30.0, "{stats}");
    let fps_out = number("/frames_out") / number("/seconds");
    assert!((number("/fps_out") - fps_out).abs() < 1e-9, "{stats}");
    let (p50, p95, p99) = (number("/latency_ms/p50"), number("/latency_ms/p95"), number("/latency_ms/p99"));
    // Milliseconds from capture to sink: above 0, and far under a second for the identity.
    assert!(0.0 < p50 && p50 <= p95 && p95 <= p99 && p99 < 1000.0, "{stats}");
}
