//! The `video` command on the media people have rather than the clean clips of `video_file.rs`:
//! inputs made at test time with the FFmpeg command line, outputs checked with FFmpeg's decoder
//! (ffmpeg-next), the picture compared with what FFmpeg itself shows.
#![cfg(feature = "media")]
mod common;

use std::path::Path;

use common::media::{assert_same_timing, ffmpeg_cli, ffprobe, Probe};
use common::{arg, assert_clean_failure, stylestream};

/// Runs `video IN -o OUT --model identity` and expects it to succeed; returns its stderr.
fn identity(input: &Path, output: &Path) -> String {
    let o = stylestream(&["video", arg(input), "-o", arg(output), "--model", "identity"]);
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "{}: {err}", input.display());
    err
}

/// Mean luma of the four quadrants (top-left, top-right, bottom-left, bottom-right).
fn quadrants(p: &Probe) -> [f64; 4] {
    let (w, h) = (p.width as usize, p.height as usize);
    let mean = |x0: usize, y0: usize| {
        let rows = p.first_luma.chunks(w).skip(y0).take(h / 2);
        rows.flat_map(|r| &r[x0..x0 + w / 2]).map(|&v| v as f64).sum::<f64>() / ((w / 2) * (h / 2)) as f64
    };
    [mean(0, 0), mean(w / 2, 0), mean(0, h / 2), mean(w / 2, h / 2)]
}

#[test]
fn avi_mpeg4_part2_with_b_frames_and_ac3_at_23_976_keeps_every_frame_and_the_audio() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.avi");
    // 48 frames at 24000/1001: AVI stores no presentation times, and with B-frames GStreamer's
    // decoder repeats some of the times it derives ("Buffer has no PTS" in the muxer before).
    ffmpeg_cli(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=320x240:rate=24000/1001",
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440:sample_rate=48000",
        "-t",
        "2",
        "-c:v",
        "mpeg4",
        "-bf",
        "2",
        "-c:a",
        "ac3",
        "-ac",
        "2",
        arg(&input),
    ]);
    let source = ffprobe(&input);
    assert_eq!((source.width, source.height, source.pts.len()), (320, 240, 48));
    assert_eq!(source.audio_codecs, ["ac3"]);
    for ext in ["mp4", "mkv"] {
        let out = dir.path().join(format!("out.{ext}"));
        identity(&input, &out);
        let p = ffprobe(&out);
        assert_eq!((p.width, p.height, p.pts.len()), (320, 240, 48), "{ext}");
        // The nominal rate is the truth for AVI (one frame per 1001/24000 s); Matroska rounds to 1 ms.
        for (i, t) in p.pts.iter().enumerate() {
            let expected = p.pts[0] + i as f64 * 1001.0 / 24000.0;
            assert!((t - expected).abs() <= 0.6e-3, "{ext} frame {i}: pts {t}, expected {expected}");
        }
        // Both containers take AC-3: it passes through untouched, every audio frame kept.
        assert_eq!(p.audio_codecs, ["ac3"], "{ext}");
        assert!((p.audio_seconds - source.audio_seconds).abs() < 0.05, "{ext}: {p:?} vs {source:?}");
    }
}

#[test]
fn rotated_phone_video_comes_out_upright_at_the_displayed_size() {
    let dir = tempfile::tempdir().unwrap();
    let coded = dir.path().join("coded.mp4");
    // A landscape 320x180 picture, white in its top-left quadrant only, with AAC audio like a phone's.
    ffmpeg_cli(&[
        "-f",
        "lavfi",
        "-i",
        "color=c=black:size=320x180:rate=30,drawbox=x=0:y=0:w=160:h=90:color=white:t=fill",
        "-f",
        "lavfi",
        "-i",
        "sine=sample_rate=48000",
        "-t",
        "0.5",
        "-c:v",
        "libx264",
        "-pix_fmt",
        "yuv420p",
        "-c:a",
        "aac",
        arg(&coded),
    ]);
    for rotate in ["90", "180", "270"] {
        // FFmpeg 5.1 writes the display matrix from the `rotate` tag when copying the stream.
        let input = dir.path().join(format!("rotate{rotate}.mp4"));
        let tag = format!("rotate={rotate}");
        ffmpeg_cli(&["-i", arg(&coded), "-c", "copy", "-metadata:s:v:0", &tag, arg(&input)]);
        let source = ffprobe(&input);
        assert!(source.display_matrix, "{rotate}: the input has no display matrix");
        // What a viewer sees: FFmpeg's own decode of the input, turned by its display matrix.
        let shown = dir.path().join(format!("shown{rotate}.mp4"));
        ffmpeg_cli(&["-i", arg(&input), "-c:v", "libx264", "-qp", "0", "-an", arg(&shown)]);
        let shown = ffprobe(&shown);
        assert!(!shown.display_matrix);
        let out = dir.path().join(format!("out{rotate}.mp4"));
        identity(&input, &out);
        let p = ffprobe(&out);
        assert_eq!((p.width, p.height), (shown.width, shown.height), "rotate {rotate}: displayed size");
        assert!(!p.display_matrix, "rotate {rotate}: the output is upright and must not be turned again");
        assert_eq!(p.pts.len(), source.pts.len());
        assert!(p.has_audio);
        let (want, got) = (quadrants(&shown), quadrants(&p));
        for (q, (a, b)) in want.iter().zip(got).enumerate() {
            assert!((a - b).abs() < 20.0, "rotate {rotate}: quadrant {q} luma {b}, shown {a} ({want:?})");
        }
    }
}
