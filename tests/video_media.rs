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

#[test]
fn webm_mov_and_mpeg_ts_inputs_keep_timing_and_their_audio() {
    let dir = tempfile::tempdir().unwrap();
    let picture =
        ["-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25", "-f", "lavfi", "-i", "sine=sample_rate=48000"];
    // (input, its codecs, output, the audio codec the output must carry)
    let cases: [(&str, &[&str], &str, &str); 4] = [
        ("vp9.webm", &["-c:v", "libvpx-vp9", "-deadline", "realtime", "-c:a", "libopus"], "vp9.mkv", "opus"),
        ("vp8.webm", &["-c:v", "libvpx", "-deadline", "realtime", "-c:a", "libvorbis"], "vp8.mkv", "vorbis"),
        ("phone.mov", &["-c:v", "libx264", "-c:a", "aac"], "mov.mp4", "aac"),
        // MPEG-TS starts at 1.4 s and carries MPEG-1 Layer II audio in chunks the parser times.
        // MP4 has one object type for MPEG-1 audio, which FFmpeg calls mp3 (and decodes the Layer II).
        ("broadcast.ts", &["-c:v", "libx264", "-c:a", "mp2"], "ts.mp4", "mp3"),
    ];
    for (name, codecs, out, audio) in cases {
        let input = dir.path().join(name);
        let mut args = picture.to_vec();
        args.extend_from_slice(&["-t", "1"]);
        args.extend_from_slice(codecs);
        args.push(arg(&input));
        ffmpeg_cli(&args);
        let out = dir.path().join(out);
        identity(&input, &out);
        let (source, p) = (ffprobe(&input), ffprobe(&out));
        assert_eq!((p.width, p.height), (320, 240), "{name}");
        assert_same_timing(&source, &p, 25.0);
        assert_eq!(p.audio_codecs, [audio], "{name}");
        assert!((p.audio_seconds - source.audio_seconds).abs() < 0.05, "{name}: {p:?} vs {source:?}");
    }
}

#[test]
fn variable_rate_pixel_aspect_10_bit_422_and_a_single_frame() {
    let dir = tempfile::tempdir().unwrap();
    // 10 frames at 25 fps, then 5 at 10 fps: the times are kept frame by frame. (Matroska: FFmpeg's
    // MP4 edit list would hide the last frame from FFmpeg's own decoder.)
    let vfr = dir.path().join("vfr.mkv");
    ffmpeg_cli(&[
        "-filter_complex",
        "testsrc2=size=320x240:r=25:d=0.4[a];testsrc2=size=320x240:r=10:d=0.5[b];[a][b]concat=n=2:v=1:a=0,settb=1/1000",
        "-fps_mode", "passthrough", "-c:v", "libx264", arg(&vfr),
    ]);
    let source = ffprobe(&vfr);
    assert_eq!(source.pts.len(), 15);
    // Into Matroska: in MP4, mp4mux ends the track at the last decode time, which x264's B-frames put
    // before the last frames of a slowing rate (a known gap, docs/media-support.md).
    let out = dir.path().join("vfr-out.mkv");
    identity(&vfr, &out);
    let p = ffprobe(&out);
    assert_eq!(p.pts.len(), 15);
    for (i, (a, b)) in source.pts.iter().zip(&p.pts).enumerate() {
        assert!((a - b).abs() < 1e-3, "frame {i}: pts {a} in, {b} out");
    }

    // 160x180 coded with 2:1 pixels shows at 320x180: the output has square pixels at that size.
    let wide = dir.path().join("anamorphic.mp4");
    ffmpeg_cli(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=160x180:rate=25",
        "-t",
        "0.4",
        "-vf",
        "setsar=2/1",
        "-c:v",
        "libx264",
        arg(&wide),
    ]);
    assert_eq!(ffprobe(&wide).sample_aspect, (2, 1));
    let out = dir.path().join("anamorphic-out.mp4");
    identity(&wide, &out);
    let p = ffprobe(&out);
    assert_eq!((p.width, p.height, p.pts.len()), (320, 180, 10));
    assert!(matches!(p.sample_aspect, (1, 1) | (0, _)), "{:?}", p.sample_aspect);

    // 10-bit 4:2:2 H.264 (camera / intermediate files) comes out as 8-bit 4:2:0 H.264.
    let deep = dir.path().join("hi422.mkv");
    ffmpeg_cli(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=320x240:rate=25",
        "-t",
        "0.4",
        "-c:v",
        "libx264",
        "-pix_fmt",
        "yuv422p10le",
        arg(&deep),
    ]);
    let out = dir.path().join("hi422-out.mp4");
    identity(&deep, &out);
    assert_eq!(ffprobe(&out).pts.len(), 10);

    let single = dir.path().join("single.mp4");
    ffmpeg_cli(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=320x240:rate=25",
        "-frames:v",
        "1",
        "-c:v",
        "libx264",
        arg(&single),
    ]);
    let out = dir.path().join("single-out.mp4");
    identity(&single, &out);
    assert_eq!(ffprobe(&out).pts.len(), 1);
}

#[test]
fn several_audio_tracks_and_subtitles_are_noted_and_an_empty_video_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let srt = dir.path().join("subs.srt");
    std::fs::write(&srt, "1\n00:00:00,000 --> 00:00:00,500\nhello\n").unwrap();
    let input = dir.path().join("tracks.mkv");
    // The video starts at 0 (no B-frames, audio without encoder delay): a Matroska video that starts
    // later has its first frame moved to 0, a known gap (docs/media-support.md).
    ffmpeg_cli(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=320x240:rate=25",
        "-f",
        "lavfi",
        "-i",
        "sine=sample_rate=48000",
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=880:sample_rate=48000",
        "-i",
        arg(&srt),
        "-t",
        "1",
        "-map",
        "0",
        "-map",
        "1",
        "-map",
        "2",
        "-map",
        "3",
        "-c:v",
        "libx264",
        "-bf",
        "0",
        "-c:a:0",
        "ac3",
        "-c:a:1",
        "flac",
        "-c:s",
        "srt",
        arg(&input),
    ]);
    let out = dir.path().join("tracks-out.mkv");
    let err = identity(&input, &out);
    assert!(err.contains("2 audio tracks; only the first is kept"), "{err}");
    assert!(err.contains("1 subtitle track(s) dropped"), "{err}");
    let (source, p) = (ffprobe(&input), ffprobe(&out));
    assert_eq!(source.audio_codecs, ["ac3", "flac"]);
    assert_eq!(p.audio_codecs, ["ac3"]);
    assert_same_timing(&source, &p, 25.0);

    // A video track without frames: one line naming the file, no output.
    let empty = dir.path().join("empty.mkv");
    ffmpeg_cli(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=320x240:rate=25",
        "-frames:v",
        "0",
        "-c:v",
        "libx264",
        arg(&empty),
    ]);
    let out = dir.path().join("empty-out.mp4");
    let o = stylestream(&["video", arg(&empty), "-o", arg(&out), "--model", "identity"]);
    assert_clean_failure(&o, "empty.mkv");
    assert!(!out.exists());
    let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert!(!names.iter().any(|n| n.to_string_lossy().ends_with(".tmp")), "{names:?}");
}

#[test]
fn damaged_files_are_processed_up_to_the_damage_with_a_note() {
    let dir = tempfile::tempdir().unwrap();
    let source =
        ["-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25", "-f", "lavfi", "-i", "sine=sample_rate=48000"];
    let (mkv, ts) = (dir.path().join("full.mkv"), dir.path().join("full.ts"));
    ffmpeg_cli(&[&source[..], &["-t", "2", "-c:v", "libx264", "-c:a", "aac", arg(&mkv)]].concat());
    ffmpeg_cli(&[&source[..], &["-t", "2", "-c:v", "libx264", "-c:a", "mp2", arg(&ts)]].concat());
    // A Matroska file cut at 60 % (a download that stopped), and an MPEG-TS with 20 kB of garbage in
    // the middle (a broadcast glitch).
    let cut = dir.path().join("cut.mkv");
    let bytes = std::fs::read(&mkv).unwrap();
    std::fs::write(&cut, &bytes[..bytes.len() * 6 / 10]).unwrap();
    let garbled = dir.path().join("garbled.ts");
    let mut bytes = std::fs::read(&ts).unwrap();
    let middle = bytes.len() / 2;
    for (i, b) in bytes[middle..middle + 20_000].iter_mut().enumerate() {
        *b = (i * 37 % 256) as u8;
    }
    std::fs::write(&garbled, &bytes).unwrap();
    for (input, note) in [(&cut, "cut short or damaged"), (&garbled, "GStreamer warned")] {
        let out = dir.path().join(format!("{}.mp4", input.file_stem().unwrap().to_str().unwrap()));
        let err = identity(input, &out);
        assert!(err.contains(note), "{}: {err}", input.display());
        // What could be read is in the output, and FFmpeg plays it.
        let p = ffprobe(&out);
        assert!(p.pts.len() > 10 && p.pts.len() < 50, "{}: {} frames", input.display(), p.pts.len());
        assert!(p.has_audio);
    }
}
