//! Bundles on the `vgg16` encoder: named by the compiled-in file's sha256, never holding a copy,
//! loading onto VGG-16 (zero padding, floor pools), and running StyA2K and NeAT on odd frame sizes.
use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use stylestream::checkpoint::{self, formula, vgg16, BundleInfo, Encoder, Storage, WeightSource};
use stylestream::models::neat::{Controls, NeatConfig};
use stylestream::models::vgg::Architecture;
use stylestream::models::Network;

/// Formula weights of `model` without their encoder, as a bundle on `encoder` at `path`.
fn bundle_on(path: &Path, model: &str, encoder: &str) {
    let (mut tensors, config) = match model {
        "stya2k" => (formula::stya2k_tensors(3).unwrap(), "{}".to_string()),
        _ => (
            formula::neat_tensors(3, NeatConfig::default()).unwrap(),
            serde_json::to_string(&NeatConfig::default()).unwrap(),
        ),
    };
    tensors.retain(|k, _| !k.starts_with("vgg."));
    let info = BundleInfo { model: model.into(), encoder: encoder.into(), training: "{}".into(), config };
    checkpoint::write_bundle(path, &info, &tensors).unwrap();
}

/// `[1, 3, h, w]` smooth colours in [0, 1].
fn picture(h: usize, w: usize, phase: f32) -> Tensor {
    let values: Vec<f32> = (0..3 * h * w)
        .map(|k| {
            let (c, i, j) = (k / (h * w), (k / w) % h, k % w);
            0.5 + 0.4 * ((i as f32 * 0.3 + j as f32 * 0.2 + c as f32 * 1.7 + phase).sin())
        })
        .collect();
    Tensor::from_vec(values, (1, 3, h, w), &Device::Cpu).unwrap()
}

fn encoder_of(network: &Network) -> Architecture {
    match network {
        Network::StyA2K(model) => model.encoder().architecture(),
        Network::Neat(model) => model.encoder().architecture(),
    }
}

#[test]
fn vgg16_bundles_load_the_shared_encoder_and_run_odd_sizes() {
    let dir = tempfile::tempdir().unwrap();
    let controls = Controls { alpha: 1.0, alpha_prior: false };
    for model in ["stya2k", "neat"] {
        let path = dir.path().join(format!("{model}.safetensors"));
        bundle_on(&path, model, &vgg16::identity());
        let network = checkpoint::load(&WeightSource::Bundle(path.clone()), &Device::Cpu).unwrap();
        assert_eq!(encoder_of(&network), Architecture::Torchvision16, "{model}");
        // Odd content and style sizes, and a style smaller than VGG-16's three pools at relu4_1.
        for ((h, w), (sh, sw)) in [((37, 53), (29, 31)), ((21, 9), (5, 7))] {
            let out = network
                .stylize_image(&picture(h, w, 0.0), &picture(sh, sw, 1.0), controls, DType::F32)
                .unwrap_or_else(|e| panic!("{model} {h}x{w} with a {sh}x{sw} style: {e}"));
            assert_eq!(out.dims(), [1, 3, h, w], "{model}");
            let values = out.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            assert!(values.iter().all(|v| v.is_finite()), "{model} {h}x{w}");
        }
        // Export keeps no copy of the encoder: the compiled-in file is the one copy.
        let exported = dir.path().join(format!("{model}-f16.safetensors"));
        checkpoint::export(&path, &exported, Storage::F16).unwrap();
        let (info, tensors) = checkpoint::read_bundle(&exported).unwrap();
        assert_eq!(info.encoder, vgg16::identity());
        assert!(!tensors.keys().any(|k| k.starts_with("vgg.")), "{model}");
    }
}

#[test]
fn a_bundle_on_another_vgg16_file_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("other.safetensors");
    bundle_on(&path, "stya2k", &format!("vgg16 sha256:{}", "ab".repeat(32)));
    let err = checkpoint::load(&WeightSource::Bundle(path.clone()), &Device::Cpu).unwrap_err().to_string();
    assert!(err.starts_with(&path.display().to_string()) && err.contains("sha256 abab"), "{err}");
}

#[test]
fn the_encoder_identity_round_trips() {
    assert_eq!("vgg16".parse::<Encoder>(), Ok(Encoder::Vgg16));
    let (identity, tensors) = Encoder::Vgg16.load().unwrap();
    assert_eq!(identity, vgg16::identity());
    assert_eq!(Architecture::of_keys(tensors.keys()), Architecture::Torchvision16);
    assert_eq!(tensors.len(), 2 * vgg16::LAYERS.len());
    // A random encoder's keys are the official ones.
    let random: HashMap<String, Tensor> = Encoder::Random(1).load().unwrap().1;
    assert_eq!(Architecture::of_keys(random.keys()), Architecture::Normalised19);
}
