//! Sharded batches (`video --shard K/N`, or the scheduler's variables): N workers cover every input
//! exactly once, each keeps a manifest, and a worker killed mid-way resumes without redoing anything.
//! The assignment is checked against FNV-1a written out a second time here.
#![cfg(feature = "media")]
mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime};

use common::arg;
use common::clips::make_clip;
use serde_json::Value;

/// Environment variables a worker is started with.
type Env<'a> = &'a [(&'a str, &'a str)];

const CLIPS: usize = 50;
const FRAMES: u64 = 3;

/// Variables a scheduler may have set around the test run: cleared so only the test's own count.
const SCHEDULER_VARS: [&str; 7] = [
    "SLURM_ARRAY_TASK_ID",
    "SLURM_ARRAY_TASK_COUNT",
    "SLURM_ARRAY_TASK_MIN",
    "SLURM_ARRAY_TASK_MAX",
    "SLURM_ARRAY_TASK_STEP",
    "JOB_COMPLETION_INDEX",
    "STYLESTREAM_SHARD_COUNT",
];

/// 50 tiny clips (32x24, 3 frames, no audio), made once and kept in the target's test folder.
fn clips() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("video_shard_clips");
        if !dir.join("complete").exists() {
            std::fs::create_dir_all(&dir).unwrap();
            for i in 0..CLIPS {
                make_clip(&dir.join(format!("clip-{i:02}.mp4")), 32, 24, 30, FRAMES as u32, false);
            }
            std::fs::write(dir.join("complete"), b"").unwrap();
        }
        dir
    })
}

fn clip_names() -> Vec<String> {
    (0..CLIPS).map(|i| format!("clip-{i:02}.mp4")).collect()
}

/// FNV-1a 64 (offset basis 0xcbf29ce484222325, prime 0x100000001b3) mod N, written apart from the crate's.
fn expected_shard(name: &str, count: u32) -> u32 {
    let hash =
        name.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ b as u64).wrapping_mul(0x100_0000_01b3));
    (hash % count as u64) as u32
}

fn stylestream(args: &[&str], env: Env) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_stylestream"));
    cmd.args(args).env_remove("RUST_BACKTRACE");
    for var in SCHEDULER_VARS {
        cmd.env_remove(var);
    }
    cmd.envs(env.iter().copied());
    cmd
}

fn run(args: &[&str], env: Env) -> Output {
    stylestream(args, env).output().expect("binary runs")
}

fn batch_args<'a>(inputs: &'a Path, out: &'a Path) -> Vec<&'a str> {
    vec!["video", arg(inputs), "-o", arg(out), "--model", "identity", "--preset", "ultrafast"]
}

/// The manifest's records by key; every line must be a JSON object.
fn manifest(out: &Path, index: u32, count: u32) -> BTreeMap<String, Value> {
    let path = out.join(format!(".stylestream-manifest-{index}-of-{count}.jsonl"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .map(|line| {
            let record: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{line}: {e}"));
            (record["key"].as_str().unwrap().to_string(), record)
        })
        .collect()
}

fn outputs(out: &Path) -> BTreeSet<String> {
    std::fs::read_dir(out)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|name| name.ends_with(".mp4"))
        .collect()
}

fn modified(path: &Path) -> SystemTime {
    std::fs::metadata(path).unwrap().modified().unwrap()
}

#[test]
fn shards_cover_every_input_exactly_once() {
    let inputs = clips();
    let started = Instant::now();
    for count in [1u32, 3, 7] {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let mut taken = BTreeSet::new();
        for index in 0..count {
            let shard = format!("{index}/{count}");
            let mut args = batch_args(inputs, &out);
            // Two shards of 3 take their place from the scheduler instead: an Indexed Job's pod, and
            // the last task of a Slurm array numbered from 1.
            let env: Env = match (count, index) {
                (3, 1) => &[("JOB_COMPLETION_INDEX", "1"), ("STYLESTREAM_SHARD_COUNT", "3")],
                (3, 2) => &[
                    ("SLURM_ARRAY_TASK_ID", "3"),
                    ("SLURM_ARRAY_TASK_COUNT", "3"),
                    ("SLURM_ARRAY_TASK_MIN", "1"),
                    ("SLURM_ARRAY_TASK_MAX", "3"),
                ],
                _ => {
                    args.extend(["--shard", &shard]);
                    &[]
                }
            };
            let o = run(&args, env);
            let err = String::from_utf8_lossy(&o.stderr);
            assert!(o.status.success(), "shard {shard}: {err}");
            let records = manifest(&out, index, count);
            let assigned: BTreeSet<String> =
                clip_names().into_iter().filter(|name| expected_shard(name, count) == index).collect();
            assert_eq!(records.keys().cloned().collect::<BTreeSet<_>>(), assigned, "shard {shard}");
            for (key, record) in &records {
                assert_eq!(record["status"], "ok", "{key}: {record}");
                assert_eq!(record["frames"], FRAMES, "{key}");
                assert_eq!(record["output"], key.as_str(), "{key}");
            }
            // Nothing this shard was not assigned appeared, and nothing was taken twice.
            assert!(taken.is_disjoint(&assigned), "shard {shard} overlaps earlier shards");
            taken.extend(assigned);
            assert_eq!(outputs(&out), taken, "after shard {shard}");
        }
        assert_eq!(taken, clip_names().into_iter().collect::<BTreeSet<_>>(), "N = {count}");
    }
    eprintln!("1 + 3 + 7 shard runs over {CLIPS} clips: {:.1} s", started.elapsed().as_secs_f64());
}

#[test]
fn a_killed_shard_resumes_without_redoing_finished_outputs() {
    let inputs = clips();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let mut args = batch_args(inputs, &out);
    args.extend(["--shard", "0/1"]);
    let started = Instant::now();
    let mut child = stylestream(&args, &[]).stderr(Stdio::null()).spawn().unwrap();
    let path = out.join(".stylestream-manifest-0-of-1.jsonl");
    loop {
        let finished = std::fs::read_to_string(&path).map_or(0, |t| t.matches(r#""status":"ok""#).count());
        if finished >= 5 {
            child.kill().unwrap(); // SIGKILL: no chance to tidy up
            break;
        }
        assert!(child.try_wait().unwrap().is_none(), "the batch ended before it could be killed");
        assert!(started.elapsed() < Duration::from_secs(120), "no progress in the manifest");
        std::thread::sleep(Duration::from_millis(5));
    }
    child.wait().unwrap();
    // The manifest left behind is whole: every input, finished ones ok, the rest still pending.
    let before = manifest(&out, 0, 1);
    assert_eq!(before.len(), CLIPS);
    let finished: BTreeMap<&String, SystemTime> = before
        .iter()
        .filter(|(_, r)| r["status"] == "ok")
        .map(|(key, _)| (key, modified(&out.join(key))))
        .collect();
    let pending = before.values().filter(|r| r["status"] == "pending").count();
    assert_eq!(finished.len() + pending, CLIPS, "only ok and pending after a kill");
    assert!(finished.len() >= 5 && pending > 0, "{} finished, {pending} pending", finished.len());

    let o = run(&args, &[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let after = manifest(&out, 0, 1);
    assert_eq!(after.len(), CLIPS);
    for (key, record) in &after {
        match finished.get(key) {
            Some(mtime) => {
                assert_eq!(record["status"], "skipped", "{key} was finished before the kill");
                assert_eq!(record["frames"], FRAMES, "{key}: the earlier run's numbers are kept");
                assert_eq!(modified(&out.join(key)), *mtime, "{key} was rewritten");
            }
            // The file in progress at the kill may have been renamed into place just before it.
            None => assert!(record["status"] == "ok" || record["status"] == "skipped", "{key}: {record}"),
        }
    }
    assert_eq!(outputs(&out), clip_names().into_iter().collect::<BTreeSet<_>>());
    eprintln!(
        "{} finished before the kill; kill + resume took {:.1} s",
        finished.len(),
        started.elapsed().as_secs_f64()
    );
}

#[test]
fn an_output_cut_short_by_an_interrupt_is_redone_and_failures_retried() {
    let dir = tempfile::tempdir().unwrap();
    let inputs = dir.path().join("in");
    let out = dir.path().join("out");
    std::fs::create_dir(&inputs).unwrap();
    for name in ["clip-00.mp4", "clip-01.mp4"] {
        std::fs::copy(clips().join(name), inputs.join(name)).unwrap();
    }
    std::fs::write(inputs.join("broken.mp4"), b"not a video").unwrap();
    let args = batch_args(&inputs, &out);
    let o = run(&args, &[]);
    assert!(!o.status.success(), "a bad input fails the batch");
    let first = manifest(&out, 0, 1);
    assert_eq!(first["broken.mp4"]["status"], "failed");
    assert!(first["broken.mp4"]["error"].as_str().unwrap().contains("broken.mp4"), "{}", first["broken.mp4"]);
    // What the batch records when an interrupt cuts clip-00 short: failed, its partial output kept.
    let text = std::fs::read_to_string(out.join(".stylestream-manifest-0-of-1.jsonl")).unwrap();
    let cut = text.replacen(
        r#""output":"clip-00.mp4","status":"ok""#,
        r#""output":"clip-00.mp4","status":"failed""#,
        1,
    );
    assert_ne!(cut, text);
    std::fs::write(out.join(".stylestream-manifest-0-of-1.jsonl"), cut).unwrap();
    std::fs::write(out.join("clip-00.mp4"), b"partial").unwrap();
    let kept = modified(&out.join("clip-01.mp4"));
    // The broken file is fixed: the re-run retries it, redoes clip-00 and keeps clip-01.
    std::fs::copy(clips().join("clip-02.mp4"), inputs.join("broken.mp4")).unwrap();
    let o = run(&args, &[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let second = manifest(&out, 0, 1);
    assert_eq!(second["clip-00.mp4"]["status"], "ok");
    assert_ne!(std::fs::read(out.join("clip-00.mp4")).unwrap(), b"partial");
    assert_eq!(second["broken.mp4"]["status"], "ok");
    assert_eq!(second["clip-01.mp4"]["status"], "skipped");
    assert_eq!(modified(&out.join("clip-01.mp4")), kept);
}

#[test]
fn bad_shard_settings_are_one_line_errors_before_any_work() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let cases: [(&[&str], Env, &str); 4] = [
        (&["--shard", "3/3"], &[], "must be below N=3"),
        (&["--shard", "1of3"], &[], "expected K/N"),
        (&[], &[("JOB_COMPLETION_INDEX", "1")], "STYLESTREAM_SHARD_COUNT"),
        (
            &[],
            &[("JOB_COMPLETION_INDEX", "1"), ("SLURM_ARRAY_TASK_ID", "1"), ("SLURM_ARRAY_TASK_COUNT", "2")],
            "both",
        ),
    ];
    for (extra, env, expected) in cases {
        let mut args = batch_args(clips(), &out);
        args.extend(extra);
        let o = run(&args, env);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success() && err.contains(expected), "{extra:?} {env:?}: {err}");
        assert!(!out.exists(), "{extra:?} {env:?}: nothing may be written");
    }
}
