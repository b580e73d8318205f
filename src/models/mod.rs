//! The style-transfer networks, one file per model, named and keyed as their checkpoints.
pub mod neat;
pub mod pama;
pub mod stya2k;
pub mod vgg;

/// A network loaded from a bundle, as its `stylestream.model` metadata names it.
#[derive(Debug, Clone)]
pub enum Network {
    /// Boxed: StyA2K's attention modules make it ten times NeAT's size on the stack.
    StyA2K(Box<stya2k::StyA2K>),
    Neat(neat::Neat),
}

impl Network {
    /// Stylises one `content` image with one `style` image (both `[1, 3, H, W]` f32 RGB in [0, 1], any
    /// sizes) into `[1, 3, H_c, W_c]` f32. Both run in `dtype` (f16/bf16 inference); NeAT with `controls`
    /// (its prior as configured on the model).
    pub fn stylize_image(
        &self,
        content: &candle_core::Tensor,
        style: &candle_core::Tensor,
        controls: neat::Controls,
        dtype: candle_core::DType,
    ) -> candle_core::Result<candle_core::Tensor> {
        match self {
            Network::StyA2K(model) => {
                let features = model.encode_style(&style.to_dtype(dtype)?)?;
                let out = model.stylize(&content.to_dtype(dtype)?, &features, controls.alpha)?;
                out.to_dtype(candle_core::DType::F32)
            }
            Network::Neat(model) => {
                let features = model.encode_style(&style.to_dtype(dtype)?)?;
                model
                    .stylize(&content.to_dtype(dtype)?, &features, controls)?
                    .to_dtype(candle_core::DType::F32)
            }
        }
    }
}
