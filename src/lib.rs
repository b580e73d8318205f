//! stylestream: neural style transfer for streaming video.
//!
//! Models (`models`) are candle networks built from safetensors bundles (`checkpoint`); their
//! attention runs on custom ops (`ops`) with a CPU reference and, with feature `cuda`, kernels.
pub mod checkpoint;
pub mod cli;
#[cfg(feature = "media")]
mod cli_batch_report;
#[cfg(feature = "media")]
mod cli_measure;
mod cli_quality;
mod cli_train;
#[cfg(feature = "media")]
mod cli_video;
pub mod device;
#[cfg(feature = "gst-plugin")]
pub mod gst;
pub mod image_io;
pub mod interrupt;
pub mod models;
pub mod nn;
pub mod ops;
pub mod output;
pub mod prior;
pub mod quality;
#[cfg(feature = "media")]
pub mod temporal;
pub mod train;
#[cfg(feature = "media")]
pub mod video;
