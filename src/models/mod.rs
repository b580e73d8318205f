//! The style-transfer networks, one file per model, named and keyed as their checkpoints.
pub mod neat;
pub mod pama;
pub mod stya2k;
pub mod vgg;

/// A network loaded from a bundle, as its `stylestream.model` metadata names it.
#[derive(Debug, Clone)]
pub enum Network {
    StyA2K(stya2k::StyA2K),
    Neat(neat::Neat),
}
