//! Bundles: write/read round trip, strict key and shape checks, f16 storage upcast.
mod common;

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor};
use common::{golden_image, GoldenImage};
use stylestream::checkpoint::{self, formula, BundleInfo, CheckpointError, WeightSource};

fn info() -> BundleInfo {
    BundleInfo {
        model: "stya2k".into(),
        encoder: "formula:7".into(),
        training: "{}".into(),
        config: "{}".into(),
    }
}

fn output_of(source: &WeightSource) -> Vec<f32> {
    let model = checkpoint::load_stya2k(source, &Device::Cpu).unwrap();
    let style = model.encode_style(&golden_image(GoldenImage::Style, 64, 64)).unwrap();
    let out = model.stylize(&golden_image(GoldenImage::Content, 64, 64), &style, 1.0).unwrap();
    out.flatten_all().unwrap().to_vec1().unwrap()
}

fn load_err(tensors: &HashMap<String, Tensor>) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.safetensors");
    checkpoint::write_bundle(&path, &info(), tensors).unwrap();
    match checkpoint::load_stya2k(&WeightSource::Bundle(path), &Device::Cpu) {
        Err(e @ CheckpointError::Tensors { .. }) => e.to_string(),
        Err(other) => panic!("wrong error kind: {other}"),
        Ok(_) => panic!("a broken bundle loaded"),
    }
}

#[test]
fn bundle_round_trip_reproduces_the_network_and_f16_storage_loads() {
    let tensors = formula::stya2k_tensors(7).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.safetensors");
    checkpoint::write_bundle(&path, &info(), &tensors).unwrap();
    let (read_info, read) = checkpoint::read_bundle(&path).unwrap();
    assert_eq!(read_info, info());
    assert_eq!(read.len(), tensors.len());
    assert_eq!(output_of(&WeightSource::Bundle(path)), output_of(&WeightSource::Formula(7)));

    // f16 storage: written through safetensors directly, upcast on load.
    let half: HashMap<String, Tensor> =
        tensors.iter().map(|(k, t)| (k.clone(), t.to_dtype(DType::F16).unwrap())).collect();
    let f16_path = dir.path().join("half.safetensors");
    let meta = HashMap::from([
        ("stylestream.model".to_string(), "stya2k".to_string()),
        ("stylestream.format".to_string(), checkpoint::FORMAT_VERSION.to_string()),
        ("stylestream.encoder".to_string(), "formula:7".to_string()),
        ("stylestream.training".to_string(), "{}".to_string()),
    ]);
    let views: Vec<(String, Vec<u8>, Vec<usize>)> = half
        .iter()
        .map(|(k, t)| {
            let v: Vec<half::f16> = t.flatten_all().unwrap().to_vec1().unwrap();
            (k.clone(), v.iter().flat_map(|x| x.to_le_bytes()).collect(), t.dims().to_vec())
        })
        .collect();
    let st: Vec<_> = views
        .iter()
        .map(|(k, b, s)| {
            (k.clone(), safetensors::tensor::TensorView::new(safetensors::Dtype::F16, s.clone(), b).unwrap())
        })
        .collect();
    std::fs::write(&f16_path, safetensors::tensor::serialize(st, &Some(meta)).unwrap()).unwrap();
    let (_, read) = checkpoint::read_bundle(&f16_path).unwrap();
    assert_eq!(read["a2k.q.weight"].dtype(), DType::F32);
    let a = read["a2k.q.weight"].flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let b = tensors["a2k.q.weight"].flatten_all().unwrap().to_vec1::<f32>().unwrap();
    assert!(a.iter().zip(&b).all(|(x, y)| (x - y).abs() <= 1e-3 * y.abs().max(1e-2)));
}

#[test]
fn wrong_missing_and_extra_tensors_are_named() {
    let tensors = formula::stya2k_tensors(7).unwrap();

    let mut wrong = tensors.clone();
    wrong.insert(
        "decoder.decoder_layer_2.24.weight".into(),
        Tensor::zeros((3, 64, 1, 1), DType::F32, &Device::Cpu).unwrap(),
    );
    let e = load_err(&wrong);
    assert!(
        e.contains("decoder.decoder_layer_2.24.weight")
            && e.contains("[3, 64, 3, 3]")
            && e.contains("[3, 64, 1, 1]"),
        "{e}"
    );

    let mut missing = tensors.clone();
    missing.remove("transform.attn_adain_5_1.sim_beta");
    let e = load_err(&missing);
    assert!(e.contains("transform.attn_adain_5_1.sim_beta") && e.contains("missing"), "{e}");

    let mut extra = tensors;
    extra.insert("vgg.45.weight".into(), Tensor::zeros(1, DType::F32, &Device::Cpu).unwrap());
    let e = load_err(&extra);
    assert!(e.contains("unexpected tensor `vgg.45.weight`"), "{e}");
}

#[test]
fn files_that_are_not_bundles_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let plain = dir.path().join("plain.safetensors");
    let t = HashMap::from([("x".to_string(), Tensor::zeros(2, DType::F32, &Device::Cpu).unwrap())]);
    candle_core::safetensors::save(&t, &plain).unwrap();
    let e = checkpoint::load_stya2k(&WeightSource::Bundle(plain), &Device::Cpu).err().unwrap().to_string();
    assert!(e.contains("plain.safetensors") && e.contains("not a stylestream bundle"), "{e}");
    let e = checkpoint::load_stya2k(&WeightSource::Bundle(dir.path().join("none.safetensors")), &Device::Cpu)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("none.safetensors"), "{e}");
}
