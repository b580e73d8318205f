//! Building blocks shared by the models: reflection padding, ceil-mode pooling, nearest upsampling,
//! mean/std normalisation, style-strength blending and the reflection-padded 3x3 convolution that every
//! VGG-style layer here uses.
mod blend;
mod conv;
mod norm;
mod pad;

pub use blend::blend;
pub use conv::{conv1x1, Conv3x3, Padding};
pub use norm::{mean_std, mean_variance_norm};
pub use pad::{max_pool2x2_ceil, max_pool2x2_floor, reflect_pad, upsample2};
