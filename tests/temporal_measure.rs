//! The streaming evaluator: explained empty results, clear size errors, and CSV/JSON/PNG reports that
//! carry their conventions.
// OpenCV (flow) is a media library: these tests build with the `media` feature, like the module.
#![cfg(feature = "media")]
mod temporal_scenes;

use std::time::Duration;

use stylestream::temporal::{
    DisPreset, Evaluator, FlowMethod, Image, MeasureConfig, PlotLabels, TemporalError,
};
use temporal_scenes::{noisy, photo, window};

const W: usize = 160;
const H: usize = 120;

fn clip(frames: usize) -> Vec<(Image, Image)> {
    let scene = photo("astronaut.png");
    (0..frames)
        .map(|t| {
            let source = window(&scene, W, H, 100.0 + 1.5 * t as f32, 120.0 + 0.5 * t as f32);
            let stylised = noisy(&source, 0.1, t as u64 + 1);
            (source, stylised)
        })
        .collect()
}

#[test]
fn a_one_frame_video_is_explained_not_a_crash() {
    let mut evaluator = Evaluator::new(MeasureConfig::default()).unwrap();
    let (source, stylised) = clip(1).remove(0);
    assert_eq!(evaluator.push(source, stylised, Duration::ZERO).unwrap(), None);
    let err = evaluator.finish().unwrap_err();
    assert!(matches!(err, TemporalError::NoFramePairs { frames: 1, interval: 1 }));
    assert_eq!(err.to_string(), "a 1-frame video has no frame pairs: nothing to measure");

    let mut evaluator = Evaluator::new(MeasureConfig { interval: 10, ..MeasureConfig::default() }).unwrap();
    for (t, (source, stylised)) in clip(5).into_iter().enumerate() {
        evaluator.push(source, stylised, Duration::from_millis(40 * t as u64)).unwrap();
    }
    let err = evaluator.finish().unwrap_err().to_string();
    assert_eq!(err, "a 5-frame video has no frame pairs 10 frames apart: nothing to measure");

    let err = Evaluator::new(MeasureConfig { interval: 0, ..MeasureConfig::default() }).err().unwrap();
    assert_eq!(err.to_string(), "interval = 0: expected at least 1 frame");
}

#[test]
fn mismatched_sizes_are_clear_errors_and_the_frame_is_skipped() {
    let mut evaluator = Evaluator::new(MeasureConfig::default()).unwrap();
    let err = evaluator.push(Image::zeros(322, 242), Image::zeros(320, 240), Duration::ZERO).unwrap_err();
    assert_eq!(err.to_string(), "frame 0: stylised 320x240 vs source 322x242");
    let frames = clip(3);
    evaluator.push(frames[0].0.clone(), frames[0].1.clone(), Duration::ZERO).unwrap();
    let err = evaluator.push(Image::zeros(64, 48), Image::zeros(64, 48), Duration::ZERO).unwrap_err();
    assert_eq!(err.to_string(), format!("frame 1: source 64x48 vs {W}x{H} earlier in the video"));
    let bad = Image { width: W, height: H, data: vec![0.0; 5] };
    let err = evaluator.push(bad, frames[1].1.clone(), Duration::ZERO).unwrap_err();
    assert_eq!(err.to_string(), format!("frame 1: source {W}x{H}x3: expected {} values, found 5", W * H * 3));
    // The rejected frames did not count: the next good frame pairs with frame 0.
    let row =
        evaluator.push(frames[1].0.clone(), frames[1].1.clone(), Duration::from_millis(40)).unwrap().unwrap();
    assert_eq!((row.frame_a, row.frame_b), (0, 1));
}

#[test]
fn reports_are_written_with_their_conventions() {
    let dir = tempfile::tempdir().unwrap();
    for (interval, flow) in [(1, FlowMethod::default()), (3, FlowMethod::Dis(DisPreset::Fast))] {
        let frames = 12;
        let mut evaluator = Evaluator::new(MeasureConfig { flow, interval }).unwrap();
        for (t, (source, stylised)) in clip(frames).into_iter().enumerate() {
            let row = evaluator.push(source, stylised, Duration::from_millis(40 * t as u64)).unwrap();
            // The first row comes with frame k, pairing it with frame 0.
            assert_eq!(
                row.map(|r| (r.frame_a, r.frame_b)),
                (t >= interval).then(|| ((t - interval) as u64, t as u64))
            );
        }
        let report = evaluator.finish().unwrap();
        let s = &report.summary;
        println!(
            "k = {interval}, {flow}: E_warp stylised mean {:.5} median {:.5} p95 {:.5}; source {:.6}; Ruder MSE {:.5} \
             (source {:.6}); masked RMSE {:.4} (source {:.5}); valid {:.3}",
            s.e_warp_stylised.mean,
            s.e_warp_stylised.median,
            s.e_warp_stylised.p95,
            s.e_warp_source.mean,
            s.ruder_mse_stylised.mean,
            s.ruder_mse_source.mean,
            s.masked_rmse_stylised.mean,
            s.masked_rmse_source.mean,
            s.valid_fraction_a.mean
        );
        assert_eq!(s.pairs, frames - interval);
        assert!(s.e_warp_source.mean < 0.5 * s.e_warp_stylised.mean, "the floor is below the noise");
        let mean = report.rows.iter().map(|r| r.stylised.ruder_mse).sum::<f64>() / report.rows.len() as f64;
        assert!((s.ruder_mse_stylised.mean - mean).abs() < 1e-15);

        let (csv, json, png) =
            (dir.path().join("r.csv"), dir.path().join("r.json"), dir.path().join("r.png"));
        report.write_csv(&csv).unwrap();
        report.write_json(&json).unwrap();
        assert_eq!(report.write_plot(&png).unwrap(), PlotLabels::Drawn);

        let text = std::fs::read_to_string(&csv).unwrap();
        let comments: Vec<&str> = text.lines().filter_map(|l| l.strip_prefix("# ")).collect();
        let has = |line: &str| comments.contains(&line);
        assert!(has(&format!("flow_method: {}", flow.name())), "{comments:#?}");
        assert!(has(&format!("flow_preset: {}", flow.preset())));
        assert!(has(&format!("interval: {interval}")));
        assert!(has(&format!("frames: {frames}")));
        assert!(comments.iter().any(|c| c.starts_with("pixel_range: RGB in [0, 1]")));
        assert!(comments
            .iter()
            .any(|c| c.starts_with("e_warp: ") && c.contains("valid pixels x 3 channels")));
        assert!(comments.iter().any(|c| c.starts_with("ruder_mse: ") && c.contains("(3HW)")));
        let mut lines = text.lines().filter(|l| !l.starts_with('#'));
        let header: Vec<&str> = lines.next().unwrap().split(',').collect();
        assert_eq!(header.len(), 12);
        assert_eq!(&header[..5], &["frame_a", "pts_a_s", "frame_b", "pts_b_s", "e_warp_stylised"]);
        let rows: Vec<Vec<f64>> = lines.map(|l| l.split(',').map(|v| v.parse().unwrap()).collect()).collect();
        assert_eq!(rows.len(), frames - interval);
        assert_eq!(rows[0][2] - rows[0][0], interval as f64);
        assert_eq!(rows[0][4], report.rows[0].stylised.e_warp, "CSV numbers round-trip exactly");

        let parsed: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
        assert_eq!(parsed["conventions"]["interval"], interval);
        assert_eq!(parsed["conventions"]["flow_preset"], flow.preset());
        assert_eq!(parsed["pairs"], frames - interval);
        assert_eq!(parsed["summary"]["e_warp_stylised"]["mean"].as_f64(), Some(s.e_warp_stylised.mean));

        let plot = image::open(&png).unwrap();
        assert_eq!((plot.width(), plot.height()), (1000, 500));
    }
    // Atomic writes leave no temporaries behind.
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["r.csv", "r.json", "r.png"]);
}
