//! StyA2K under training: the relu3_1 A2K, the Transform and the decoder trained with the official
//! objective (`loss`) plus, for random encoders, the pixel range, colour and identity terms; one Adam
//! over all of them.
use std::collections::HashMap;

use candle_core::{Device, Result, Tensor};

use super::adam::Adam;
use super::data::Batch;
use super::loss::{self, Objective, Weights};
use super::trainee::Trainable;
use super::{AdamSteps, Outcome, Trainee};
use crate::checkpoint::{STYA2K, TRAINING_STATE};
use crate::models::stya2k::StyA2K;
use crate::models::vgg::Architecture;

pub struct Stya2kTrainee {
    pub net: Trainable<StyA2K>,
    adam: Adam,
    weights: Weights,
    /// Encoder tensors stored with the weights (a file encoder; a seed needs none).
    frozen_saved: HashMap<String, Tensor>,
}

impl Stya2kTrainee {
    /// StyA2K with the `vgg.` tensors of `frozen` fixed; `frozen_saved` travels in every file written.
    pub fn new(
        frozen: &HashMap<String, Tensor>,
        frozen_saved: HashMap<String, Tensor>,
        seed: u64,
        weights: Weights,
        device: &Device,
    ) -> Result<Self> {
        let architecture = Architecture::of_keys(frozen.keys());
        let net = Trainable::new(frozen, seed, device, |vb| StyA2K::with_encoder(architecture, vb))?;
        let adam = Adam::new(net.params.clone())?;
        Ok(Self { net, adam, weights, frozen_saved })
    }

    fn adam_prefix() -> String {
        format!("{TRAINING_STATE}adam.")
    }
}

/// One forward pass: the objective and the stylised batch `[B, 3, crop, crop]` (detached).
fn forward(model: &StyA2K, batch: &Batch, weights: Weights) -> Result<(Objective, Tensor)> {
    let vgg = model.encoder();
    let fc = vgg.forward(&batch.content)?;
    let fs = vgg.forward(&batch.style)?;
    let targets = loss::a2k_targets(&fc, &fs)?;
    let output = model.forward_pairs(&fc, &fs)?;
    let fo = vgg.forward(&output)?;
    let identity = if weights.identity != 0.0 {
        Some(loss::identity_loss(&model.forward_pairs(&fc, &fc)?, &batch.content)?)
    } else {
        None
    };
    let objective = Objective::new(&output, &fo, &batch.style, &fs, &targets, identity, weights)?;
    Ok((objective, output.detach()))
}

impl Trainee for Stya2kTrainee {
    fn model(&self) -> &'static str {
        STYA2K
    }

    fn network_config(&self) -> String {
        "{}".into()
    }

    fn terms(&self) -> Vec<&'static str> {
        vec!["global", "a2k", "range", "colour", "identity"]
    }

    fn step(&mut self, batch: &Batch, _step: u64, lr: f64) -> Result<Outcome> {
        let (objective, output) = forward(&self.net.model, batch, self.weights)?;
        self.adam.step(&objective.total.backward()?, lr)?;
        Ok(Outcome {
            total: objective.total.to_scalar()?,
            terms: vec![
                objective.global,
                objective.a2k,
                objective.range,
                objective.colour,
                objective.identity,
            ],
            output,
        })
    }

    fn adam_steps(&self) -> AdamSteps {
        AdamSteps { generator: self.adam.steps(), critic: 0 }
    }

    fn checkpoint(&self) -> HashMap<String, Tensor> {
        let mut tensors = self.export();
        tensors.extend(self.adam.state(&Self::adam_prefix()));
        tensors
    }

    fn export(&self) -> HashMap<String, Tensor> {
        let mut tensors = self.net.tensors();
        tensors.extend(self.frozen_saved.iter().map(|(k, v)| (k.clone(), v.clone())));
        tensors
    }

    fn initialise(&mut self, tensors: &HashMap<String, Tensor>) -> Result<()> {
        self.net.load(tensors)
    }

    fn restore(&mut self, tensors: &HashMap<String, Tensor>, steps: AdamSteps) -> Result<()> {
        self.net.load(tensors)?;
        self.adam.restore(&Self::adam_prefix(), tensors, steps.generator)
    }
}
