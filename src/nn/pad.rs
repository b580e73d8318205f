//! Reflection padding, ceil-mode max pooling and nearest x2 upsampling on `[B, C, H, W]` tensors.
use candle_core::{Result, Tensor};

use crate::ops::reflect_index;

/// Gathers the pixels at reflected positions `range` along `dim` (a strip of padding).
fn reflected_strip(x: &Tensor, dim: usize, range: std::ops::Range<isize>) -> Result<Tensor> {
    let n = x.dim(dim)?;
    let idx: Vec<u32> = range.map(|i| reflect_index(i, n)).collect();
    let len = idx.len();
    x.contiguous()?.index_select(&Tensor::from_vec(idx, len, x.device())?, dim)
}

fn reflect_pad_dim(x: &Tensor, dim: usize, before: usize, after: usize) -> Result<Tensor> {
    if before == 0 && after == 0 {
        return Ok(x.clone());
    }
    let n = x.dim(dim)? as isize;
    let mut parts = Vec::with_capacity(3);
    if before > 0 {
        parts.push(reflected_strip(x, dim, -(before as isize)..0)?);
    }
    parts.push(x.clone());
    if after > 0 {
        parts.push(reflected_strip(x, dim, n..n + after as isize)?);
    }
    Tensor::cat(&parts, dim)
}

/// Reflection-pads a `[B, C, H, W]` tensor by `(top, bottom, left, right)` pixels.
/// Output: `[B, C, H + top + bottom, W + left + right]`.
pub fn reflect_pad(x: &Tensor, top: usize, bottom: usize, left: usize, right: usize) -> Result<Tensor> {
    let x = reflect_pad_dim(x, 2, top, bottom)?;
    reflect_pad_dim(&x, 3, left, right)
}

/// 2x2 max pooling with stride 2 and `ceil_mode = true`, as the official VGG encoder pools.
/// `[B, C, H, W] -> [B, C, ceil(H/2), ceil(W/2)]`.
///
/// An odd side's last, partial window takes the maximum of its in-bounds values only. Repeating the
/// last row/column before a floor-mode pool gives exactly that maximum.
pub fn max_pool2x2_ceil(x: &Tensor) -> Result<Tensor> {
    let (_, _, h, w) = x.dims4()?;
    let mut x = x.clone();
    if h % 2 == 1 {
        x = Tensor::cat(&[&x, &x.narrow(2, h - 1, 1)?], 2)?;
    }
    if w % 2 == 1 {
        x = Tensor::cat(&[&x, &x.narrow(3, w - 1, 1)?], 3)?;
    }
    // A max over the two window axes rather than candle's `max_pool2d`: same values, but candle 0.11's
    // max_pool2d backward scales the gradient by 1/4 (it multiplies by the window's share of maxima
    // instead of dividing), which training cannot use (tests/train_stya2k.rs checks the gradients).
    let (b, c, h, w) = x.dims4()?;
    // [B, C, H, W] -> [B, C, H/2, 2, W/2, 2] -> max over the 2s -> [B, C, H/2, W/2]
    x.reshape((b, c, h / 2, 2, w / 2, 2))?.max(5)?.max(3)
}

/// 2x2 max pooling with stride 2 and `ceil_mode = false` (PyTorch's default, as torchvision's VGG
/// pools): an odd side's last row/column is dropped. `[B, C, H, W] -> [B, C, floor(H/2), floor(W/2)]`.
pub fn max_pool2x2_floor(x: &Tensor) -> Result<Tensor> {
    let (b, c, h, w) = x.dims4()?;
    let (h, w) = (h / 2, w / 2);
    // The same window max as `max_pool2x2_ceil`, for the same reason (candle's max_pool2d gradient).
    // [B, C, 2h, 2w] -> [B, C, h, 2, w, 2] -> max over the 2s -> [B, C, h, w]
    x.narrow(2, 0, 2 * h)?.narrow(3, 0, 2 * w)?.reshape((b, c, h, 2, w, 2))?.max(5)?.max(3)
}

/// Nearest-neighbour x2 upsampling, the decoders' inverse of the encoder's pools:
/// `[B, C, H, W] -> [B, C, 2H, 2W]`.
pub fn upsample2(x: &Tensor) -> Result<Tensor> {
    let (_, _, h, w) = x.dims4()?;
    x.upsample_nearest2d(2 * h, 2 * w)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn pad_then_crop_is_identity_and_edges_mirror() -> Result<()> {
        let x = Tensor::arange(0f32, 12., &Device::Cpu)?.reshape((1, 1, 3, 4))?;
        let p = reflect_pad(&x, 1, 2, 0, 3)?;
        assert_eq!(p.dims4()?, (1, 1, 6, 7));
        let back = p.narrow(2, 1, 3)?.narrow(3, 0, 4)?;
        assert_eq!(back.flatten_all()?.to_vec1::<f32>()?, x.flatten_all()?.to_vec1::<f32>()?);
        // Top padding row mirrors row 1; right padding of row 0 is [2, 1, 0].
        let row0 = p.get(0)?.get(0)?.get(0)?.to_vec1::<f32>()?;
        assert_eq!(row0, vec![4., 5., 6., 7., 6., 5., 4.]);
        Ok(())
    }

    #[test]
    fn floor_pool_equals_candles_max_pool2d() -> Result<()> {
        // candle's max_pool2d is PyTorch's floor mode; its forward is the independent reference.
        let x = Tensor::arange(0f32, 2. * 7. * 5., &Device::Cpu)?.sin()?.reshape((1, 2, 7, 5))?;
        let want = x.max_pool2d(2)?;
        let got = max_pool2x2_floor(&x)?;
        assert_eq!(got.dims4()?, (1, 2, 3, 2));
        assert_eq!(got.flatten_all()?.to_vec1::<f32>()?, want.flatten_all()?.to_vec1::<f32>()?);
        Ok(())
    }

    #[test]
    fn ceil_pool_takes_in_bounds_maximum() -> Result<()> {
        let x = Tensor::new(&[[1f32, -5., 3.], [2., -7., -9.], [-4., 8., -1.]], &Device::Cpu)?
            .reshape((1, 1, 3, 3))?;
        let y = max_pool2x2_ceil(&x)?;
        assert_eq!(y.flatten_all()?.to_vec1::<f32>()?, vec![2., 3., 8., -1.]);
        Ok(())
    }
}
