//! Helpers of the training tests: test pictures and image folders, directional finite differences,
//! running `stylestream` with string arguments, reading loss.csv.
use std::path::Path;

use candle_core::{DType, Device, Tensor, Var};
use stylestream::checkpoint::formula;

/// A deterministic test image, `[1, 3, s, s]` in [0, 1].
pub fn picture(seed: u64, s: usize) -> Tensor {
    let v: Vec<f32> =
        (0..3 * s * s).map(|i| ((formula::uniform("img", seed, i as u64) + 1.0) / 2.0) as f32).collect();
    Tensor::from_vec(v, (1, 3, s, s), &Device::Cpu).unwrap()
}

/// Checks `<grad f(x), u>` against the central difference `(f(x + e u) - f(x - e u)) / 2e` along two
/// random directions `u`.
pub fn check_directional(name: &str, x: &Tensor, f: &dyn Fn(&Tensor) -> Tensor, eps: f64, tol: f64) {
    let var = Var::from_tensor(x).unwrap();
    let grad = f(var.as_tensor()).backward().unwrap().get(var.as_tensor()).unwrap().clone();
    for k in 0..2 {
        let n = x.elem_count();
        let u: Vec<f32> = (0..n).map(|i| formula::uniform("dir", k, i as u64) as f32).collect();
        let u = Tensor::from_vec(u, x.shape(), &Device::Cpu).unwrap().to_dtype(x.dtype()).unwrap();
        let scalar = |t: Tensor| t.to_dtype(DType::F64).unwrap().to_scalar::<f64>().unwrap();
        let analytic = scalar((&grad * &u).unwrap().sum_all().unwrap());
        let at = |s: f64| scalar(f(&(x + (&u * s).unwrap()).unwrap()));
        let numeric = (at(eps) - at(-eps)) / (2.0 * eps);
        let rel = (analytic - numeric).abs() / numeric.abs().max(1e-12);
        assert!(rel < tol, "{name}: analytic {analytic} vs finite difference {numeric} (rel {rel:.2e})");
    }
}

/// Writes `n` small PNGs into `dir` (stripes, gradients: different colour statistics each).
pub fn images(dir: &Path, n: u32, size: u32, style: bool) {
    std::fs::create_dir_all(dir).unwrap();
    for i in 0..n {
        let img = image::RgbImage::from_fn(size, size, |x, y| {
            if style {
                image::Rgb([
                    if (x / (4 + i)) % 2 == 0 { 230 } else { 20 },
                    40 + 60 * i as u8,
                    if (y / 6) % 2 == 0 { 200 } else { 30 },
                ])
            } else {
                image::Rgb([(x * 255 / size) as u8, (y * 255 / size) as u8, (60 * i + (x + y) % 50) as u8])
            }
        });
        img.save(dir.join(format!("{i}.png"))).unwrap();
    }
}

/// Runs `stylestream` with `args`.
pub fn run(args: &[String]) -> std::process::Output {
    super::stylestream(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

/// `(step, total)` rows of a loss.csv.
pub fn losses(path: &Path) -> Vec<(u64, f64)> {
    column(path, "total")
}

/// `(step, value)` rows of the named loss.csv column.
pub fn column(path: &Path, name: &str) -> Vec<(u64, f64)> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let at = header.iter().position(|h| *h == name).unwrap_or_else(|| panic!("no column `{name}`"));
    lines
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (f[0].parse().unwrap(), f[at].parse().unwrap())
        })
        .collect()
}
