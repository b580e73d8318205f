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
