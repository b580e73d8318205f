//! Custom tensor operations with a readable CPU reference (and, with feature `cuda`, a kernel).
pub mod blocked_attention;
pub mod conv3x3;
pub mod convert;
#[cfg(feature = "cuda")]
mod cuda_launch;
pub mod prior;
mod product;
mod reflect;
mod storage;
pub mod streaming_attention;
pub(crate) use product::product;
pub(crate) use reflect::reflect_index;
