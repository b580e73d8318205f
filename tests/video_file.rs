//! The `video` command end to end on clips generated with videotestsrc + audiotestsrc; what GStreamer
//! wrote is checked with a second, independent decoder (FFmpeg through ffmpeg-next).
#![cfg(feature = "media")]
mod common;

use common::clips::make_clip;
use common::media::{assert_same_timing, ffprobe};
use common::{arg, assert_clean_failure, stylestream};

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

fn style_image(dir: &Path) -> PathBuf {
    let path = dir.join("style.png");
    image::RgbImage::from_fn(64, 48, |x, y| image::Rgb([(x * 4) as u8, (y * 5) as u8, ((x + y) * 2) as u8]))
        .save(&path)
        .unwrap();
    path
}

#[test]
fn identity_and_stya2k_keep_frames_timestamps_duration_and_audio() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.mp4");
    make_clip(&input, 320, 240, 30, 60, true);
    let source = ffprobe(&input);
    assert_eq!((source.width, source.height, source.pts.len()), (320, 240, 60));

    let out = dir.path().join("identity.mp4");
    let o = stylestream(&["video", arg(&input), "-o", arg(&out), "--model", "identity"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let result = ffprobe(&out);
    assert_eq!((result.width, result.height), (320, 240));
    assert_same_timing(&source, &result, 30.0);

    // StyA2K (untrained formula weights: the same arithmetic as trained ones) on a shorter clip.
    let short = dir.path().join("short.mkv");
    make_clip(&short, 320, 240, 10, 20, true);
    let style = style_image(dir.path());
    let out = dir.path().join("stya2k.mkv");
    let o =
        stylestream(&["video", arg(&short), "-o", arg(&out), "--model", "formula:7", "--style", arg(&style)]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_same_timing(&ffprobe(&short), &ffprobe(&out), 10.0);
}

#[test]
fn odd_and_portrait_sizes_come_out_at_their_own_size() {
    let dir = tempfile::tempdir().unwrap();
    for (w, h) in [(322, 242), (240, 320)] {
        let input = dir.path().join(format!("in{w}x{h}.mp4"));
        make_clip(&input, w, h, 30, 15, false);
        let out = dir.path().join(format!("out{w}x{h}.mp4"));
        let o = stylestream(&["video", arg(&input), "-o", arg(&out), "--model", "identity"]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let p = ffprobe(&out);
        assert_eq!((p.width, p.height, p.pts.len()), (w, h, 15));
        assert!(!p.has_audio);
    }
}

#[test]
fn sigint_leaves_a_playable_file_and_no_temp_file() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("long.mp4");
    make_clip(&input, 320, 240, 30, 300, true);
    let style = style_image(dir.path());
    let out = dir.path().join("cut.mp4");
    // StyA2K on the CPU runs at a few frames per second: the interrupt lands mid-file.
    let mut child = Command::new(env!("CARGO_BIN_EXE_stylestream"))
        .args(["video", arg(&input), "-o", arg(&out), "--model", "formula:7", "--style", arg(&style)])
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(8));
    Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "an interrupted run finishes the file and exits 0");
    let p = ffprobe(&out);
    assert!(!p.pts.is_empty() && p.pts.len() < 300, "{} frames", p.pts.len());
    assert!(p.has_audio);
    let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert!(!names.iter().any(|n| n.to_string_lossy().ends_with(".tmp")), "{names:?}");
}

#[test]
fn bad_inputs_and_outputs_fail_cleanly_without_partial_outputs() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.mp4");
    make_clip(&good, 160, 120, 30, 30, true);
    let bytes = std::fs::read(&good).unwrap();
    let truncated = dir.path().join("truncated.mp4");
    std::fs::write(&truncated, &bytes[..bytes.len() / 3]).unwrap();
    let text = dir.path().join("notes.mp4");
    std::fs::write(&text, "not a video at all\n".repeat(100)).unwrap();
    let picture = dir.path().join("still.png");
    image::RgbImage::new(16, 16).save(&picture).unwrap();
    let out = dir.path().join("out.mp4");
    for bad in [&truncated, &text, &dir.path().join("missing.mp4"), &picture] {
        let o = stylestream(&["video", arg(bad), "-o", arg(&out), "--model", "identity"]);
        assert_clean_failure(&o, bad.file_name().unwrap().to_str().unwrap());
        assert!(!out.exists(), "{}: partial output left", bad.display());
    }
    let unwritable = dir.path().join("no-such-dir").join("out.mp4");
    let o = stylestream(&["video", arg(&good), "-o", arg(&unwritable), "--model", "identity"]);
    assert_clean_failure(&o, "out.mp4");
    let o =
        stylestream(&["video", arg(&good), "-o", arg(&dir.path().join("out.avi")), "--model", "identity"]);
    assert_clean_failure(&o, "out.avi");
    std::fs::write(&out, b"precious").unwrap();
    let o = stylestream(&["video", arg(&good), "-o", arg(&out), "--model", "identity"]);
    assert_clean_failure(&o, "out.mp4");
    assert_eq!(std::fs::read(&out).unwrap(), b"precious");
    let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert!(!leftovers.iter().any(|n| n.to_string_lossy().ends_with(".tmp")), "{leftovers:?}");
}

#[test]
fn batch_continues_past_a_bad_file_reports_it_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let inputs = dir.path().join("in");
    std::fs::create_dir(&inputs).unwrap();
    make_clip(&inputs.join("a.mp4"), 160, 120, 30, 10, true);
    make_clip(&inputs.join("c.mkv"), 128, 96, 30, 10, false);
    std::fs::write(inputs.join("b.mp4"), b"broken").unwrap();
    let outputs = dir.path().join("out");
    let o = stylestream(&["video", arg(&inputs), "-o", arg(&outputs), "--model", "identity"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("b.mp4"), "{err}");
    assert_eq!(ffprobe(&outputs.join("a.mp4")).pts.len(), 10);
    assert_eq!(ffprobe(&outputs.join("c.mp4")).pts.len(), 10);
    assert!(!outputs.join("b.mp4").exists());
    let before = std::fs::metadata(outputs.join("a.mp4")).unwrap().modified().unwrap();
    std::fs::remove_file(inputs.join("b.mp4")).unwrap();
    let o = stylestream(&["video", arg(&inputs), "-o", arg(&outputs), "--model", "identity"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success() && err.contains("2 skipped"), "{err}");
    assert_eq!(std::fs::metadata(outputs.join("a.mp4")).unwrap().modified().unwrap(), before);
}

#[cfg(not(feature = "cuda"))]
#[test]
fn video_device_cuda_without_the_feature_fails_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let style = style_image(dir.path());
    let out = dir.path().join("out.mp4");
    let o = stylestream(&[
        "video",
        arg(&dir.path().join("in.mp4")),
        "-o",
        arg(&out),
        "--model",
        "formula-neat:1",
        "--style",
        arg(&style),
        "--device",
        "cuda",
        "--precision",
        "f16",
    ]);
    assert_clean_failure(&o, "--device cuda:0: built without CUDA; rebuild with --features cuda");
    assert!(!out.exists());
}
