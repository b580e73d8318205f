//! Synthetic camera motion over real photos for the temporal tests: every frame is rendered by exact
//! bilinear resampling of one photo (the "scene"), so the motion between frames, hence the flow, is known.
#![allow(dead_code)] // each test file uses its own subset

use std::path::PathBuf;

use stylestream::temporal::{Flow, Image};

pub fn fixture(relative: &str) -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/fixtures/")).join(relative)
}

/// A fixture photo as `[H, W, 3]` in [0, 1] (grayscale photos replicated to RGB).
pub fn photo(name: &str) -> Image {
    let path = fixture(&format!("images/{name}"));
    let rgb = image::open(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).to_rgb8();
    let (w, h) = (rgb.width() as usize, rgb.height() as usize);
    Image::from_rgb8(w, h, 3 * w, rgb.as_raw()).unwrap()
}

/// The scene (bilinear interpolant of `scene`) sampled at `at(x, y)` for each pixel of a `w x h` frame.
/// Panics if a sample falls outside the scene: test scenes are chosen to contain every frame.
pub fn render(scene: &Image, w: usize, h: usize, at: impl Fn(f32, f32) -> (f32, f32)) -> Image {
    let mut data = Vec::with_capacity(w * h * 3);
    for y in 0..h {
        for x in 0..w {
            let (sx, sy) = at(x as f32, y as f32);
            assert!(
                sx >= 0.0 && sy >= 0.0 && sx <= (scene.width - 1) as f32 && sy <= (scene.height - 1) as f32
            );
            let (x0, y0) = (sx.floor() as usize, sy.floor() as usize);
            let (x1, y1) = ((x0 + 1).min(scene.width - 1), (y0 + 1).min(scene.height - 1));
            let (fx, fy) = (sx - x0 as f32, sy - y0 as f32);
            let px = |x: usize, y: usize, c: usize| scene.data[3 * (y * scene.width + x) + c];
            for c in 0..3 {
                data.push(
                    (1.0 - fx) * (1.0 - fy) * px(x0, y0, c)
                        + fx * (1.0 - fy) * px(x1, y0, c)
                        + (1.0 - fx) * fy * px(x0, y1, c)
                        + fx * fy * px(x1, y1, c),
                );
            }
        }
    }
    Image::new(w, h, data).unwrap()
}

/// A `w x h` window of the scene whose top-left corner is at scene position `(ox, oy)`. Between windows
/// at `o1` and `o2` the content moves by `o1 - o2`: that is `F_{1->2}` at every pixel.
pub fn window(scene: &Image, w: usize, h: usize, ox: f32, oy: f32) -> Image {
    render(scene, w, h, |x, y| (x + ox, y + oy))
}

/// The window at `(ox, oy)` magnified by `zoom` about its centre `c`: frame pixel `q` shows scene
/// position `o + c + (q - c) / zoom`. From the unzoomed window to this one, `F(p) = (zoom - 1)(p - c)`.
pub fn zoomed(scene: &Image, w: usize, h: usize, ox: f32, oy: f32, zoom: f32) -> Image {
    let (cx, cy) = ((w - 1) as f32 / 2.0, (h - 1) as f32 / 2.0);
    render(scene, w, h, |x, y| (ox + cx + (x - cx) / zoom, oy + cy + (y - cy) / zoom))
}

/// The flow of [`zoomed`]: `(zoom - 1)(p - c)`.
pub fn zoom_flow(w: usize, h: usize, zoom: f32) -> Flow {
    let (cx, cy) = ((w - 1) as f32 / 2.0, (h - 1) as f32 / 2.0);
    let data = (0..h).flat_map(|y| {
        (0..w).flat_map(move |x| [(zoom - 1.0) * (x as f32 - cx), (zoom - 1.0) * (y as f32 - cy)])
    });
    Flow::new(w, h, data.collect()).unwrap()
}

/// `(mean, median)` end-point error of `flow` against `truth` over the pixels `keep` accepts, and how
/// many there were.
pub fn epe(flow: &Flow, truth: &Flow, keep: impl Fn(usize, usize) -> bool) -> (f64, f64, usize) {
    let mut errors = Vec::new();
    for y in 0..flow.height {
        for x in 0..flow.width {
            if keep(x, y) {
                let ((u, v), (gu, gv)) = (flow.at(x, y), truth.at(x, y));
                errors.push(f64::from((u - gu).hypot(v - gv)));
            }
        }
    }
    errors.sort_by(f64::total_cmp);
    let n = errors.len();
    let median = if n % 2 == 1 { errors[n / 2] } else { (errors[n / 2 - 1] + errors[n / 2]) / 2.0 };
    (errors.iter().sum::<f64>() / n as f64, median, n)
}

/// Deterministic noise in [-amplitude, amplitude] (xorshift; no rand dependency for tests).
pub fn noise(len: usize, amplitude: f32, seed: u64) -> Vec<f32> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            ((state >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * amplitude
        })
        .collect()
}

/// `image + noise`, clamped to [0, 1].
pub fn noisy(image: &Image, amplitude: f32, seed: u64) -> Image {
    let data =
        image.data.iter().zip(noise(image.data.len(), amplitude, seed)).map(|(v, n)| (v + n).clamp(0.0, 1.0));
    Image::new(image.width, image.height, data.collect()).unwrap()
}
