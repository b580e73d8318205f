//! The causal stabiliser on synthetic video: per-frame noise on a pan is reduced, cuts reset it,
//! strength 0 is the identity.
// OpenCV (flow) is a media library: these tests build with the `media` feature, like the module.
#![cfg(feature = "media")]
mod temporal_scenes;

use std::time::Duration;

use stylestream::temporal::{
    CutReason, Evaluator, Image, MeasureConfig, Stabilizer, StabilizerConfig, TemporalError,
};
use temporal_scenes::{noisy, photo, window};

const W: usize = 192;
const H: usize = 144;

/// `frames` windows of `scene` panning by `(dx, dy)` per frame.
fn pan(scene: &Image, frames: usize, (dx, dy): (f32, f32)) -> Vec<Image> {
    (0..frames).map(|t| window(scene, W, H, 40.0 + dx * t as f32, 40.0 + dy * t as f32)).collect()
}

fn e_warp(sources: &[Image], outputs: &[Image]) -> (f64, f64) {
    let mut evaluator = Evaluator::new(MeasureConfig::default()).unwrap();
    for (t, (s, o)) in sources.iter().zip(outputs).enumerate() {
        evaluator.push(s.clone(), o.clone(), Duration::from_millis(40 * t as u64)).unwrap();
    }
    let summary = evaluator.finish().unwrap().summary;
    (summary.e_warp_stylised.mean, summary.e_warp_source.mean)
}

#[test]
fn noisy_pan_is_stabilised() {
    let sources = pan(&photo("coffee.png"), 12, (1.5, 0.5));
    // A flickering "stylisation": the frame plus fresh noise every frame.
    let stylised: Vec<Image> = sources.iter().enumerate().map(|(t, s)| noisy(s, 0.1, t as u64 + 1)).collect();
    for strength in [0.5, 0.8] {
        let mut stabilizer =
            Stabilizer::new(StabilizerConfig { strength, ..StabilizerConfig::default() }).unwrap();
        let mut outputs = Vec::new();
        for (t, (s, o)) in sources.iter().zip(&stylised).enumerate() {
            let out = stabilizer.process(s, o).unwrap();
            assert_eq!(out.reset.is_some(), t == 0, "frame {t}: {:?}", out.reset);
            outputs.push(out.frame);
        }
        let (before, floor) = e_warp(&sources, &stylised);
        let (after, _) = e_warp(&sources, &outputs);
        println!("strength {strength}: E_warp {before:.5} -> {after:.5} (source floor {floor:.5})");
        assert!(after < 0.7 * before, "strength {strength}: {after} vs {before}");
    }
}

#[test]
fn scene_cuts_reset_to_the_stylised_frame() {
    let mut stabilizer =
        Stabilizer::new(StabilizerConfig { strength: 0.9, ..StabilizerConfig::default() }).unwrap();
    let shots = [
        pan(&photo("astronaut.png"), 4, (2.0, 1.0)),
        pan(&photo("coffee.png"), 4, (2.0, 1.0)),
        pan(&photo("grass.png"), 4, (2.0, 1.0)),
        // Grey texture after grey texture: the histograms barely differ, the flow test catches it.
        pan(&photo("gravel.png"), 4, (2.0, 1.0)),
    ];
    let mut t = 0;
    for (shot, frames) in shots.iter().enumerate() {
        for (i, source) in frames.iter().enumerate() {
            let stylised = noisy(source, 0.1, t);
            let out = stabilizer.process(source, &stylised).unwrap();
            println!("shot {shot} frame {i}: reset {:?}, valid {:?}", out.reset, out.valid_fraction);
            if i == 0 {
                assert!(out.reset.is_some(), "shot {shot}: no reset at the cut");
                assert_eq!(
                    out.frame, stylised,
                    "shot {shot}: the frame after a cut must be the stylised one"
                );
            } else {
                assert_eq!(out.reset, None, "shot {shot} frame {i}");
                assert_ne!(out.frame, stylised);
            }
            if i == 0 && shot > 0 {
                // Different colours are caught by the histogram; grass -> gravel only by the flow.
                let by_flow = matches!(out.reset, Some(CutReason::FlowFailure { .. }));
                assert_eq!(by_flow, shot == 3, "shot {shot}: {:?}", out.reset);
            }
            t += 1;
        }
    }
    // An explicit reset (e.g. after a seek) also passes the next frame through.
    stabilizer.reset();
    let source = &shots[3][3];
    let out = stabilizer.process(source, &noisy(source, 0.1, 99)).unwrap();
    assert_eq!(out.reset, Some(CutReason::FirstFrame));
}

#[test]
fn strength_zero_is_the_identity() {
    let sources = pan(&photo("chelsea.png"), 5, (1.0, 0.0));
    let mut stabilizer =
        Stabilizer::new(StabilizerConfig { strength: 0.0, ..StabilizerConfig::default() }).unwrap();
    for (t, source) in sources.iter().enumerate() {
        let stylised = noisy(source, 0.2, t as u64);
        let out = stabilizer.process(source, &stylised).unwrap();
        assert_eq!(out.frame, stylised);
        assert_eq!(out.reset, None);
    }
}

#[test]
fn mismatched_frames_are_errors() {
    let mut stabilizer = Stabilizer::new(StabilizerConfig::default()).unwrap();
    let err = stabilizer.process(&Image::zeros(322, 242), &Image::zeros(320, 240)).unwrap_err();
    assert!(matches!(err, TemporalError::FrameSize { .. }));
    assert_eq!(err.to_string(), "frame 0: stylised 320x240 vs source 322x242");
    // A size change between frames (caps renegotiation) restarts instead of failing.
    stabilizer.process(&Image::zeros(64, 48), &Image::zeros(64, 48)).unwrap();
    let out = stabilizer.process(&Image::zeros(32, 32), &Image::zeros(32, 32)).unwrap();
    assert_eq!(out.reset, Some(CutReason::SizeChanged));
}
