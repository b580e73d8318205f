//! StyA2K against the official PyTorch code: the golden tensors in `tests/fixtures/stya2k/` were
//! produced by the official implementation (LearningHx/StyA2K 70b58df) on formula weights and images
//! (shared/docs/stya2k.md); every intermediate must match to relative L2 <= 1e-4.
mod common;

use std::collections::HashMap;

use candle_core::Tensor;
use common::{golden, golden_image, rel_l2, GoldenImage};
use stylestream::checkpoint::{self, formula};
use stylestream::models::stya2k::{StyA2K, Trace};

const TOLERANCE: f64 = 1e-4;

fn run(model: &StyA2K, size: usize) -> (Trace, Vec<Tensor>) {
    let content = golden_image(GoldenImage::Content, size, size);
    let style = golden_image(GoldenImage::Style, size, size);
    let features = model.encode_style(&style).unwrap();
    let trace = model.trace(&content, &features, 1.0).unwrap();
    let style_taps = model.encoder().forward(&style).unwrap();
    (trace, style_taps)
}

fn assert_matches(case: &str, got: &HashMap<&str, Tensor>) {
    let want = golden(case);
    for (name, expected) in &want {
        if name == "content" || name == "style" {
            continue;
        }
        let actual =
            got.get(name.as_str()).unwrap_or_else(|| panic!("{case}: nothing computed for `{name}`"));
        let err = rel_l2(actual, expected);
        println!("{case} {name}: rel L2 {err:.3e}");
        assert!(err <= TOLERANCE, "{case} {name}: rel L2 {err:.3e} > {TOLERANCE:e}");
    }
}

fn computed<'a>(trace: &'a Trace, style_taps: &'a [Tensor]) -> HashMap<&'static str, Tensor> {
    let mut m = HashMap::from([
        ("a2k3", trace.a2k3.clone()),
        ("transform", trace.transform.clone()),
        ("output", trace.output.clone()),
    ]);
    let names = ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"];
    let content_names =
        ["content_relu1_1", "content_relu2_1", "content_relu3_1", "content_relu4_1", "content_relu5_1"];
    let style_names = ["style_relu1_1", "style_relu2_1", "style_relu3_1", "style_relu4_1", "style_relu5_1"];
    for i in 0..names.len() {
        m.insert(content_names[i], trace.content_taps[i].clone());
        m.insert(style_names[i], style_taps[i].clone());
    }
    m
}

fn formula_model() -> StyA2K {
    checkpoint::load_stya2k(
        &checkpoint::WeightSource::Formula(formula::GOLDEN_SEED),
        &candle_core::Device::Cpu,
    )
    .unwrap()
}

#[test]
fn image_generator_matches_the_fixture_images() {
    let want = golden("s64");
    for (which, name) in [(GoldenImage::Content, "content"), (GoldenImage::Style, "style")] {
        let err = rel_l2(&golden_image(which, 64, 64), &want[name]);
        assert!(err < 1e-7, "{name}: rel L2 {err:e}");
    }
}

#[test]
fn every_tap_matches_at_64() {
    let (trace, style_taps) = run(&formula_model(), 64);
    assert_matches("s64", &computed(&trace, &style_taps));
}

#[test]
fn deep_taps_attention_and_output_match_at_128() {
    let (trace, style_taps) = run(&formula_model(), 128);
    assert_matches("s128", &computed(&trace, &style_taps));
}

#[test]
fn output_matches_at_256() {
    let (trace, style_taps) = run(&formula_model(), 256);
    assert_matches("s256", &computed(&trace, &style_taps));
}

#[test]
fn real_trained_a2k_matches_at_128() {
    let a2k =
        checkpoint::read_official("a2k", &common::shared("fixtures/official/latest_net_A2K.pth")).unwrap();
    let model = StyA2K::new(common::formula_with(a2k, formula::GOLDEN_SEED)).unwrap();
    let (trace, style_taps) = run(&model, 128);
    assert_matches("s128_realA2K", &computed(&trace, &style_taps));
}
