//! Flicker metrics with known answers, on real photos (the hand-worked 4x4 examples live beside the
//! code in src/temporal/metrics.rs).
// OpenCV (flow) is a media library: these tests build with the `media` feature, like the module.
#![cfg(feature = "media")]
mod temporal_scenes;

use stylestream::temporal::{
    lai_e_warp, pair_metrics, warp_image, DisPreset, Flow, FlowEstimator, FlowMethod, Image, PairGeometry,
    PairMetrics,
};
use temporal_scenes::{noisy, photo, window, zoom_flow};

const W: usize = 200;
const H: usize = 150;

#[test]
fn identical_frames_score_zero_with_estimated_flow() {
    let frame = window(&photo("chelsea.png"), W, H, 60.0, 40.0);
    let mut estimator = FlowEstimator::new(FlowMethod::default()).unwrap();
    let geometry = PairGeometry::estimate(&mut estimator, &frame, &frame).unwrap();
    let m = pair_metrics(&geometry, &frame, &frame).unwrap();
    println!("identical frames: {m:?}, valid fraction {}", geometry.mask_a.valid_fraction());
    // DIS returns exactly zero flow on identical frames, so the warp is an exact copy.
    assert_eq!(m, PairMetrics { e_warp: 0.0, ruder_mse: 0.0, masked_rmse: 0.0 });
}

/// A "stylised" video that is an exact warp of itself (integer pan: bilinear weights are 0/1, so the
/// warp copies values) scores 0 on all three metrics under the ground-truth flow.
#[test]
fn exact_integer_pan_scores_zero() {
    let stylised_scene = noisy(&photo("astronaut.png"), 0.2, 7);
    let (dx, dy) = (3.0, -2.0);
    let a = window(&stylised_scene, W, H, 100.0, 100.0);
    let b = window(&stylised_scene, W, H, 100.0 + dx, 100.0 + dy);
    let geometry =
        PairGeometry::from_flows(Flow::uniform(W, H, -dx, -dy), Flow::uniform(W, H, dx, dy)).unwrap();
    let m = pair_metrics(&geometry, &a, &b).unwrap();
    println!("exact integer pan: {m:?}");
    assert_eq!(m, PairMetrics { e_warp: 0.0, ruder_mse: 0.0, masked_rmse: 0.0 });
    // The masks removed exactly the strips that left the frame: 3 columns and 2 rows.
    assert_eq!(geometry.mask_a.valid_fraction(), ((W - 3) * (H - 2)) as f64 / (W * H) as f64);
}

/// Sub-pixel motion: frame a is built as warp(b, F) under a zoom flow, so E_warp (which compares a with
/// warp(b, F)) is ~0 inside the mask, while the unmasked error of the same frames is not.
#[test]
fn exact_zoom_warp_scores_zero_inside_the_mask() {
    let zoom = 1.05;
    let b = noisy(&window(&photo("coffee.png"), W, H, 50.0, 50.0), 0.2, 11);
    let forward = zoom_flow(W, H, zoom);
    let backward = zoom_flow(W, H, 1.0 / zoom);
    let (a, _) = warp_image(&b, &forward).unwrap();
    let geometry = PairGeometry::from_flows(forward, backward).unwrap();
    let (b_on_a, _) = warp_image(&b, &geometry.forward).unwrap();
    let masked = lai_e_warp(&a, &b_on_a, &geometry.mask_a).unwrap();
    let unmasked = lai_e_warp(&a, &b, &stylestream::temporal::Mask::all_valid(W, H)).unwrap();
    println!(
        "exact zoom x{zoom}: E_warp {masked:e} inside the mask ({:.3} valid), {unmasked:.4} without warping",
        geometry.mask_a.valid_fraction()
    );
    assert!(masked < 1e-12, "{masked}");
    assert!(unmasked > 1e-3, "{unmasked}");
}

/// A 6 px pan with estimated flow: frame a's left strip (content that left the frame) is occluded,
/// frame b's right strip (content newly revealed) is occluded in the other direction, and the interior
/// is valid.
#[test]
fn occlusion_mask_flags_the_revealed_strip_of_a_pan() {
    let scene = photo("astronaut.png");
    let a = window(&scene, W, H, 100.0, 100.0);
    let b = window(&scene, W, H, 106.0, 100.0);
    let mut estimator = FlowEstimator::new(FlowMethod::Dis(DisPreset::Medium)).unwrap();
    let geometry = PairGeometry::estimate(&mut estimator, &a, &b).unwrap();
    let fraction = |mask: &stylestream::temporal::Mask,
                    xs: std::ops::Range<usize>,
                    ys: std::ops::Range<usize>| {
        let n = xs.len() * ys.len();
        let valid =
            ys.flat_map(|y| xs.clone().map(move |x| (x, y))).filter(|&(x, y)| mask.data[y * W + x]).count();
        valid as f64 / n as f64
    };
    let strip_a = fraction(&geometry.mask_a, 0..5, 0..H);
    let strip_b = fraction(&geometry.mask_b, W - 5..W, 0..H);
    let interior_a = fraction(&geometry.mask_a, 16..W - 16, 16..H - 16);
    let interior_b = fraction(&geometry.mask_b, 16..W - 16, 16..H - 16);
    println!("6 px pan: valid in strips {strip_a:.3} / {strip_b:.3}, in the interior {interior_a:.3} / {interior_b:.3}");
    assert_eq!(strip_a, 0.0);
    assert_eq!(strip_b, 0.0);
    assert!(interior_a > 0.97 && interior_b > 0.97);
}

#[test]
fn metrics_rank_flicker() {
    // Same motion, more per-frame noise on the "stylised" frames: every metric grows. The photo is
    // squeezed into [0.25, 0.75] so that noise of amplitude <= 0.1 is never clamped.
    let photo = photo("astronaut.png");
    let scene =
        Image::new(photo.width, photo.height, photo.data.iter().map(|v| 0.25 + 0.5 * v).collect()).unwrap();
    let (a, b) = (window(&scene, W, H, 100.0, 100.0), window(&scene, W, H, 102.0, 101.0));
    let geometry =
        PairGeometry::from_flows(Flow::uniform(W, H, -2.0, -1.0), Flow::uniform(W, H, 2.0, 1.0)).unwrap();
    let score =
        |amplitude| pair_metrics(&geometry, &noisy(&a, amplitude, 1), &noisy(&b, amplitude, 2)).unwrap();
    let (low, high) = (score(0.02), score(0.1));
    println!("noise 0.02: {low:?}\nnoise 0.1: {high:?}");
    assert!(high.e_warp > low.e_warp && high.ruder_mse > low.ruder_mse && high.masked_rmse > low.masked_rmse);
    // Independent uniform noise in [-A, A] on both frames: E[(n1 - n2)^2] = 2 A^2 / 3 = 0.00667 for A = 0.1,
    // and the warp is an exact copy (integer pan), so E_warp is that within sampling error (30k pixels).
    let expected = 2.0 * 0.1f64.powi(2) / 3.0;
    assert!((high.e_warp - expected).abs() < 0.03 * expected, "{} vs {expected}", high.e_warp);
}
