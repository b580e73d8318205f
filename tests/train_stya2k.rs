//! `stylestream train` (issue 5): loss gradients against finite differences, a short CPU run that
//! lowers the loss and whose checkpoint runs through `image`, kill -9 + `--resume`, `--init`, and bad
//! folders.
mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use candle_core::{DType, Device, Tensor};
use common::train::{check_directional, images, losses, picture, run};
use stylestream::checkpoint::{self, formula};
use stylestream::models::vgg::Vgg;
use stylestream::ops::blocked_attention::{block, distributed_attention, progressive_attention};
use stylestream::train::loss::{
    a2k_feature_loss, a2k_targets, colour_loss, global_stats_loss, identity_loss, range_loss,
};

/// The loss terms as functions of the output image, in f64 so the finite differences are exact enough
/// (the A2K targets, which carry no gradient, are made in f32 by the attention ops and upcast).
#[test]
fn loss_gradients_match_finite_differences() {
    let vgg = |dtype| Vgg::new(formula::var_builder(3, &Device::Cpu).set_dtype(dtype).pp("vgg")).unwrap();
    let (vgg32, vgg64) = (vgg(DType::F32), vgg(DType::F64));
    let (content, style) = (picture(1, 64), picture(2, 64));
    let output = picture(3, 64).to_dtype(DType::F64).unwrap();
    let fc = vgg32.forward(&content).unwrap();
    let fs = vgg32.forward(&style).unwrap();
    let up = |t: Vec<Tensor>| t.iter().map(|t| t.to_dtype(DType::F64).unwrap()).collect::<Vec<_>>();
    let targets = up(a2k_targets(&fc, &fs).unwrap());
    let fs = up(fs);
    let global = |x: &Tensor| global_stats_loss(&vgg64.forward(x).unwrap(), &fs).unwrap();
    let a2k = |x: &Tensor| a2k_feature_loss(&vgg64.forward(x).unwrap(), &targets).unwrap();
    check_directional("L_global", &output, &global, 1e-6, 1e-3);
    check_directional("L_A2K", &output, &a2k, 1e-6, 1e-3);

    // The pixel terms; the range penalty on values stretched to [-0.3, 1.3] so it is not zero.
    let (style64, content64) = (style.to_dtype(DType::F64).unwrap(), content.to_dtype(DType::F64).unwrap());
    let stretched = output.affine(1.6, -0.3).unwrap();
    check_directional("L_range", &stretched, &|x: &Tensor| range_loss(x).unwrap(), 1e-6, 1e-3);
    check_directional("L_colour", &output, &|x: &Tensor| colour_loss(x, &style64).unwrap(), 1e-6, 1e-3);
    check_directional("L_identity", &output, &|x: &Tensor| identity_loss(x, &content64).unwrap(), 1e-6, 1e-3);
}

#[test]
fn attention_gradients_match_finite_differences() {
    let (region, heads) = (4, 8);
    let rand = |seed: u64, dims: (usize, usize, usize, usize)| {
        let n = dims.0 * dims.1 * dims.2 * dims.3;
        let v: Vec<f32> = (0..n).map(|i| (formula::uniform("att", seed, i as u64) * 0.5) as f32).collect();
        Tensor::from_vec(v, dims, &Device::Cpu).unwrap()
    };
    // 9x10 content map: a remainder strip that receives no attention (and no gradient).
    let q = rand(1, (1, 16, 9, 10));
    let k = block(&rand(2, (1, 16, 8, 12)), region, heads).unwrap();
    let v = block(&rand(3, (1, 24, 8, 12)), region, heads).unwrap();
    let weights = rand(4, (1, 24, 9, 10));
    let k_bar = k.mean(2).unwrap();
    let v_bar = v.mean(2).unwrap();
    let weighted = |t: Tensor| (t * &weights).unwrap().sum_all().unwrap();
    check_directional(
        "DA wrt q",
        &q,
        &|x| weighted(distributed_attention(x, &k_bar, &v_bar, region).unwrap()),
        1e-2,
        1e-2,
    );
    check_directional(
        "DA wrt K_bar",
        &k_bar,
        &|x| weighted(distributed_attention(&q, x, &v_bar, region).unwrap()),
        1e-2,
        1e-2,
    );
    check_directional(
        "DA wrt V_bar",
        &v_bar,
        &|x| weighted(distributed_attention(&q, &k_bar, x, region).unwrap()),
        1e-2,
        1e-2,
    );
    check_directional(
        "PA wrt q",
        &q,
        &|x| weighted(progressive_attention(x, &k, &v, region).unwrap()),
        1e-3,
        1e-2,
    );
    check_directional(
        "PA wrt K",
        &k,
        &|x| weighted(progressive_attention(&q, x, &v, region).unwrap()),
        1e-3,
        1e-2,
    );
    check_directional(
        "PA wrt V",
        &v,
        &|x| weighted(progressive_attention(&q, &k, x, region).unwrap()),
        1e-2,
        1e-2,
    );
}

fn train_args(root: &Path, out: &str, steps: u32) -> Vec<String> {
    let p = |s: &str| root.join(s).display().to_string();
    [
        "train",
        "--content",
        &p("content"),
        "--style",
        &p("style"),
        "-o",
        &p(out),
        "--steps",
        &steps.to_string(),
        "--batch",
        "1",
        "--load-size",
        "64",
        "--crop",
        "64",
        "--lr",
        "3e-4",
        "--lr-decay",
        "1",
        "--checkpoint-every",
        "2",
        "--keep",
        "3",
        "--sample-every",
        "10",
        "--seed",
        "5",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

#[test]
fn a_short_run_lowers_the_loss_and_its_checkpoint_stylises() {
    let dir = tempfile::tempdir().unwrap();
    // One content and one style image: the loss of every step is comparable.
    images(&dir.path().join("content"), 1, 64, false);
    images(&dir.path().join("style"), 1, 64, true);
    let trained = run(&train_args(dir.path(), "out", 40));
    assert!(trained.status.success(), "{}", String::from_utf8_lossy(&trained.stderr));
    let rows = losses(&dir.path().join("out/loss.csv"));
    assert_eq!(rows.iter().map(|r| r.0).collect::<Vec<_>>(), (1..=40).collect::<Vec<_>>());
    let mean = |r: &[(u64, f64)]| r.iter().map(|x| x.1).sum::<f64>() / r.len() as f64;
    let (first, last) = (mean(&rows[..5]), mean(&rows[35..]));
    eprintln!("loss: first five steps {first:.4}, last five {last:.4}, x{:.2} lower", first / last);
    assert!(first / last > 2.0, "loss {first} -> {last}");
    assert!(dir.path().join("out/samples/step-00000040.png").exists());
    let model = dir.path().join("out/step-00000040.safetensors");
    let out = dir.path().join("styled.png");
    let styled = run(&[
        "image".into(),
        "--content".into(),
        dir.path().join("content/0.png").display().to_string(),
        "--style".into(),
        dir.path().join("style/0.png").display().to_string(),
        "--model".into(),
        model.display().to_string(),
        "-o".into(),
        out.display().to_string(),
    ]);
    assert!(styled.status.success(), "{}", String::from_utf8_lossy(&styled.stderr));
    assert_eq!(image::open(&out).unwrap().to_rgb8().dimensions(), (64, 64));
}

#[test]
fn kill_nine_then_resume_continues_the_run() {
    let dir = tempfile::tempdir().unwrap();
    images(&dir.path().join("content"), 3, 72, false);
    images(&dir.path().join("style"), 2, 72, true);
    let out = dir.path().join("out");
    let mut child = Command::new(env!("CARGO_BIN_EXE_stylestream"))
        .args(train_args(dir.path(), "out", 12))
        .spawn()
        .unwrap();
    let started = Instant::now();
    while !out.join("step-00000004.safetensors").exists() {
        assert!(started.elapsed() < Duration::from_secs(300), "no checkpoint within 5 minutes");
        std::thread::sleep(Duration::from_millis(100));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    // Whatever was on disk at the kill is whole: every checkpoint reads back.
    for entry in std::fs::read_dir(&out).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "safetensors") {
            checkpoint::read_bundle(&path).unwrap_or_else(|e| panic!("truncated checkpoint: {e}"));
        }
    }
    let before = losses(&out.join("loss.csv"));
    let mut args = train_args(dir.path(), "out", 12);
    args.push("--resume".into());
    let resumed = run(&args);
    let stderr = String::from_utf8_lossy(&resumed.stderr);
    assert!(resumed.status.success(), "{stderr}");
    assert!(stderr.contains("resuming from"), "{stderr}");
    let after = losses(&out.join("loss.csv"));
    assert_eq!(after.iter().map(|r| r.0).collect::<Vec<_>>(), (1..=12).collect::<Vec<_>>(), "each step once");
    // Steps up to the checkpoint are the killed run's rows, unchanged.
    let resumed_from: u64 =
        stderr.split("(step ").nth(1).unwrap().split(')').next().unwrap().parse().unwrap();
    for (a, b) in before.iter().zip(&after).take(resumed_from as usize) {
        assert_eq!(a, b);
    }
    assert!(out.join("stya2k.safetensors").exists());

    // --init: a new run starts from the finished run's weights. With a zero learning rate its
    // export is those weights exactly (a seeded start would differ everywhere).
    let trained = out.join("stya2k.safetensors");
    let fine_tune = |out: &str, extra: &[&str]| {
        let mut args = train_args(dir.path(), out, 1);
        let lr = args.iter().position(|a| a == "--lr").unwrap();
        args[lr + 1] = "0".into();
        args.extend(["--init".to_string(), trained.display().to_string()]);
        args.extend(extra.iter().map(|s| s.to_string()));
        run(&args)
    };
    let fine = fine_tune("fine", &[]);
    assert!(fine.status.success(), "{}", String::from_utf8_lossy(&fine.stderr));
    let (_, start) = checkpoint::read_bundle(&trained).unwrap();
    let (_, end) = checkpoint::read_bundle(&dir.path().join("fine/stya2k.safetensors")).unwrap();
    assert_eq!(start.len(), end.len());
    for (key, t) in &start {
        let diff = (t - &end[key]).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
        assert_eq!(diff, 0.0, "{key}");
    }
    // A bundle trained on another encoder does not fit: refused, naming the file.
    let other = fine_tune("other", &["--encoder", "random:6"]);
    let stderr = String::from_utf8_lossy(&other.stderr);
    assert!(!other.status.success());
    assert!(stderr.contains(&trained.display().to_string()) && stderr.contains("encoder"), "{stderr}");
}

#[test]
fn bad_folders_and_settings_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("content");
    std::fs::create_dir_all(&empty).unwrap();
    std::fs::write(empty.join("broken.jpg"), b"not a jpeg").unwrap();
    images(&dir.path().join("style"), 1, 64, true);
    let outcome = run(&train_args(dir.path(), "out", 2));
    let stderr = String::from_utf8_lossy(&outcome.stderr);
    assert!(!outcome.status.success());
    assert!(
        stderr.contains("content") && stderr.contains("no readable") && stderr.contains("1 unreadable"),
        "{stderr}"
    );

    images(&empty, 1, 32, false);
    let mut args = train_args(dir.path(), "out", 2);
    let crop = args.iter().position(|a| a == "--crop").unwrap();
    args[crop + 1] = "96".into();
    args[crop - 1] = "96".into();
    let outcome = run(&args);
    assert!(!outcome.status.success());
    assert!(String::from_utf8_lossy(&outcome.stderr).contains("multiple of 64"));
}
