//! Any content size and aspect, any style size: the padding rule of `models::stya2k::PAD_MULTIPLE`.
mod common;

use candle_core::{Device, Tensor};
use common::{golden_image, GoldenImage};
use stylestream::checkpoint::{self, formula, WeightSource};
use stylestream::models::stya2k::{pad_to_multiple, StyA2K};

fn model() -> StyA2K {
    checkpoint::load_stya2k(&WeightSource::Formula(formula::GOLDEN_SEED), &Device::Cpu).unwrap()
}

fn values(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1::<f32>().unwrap()
}

#[test]
fn odd_content_and_differently_shaped_style_keep_the_content_size() {
    let model = model();
    let content = golden_image(GoldenImage::Content, 333, 517);
    let style = model.encode_style(&golden_image(GoldenImage::Style, 200, 300)).unwrap();
    let out = model.stylize(&content, &style, 1.0).unwrap();
    assert_eq!(out.dims(), &[1, 3, 333, 517]);
    assert!(values(&out).iter().all(|v| v.is_finite()));

    // The padded frame holds the content at its top-left, so cropping the padded run's output there is
    // the result; the padding itself mirrors the last rows/columns.
    let padded = pad_to_multiple(&content).unwrap();
    let top_left = |t: &Tensor, h, w| t.narrow(2, 0, h).unwrap().narrow(3, 0, w).unwrap();
    assert_eq!(padded.dims(), &[1, 3, 384, 576]);
    assert!(values(&top_left(&padded, 333, 517)) == values(&content));
    assert!(
        values(&top_left(&padded.narrow(2, 333, 1).unwrap(), 1, 517))
            == values(&content.narrow(2, 331, 1).unwrap())
    );
    assert!(
        values(&top_left(&padded.narrow(3, 520, 1).unwrap(), 333, 1))
            == values(&content.narrow(3, 512, 1).unwrap())
    );
    let full = model.trace(&padded, &style, 1.0).unwrap().output;
    assert!(values(&top_left(&full, 333, 517)) == values(&out), "stylize is not the top-left crop");
}

#[test]
fn multiples_of_64_are_not_padded() {
    let model = model();
    let content = golden_image(GoldenImage::Content, 64, 128);
    let style = model.encode_style(&golden_image(GoldenImage::Style, 64, 64)).unwrap();
    let direct = model.trace(&content, &style, 1.0).unwrap().output;
    assert!(values(&model.stylize(&content, &style, 1.0).unwrap()) == values(&direct));
}

#[test]
fn tiny_and_portrait_frames_run() {
    let model = model();
    let style = model.encode_style(&golden_image(GoldenImage::Style, 9, 5)).unwrap();
    for (h, w) in [(10, 7), (1, 1), (130, 66)] {
        let out = model.stylize(&golden_image(GoldenImage::Content, h, w), &style, 1.0).unwrap();
        assert_eq!(out.dims(), &[1, 3, h, w]);
    }
}

#[test]
fn alpha_zero_ignores_the_style_and_alpha_one_uses_it() {
    let model = model();
    let content = golden_image(GoldenImage::Content, 64, 64);
    let a = model.encode_style(&golden_image(GoldenImage::Style, 64, 64)).unwrap();
    let b = model.encode_style(&golden_image(GoldenImage::Content, 64, 64)).unwrap();
    let zero_a = values(&model.stylize(&content, &a, 0.0).unwrap());
    let zero_b = values(&model.stylize(&content, &b, 0.0).unwrap());
    assert_eq!(zero_a, zero_b, "alpha 0 must not depend on the style");
    assert_ne!(
        values(&model.stylize(&content, &a, 1.0).unwrap()),
        values(&model.stylize(&content, &b, 1.0).unwrap())
    );
}
