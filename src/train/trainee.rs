//! Trainable networks: a model's own constructor fed by a `VarBuilder` backend that serves the frozen
//! encoder's tensors as constants and makes a fresh, named variable for every other tensor. So training
//! builds exactly the network inference loads, and the variables carry the bundle keys.
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use candle_core::{DType, Device, Result, Shape, Tensor, Var};
use candle_nn::{Init, VarBuilder};

use crate::checkpoint::formula;

/// Standard deviation of the initial weights: the official StyA2K `init_net` ("normal", gain 0.02).
/// NeAT has no official code; we use the same, which starts its decoder near zero deltas, i.e. the
/// output near the content prior.
const INIT_STD: f64 = 0.02;

/// A network with its trainable variables.
pub struct Trainable<M> {
    pub model: M,
    /// Every trainable tensor under its key (`a2k.q.weight`, ...), in construction order.
    pub params: Vec<(String, Var)>,
    /// The keys of the frozen tensors the network read (the encoder layers it runs).
    pub frozen_used: Vec<String>,
}

impl<M> Trainable<M> {
    /// Builds a network with `build`: tensors named in `frozen` are constants, every other one a fresh
    /// variable initialised as the official StyA2K trainer does: weights (rank >= 2) `N(0, 0.02^2)`,
    /// biases 0, `sim_alpha` 1, `sim_beta` 0. The normal draws are a function of `seed` and the name.
    /// A missing `vgg.` tensor is an error: the encoder is never trained.
    pub fn new(
        frozen: &HashMap<String, Tensor>,
        seed: u64,
        device: &Device,
        build: impl FnOnce(VarBuilder) -> Result<M>,
    ) -> Result<Self> {
        let made = Arc::new(Mutex::new(Made::default()));
        let backend = TrainBackend { frozen: frozen.clone(), seed, made: made.clone() };
        let model = build(VarBuilder::from_backend(Box::new(backend), DType::F32, device.clone()))?;
        let made = std::mem::take(&mut *made.lock().unwrap_or_else(|e| e.into_inner()));
        Ok(Self { model, params: made.params, frozen_used: made.frozen_used })
    }

    /// Overwrites every variable with the tensor of the same key (a resumed checkpoint).
    pub fn load(&self, tensors: &HashMap<String, Tensor>) -> Result<()> {
        for (name, var) in &self.params {
            let t = tensors
                .get(name)
                .ok_or_else(|| candle_core::Error::Msg(format!("tensor `{name}` missing")))?;
            if t.shape() != var.shape() {
                candle_core::bail!("tensor `{name}`: shape {:?}, the network's {:?}", t.dims(), var.dims());
            }
            var.set(&t.to_device(var.device())?)?;
        }
        Ok(())
    }

    /// The trainable tensors under their keys.
    pub fn tensors(&self) -> HashMap<String, Tensor> {
        self.params.iter().map(|(n, v)| (n.clone(), v.as_tensor().clone())).collect()
    }
}

/// `N(0, std^2)` values for tensor `name` (Box-Muller on the formula's uniform stream).
fn normal(name: &str, seed: u64, numel: usize, std: f64) -> Vec<f32> {
    (0..numel as u64)
        .map(|i| {
            let u1 = (1.0 - formula::uniform(name, seed, 2 * i)) / 2.0; // (0, 1]
            let u2 = (formula::uniform(name, seed, 2 * i + 1) + 1.0) / 2.0;
            ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos() * std) as f32
        })
        .collect()
}

/// What a build asked the backend for.
#[derive(Default)]
struct Made {
    params: Vec<(String, Var)>,
    frozen_used: Vec<String>,
}

struct TrainBackend {
    frozen: HashMap<String, Tensor>,
    seed: u64,
    made: Arc<Mutex<Made>>,
}

impl candle_nn::var_builder::SimpleBackend for TrainBackend {
    fn get(&self, shape: Shape, name: &str, _: Init, dtype: DType, dev: &Device) -> Result<Tensor> {
        let mut made = self.made.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(t) = self.frozen.get(name) {
            if t.shape() != &shape {
                candle_core::bail!(
                    "encoder tensor `{name}`: expected shape {:?}, found {:?}",
                    shape.dims(),
                    t.dims()
                );
            }
            made.frozen_used.push(name.to_string());
            return t.to_dtype(dtype)?.to_device(dev);
        }
        if name.starts_with("vgg.") {
            candle_core::bail!("encoder tensor `{name}` missing");
        }
        let init = if name.ends_with("sim_alpha") {
            Tensor::ones(shape, dtype, dev)?
        } else if shape.rank() >= 2 {
            Tensor::from_vec(normal(name, self.seed, shape.elem_count(), INIT_STD), shape, dev)?
                .to_dtype(dtype)?
        } else {
            Tensor::zeros(shape, dtype, dev)?
        };
        let var = Var::from_tensor(&init)?;
        made.params.push((name.to_string(), var.clone()));
        Ok(var.as_tensor().clone())
    }

    fn get_unchecked(&self, name: &str, _: DType, _: &Device) -> Result<Tensor> {
        candle_core::bail!("training needs the shape of `{name}`")
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.frozen.contains_key(name) || !name.starts_with("vgg.")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn initial_weights_have_the_official_spread() {
        let v = normal("decoder.x.weight", 3, 20000, INIT_STD);
        let mean = v.iter().map(|&x| x as f64).sum::<f64>() / v.len() as f64;
        let var = v.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / v.len() as f64;
        assert!(mean.abs() < 1e-3, "mean {mean}");
        assert!((var.sqrt() - INIT_STD).abs() < 1e-3, "std {}", var.sqrt());
        assert_eq!(v, normal("decoder.x.weight", 3, 20000, INIT_STD), "deterministic");
    }
}
