//! Still images in and out: any JPEG/PNG/WebP (grayscale, alpha, 8 or 16 bit) to a `[1, 3, H, W]`
//! RGB tensor in [0, 1], and back to an 8-bit PNG/JPEG written atomically.
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use image::{imageops::FilterType, DynamicImage, GrayImage, ImageFormat, RgbImage};

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("{path}: {reason}")]
    Read { path: PathBuf, reason: String },
    #[error("{path}: {reason}")]
    Write { path: PathBuf, reason: String },
    #[error("{path}: already exists (pass --overwrite to replace it)")]
    Exists { path: PathBuf },
    #[error("{path}: unsupported output extension, use .png, .jpg or .jpeg")]
    OutputFormat { path: PathBuf },
    #[error("tensor conversion: {0}")]
    Tensor(#[from] candle_core::Error),
}

/// A decoded picture: colour as a tensor and, if the file had one, its alpha channel (8 bit).
#[derive(Debug, Clone)]
pub struct Picture {
    /// `[1, 3, H, W]` f32 RGB in [0, 1].
    pub rgb: Tensor,
    pub alpha: Option<GrayImage>,
}

/// Reads an image; if `max_side` is given and the longer side exceeds it, scales down keeping the
/// aspect ratio (Lanczos). Grayscale is replicated to RGB; 16-bit keeps its precision until f32.
pub fn read_picture(path: &Path, max_side: Option<u32>, device: &Device) -> Result<Picture, ImageError> {
    let read_err = |reason: String| ImageError::Read { path: path.to_path_buf(), reason };
    let reader = image::ImageReader::open(path)
        .map_err(|e| read_err(e.to_string()))?
        .with_guessed_format()
        .map_err(|e| read_err(e.to_string()))?;
    let mut img = reader.decode().map_err(|e| read_err(format!("cannot decode image: {e}")))?;
    if img.width() == 0 || img.height() == 0 {
        return Err(read_err("image has no pixels".into()));
    }
    if let Some(max) = max_side {
        if img.width().max(img.height()) > max {
            img = img.resize(max, max, FilterType::Lanczos3);
        }
    }
    let alpha = img.color().has_alpha().then(|| {
        let rgba = img.to_rgba8();
        GrayImage::from_fn(rgba.width(), rgba.height(), |x, y| image::Luma([rgba.get_pixel(x, y)[3]]))
    });
    Ok(Picture { rgb: to_tensor(&img, device)?, alpha })
}

/// `[1, 3, H, W]` f32 in [0, 1] from any decoded image.
pub fn to_tensor(img: &DynamicImage, device: &Device) -> candle_core::Result<Tensor> {
    let rgb = img.to_rgb32f();
    let (w, h) = (rgb.width() as usize, rgb.height() as usize);
    // [H, W, 3] interleaved -> [1, 3, H, W] planar
    Tensor::from_vec(rgb.into_raw(), (h, w, 3), device)?.permute((2, 0, 1))?.contiguous()?.unsqueeze(0)
}

/// 8-bit RGB from `[1, 3, H, W]` (or `[3, H, W]`): clamped to [0, 1], scaled by 255 and rounded
/// (the official saver truncates; rounding is our deliberate choice, half a level less bias).
pub fn to_rgb8(t: &Tensor) -> candle_core::Result<RgbImage> {
    let t = if t.rank() == 4 { t.squeeze(0)? } else { t.clone() };
    let (_, h, w) = t.dims3()?;
    // [3, H, W] -> [H, W, 3]
    let data =
        (t.clamp(0f32, 1f32)? * 255.0)?.round()?.permute((1, 2, 0))?.flatten_all()?.to_vec1::<f32>()?;
    let bytes = data.into_iter().map(|v| v as u8).collect();
    Ok(RgbImage::from_raw(w as u32, h as u32, bytes).expect("buffer length is 3*H*W by construction"))
}

/// Writes `rgb` (+ `alpha` for PNG) to `path`, format from the extension, through a temporary file
/// and a rename. Refuses to replace an existing file unless `overwrite`.
pub fn write_picture(
    path: &Path,
    rgb: RgbImage,
    alpha: Option<&GrayImage>,
    overwrite: bool,
) -> Result<(), ImageError> {
    let format = match path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
        Some("png") => ImageFormat::Png,
        Some("jpg" | "jpeg") => ImageFormat::Jpeg,
        _ => return Err(ImageError::OutputFormat { path: path.to_path_buf() }),
    };
    if !overwrite && path.exists() {
        return Err(ImageError::Exists { path: path.to_path_buf() });
    }
    let img = match (format, alpha) {
        (ImageFormat::Png, Some(a)) if a.dimensions() == rgb.dimensions() => {
            DynamicImage::ImageRgba8(image::RgbaImage::from_fn(rgb.width(), rgb.height(), |x, y| {
                let [r, g, b] = rgb.get_pixel(x, y).0;
                image::Rgba([r, g, b, a.get_pixel(x, y)[0]])
            }))
        }
        _ => DynamicImage::ImageRgb8(rgb),
    };
    let mut bytes = std::io::Cursor::new(Vec::new());
    let write_err = |reason: String| ImageError::Write { path: path.to_path_buf(), reason };
    img.write_to(&mut bytes, format).map_err(|e| write_err(e.to_string()))?;
    crate::output::write_atomically(path, bytes.get_ref()).map_err(|e| write_err(e.to_string()))
}
