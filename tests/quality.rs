//! `eval-quality` end to end, and the shipped default models: the scores in the JSON report are checked
//! against a brute-force Chamfer distance written here over every pixel, and the contact sheet against
//! the layout it promises.
mod common;

use common::{arg, stylestream};
use std::path::Path;

use candle_core::Device;
use image::{Rgb, RgbImage};
use stylestream::checkpoint::{self, WeightSource};
use stylestream::models::Network;

/// `mean_a min_b |a-b|^2 + mean_b min_a |a-b|^2` over every pixel of two images, in f64.
fn brute_chamfer(a: &RgbImage, b: &RgbImage) -> f64 {
    let d = |p: &Rgb<u8>, q: &Rgb<u8>| (0..3).map(|c| (p[c] as f64 - q[c] as f64).powi(2)).sum::<f64>();
    let one = |x: &RgbImage, y: &RgbImage| {
        x.pixels().map(|p| y.pixels().map(|q| d(p, q)).fold(f64::INFINITY, f64::min)).sum::<f64>()
            / x.pixels().len() as f64
    };
    one(a, b) + one(b, a)
}

fn write(dir: &Path, name: &str, img: &RgbImage) {
    img.save(dir.join(name)).unwrap();
}

#[test]
fn eval_quality_reports_true_scores_and_draws_one_row_per_pair() {
    let dir = tempfile::tempdir().unwrap();
    let (contents, styles) = (dir.path().join("c"), dir.path().join("s"));
    std::fs::create_dir_all(&contents).unwrap();
    std::fs::create_dir_all(&styles).unwrap();
    let c1 = RgbImage::from_fn(40, 30, |x, y| Rgb([(x * 6) as u8, (y * 8) as u8, 90]));
    let c2 = RgbImage::from_fn(24, 36, |x, y| Rgb([200, ((x + y) * 5) as u8, (x * 9) as u8]));
    let s1 = RgbImage::from_fn(32, 32, |x, y| {
        if (x / 4 + y / 4) % 2 == 0 {
            Rgb([250, 30, 20])
        } else {
            Rgb([10, 10, 240])
        }
    });
    write(&contents, "a.png", &c1);
    write(&contents, "b.png", &c2);
    write(&styles, "s.png", &s1);
    let (json, sheet) = (dir.path().join("q.json"), dir.path().join("sheet.png"));
    let args = [
        "eval-quality",
        "--content",
        arg(&contents),
        "--style",
        arg(&styles),
        "--model",
        "formula:20261122",
        "--max-side",
        "64",
        "--json",
        arg(&json),
        "--sheet",
        arg(&sheet),
        "--sheet-height",
        "32",
    ];
    let o = stylestream(&args);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let table = String::from_utf8_lossy(&o.stdout);
    assert!(table.contains("| formula:20261122 |"), "{table}");

    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let pairs = report["pairs"].as_array().unwrap();
    assert_eq!(pairs.len(), 2);
    for (pair, content) in pairs.iter().zip([&c1, &c2]) {
        let s = &pair["scores"];
        // Under 4,096 pixels every colour enters, so the distance is exact.
        let expected = brute_chamfer(content, &s1);
        let got = s["chamfer_content"].as_f64().unwrap();
        assert!((got - expected).abs() < 1e-3 * expected, "chamfer {got} vs brute force {expected}");
        let ssim = s["ssim"].as_f64().unwrap();
        assert!((-1.0..=1.0).contains(&ssim));
        assert!(s["stats_content"].as_f64().unwrap() > 0.0);
    }
    let summary = &report["summaries"][0];
    let mean = (pairs[0]["scores"]["chamfer_output"].as_f64().unwrap()
        + pairs[1]["scores"]["chamfer_output"].as_f64().unwrap())
        / 2.0;
    assert!((summary["chamfer_output"].as_f64().unwrap() - mean).abs() < 1e-9);

    // Two rows of content | style | output at height 32 with 4 px gaps.
    let sheet = image::open(&sheet).unwrap();
    assert_eq!(sheet.height(), 4 + 2 * (32 + 4));

    // Reports are not replaced without --overwrite.
    let again = stylestream(&args);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));
}

#[test]
fn eval_quality_names_an_empty_folder() {
    let dir = tempfile::tempdir().unwrap();
    let style = common::fixture("images");
    let o = stylestream(&[
        "eval-quality",
        "--content",
        arg(dir.path()),
        "--style",
        arg(&style),
        "--model",
        "formula:1",
    ]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains(arg(dir.path())) && err.contains("no readable"), "{err}");
}

/// A 64x64 style: hue from red to blue across, value from 0.4 to 1 down.
fn rainbow() -> RgbImage {
    RgbImage::from_fn(64, 64, |x, y| {
        let (t, v) = (x as f32 / 63.0, 0.4 + 0.6 * y as f32 / 63.0);
        let green = 1.0 - 2.0 * (t - 0.5).abs();
        Rgb([(255.0 * v * (1.0 - t)) as u8, (255.0 * v * green) as u8, (255.0 * v * t) as u8])
    })
}

/// A 64x64 red and blue checkerboard style.
fn checker() -> RgbImage {
    RgbImage::from_fn(
        64,
        64,
        |x, y| if (x / 8 + y / 8) % 2 == 0 { Rgb([230, 40, 30]) } else { Rgb([20, 30, 200]) },
    )
}

/// Runs `image` on the fixture photo (96 px) with `style` and `model` (none: `--model` left out).
fn stylise(dir: &Path, style: &RgbImage, model: Option<&str>) -> RgbImage {
    let (style_path, out) = (dir.join("style.png"), dir.join("out.png"));
    style.save(&style_path).unwrap();
    let content = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/images/chelsea.png");
    let mut args = vec!["image", "--content", arg(&content), "--style", arg(&style_path)];
    args.extend(["-o", arg(&out), "--max-side", "96", "--overwrite"]);
    if let Some(m) = model {
        args.extend(["--model", m]);
    }
    let o = stylestream(&args);
    assert!(o.status.success(), "{model:?}: {}", String::from_utf8_lossy(&o.stderr));
    image::open(&out).unwrap().to_rgb8()
}

/// The shipped models are compiled in and run with no file beside the binary: `default` is the
/// StyA2K of `weights/stya2k.safetensors` (the same bytes out as naming the file), `default-neat`
/// the NeAT of `weights/neat.safetensors`. Each keeps the content's structure and answers to the
/// style. Their colour scores are measured on the held-out split (`weights/README.md`): the data is
/// rebuilt by `weights/dataset.sh`, not committed.
#[test]
fn the_shipped_models_are_built_in_keep_the_structure_and_answer_to_the_style() {
    let dir = tempfile::tempdir().unwrap();
    let weights = Path::new(env!("CARGO_MANIFEST_DIR")).join("weights");
    let photo = image::open(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/images/chelsea.png"))
        .unwrap()
        .to_rgb8();
    // 451x300: the model sees it at 96x64.
    let content = image::imageops::resize(&photo, 96, 64, image::imageops::FilterType::Triangle);
    for (name, file, neat) in
        [(None, "stya2k.safetensors", false), (Some("default-neat"), "neat.safetensors", true)]
    {
        let source: WeightSource = name.unwrap_or("default").parse().unwrap();
        let network = checkpoint::load(&source, &Device::Cpu).unwrap();
        assert_eq!(matches!(network, Network::Neat(_)), neat, "{source}");
        let (info, _) = checkpoint::read_bundle(&weights.join(file)).unwrap();
        assert_eq!(info.encoder, "random:20261206", "{file}");

        let out = stylise(dir.path(), &rainbow(), name);
        let from_file = stylise(dir.path(), &rainbow(), Some(arg(&weights.join(file))));
        assert!(out == from_file, "{source} is {file}");
        assert_eq!(out.dimensions(), content.dimensions());
        let luma = |i: &RgbImage| stylestream::quality::ssim::luma(i.as_raw());
        let ssim = stylestream::quality::ssim::ssim(&luma(&out), &luma(&content), 64, 96).unwrap();
        assert!(ssim > 0.3, "{source}: SSIM to the content {ssim}");
        let other = stylise(dir.path(), &checker(), name);
        let moved = out.pixels().zip(other.pixels()).filter(|(a, b)| a != b).count();
        assert!(moved > out.pixels().len() / 2, "{source}: another style changes {moved} pixels");
    }
}

#[test]
fn export_to_f16_halves_the_file_and_keeps_the_output() {
    let dir = tempfile::tempdir().unwrap();
    let (f32_path, f16_path) = (dir.path().join("m32.safetensors"), dir.path().join("m16.safetensors"));
    let info = checkpoint::BundleInfo {
        model: "stya2k".into(),
        encoder: "formula:7".into(),
        training: "{}".into(),
        config: "{}".into(),
    };
    let mut tensors = checkpoint::formula::stya2k_tensors(7).unwrap();
    // A training checkpoint's optimizer state is not part of an export.
    let moment = candle_core::Tensor::zeros(4, candle_core::DType::F32, &Device::Cpu).unwrap();
    tensors.insert(format!("{}m.decoder", checkpoint::TRAINING_STATE), moment);
    checkpoint::write_bundle(&f32_path, &info, &tensors).unwrap();
    let o = stylestream(&["export", arg(&f32_path), "-o", arg(&f16_path), "--f16"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (read_info, read) = checkpoint::read_bundle(&f16_path).unwrap();
    assert_eq!(read_info, info);
    assert_eq!(read.len(), tensors.len() - 1, "the optimizer state is dropped");
    let (size32, size16) =
        (std::fs::metadata(&f32_path).unwrap().len(), std::fs::metadata(&f16_path).unwrap().len());
    assert!((size16 as f64 / size32 as f64 - 0.5).abs() < 0.01, "{size16} vs {size32} bytes");

    let run = |path: &Path| {
        let m = checkpoint::load_stya2k(&WeightSource::Bundle(path.to_path_buf()), &Device::Cpu).unwrap();
        let content = common::golden_image(common::GoldenImage::Content, 48, 40);
        m.stylize(
            &content,
            &m.encode_style(&common::golden_image(common::GoldenImage::Style, 32, 32)).unwrap(),
            1.0,
        )
        .unwrap()
    };
    let err = common::rel_l2(&run(&f16_path), &run(&f32_path));
    assert!(err > 0.0 && err < 1e-2, "f16 weights move the output by {err}");

    let again = stylestream(&["export", arg(&f32_path), "-o", arg(&f16_path), "--f16"]);
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));
}
