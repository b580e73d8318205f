//! The network being trained: StyA2K with a frozen encoder and trainable variables for the relu3_1 A2K,
//! the Transform and the decoder.
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use candle_core::{DType, Device, Result, Shape, Tensor, Var};
use candle_nn::{Init, VarBuilder};

use crate::checkpoint::formula;
use crate::models::stya2k::StyA2K;

/// Standard deviation of the initial weights: the official `init_net` ("normal", gain 0.02).
const INIT_STD: f64 = 0.02;

pub struct Trainee {
    pub model: StyA2K,
    /// Every trainable tensor under its bundle key (`a2k.q.weight`, ...), in construction order.
    pub params: Vec<(String, Var)>,
}

impl Trainee {
    /// Builds StyA2K with the `vgg.` tensors of `frozen` as constants and fresh variables elsewhere,
    /// initialised as the official trainer does: weights `N(0, 0.02^2)`, biases 0, `sim_alpha` 1,
    /// `sim_beta` 0. The normal draws are a function of `seed` and the tensor name.
    pub fn new(frozen: HashMap<String, Tensor>, seed: u64, device: &Device) -> Result<Self> {
        let params = Arc::new(Mutex::new(Vec::new()));
        let backend = TrainBackend { frozen, seed, params: params.clone() };
        let model = StyA2K::new(VarBuilder::from_backend(Box::new(backend), DType::F32, device.clone()))?;
        let params = std::mem::take(&mut *params.lock().unwrap_or_else(|e| e.into_inner()));
        Ok(Self { model, params })
    }

    /// Overwrites every variable with the tensor of the same key (a resumed checkpoint).
    pub fn load(&self, tensors: &HashMap<String, Tensor>) -> Result<()> {
        for (name, var) in &self.params {
            let t = tensors
                .get(name)
                .ok_or_else(|| candle_core::Error::Msg(format!("tensor `{name}` missing")))?;
            var.set(&t.to_device(var.device())?)?;
        }
        Ok(())
    }

    /// The trainable tensors under their bundle keys.
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

struct TrainBackend {
    frozen: HashMap<String, Tensor>,
    seed: u64,
    params: Arc<Mutex<Vec<(String, Var)>>>,
}

impl candle_nn::var_builder::SimpleBackend for TrainBackend {
    fn get(&self, shape: Shape, name: &str, _: Init, dtype: DType, dev: &Device) -> Result<Tensor> {
        if let Some(t) = self.frozen.get(name) {
            if t.shape() != &shape {
                candle_core::bail!(
                    "encoder tensor `{name}`: expected shape {:?}, found {:?}",
                    shape.dims(),
                    t.dims()
                );
            }
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
        self.params.lock().unwrap_or_else(|e| e.into_inner()).push((name.to_string(), var.clone()));
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
