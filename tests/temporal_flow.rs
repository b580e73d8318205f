//! Optical flow accuracy against known motion: synthetic pans and a zoom over a real photo (ground truth
//! by construction) and the Middlebury motorcycle stereo pair (ground-truth disparity).
// OpenCV (flow) is a media library: these tests build with the `media` feature, like the module.
#![cfg(feature = "media")]
mod temporal_scenes;

use stylestream::temporal::{DisPreset, Flow, FlowEstimator, FlowMethod, Image};
use temporal_scenes::{epe, fixture, photo, window, zoom_flow, zoomed};

/// Pixels this close to the frame edge are excluded from the synthetic EPE: DIS and Farneback both
/// degrade where their patches/windows leave the frame, which is not what these tests measure.
const BORDER: usize = 16;
const W: usize = 256;
const H: usize = 192;

/// Interior pixels whose true destination is also an interior pixel (so neither end is occluded).
fn interior(truth: &Flow) -> impl Fn(usize, usize) -> bool + '_ {
    move |x, y| {
        let (u, v) = truth.at(x, y);
        let inside = |p: f32, n: usize| p >= BORDER as f32 && p < (n - BORDER) as f32;
        inside(x as f32, W) && inside(y as f32, H) && inside(x as f32 + u, W) && inside(y as f32 + v, H)
    }
}

fn methods() -> [FlowMethod; 4] {
    [
        FlowMethod::Dis(DisPreset::Medium),
        FlowMethod::Dis(DisPreset::Fast),
        FlowMethod::Dis(DisPreset::UltraFast),
        FlowMethod::Farneback,
    ]
}

/// Scenes with their ground truth `F_{1->2}`: pans by 3 px, 1.5 px and 0.8 px (integer and sub-pixel
/// components) and a 4% zoom (0 px at the centre to 6.4 px at the corners) over two photos with flat
/// regions (sky, suit, table) and one texture.
fn scenes() -> Vec<(String, Image, Image, Flow)> {
    let mut out = Vec::new();
    for name in ["astronaut.png", "coffee.png", "gravel.png"] {
        let scene = photo(name);
        let (ox, oy) = (100.0, 80.0);
        let a = window(&scene, W, H, ox, oy);
        for (dx, dy) in [(3.0, -2.0), (1.5, 0.25), (-0.4, 0.7)] {
            // The camera moves by (dx, dy): content moves by -(dx, dy).
            let b = window(&scene, W, H, ox + dx, oy + dy);
            out.push((format!("{name} pan ({dx}, {dy})"), a.clone(), b, Flow::uniform(W, H, -dx, -dy)));
        }
        let zoom = 1.04;
        out.push((
            format!("{name} zoom x{zoom}"),
            a.clone(),
            zoomed(&scene, W, H, ox, oy, zoom),
            zoom_flow(W, H, zoom),
        ));
    }
    out
}

/// Bounds on the mean EPE. 0.5 px is the requirement for the default estimator (DIS MEDIUM). The faster
/// presets trade accuracy for speed (measured here: FAST up to 0.47 px, ULTRAFAST up to 0.73 px).
/// Farneback has no smoothness term: in flat regions it stays at zero motion (median EPE 0.005 px but
/// mean 1.08 px on the astronaut's 3 px pan), so it is held to 0.5 px on the texture only.
fn bound(method: FlowMethod, scene: &str) -> f64 {
    match method {
        FlowMethod::Dis(DisPreset::Medium) => 0.5,
        FlowMethod::Dis(DisPreset::Fast) => 0.6,
        FlowMethod::Dis(DisPreset::UltraFast) => 1.0,
        FlowMethod::Farneback if scene.starts_with("gravel") => 0.5,
        FlowMethod::Farneback => 1.5,
    }
}

#[test]
fn synthetic_pans_and_zoom_are_recovered() {
    let scenes = scenes();
    let mut failures = Vec::new();
    println!("interior = pixels at least {BORDER} px from every edge in both frames");
    for method in methods() {
        let mut estimator = FlowEstimator::new(method).unwrap();
        for (name, a, b, truth) in &scenes {
            let flow = estimator.compute(a, b).unwrap();
            let (mean, median, n) = epe(&flow, truth, interior(truth));
            let bound = bound(method, name);
            println!(
                "{method}: {name}: EPE mean {mean:.3} px (bound {bound}), median {median:.3} px, {n} pixels"
            );
            if mean >= bound {
                failures.push(format!("{method}: {name}: mean {mean:.3} >= {bound}"));
            }
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

/// Reads a single-channel PFM: `Pf`, `W H`, scale (negative = little-endian), rows bottom to top.
fn read_pfm(path: &std::path::Path) -> (usize, usize, Vec<f32>) {
    let bytes = std::fs::read(path).unwrap();
    let mut fields = Vec::new();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if b.is_ascii_whitespace() {
            if i > start {
                fields.push(std::str::from_utf8(&bytes[start..i]).unwrap().to_string());
            }
            start = i + 1;
            if fields.len() == 4 {
                break;
            }
        }
    }
    assert_eq!(fields[0], "Pf", "single-channel PFM expected");
    let (w, h): (usize, usize) = (fields[1].parse().unwrap(), fields[2].parse().unwrap());
    let scale: f32 = fields[3].parse().unwrap();
    let body = &bytes[start..];
    assert_eq!(body.len(), w * h * 4);
    let value = |c: &[u8]| {
        let b = [c[0], c[1], c[2], c[3]];
        if scale < 0.0 {
            f32::from_le_bytes(b)
        } else {
            f32::from_be_bytes(b)
        }
    };
    let rows: Vec<Vec<f32>> =
        body.chunks_exact(4 * w).map(|row| row.chunks_exact(4).map(value).collect()).collect();
    (w, h, rows.into_iter().rev().flatten().collect())
}

fn load(path: std::path::PathBuf) -> Image {
    let rgb = image::open(&path).unwrap().to_rgb8();
    let (w, h) = (rgb.width() as usize, rgb.height() as usize);
    Image::from_rgb8(w, h, 3 * w, rgb.as_raw()).unwrap()
}

/// Reference (fixtures README): OpenCV DIS MEDIUM on the grayscale pair, EPE mean 2.63 px, median 0.41 px
/// over the pixels with known disparity. Margins: +0.17 px on the mean, +0.09 px on the median.
#[test]
fn middlebury_motorcycle_matches_the_reference() {
    let left = load(fixture("flow/motorcycle_left.png"));
    let right = load(fixture("flow/motorcycle_right.png"));
    let (w, h, disparity) = read_pfm(&fixture("flow/motorcycle_disp_left.pfm"));
    assert_eq!((w, h), left.size());
    // Left pixel (x, y) is right pixel (x - d, y): F_{left->right} = (-d, 0).
    let truth = Flow::new(w, h, disparity.iter().flat_map(|&d| [-d, 0.0]).collect()).unwrap();
    let known = |x: usize, y: usize| disparity[y * w + x].is_finite();
    for method in methods() {
        let flow = FlowEstimator::new(method).unwrap().compute(&left, &right).unwrap();
        let (mean, median, n) = epe(&flow, &truth, known);
        println!("{method}: Middlebury motorcycle {w}x{h}: EPE mean {mean:.3} px, median {median:.3} px over {n} known pixels");
        if method == FlowMethod::Dis(DisPreset::Medium) {
            assert!(
                mean <= 2.8 && median <= 0.5,
                "DIS MEDIUM: mean {mean}, median {median} vs reference 2.63 / 0.41"
            );
        }
    }
}

#[test]
fn tiny_or_mismatched_frames_are_errors_not_panics() {
    let mut estimator = FlowEstimator::new(FlowMethod::default()).unwrap();
    let err = estimator.compute(&Image::zeros(8, 8), &Image::zeros(8, 8)).unwrap_err().to_string();
    assert!(err.contains("at least 16 pixels"), "{err}");
    let err = estimator.compute(&Image::zeros(32, 32), &Image::zeros(32, 30)).unwrap_err().to_string();
    assert!(err.contains("expected 32x32, found 32x30"), "{err}");
    // The smallest accepted size runs.
    let flow = estimator.compute(&Image::zeros(16, 16), &Image::zeros(16, 16)).unwrap();
    assert_eq!(flow.size(), (16, 16));
}
