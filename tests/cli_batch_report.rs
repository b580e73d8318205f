//! `batch-report DIR`: merges the shards' manifests, lists failures and missing inputs, and exits
//! non-zero unless every input is done.
#![cfg(feature = "media")]
mod common;

use std::path::Path;

use common::clips::make_clip;
use common::{arg, stylestream};

fn report(args: &[&str]) -> (bool, String, String) {
    let mut all = vec!["batch-report"];
    all.extend(args);
    let o = stylestream(&all);
    (o.status.success(), String::from_utf8_lossy(&o.stdout).into(), String::from_utf8_lossy(&o.stderr).into())
}

fn shard(inputs: &Path, out: &Path, which: &str) -> bool {
    let args = [
        "video",
        arg(inputs),
        "-o",
        arg(out),
        "--model",
        "identity",
        "--preset",
        "ultrafast",
        "--shard",
        which,
    ];
    stylestream(&args).status.success()
}

#[test]
fn one_failure_and_one_missing_input_are_both_reported() {
    let dir = tempfile::tempdir().unwrap();
    let inputs = dir.path().join("in");
    let out = dir.path().join("out");
    std::fs::create_dir(&inputs).unwrap();
    for name in ["a", "b", "c", "d"] {
        make_clip(&inputs.join(format!("{name}.mp4")), 32, 24, 30, 3, false);
    }
    std::fs::write(inputs.join("broken.mp4"), b"not a video").unwrap();
    let ran: Vec<bool> = ["0/2", "1/2"].iter().map(|s| shard(&inputs, &out, s)).collect();
    assert_eq!(ran.iter().filter(|ok| !**ok).count(), 1, "only broken.mp4's shard fails");
    // A clip added after the workers ran: assigned to a shard, in no manifest.
    make_clip(&inputs.join("late.mp4"), 32, 24, 30, 3, false);

    let (ok, stdout, stderr) = report(&[arg(&out), "--inputs", arg(&inputs)]);
    assert!(!ok, "{stdout}{stderr}");
    let failed: Vec<&str> = stdout.lines().filter(|l| l.starts_with("failed:")).collect();
    assert_eq!(failed.len(), 1, "{stdout}");
    assert!(failed[0].contains("broken.mp4"), "{stdout}");
    let missing: Vec<&str> = stdout.lines().filter(|l| l.starts_with("missing:")).collect();
    assert_eq!(missing.len(), 1, "{stdout}");
    assert!(
        missing[0].starts_with("missing: late.mp4 (shard ") && missing[0].ends_with("in no manifest"),
        "{stdout}"
    );
    assert!(stdout.contains("2 manifests, 6 inputs: 4 done, 1 failed, 1 missing"), "{stdout}");
    assert!(stderr.starts_with("error: ") && stderr.lines().count() == 1, "{stderr}");

    // Without --inputs the late clip is unknown: only the failure is left to report.
    let (ok, stdout, _) = report(&[arg(&out)]);
    assert!(!ok && stdout.contains("5 inputs: 4 done, 1 failed, 0 missing"), "{stdout}");

    // Fix the broken clip and re-run both shards: the failure is retried, the late clip taken, all done.
    std::fs::copy(inputs.join("a.mp4"), inputs.join("broken.mp4")).unwrap();
    assert!(shard(&inputs, &out, "0/2") && shard(&inputs, &out, "1/2"));
    let (ok, stdout, stderr) = report(&[arg(&out), "--inputs", arg(&inputs)]);
    assert!(ok && stdout.contains("6 inputs: 6 done, 0 failed, 0 missing"), "{stdout}{stderr}");
}

/// Manifests written by hand in the documented format (src/video/manifest.rs), not by a worker.
#[test]
fn pending_records_and_absent_shards_count_as_missing() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path();
    let line = |key: &str, status: &str, error: &str| {
        format!(
            r#"{{"key":"{key}","input":"/in/{key}","output":"{key}","status":"{status}","frames":3,"fps":30.0,"error":{error}}}"#
        )
    };
    let shard0 = [
        line("a.mp4", "ok", "null"),
        line("b.mp4", "failed", r#""/in/b.mp4: decoder gave up""#),
        line("c.mp4", "pending", "null"),
        line("d.mp4", "skipped", "null"),
    ]
    .join("\n");
    std::fs::write(out.join(".stylestream-manifest-0-of-3.jsonl"), shard0 + "\n").unwrap();
    std::fs::write(out.join(".stylestream-manifest-1-of-3.jsonl"), line("e.mp4", "ok", "null") + "\n")
        .unwrap();
    for name in ["a.mp4", "e.mp4"] {
        std::fs::write(out.join(name), b"video").unwrap();
    }
    let (ok, stdout, _) = report(&[arg(out)]);
    assert!(!ok, "{stdout}");
    let expected = [
        "failed: /in/b.mp4 (shard 0/3): /in/b.mp4: decoder gave up",
        "missing: c.mp4 (shard 0/3): assigned, never finished",
        "missing: d.mp4 (shard 0/3): recorded as done, but d.mp4 is gone",
        "missing: shard 2/3: no manifest (the worker never started, or wrote elsewhere)",
    ];
    let listed: Vec<&str> = stdout.lines().filter(|l| !l.contains(" manifests, ")).collect();
    assert_eq!(listed, expected, "{stdout}");
    assert!(
        stdout.contains("2 manifests, 5 inputs: 2 done, 1 failed, 2 missing, missing manifests: 1"),
        "{stdout}"
    );
}

#[test]
fn a_folder_without_manifests_or_a_broken_one_is_a_one_line_error() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, _, stderr) = report(&[arg(dir.path())]);
    assert!(!ok && stderr.lines().count() == 1 && stderr.contains("no .stylestream-manifest-"), "{stderr}");
    let manifest = dir.path().join(".stylestream-manifest-0-of-1.jsonl");
    std::fs::write(&manifest, "{\"key\":\"a.mp4\"}\n").unwrap();
    let (ok, _, stderr) = report(&[arg(dir.path())]);
    assert!(!ok && stderr.lines().count() == 1, "{stderr}");
    assert!(stderr.contains(".stylestream-manifest-0-of-1.jsonl: line 1: not a manifest record"), "{stderr}");
}
