//! NeAT's content prior against independent truth: colour statistics computed here in f64 from the
//! pixels, a known linear mixing of a real photo, and a direct OpenCV call.
mod common;

use candle_core::{Device, Tensor};
use common::fixture;
use stylestream::checkpoint::formula::uniform;
use stylestream::image_io::read_picture;
use stylestream::prior::{content_prior, recolour, ColourStats, PriorConfig};

fn photo(name: &str) -> Tensor {
    read_picture(&fixture(&format!("images/{name}")), Some(200), &Device::Cpu).unwrap().rgb
}

fn values(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1::<f32>().unwrap()
}

/// Mean and covariance (divided by the pixel count) of a `[1, 3, H, W]` image, straight from the
/// definition with a centred second pass.
fn stats(t: &Tensor) -> ([f64; 3], [[f64; 3]; 3]) {
    let v = values(t);
    let n = v.len() / 3;
    let mean: [f64; 3] =
        std::array::from_fn(|c| v[c * n..(c + 1) * n].iter().map(|&x| x as f64).sum::<f64>() / n as f64);
    let cov = std::array::from_fn(|i| {
        std::array::from_fn(|j| {
            (0..n).map(|p| (v[i * n + p] as f64 - mean[i]) * (v[j * n + p] as f64 - mean[j])).sum::<f64>()
                / n as f64
        })
    });
    (mean, cov)
}

/// `photo` through the 3x3 mixing and offset drawn from the formula stream `seed` (values may leave
/// [0, 1]: the statistics do not care).
fn mixed(photo: &Tensor, seed: u64) -> Tensor {
    let mix: Vec<f64> = (0..12).map(|i| uniform("mixing", seed, i)).collect();
    let (h, w) = (photo.dim(2).unwrap(), photo.dim(3).unwrap());
    let v = values(photo);
    let n = h * w;
    let out: Vec<f32> = (0..3 * n)
        .map(|i| {
            let (c, p) = (i / n, i % n);
            let x = (0..3).map(|k| mix[c * 3 + k] * v[k * n + p] as f64).sum::<f64>();
            (x + 0.3 * mix[9 + c]) as f32
        })
        .collect();
    Tensor::from_vec(out, (1, 3, h, w), &Device::Cpu).unwrap()
}

/// Recolours `source` onto `target`'s statistics and checks the result's mean and covariance.
fn assert_recolours(source: &Tensor, target: &Tensor, ridge: f64) {
    let (mean, covariance) = stats(target);
    let out = recolour(source, &ColourStats { mean, covariance }, ridge).unwrap();
    assert_eq!(out.dims(), source.dims());
    let (got_mean, got_cov) = stats(&out);
    for i in 0..3 {
        assert!((got_mean[i] - mean[i]).abs() <= 1e-4, "mean {i}: {} vs {}", got_mean[i], mean[i]);
        for j in 0..3 {
            let (g, t) = (got_cov[i][j], covariance[i][j]);
            assert!((g - t).abs() <= 1e-4, "covariance ({i}, {j}): {g} vs {t}");
        }
    }
}

#[test]
fn recolour_maps_mean_and_covariance_onto_a_mixed_photo() {
    let cat = photo("chelsea.png");
    for seed in [5, 6, 7] {
        let target = mixed(&cat, seed);
        assert!(stats(&target).0 != stats(&cat).0);
        // The photo onto its own random mixing, with the shipped ridge.
        assert_recolours(&cat, &target, PriorConfig::default().ridge);
        // A different, nearly grey photo onto it.
        assert_recolours(&photo("hubble_deep_field.jpg"), &target, PriorConfig::default().ridge);
    }
    // The library's own statistics agree with the definition.
    let target = mixed(&cat, 5);
    let (mean, covariance) = stats(&target);
    let own = ColourStats::of(&target).unwrap();
    assert!(own.mean.iter().zip(&mean).all(|(a, b)| (a - b).abs() < 1e-9));
    assert!(own
        .covariance
        .iter()
        .flatten()
        .zip(covariance.iter().flatten())
        .all(|(a, b)| (a - b).abs() < 1e-9));
}

#[test]
fn blur_zero_gives_exactly_the_weighted_recoloured_frame() {
    let frame = photo("chelsea.png");
    let style = ColourStats::of(&photo("hubble_deep_field.jpg")).unwrap();
    let config = PriorConfig::default().with_blur(0);
    let recoloured = recolour(&frame, &style, config.ridge).unwrap();
    let one = content_prior(&frame, &style, &PriorConfig { weight: 1.0, ..config }).unwrap();
    assert!(values(&one) == values(&recoloured), "weight 1, blur 0: the prior is the recoloured frame");
    // Halving is exact in binary floating point, so weight 0.5 is exactly half of it.
    let half = content_prior(&frame, &style, &config).unwrap();
    assert!(values(&half) == values(&(recoloured * 0.5).unwrap()));
}

#[cfg(feature = "media")]
#[test]
fn bilateral_is_the_direct_opencv_call_and_the_prior_uses_it() {
    use opencv::core::{Mat, BORDER_DEFAULT};
    use opencv::prelude::*;

    let frame = photo("chelsea.png");
    let (h, w) = (frame.dim(2).unwrap(), frame.dim(3).unwrap());
    // [1, 3, H, W] in [0, 1] -> [H, W, 3] in 0..255, the OpenCV convention sigma 100 refers to.
    let hwc: Vec<f32> = values(&frame.squeeze(0).unwrap().permute((1, 2, 0)).unwrap().contiguous().unwrap())
        .iter()
        .map(|v| v * 255.0)
        .collect();
    let flat = Mat::new_rows_cols_with_data::<f32>(h as i32, 3 * w as i32, &hwc).unwrap();
    let src = flat.reshape(3, h as i32).unwrap();
    let mut dst = Mat::default();
    opencv::imgproc::bilateral_filter(&src, &mut dst, 25, 100.0, 100.0, BORDER_DEFAULT).unwrap();
    let direct: Vec<f32> =
        dst.reshape(1, h as i32).unwrap().data_typed::<f32>().unwrap().iter().map(|v| v / 255.0).collect();
    let direct = Tensor::from_vec(direct, (h, w, 3), &Device::Cpu)
        .unwrap()
        .permute((2, 0, 1))
        .unwrap()
        .unsqueeze(0)
        .unwrap();

    let ours = stylestream::prior::bilateral(&frame, 25, 100.0).unwrap();
    assert!(values(&ours) == values(&direct), "bilateral differs from cv::bilateralFilter");
    assert!(values(&ours) != values(&frame), "the filter changed nothing");

    // With blur on, the prior is the recolour of blur + bilateral, not of the raw frame.
    let style = ColourStats::of(&photo("hubble_deep_field.jpg")).unwrap();
    let config = PriorConfig { weight: 1.0, ..Default::default() };
    let blurred = content_prior(&frame, &style, &config).unwrap();
    let sharp = content_prior(&frame, &style, &config.with_blur(0)).unwrap();
    assert!(values(&blurred) != values(&sharp));
}

#[cfg(not(feature = "media"))]
#[test]
fn without_opencv_a_blur_is_refused_by_name() {
    let frame = photo("chelsea.png");
    let style = ColourStats::of(&frame).unwrap();
    let e = content_prior(&frame, &style, &PriorConfig::default()).unwrap_err().to_string();
    assert!(e.contains("needs OpenCV") && e.contains("--blur 0"), "{e}");
}

/// The device prior (`ops::prior`: the reference the CUDA kernels are checked against, with its own
/// Gaussian and bilateral filters) against the OpenCV prior of `prior::content_prior`, on both photos
/// at full size, from bytes and from f32 frames, with blur and without: within 1/255 everywhere.
#[cfg(feature = "media")]
#[test]
fn device_prior_matches_the_opencv_prior_on_photos() {
    use candle_core::DType;
    use stylestream::ops::prior::content_prior as device_prior;

    for (name, style_name) in
        [("chelsea.png", "hubble_deep_field.jpg"), ("hubble_deep_field.jpg", "chelsea.png")]
    {
        let frame = read_picture(&fixture(&format!("images/{name}")), Some(1000), &Device::Cpu).unwrap().rgb;
        let style = ColourStats::of(&photo(style_name)).unwrap();
        let bytes = (&frame * 255.0).unwrap().round().unwrap().to_dtype(DType::U8).unwrap();
        let bytes = bytes.squeeze(0).unwrap().permute((1, 2, 0)).unwrap();
        for config in [PriorConfig { weight: 1.0, ..Default::default() }, PriorConfig::default().with_blur(0)]
        {
            let want = content_prior(&frame, &style, &config).unwrap();
            for (source, got) in [
                ("bytes", device_prior(&bytes, &style, &config, DType::F32).unwrap()),
                ("f32", device_prior(&frame, &style, &config, DType::F32).unwrap()),
            ] {
                let worst =
                    (&got - &want).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
                println!(
                    "{name} from {source}, blur {}: max |device - OpenCV| = {worst:.2e}",
                    config.blur_kernel
                );
                assert!(worst <= 1.0 / 255.0, "{name} {source} blur {}: {worst}", config.blur_kernel);
            }
        }
    }
}
