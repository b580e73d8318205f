//! The style-transfer networks, one file per model, named and keyed as their checkpoints.
pub mod stya2k;
pub mod vgg;
