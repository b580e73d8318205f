//! Building blocks shared by the models: reflection padding, ceil-mode pooling, mean/std normalisation
//! and the reflection-padded 3x3 convolution that every VGG-style layer here uses.
mod conv;
mod norm;
mod pad;

pub use conv::{conv1x1, ReflectConv3x3};
pub use norm::{mean_std, mean_variance_norm};
pub(crate) use pad::reflect_index;
pub use pad::{max_pool2x2_ceil, reflect_pad};
