//! Style strength: interpolation between content and stylised features (the AdaIN family's alpha).
use candle_core::{Result, Tensor};

/// `(1 - alpha) content + alpha styled`, same shapes in and out; exactly `styled` at alpha 1 and
/// exactly `content` at alpha 0 (so "alpha 0 reconstructs" holds bit for bit). Above 1 extrapolates.
pub fn blend(content: &Tensor, styled: &Tensor, alpha: f64) -> Result<Tensor> {
    if alpha == 1.0 {
        return Ok(styled.clone());
    }
    if alpha == 0.0 {
        return Ok(content.clone());
    }
    (styled * alpha)? + (content * (1.0 - alpha))?
}
