//! The `image` subcommand end to end: formats in and out, sizes kept, and bad input refused cleanly.
mod common;

use common::{arg, assert_clean_failure, stylestream};
use std::path::Path;
use std::process::Output;

use image::{GrayImage, ImageBuffer, Luma, Rgba, RgbaImage};

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Runs `image` with formula weights; returns the process output.
fn run_image(content: &Path, style: &Path, out: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["image", "--content", arg(content), "--style", arg(style), "-o", arg(out)];
    args.extend_from_slice(&["--model", "formula:20261122"]);
    args.extend_from_slice(extra);
    stylestream(&args)
}

#[test]
fn rgba_png_keeps_size_and_alpha_and_gray16_is_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let content = dir.path().join("content.png");
    let rgba =
        RgbaImage::from_fn(45, 30, |x, y| Rgba([(x * 5) as u8, (y * 8) as u8, 128, (x * 3 + y) as u8]));
    rgba.save(&content).unwrap();
    let style = dir.path().join("style16.png");
    let gray16: ImageBuffer<Luma<u16>, Vec<u16>> =
        ImageBuffer::from_fn(33, 20, |x, y| Luma([(x * 1500 + y * 900) as u16]));
    gray16.save(&style).unwrap();

    let out = dir.path().join("out.png");
    let o = run_image(&content, &style, &out, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let result = image::open(&out).unwrap().to_rgba8();
    assert_eq!(result.dimensions(), (45, 30));
    for (a, b) in result.pixels().zip(rgba.pixels()) {
        assert_eq!(a[3], b[3], "alpha must be carried over");
    }

    // Grayscale content to JPEG; the output is RGB of the content's size.
    let gray = dir.path().join("gray.png");
    GrayImage::from_fn(17, 50, |x, y| Luma([(x * 10 + y) as u8])).save(&gray).unwrap();
    let jpg = dir.path().join("out.jpg");
    let o = run_image(&gray, &content, &jpg, &["--max-side", "40"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let result = image::open(&jpg).unwrap();
    assert_eq!((result.width(), result.height()), (14, 40), "max-side keeps the aspect ratio");
}

#[test]
fn refuses_to_overwrite_unless_asked() {
    let dir = tempfile::tempdir().unwrap();
    let content = dir.path().join("c.png");
    GrayImage::from_fn(20, 20, |x, _| Luma([x as u8 * 10])).save(&content).unwrap();
    let out = dir.path().join("exists.png");
    std::fs::write(&out, b"keep me").unwrap();
    let o = run_image(&content, &content, &out, &[]);
    assert_clean_failure(&o, "exists.png");
    assert_eq!(std::fs::read(&out).unwrap(), b"keep me");
    let o = run_image(&content, &content, &out, &["--overwrite"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(image::open(&out).unwrap().width(), 20);
}

#[test]
fn bad_inputs_fail_with_one_line_naming_the_file_and_leave_no_output() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.png");
    GrayImage::from_fn(20, 20, |x, _| Luma([x as u8 * 10])).save(&good).unwrap();
    let text = dir.path().join("notes.png");
    std::fs::write(&text, "this is not an image").unwrap();
    let truncated = dir.path().join("cut.png");
    std::fs::write(&truncated, &std::fs::read(&good).unwrap()[..40]).unwrap();
    let missing = dir.path().join("missing.png");
    let out = dir.path().join("out.png");

    for bad in [&text, &truncated, &missing] {
        let o = run_image(bad, &good, &out, &[]);
        assert_clean_failure(&o, bad.file_name().unwrap().to_str().unwrap());
        let o = run_image(&good, bad, &out, &[]);
        assert_clean_failure(&o, bad.file_name().unwrap().to_str().unwrap());
    }
    let o = run_image(&good, &good, &dir.path().join("out.bmp"), &[]);
    assert_clean_failure(&o, "out.bmp");
    let o = run_image(&good, &good, &dir.path().join("no-such-dir").join("out.png"), &[]);
    assert_clean_failure(&o, "out.png");
    let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(leftovers.len(), 3, "only the three inputs remain: {leftovers:?}");
}

#[test]
fn bad_model_files_fail_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.png");
    GrayImage::from_fn(20, 20, |x, _| Luma([x as u8 * 10])).save(&good).unwrap();
    let junk = dir.path().join("junk.safetensors");
    std::fs::write(&junk, [0xffu8; 64]).unwrap();
    let out = dir.path().join("out.png");
    let o = stylestream(&[
        "image",
        "--content",
        arg(&good),
        "--style",
        arg(&good),
        "-o",
        arg(&out),
        "--model",
        arg(&junk),
    ]);
    assert_clean_failure(&o, "junk.safetensors");
    assert!(!out.exists());
}

#[test]
fn import_official_names_the_file_and_tensor_that_do_not_fit() {
    let dir = tempfile::tempdir().unwrap();
    let a2k = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures/official/latest_net_A2K.pth");
    let out = dir.path().join("bundle.safetensors");
    // The relu3_1 A2K file in every slot: the VGG slot lacks the encoder's tensors.
    let o = stylestream(&[
        "import-official",
        "--vgg",
        arg(&a2k),
        "--a2k",
        arg(&a2k),
        "--transform",
        arg(&a2k),
        "--decoder",
        arg(&a2k),
        "-o",
        arg(&out),
    ]);
    assert_clean_failure(&o, "latest_net_A2K.pth");
    assert!(stderr(&o).contains("vgg.0.weight"), "{}", stderr(&o));
    assert!(!out.exists());
    let junk = dir.path().join("junk.pth");
    std::fs::write(&junk, b"PK\x03\x04 not really a zip").unwrap();
    let o = stylestream(&[
        "import-official",
        "--vgg",
        arg(&junk),
        "--a2k",
        arg(&a2k),
        "--transform",
        arg(&a2k),
        "--decoder",
        arg(&a2k),
        "-o",
        arg(&out),
    ]);
    assert_clean_failure(&o, "junk.pth");
    assert!(!out.exists());
}
