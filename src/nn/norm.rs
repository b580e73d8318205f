//! Per-channel mean/std statistics and mean-variance normalisation (StyA2K's `mean_variance_norm`).
use candle_core::{DType, Result, Tensor};

/// Variance floor added inside the square root, as the official code does (`sqrt(var + 1e-5)`).
const STD_EPS: f64 = 1e-5;

/// Per-sample, per-channel mean and standard deviation over all `H*W` positions of `[B, C, H, W]`.
/// Returns two `[B, C, 1, 1]` tensors. The variance is unbiased (divides by `H*W - 1`) and the std
/// is `sqrt(var + 1e-5)`: these are the statistics StyA2K's attention and losses are defined with.
///
/// f16/bf16 inputs are summed in f32 (a half-precision sum of squares over a frame overflows) and the
/// statistics are returned in the input's type.
pub fn mean_std(x: &Tensor) -> Result<(Tensor, Tensor)> {
    let (b, c, h, w) = x.dims4()?;
    let n = h * w;
    let sum_dtype = if x.dtype() == DType::F64 { DType::F64 } else { DType::F32 };
    // [B, C, H, W] -> [B, C, H*W]
    let flat = x.reshape((b, c, n))?.to_dtype(sum_dtype)?;
    let mean = flat.mean_keepdim(2)?;
    let centred = flat.broadcast_sub(&mean)?;
    let var = (centred.sqr()?.sum_keepdim(2)? / (n.max(2) - 1) as f64)?;
    let std = (var + STD_EPS)?.sqrt()?;
    Ok((mean.reshape((b, c, 1, 1))?.to_dtype(x.dtype())?, std.reshape((b, c, 1, 1))?.to_dtype(x.dtype())?))
}

/// `(x - mean) / std` with the statistics of [`mean_std`]; shape preserved.
pub fn mean_variance_norm(x: &Tensor) -> Result<Tensor> {
    let (mean, std) = mean_std(x)?;
    x.broadcast_sub(&mean)?.broadcast_div(&std)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn statistics_are_unbiased_with_eps_inside_the_root() -> Result<()> {
        // One channel holding [1, 2, 3, 4]: mean 2.5, unbiased variance 5/3.
        let x = Tensor::new(&[1f32, 2., 3., 4.], &Device::Cpu)?.reshape((1, 1, 2, 2))?;
        let (m, s) = mean_std(&x)?;
        assert!((m.flatten_all()?.to_vec1::<f32>()?[0] - 2.5).abs() < 1e-6);
        let want = (5.0f64 / 3.0 + 1e-5).sqrt() as f32;
        assert!((s.flatten_all()?.to_vec1::<f32>()?[0] - want).abs() < 1e-6);
        let n = mean_variance_norm(&x)?.flatten_all()?.to_vec1::<f32>()?;
        assert!((n[0] - (1.0 - 2.5) / want).abs() < 1e-6);
        Ok(())
    }
}
