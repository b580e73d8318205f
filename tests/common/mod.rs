//! Shared helpers of the integration tests: the golden fixtures' image formula, fixture loading,
//! relative L2 error.
#![allow(dead_code)] // each test binary uses a different subset

#[cfg(feature = "media")]
pub mod clips;
#[cfg(feature = "media")]
pub mod media;
pub mod train;

use std::collections::HashMap;
use std::path::PathBuf;

use candle_core::{DType, Device, Result, Shape, Tensor};
use candle_nn::{Init, VarBuilder};
use stylestream::checkpoint::formula;

/// The repository root: where the tests were built, or `STYLESTREAM_TEST_ROOT` for prebuilt test
/// binaries run from another checkout (the GPU machine, benches/gpu/run.sh).
fn root() -> PathBuf {
    std::env::var_os("STYLESTREAM_TEST_ROOT")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from)
}

pub fn fixture(rel: &str) -> PathBuf {
    root().join("tests/fixtures").join(rel)
}

/// Runs the `stylestream` binary. candle appends a backtrace to errors when RUST_BACKTRACE is set; the
/// tests check the one-line messages users see, so it is unset here.
pub fn stylestream(args: &[&str]) -> std::process::Output {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_stylestream"));
    cmd.args(args).env_remove("RUST_BACKTRACE").env_remove("RUST_LIB_BACKTRACE");
    cmd.output().expect("binary runs")
}

/// A run that failed as users should see it: non-zero exit, one line on stderr naming `mentions`, no
/// panic.
pub fn assert_clean_failure(o: &std::process::Output, mentions: &str) {
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "expected failure: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "one line expected: {err}");
    assert!(err.contains(mentions) && !err.contains("panicked"), "should name {mentions}: {err}");
}

/// A path as a command-line argument.
pub fn arg(path: &std::path::Path) -> &str {
    path.to_str().expect("test paths are UTF-8")
}

/// Files of the shared folder that sits beside the repository (golden data too large to copy).
pub fn shared(rel: &str) -> PathBuf {
    root().join("../shared").join(rel)
}

/// The golden tensors of one case (`s64`, `s128`, `s256`, `s128_realA2K`).
pub fn golden(case: &str) -> HashMap<String, Tensor> {
    let path = fixture(&format!("stya2k/golden_{case}.safetensors"));
    candle_core::safetensors::load(&path, &Device::Cpu).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `||a - b|| / ||b||`.
pub fn rel_l2(a: &Tensor, b: &Tensor) -> f64 {
    assert_eq!(a.dims(), b.dims(), "shapes differ");
    let a = a.to_dtype(DType::F64).unwrap();
    let b = b.to_dtype(DType::F64).unwrap();
    let num = (&a - &b).unwrap().sqr().unwrap().sum_all().unwrap().to_scalar::<f64>().unwrap();
    let den = b.sqr().unwrap().sum_all().unwrap().to_scalar::<f64>().unwrap();
    (num / den).sqrt()
}

/// Which of the two golden images (shared/docs/stya2k.md, "Deterministic weights and images").
#[derive(Clone, Copy)]
pub enum GoldenImage {
    Content,
    Style,
}

/// The golden image of size `h x w` as `[1, 3, h, w]`: channel formulas in f64 over normalised
/// coordinates, clipped to [0, 1], rounded once to f32.
pub fn golden_image(which: GoldenImage, h: usize, w: usize) -> Tensor {
    let mut data = vec![0f32; 3 * h * w];
    for y in 0..h {
        for x in 0..w {
            let yn = (y as f64 / (h.max(2) - 1) as f64).clamp(0.0, 1.0);
            let xn = (x as f64 / (w.max(2) - 1) as f64).clamp(0.0, 1.0);
            let c = match which {
                GoldenImage::Content => {
                    let r = (xn - 0.4).hypot(yn - 0.55);
                    let step = if xn + 0.6 * yn > 0.8 { 0.85 } else { 0.2 };
                    [
                        0.5 + 0.5 * (18.0 * r).sin(),
                        step * (0.6 + 0.4 * (6.0 * yn).cos()),
                        0.5 + 0.5 * (7.0 * xn + 3.0 * (5.0 * yn).sin()).sin(),
                    ]
                }
                GoldenImage::Style => [
                    0.5 + 0.5 * (40.0 * (xn + 0.3 * yn)).sin(),
                    0.5 + 0.5 * (23.0 * yn).cos() * (17.0 * xn).sin(),
                    (-12.0 * ((xn - 0.7).powi(2) + (yn - 0.3).powi(2))).exp()
                        + 0.3 * (0.5 + 0.5 * (11.0 * (xn - yn)).sin()),
                ],
            };
            for (ch, v) in c.iter().enumerate() {
                data[ch * h * w + y * w + x] = v.clamp(0.0, 1.0) as f32;
            }
        }
    }
    Tensor::from_vec(data, (1, 3, h, w), &Device::Cpu).unwrap()
}

/// Formula weights with some tensors replaced (e.g. the real trained A2K).
pub fn formula_with(overrides: HashMap<String, Tensor>, seed: u64) -> VarBuilder<'static> {
    VarBuilder::from_backend(Box::new(Overlay { overrides, seed }), DType::F32, Device::Cpu)
}

struct Overlay {
    overrides: HashMap<String, Tensor>,
    seed: u64,
}

impl candle_nn::var_builder::SimpleBackend for Overlay {
    fn get(&self, shape: Shape, name: &str, _: Init, dtype: DType, dev: &Device) -> Result<Tensor> {
        match self.overrides.get(name) {
            Some(t) => {
                assert_eq!(t.shape(), &shape, "override `{name}`");
                t.to_dtype(dtype)?.to_device(dev)
            }
            None => {
                let key = name.replacen('.', ":", 1);
                Tensor::from_vec(formula::values(&key, shape.dims(), self.seed), shape, dev)?.to_dtype(dtype)
            }
        }
    }
    fn get_unchecked(&self, name: &str, _: DType, _: &Device) -> Result<Tensor> {
        candle_core::bail!("`{name}` needs a shape")
    }
    fn contains_tensor(&self, _: &str) -> bool {
        true
    }
}
