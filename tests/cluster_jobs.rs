//! The example job files in pipelines/cluster/: the Slurm array script passes `bash -n`, keeps its
//! #SBATCH lines where sbatch reads them and hands the binary a command line the CLI accepts; the
//! Kubernetes Indexed Job parses as YAML, runs the binary from its shared volume with a command line
//! the CLI accepts, and tells the binary the same shard count as its completions.
#![cfg(feature = "media")]
mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::Command;

use clap::Parser;
use serde_json::Value;
use stylestream::cli::{Cli, Command as Subcommand};

fn job_file(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("pipelines/cluster").join(name)
}

/// Parses `args` (without the program name) as `stylestream` would; the `video` command's inputs and
/// output.
fn video_command(args: &[String]) -> (Vec<PathBuf>, PathBuf) {
    let argv = std::iter::once("stylestream".to_string()).chain(args.iter().cloned());
    match Cli::try_parse_from(argv).unwrap_or_else(|e| panic!("{args:?}: {e}")).command {
        Subcommand::Video(video) => (video.inputs, video.output),
        other => panic!("expected `video`, got {other:?}"),
    }
}

#[test]
fn slurm_array_script_is_valid_and_runs_the_binary_from_the_shared_volume() {
    let script = job_file("slurm-array.sbatch");
    let syntax = Command::new("bash").arg("-n").arg(&script).output().unwrap();
    assert!(syntax.status.success(), "{}", String::from_utf8_lossy(&syntax.stderr));
    // sbatch stops reading #SBATCH options at the first line that is neither blank nor a comment.
    let text = std::fs::read_to_string(&script).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let first_command = lines.iter().position(|l| !l.trim().is_empty() && !l.starts_with('#')).unwrap();
    let last_option = lines.iter().rposition(|l| l.starts_with("#SBATCH")).unwrap();
    assert!(last_option < first_command, "an #SBATCH line after the first command is ignored by sbatch");
    assert!(text.contains("#SBATCH --array=0-"), "the array numbers shards from 0");

    // Run it with a stand-in binary that records its arguments.
    let shared = tempfile::tempdir().unwrap();
    std::fs::create_dir(shared.path().join("bin")).unwrap();
    let fake = shared.path().join("bin/stylestream");
    std::fs::write(&fake, "#!/bin/sh\nprintf '%s\\n' \"$@\" > \"$(dirname \"$0\")/args\"\n").unwrap();
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let o = Command::new("bash")
        .arg(&script)
        .env("STYLESTREAM_SHARED", shared.path())
        .env("SLURM_ARRAY_TASK_ID", "3")
        .env("SLURM_ARRAY_TASK_COUNT", "16")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let args: Vec<String> =
        std::fs::read_to_string(shared.path().join("bin/args")).unwrap().lines().map(String::from).collect();
    let (inputs, output) = video_command(&args);
    assert_eq!(inputs, [shared.path().join("in")]);
    assert_eq!(output, shared.path().join("out"));
}

#[test]
fn indexed_job_parses_and_matches_its_shard_count() {
    let text = std::fs::read_to_string(job_file("indexed-job.yaml")).unwrap();
    let job: Value = serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("indexed-job.yaml: {e}"));
    assert_eq!(job["apiVersion"], "batch/v1");
    assert_eq!(job["kind"], "Job");
    let spec = &job["spec"];
    assert_eq!(spec["completionMode"], "Indexed");
    let pod = &spec["template"]["spec"];
    // backoffLimitPerIndex needs it.
    assert_eq!(pod["restartPolicy"], "Never");
    let container = &pod["containers"][0];
    let count = container["env"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "STYLESTREAM_SHARD_COUNT")
        .and_then(|e| e["value"].as_str())
        .expect("STYLESTREAM_SHARD_COUNT is set");
    assert_eq!(spec["completions"].as_u64().map(|n| n.to_string()).as_deref(), Some(count));

    let command: Vec<String> =
        container["command"].as_array().unwrap().iter().map(|a| a.as_str().unwrap().to_string()).collect();
    let (inputs, output) = video_command(&command[1..]);
    // The binary, the inputs and the outputs all lie on a mounted volume that the pod declares.
    let mounts = container["volumeMounts"].as_array().unwrap();
    let volumes = pod["volumes"].as_array().unwrap();
    for path in [PathBuf::from(&command[0]), inputs[0].clone(), output] {
        let mount = mounts
            .iter()
            .find(|m| path.starts_with(m["mountPath"].as_str().unwrap()))
            .unwrap_or_else(|| panic!("{} is on no mounted volume", path.display()));
        assert!(
            volumes.iter().any(|v| v["name"] == mount["name"]),
            "volume {} is not declared",
            mount["name"]
        );
    }
}
