//! stylestream: neural style transfer for streaming video.
//!
//! Models (`models`) are candle networks built from safetensors bundles (`checkpoint`); their
//! attention runs on custom ops (`ops`) with a CPU reference and, with feature `cuda`, kernels.
pub mod checkpoint;
pub mod cli;
pub mod image_io;
pub mod models;
pub mod nn;
pub mod ops;
pub mod output;
