//! The contact sheet of an evaluation: one row per pair, content | style | output (one output per model
//! evaluated), each scaled to a fixed height, so a reader sees what the numbers mean.
use image::{imageops, Rgb, RgbImage};

/// Gap between tiles and rows, pixels.
const GAP: u32 = 4;

/// Rows of images (content, style, outputs...) scaled to `height` pixels (aspect kept) on a white background.
pub fn contact_sheet(rows: &[Vec<&RgbImage>], height: u32) -> RgbImage {
    let scale = |img: &RgbImage| {
        let w = ((img.width() as f64 * height as f64 / img.height() as f64).round() as u32).max(1);
        imageops::resize(img, w, height, imageops::FilterType::Triangle)
    };
    let scaled: Vec<Vec<RgbImage>> = rows.iter().map(|r| r.iter().map(|t| scale(t)).collect()).collect();
    let width =
        scaled.iter().map(|r| r.iter().map(|t| t.width() + GAP).sum::<u32>()).max().unwrap_or(0) + GAP;
    let total_h = rows.len() as u32 * (height + GAP) + GAP;
    let mut sheet = RgbImage::from_pixel(width.max(1), total_h, Rgb([255, 255, 255]));
    for (i, row) in scaled.iter().enumerate() {
        let mut x = GAP;
        for tile in row {
            imageops::replace(&mut sheet, tile, x as i64, (GAP + i as u32 * (height + GAP)) as i64);
            x += tile.width() + GAP;
        }
    }
    sheet
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_and_tiles_land_where_expected() {
        let red = RgbImage::from_pixel(20, 10, Rgb([255, 0, 0]));
        let green = RgbImage::from_pixel(10, 10, Rgb([0, 255, 0]));
        let blue = RgbImage::from_pixel(5, 5, Rgb([0, 0, 255]));
        let row = vec![&red, &green, &blue];
        let sheet = contact_sheet(&[row.clone(), row], 10);
        // Widths 20 + 10 + 10 (blue scaled to height 10), four gaps.
        assert_eq!(sheet.dimensions(), (4 + 20 + 4 + 10 + 4 + 10 + 4, 4 + 10 + 4 + 10 + 4));
        assert_eq!(sheet.get_pixel(4, 4).0, [255, 0, 0]);
        assert_eq!(sheet.get_pixel(28, 18).0, [0, 255, 0]);
        assert_eq!(sheet.get_pixel(42, 27).0, [0, 0, 255]);
        assert_eq!(sheet.get_pixel(2, 2).0, [255, 255, 255]);
    }
}
