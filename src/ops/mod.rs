//! Custom tensor operations with a readable CPU reference (and, with feature `cuda`, a kernel).
pub mod blocked_attention;
pub mod convert;
pub mod streaming_attention;
