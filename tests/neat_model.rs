//! NeAT end to end on formula weights (`checkpoint::formula`, the NeAT rule): any size, the identity
//! sanity checks of the issue (zero deltas give the prior, alpha 0 decodes the content features), and
//! bundles that carry their configuration.
mod common;

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor};
use common::{formula_with, golden_image, GoldenImage};
use stylestream::checkpoint::{self, formula, BundleInfo, WeightSource};
use stylestream::models::neat::{Controls, Neat, NeatConfig};
use stylestream::models::Network;

const SEED: u64 = 20261122;

/// The default config; without OpenCV (feature `media`) the prior runs with blur 0.
fn config() -> NeatConfig {
    let c = NeatConfig::default();
    if cfg!(feature = "media") {
        c
    } else {
        NeatConfig { prior: c.prior.with_blur(0), ..c }
    }
}

fn model() -> Neat {
    Neat::new(config(), formula::var_builder(SEED, &Device::Cpu)).unwrap()
}

fn values(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1::<f32>().unwrap()
}

const FULL: Controls = Controls { alpha: 1.0, alpha_prior: false };

#[test]
fn odd_content_and_differently_shaped_style_keep_the_content_size() {
    let model = model();
    let style = model.encode_style(&golden_image(GoldenImage::Style, 200, 300)).unwrap();
    let out = model.stylize(&golden_image(GoldenImage::Content, 333, 517), &style, FULL).unwrap();
    assert_eq!(out.dims(), &[1, 3, 333, 517]);
    assert!(values(&out).iter().all(|v| v.is_finite()));
    // Tiny and portrait frames with a tiny style.
    let style = model.encode_style(&golden_image(GoldenImage::Style, 9, 5)).unwrap();
    for (h, w) in [(1, 1), (10, 7), (70, 33)] {
        let out = model.stylize(&golden_image(GoldenImage::Content, h, w), &style, FULL).unwrap();
        assert_eq!(out.dims(), &[1, 3, h, w]);
    }
}

#[test]
fn zero_deltas_give_exactly_the_prior() {
    // The decoder's last conv (64 -> 3, no activation) set to zero: the deltas vanish.
    let overrides = HashMap::from([
        ("decoder.28.weight".to_string(), Tensor::zeros((3, 64, 3, 3), DType::F32, &Device::Cpu).unwrap()),
        ("decoder.28.bias".to_string(), Tensor::zeros(3, DType::F32, &Device::Cpu).unwrap()),
    ]);
    let model = Neat::new(config(), formula_with(overrides, SEED)).unwrap();
    let style = model.encode_style(&golden_image(GoldenImage::Style, 64, 64)).unwrap();
    let trace = model.trace(&golden_image(GoldenImage::Content, 61, 90), &style, FULL).unwrap();
    assert!(values(&trace.deltas).iter().all(|&d| d == 0.0));
    assert!(values(&trace.output) == values(&trace.prior), "output is not the prior");
}

#[test]
fn alpha_zero_decodes_the_content_features() {
    let model = model();
    let content = golden_image(GoldenImage::Content, 64, 80);
    let style = model.encode_style(&golden_image(GoldenImage::Style, 48, 48)).unwrap();
    let zero = model.trace(&content, &style, Controls { alpha: 0.0, alpha_prior: false }).unwrap();
    assert!(values(&zero.decoder_input) == values(&zero.content_features));
    let one = model.trace(&content, &style, FULL).unwrap();
    assert!(values(&one.decoder_input) != values(&one.content_features), "the PAMA blocks did nothing");
    assert!(values(&zero.prior) == values(&one.prior), "without --alpha-prior the prior ignores alpha");

    // "Full" interpolation at alpha 0: the prior becomes the weighted content.
    let full = model.trace(&content, &style, Controls { alpha: 0.0, alpha_prior: true }).unwrap();
    assert!(values(&full.prior) == values(&(&content * config().prior.weight).unwrap()));
    assert!(values(&full.decoder_input) == values(&zero.decoder_input));
}

#[test]
fn bundles_name_the_network_and_carry_the_config() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("neat.safetensors");
    let mut cfg = config();
    cfg.prior.weight = 0.25;
    let info = |config: String| BundleInfo {
        model: checkpoint::NEAT.into(),
        encoder: format!("formula:{SEED}"),
        training: "{}".into(),
        config,
    };
    let tensors = formula::neat_tensors(SEED, cfg).unwrap();
    checkpoint::write_bundle(&path, &info(serde_json::to_string(&cfg).unwrap()), &tensors).unwrap();

    let Network::Neat(loaded) = checkpoint::load(&WeightSource::Bundle(path.clone()), &Device::Cpu).unwrap()
    else {
        panic!("a NeAT bundle loaded as another network");
    };
    assert_eq!(loaded.config(), &cfg);
    let direct = Neat::new(cfg, formula::var_builder(SEED, &Device::Cpu)).unwrap();
    let (content, style) =
        (golden_image(GoldenImage::Content, 40, 56), golden_image(GoldenImage::Style, 32, 32));
    let run = |m: &Neat| values(&m.stylize(&content, &m.encode_style(&style).unwrap(), FULL).unwrap());
    assert!(run(&loaded) == run(&direct), "bundle and formula weights differ");

    let e =
        checkpoint::load_stya2k(&WeightSource::Bundle(path.clone()), &Device::Cpu).unwrap_err().to_string();
    assert!(e.contains("neat.safetensors") && e.contains("`neat`"), "{e}");

    // A config that does not parse, or leaves the valid range, is refused naming file and key.
    let bad = dir.path().join("bad.safetensors");
    let mut ridgeless = cfg;
    ridgeless.prior.ridge = 0.0;
    for config in ["{}".to_string(), serde_json::to_string(&ridgeless).unwrap()] {
        checkpoint::write_bundle(&bad, &info(config), &tensors).unwrap();
        let e = checkpoint::load(&WeightSource::Bundle(bad.clone()), &Device::Cpu).unwrap_err().to_string();
        assert!(e.contains("bad.safetensors") && e.contains("stylestream.config"), "{e}");
    }
}
