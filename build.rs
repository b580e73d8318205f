//! Compiles `kernels/*.cu` to PTX with nvcc, only when feature `cuda` is on; without it this does nothing,
//! so the default build needs no CUDA at all. Never needs (or asks for) a GPU: the target is
//! `CUDA_COMPUTE_CAP` (default 90, Hopper), and the output goes to `$OUT_DIR/<name>.ptx`, embedded by
//! `src/ops/*/cuda.rs` with `include_str!`.
//!
//! Why PTX and not a cubin: the modules are loaded through candle's own custom-kernel loader
//! (`CudaDevice::get_or_load_custom_func`, which takes PTX text), next to candle's kernels, which are PTX
//! too. The driver JIT-compiles PTX only up to its own CUDA release's PTX ISA, so the toolkit must not be
//! newer than the driver that runs the binary: the device machine has driver 580 (CUDA 13.0, PTX ISA
//! 9.0), hence the CUDA 13.0 toolchain `.ci/install` pins. A newer PTX ISA only warns here, since a newer
//! driver elsewhere loads it fine.
use std::env;
use std::path::{Path, PathBuf};
use std::process::{exit, Command};

/// PTX ISA that driver 580 (CUDA 13.0), on the device machine, loads.
const DEVICE_PTX_ISA: (u32, u32) = (9, 0);

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-changed=kernels");
    for var in ["CUDA_COMPUTE_CAP", "CUDA_HOME", "NVCC"] {
        println!("cargo::rerun-if-env-changed={var}");
    }
    if env::var_os("CARGO_FEATURE_CUDA").is_none() {
        return;
    }
    let cap = env::var("CUDA_COMPUTE_CAP").unwrap_or_else(|_| "90".into());
    if cap.is_empty() || !cap.chars().all(|c| c.is_ascii_digit()) {
        fail(&format!("CUDA_COMPUTE_CAP={cap:?}: expected digits such as 90 (sm_90)"));
    }
    let nvcc = nvcc();
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let mut sources: Vec<PathBuf> = std::fs::read_dir("kernels")
        .unwrap_or_else(|e| fail(&format!("kernels/: {e}")))
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "cu"))
        .collect();
    sources.sort();
    for source in &sources {
        let ptx = out_dir.join(source.with_extension("ptx").file_name().expect("a .cu file has a name"));
        let status = Command::new(&nvcc)
            .args(["-ptx", &format!("-arch=sm_{cap}"), "-O3", "-std=c++17", "-lineinfo", "-Ikernels", "-o"])
            .arg(&ptx)
            .arg(source)
            .status()
            .unwrap_or_else(|e| fail(&format!("running {}: {e}", nvcc.display())));
        if !status.success() {
            fail(&format!("nvcc failed on {} ({status})", source.display()));
        }
        warn_if_newer_than_device(&ptx);
    }
}

/// `$NVCC`, else `$CUDA_HOME/bin/nvcc`, else `nvcc` on `PATH`; a clear error if none runs.
fn nvcc() -> PathBuf {
    let candidate = env::var_os("NVCC").map(PathBuf::from).unwrap_or_else(|| {
        env::var_os("CUDA_HOME")
            .map(|home| Path::new(&home).join("bin/nvcc"))
            .filter(|p| p.exists())
            .unwrap_or_else(|| PathBuf::from("nvcc"))
    });
    match Command::new(&candidate).arg("--version").output() {
        Ok(out) if out.status.success() => candidate,
        _ => fail(&format!(
            "feature `cuda` needs nvcc, and `{}` does not run. Install the CUDA 13.0 toolchain \
             (`bash .ci/install`) and `source .ci/cuda-env`, or set CUDA_HOME or NVCC \
             (shared/docs/gpu.md); build without `--features cuda` for the CPU-only program.",
            candidate.display()
        )),
    }
}

fn warn_if_newer_than_device(ptx: &Path) {
    let text = std::fs::read_to_string(ptx).unwrap_or_default();
    let isa = text
        .lines()
        .find_map(|l| l.trim().strip_prefix(".version "))
        .and_then(|v| v.trim().split_once('.'))
        .and_then(|(major, minor)| Some((major.parse::<u32>().ok()?, minor.parse::<u32>().ok()?)));
    if let Some(isa) = isa.filter(|isa| *isa > DEVICE_PTX_ISA) {
        println!(
            "cargo::warning={}: PTX ISA {}.{} is newer than driver 580 (CUDA 13.0) loads; use the CUDA 13.0 \
             toolchain of .ci/install for the device machine",
            ptx.display(),
            isa.0,
            isa.1
        );
    }
}

fn fail(msg: &str) -> ! {
    eprintln!("error: {msg}");
    exit(1)
}
