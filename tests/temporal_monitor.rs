//! The live monitor never blocks the video thread, drops work when behind, and reports a rolling E_warp.
// OpenCV (flow) is a media library: these tests build with the `media` feature, like the module.
#![cfg(feature = "media")]
mod temporal_scenes;

use std::time::{Duration, Instant};

use stylestream::temporal::{DisPreset, FlowMethod, Image, Monitor, MonitorConfig};
use temporal_scenes::{noisy, photo, window};

/// A 10-frame noisy pan, `w x h`.
fn clip(w: usize, h: usize) -> Vec<(Image, Image)> {
    let scene = photo("coffee.png");
    (0..10)
        .map(|t| {
            let source = window(&scene, w, h, 20.0 + 2.0 * t as f32, 20.0 + t as f32);
            let stylised = noisy(&source, 0.1, t as u64 + 1);
            (source, stylised)
        })
        .collect()
}

#[test]
fn a_slow_worker_never_blocks_the_producer() {
    // Full-size frames and the slowest preset make the worker far slower than the producer.
    let config = MonitorConfig {
        downscale: 1,
        flow: FlowMethod::Dis(DisPreset::Medium),
        queue: 2,
        min_interval: Duration::ZERO,
        ..MonitorConfig::default()
    };
    let mut monitor = Monitor::start(config).unwrap();
    let frames = clip(320, 240);
    let start = Instant::now();
    let mut slowest = Duration::ZERO;
    let mut accepted = 0;
    for t in 0..1000u64 {
        let (source, stylised) = &frames[t as usize % frames.len()];
        let offer = Instant::now();
        accepted += u64::from(monitor.offer(source, stylised, Duration::from_millis(33 * t)).unwrap());
        slowest = slowest.max(offer.elapsed());
    }
    let elapsed = start.elapsed();
    let mid_stream = monitor.reading();
    let dropped = monitor.dropped();
    let reading = monitor.finish().unwrap();
    println!(
        "1000 offers in {elapsed:?} (slowest {slowest:?}): {accepted} queued, {dropped} dropped; mid-stream \
         {mid_stream:?}; final {reading:?}"
    );
    // Drops are the proof that offer() did not wait: a blocking send would have queued all 999 pairs.
    assert!(dropped > 0);
    assert_eq!(accepted + dropped, 999, "the first frame has no pair");
    // ~0.6 s here when idle; the bound leaves room for a loaded 2-core machine. Waiting for the worker
    // (~10 ms a pair) on every frame would take over 10 s.
    assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
    assert_eq!(reading.pairs, accepted);
    assert!(reading.rolling_e_warp_stylised.unwrap() > reading.rolling_e_warp_source.unwrap());
}

#[test]
fn a_paced_stream_is_fully_measured_with_csv_rows() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("live.csv");
    let config = MonitorConfig {
        window: 5,
        downscale: 2,
        csv: Some(csv.clone()),
        min_interval: Duration::ZERO,
        ..MonitorConfig::default()
    };
    let mut monitor = Monitor::start(config).unwrap();
    assert_eq!(monitor.reading().rolling_e_warp_stylised, None);
    let frames = clip(256, 192);
    for (t, (source, stylised)) in frames.iter().enumerate() {
        monitor.offer(source, stylised, Duration::from_millis(40 * t as u64)).unwrap();
        // A 25 fps producer: the worker keeps up.
        std::thread::sleep(Duration::from_millis(40));
    }
    let live = monitor.reading();
    let reading = monitor.finish().unwrap();
    println!("paced: live {live:?}, final {reading:?}");
    assert_eq!((reading.pairs, reading.dropped, reading.failed), (9, 0, 0));
    assert_eq!(reading.last_frame, Some(9));
    // Uniform noise of amplitude A on each frame adds 2 A^2 / 3 = 0.0067 to E_warp at full size; the 2x2
    // box filter averages 4 independent values, dividing that by 4: ~0.0017 on top of the source floor.
    let (o, i) = (reading.rolling_e_warp_stylised.unwrap(), reading.rolling_e_warp_source.unwrap());
    assert!(o > 0.0012 && o < 0.0025 && i < 0.001, "stylised {o}, source {i}");
    let text = std::fs::read_to_string(&csv).unwrap();
    let rows: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
    assert_eq!(rows[0], "frame,pts_s,e_warp_stylised,e_warp_source,valid_fraction");
    assert_eq!(rows.len(), 1 + 9);
    assert!(text.starts_with("# stylestream live monitor"));
}

#[test]
fn mismatched_frames_are_errors() {
    let mut monitor =
        Monitor::start(MonitorConfig { min_interval: Duration::ZERO, ..MonitorConfig::default() }).unwrap();
    let err = monitor.offer(&Image::zeros(322, 242), &Image::zeros(320, 240), Duration::ZERO).unwrap_err();
    assert_eq!(err.to_string(), "frame 0: stylised 320x240 vs source 322x242");
}

#[test]
fn the_minimum_interval_skips_frames_between_consecutive_pairs() {
    let config = MonitorConfig { min_interval: Duration::from_secs(3600), ..MonitorConfig::default() };
    let mut monitor = Monitor::start(config).unwrap();
    let frames = clip(64, 48);
    // Frame 0 starts a pair and frame 1 completes it; then nothing is wanted for the hour.
    assert!(monitor.wants());
    assert!(!monitor.offer(&frames[0].0, &frames[0].1, Duration::ZERO).unwrap());
    assert!(monitor.wants());
    assert!(monitor.offer(&frames[1].0, &frames[1].1, Duration::from_millis(40)).unwrap());
    for _ in 2..10 {
        assert!(!monitor.wants());
        monitor.skip();
    }
    let reading = monitor.finish().unwrap();
    assert_eq!(reading.pairs, 1);
    assert_eq!(reading.last_frame, Some(1));
}
