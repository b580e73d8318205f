//! Custom tensor operations with a readable CPU reference (and, with feature `cuda`, a kernel).
pub mod blocked_attention;
pub mod convert;
#[cfg(feature = "cuda")]
mod cuda_launch;
pub mod prior;
mod storage;
pub mod streaming_attention;
