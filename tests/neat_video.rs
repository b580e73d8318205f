//! NeAT through the commands and the video path: a frame stylised alone equals the same frame
//! stylised inside a video (bitwise, CPU), and `image`/`video` pick NeAT from a bundle's metadata.
#![cfg(feature = "media")]
mod common;

use candle_core::{Device, Tensor};
use common::clips::make_clip;
use common::{arg, stylestream};
use stylestream::checkpoint::{self, formula, BundleInfo, WeightSource};
use stylestream::models::neat::{Controls, NeatConfig};
use stylestream::video::reader::FrameReader;
use stylestream::video::{NeatStylizer, Stylizer};

const SEED: u64 = 7;

fn values(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1::<f32>().unwrap()
}

fn style() -> Tensor {
    common::golden_image(common::GoldenImage::Style, 40, 56)
}

fn stylizer() -> NeatStylizer {
    let model = checkpoint::load_neat(&WeightSource::NeatFormula(SEED), &Device::Cpu).unwrap();
    NeatStylizer::new(model, &style(), Controls { alpha: 1.0, alpha_prior: false }).unwrap()
}

#[test]
fn a_frame_alone_equals_the_frame_inside_a_video() {
    let dir = tempfile::tempdir().unwrap();
    let clip = dir.path().join("clip.mp4");
    make_clip(&clip, 96, 72, 10, 5, false);
    let frames: Vec<Tensor> =
        FrameReader::open(&clip).unwrap().map(|f| f.unwrap().to_tensor(&Device::Cpu).unwrap()).collect();
    assert_eq!(frames.len(), 5);
    // The video path: one stylizer, its style prepared once, every frame in order.
    let mut video = stylizer();
    let in_video: Vec<Vec<f32>> = frames.iter().map(|f| values(&video.stylize(f).unwrap())).collect();
    // Each frame alone, with a fresh model.
    for i in [0, 3, 4] {
        let alone = values(&stylizer().stylize(&frames[i]).unwrap());
        assert!(alone == in_video[i], "frame {i} differs alone and inside the video");
    }
    // Switching the style away and back returns to the same output.
    video.set_style(&common::golden_image(common::GoldenImage::Content, 30, 30)).unwrap();
    assert!(values(&video.stylize(&frames[3]).unwrap()) != in_video[3]);
    video.set_style(&style()).unwrap();
    assert!(values(&video.stylize(&frames[3]).unwrap()) == in_video[3]);
}

#[test]
fn image_and_video_commands_pick_neat_from_the_bundle() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("neat.safetensors");
    let config = NeatConfig::default();
    let info = BundleInfo {
        model: checkpoint::NEAT.into(),
        encoder: format!("formula:{SEED}"),
        training: "{}".into(),
        config: serde_json::to_string(&config).unwrap(),
    };
    checkpoint::write_bundle(&bundle, &info, &formula::neat_tensors(SEED, config).unwrap()).unwrap();
    let style_png = dir.path().join("style.png");
    stylestream::image_io::write_picture(
        &style_png,
        stylestream::image_io::to_rgb8(&style()).unwrap(),
        None,
        false,
    )
    .unwrap();

    let content = dir.path().join("content.png");
    let picture = common::golden_image(common::GoldenImage::Content, 45, 62);
    stylestream::image_io::write_picture(
        &content,
        stylestream::image_io::to_rgb8(&picture).unwrap(),
        None,
        false,
    )
    .unwrap();
    let out = dir.path().join("out.png");
    let o = stylestream(&[
        "image",
        "--content",
        arg(&content),
        "--style",
        arg(&style_png),
        "-o",
        arg(&out),
        "--model",
        arg(&bundle),
        "--alpha",
        "0.5",
        "--alpha-prior",
        "--blur",
        "5",
        "--prior-weight",
        "0.7",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(image::open(&out).unwrap().to_rgb8().dimensions(), (62, 45));

    let clip = dir.path().join("in.mp4");
    make_clip(&clip, 64, 48, 10, 4, true);
    let styled = dir.path().join("out.mkv");
    let o = stylestream(&[
        "video",
        arg(&clip),
        "-o",
        arg(&styled),
        "--model",
        arg(&bundle),
        "--style",
        arg(&style_png),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let frames: Vec<_> = FrameReader::open(&styled).unwrap().map(|f| f.unwrap()).collect();
    assert_eq!(frames.len(), 4);
    assert_eq!((frames[0].width, frames[0].height), (64, 48));

    // NeAT's controls on a StyA2K model are refused in one line, not ignored.
    let o = stylestream(&[
        "image",
        "--content",
        arg(&content),
        "--style",
        arg(&style_png),
        "-o",
        arg(&dir.path().join("x.png")),
        "--model",
        "formula:7",
        "--blur",
        "0",
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.trim_end().lines().count() == 1 && err.contains("--blur"), "{err}");
}
