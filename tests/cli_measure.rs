//! The `measure` command end to end: reports written with their conventions, and the bad cases
//! (different lengths, one frame) explained instead of crashing.
#![cfg(feature = "media")]
mod common;

use std::process::Command;

use common::clips::make_clip;
use common::{arg, stylestream};

#[test]
fn a_video_against_itself_measures_zero_flicker_beyond_the_source_and_writes_reports() {
    let dir = tempfile::tempdir().unwrap();
    let clip = dir.path().join("clip.mp4");
    make_clip(&clip, 96, 64, 30, 8, false);
    let (csv, json, plot) = (dir.path().join("m.csv"), dir.path().join("m.json"), dir.path().join("m.png"));
    let o = stylestream(&[
        "measure",
        "--source",
        arg(&clip),
        "--stylized",
        arg(&clip),
        "--interval",
        "1,3",
        "--csv",
        arg(&csv),
        "--json",
        arg(&json),
        "--plot",
        arg(&plot),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("interval 1: 7 pairs") && out.contains("interval 3: 5 pairs"), "{out}");
    let rows = std::fs::read_to_string(dir.path().join("m.k1.csv")).unwrap();
    assert!(rows.contains("flow_method") && rows.contains("interval"), "conventions in the header");
    let data: Vec<&str> = rows.lines().filter(|l| !l.starts_with('#')).collect();
    assert_eq!(data.len(), 1 + 7, "header + one row per pair");
    let j: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("m.k3.json")).unwrap()).unwrap();
    // The stylised video is the source: its warping error is exactly the source's (the flow's floor).
    let summary = &j["summary"];
    assert_eq!(summary["e_warp_stylised"], summary["e_warp_source"]);
    assert!(summary["e_warp_source"]["mean"].as_f64().unwrap() > 0.0);
    assert!(image::open(dir.path().join("m.k1.png")).is_ok());
}

#[test]
fn different_lengths_and_single_frames_are_explained() {
    let dir = tempfile::tempdir().unwrap();
    let (long, short, one) =
        (dir.path().join("long.mp4"), dir.path().join("short.mp4"), dir.path().join("one.mp4"));
    make_clip(&long, 64, 48, 30, 6, false);
    make_clip(&short, 64, 48, 30, 4, false);
    make_clip(&one, 64, 48, 30, 1, false);
    let o = stylestream(&["measure", "--source", arg(&long), "--stylized", arg(&short)]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("long.mp4") && err.contains("more frames"), "{err}");
    let o = stylestream(&["measure", "--source", arg(&one), "--stylized", arg(&one)]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("1-frame video has no frame pairs"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn an_odd_sized_source_is_measured_against_its_even_sized_output() {
    let dir = tempfile::tempdir().unwrap();
    // H.264 in 4:2:0 cannot hold odd sizes: the source is Motion JPEG, which can.
    let source = dir.path().join("odd.mkv");
    let desc = format!(
        "videotestsrc num-buffers=4 pattern=ball ! video/x-raw,width=65,height=49,framerate=30/1 ! jpegenc ! \
         matroskamux ! filesink location={}",
        source.display()
    );
    let made = Command::new("gst-launch-1.0").arg("-q").args(desc.split_whitespace()).status().unwrap();
    assert!(made.success());
    let styled = dir.path().join("styled.mp4");
    let o = stylestream(&["video", arg(&source), "-o", arg(&styled), "--model", "identity"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = stylestream(&["measure", "--source", arg(&source), "--stylized", arg(&styled)]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("3 pairs"));
}
