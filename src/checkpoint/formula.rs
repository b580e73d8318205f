//! Deterministic weights from a formula: the weights the golden fixtures were produced with
//! (`shared/docs/stya2k.md`, "Deterministic weights"), so tests regenerate 120 MB instead of storing it.
//!
//! Tensor key `<ns>:<official key>` (e.g. `transform:attn_adain_4_1.k2.weight`); per element `i` in
//! row-major order `u = 2 * (splitmix64(fnv1a64(key) ^ seed + i) >> 11) / 2^53 - 1` in [-1, 1), and
//! the value (f64, rounded once to f32) is `u * sqrt(6 / fan_in)` for 4-d conv weights, `1 + u / 2`
//! for `sim_alpha`, `u / 2` for `sim_beta`, `u / 20` for everything else (biases).
//!
//! NeAT's formula checkpoint (`formula-neat:SEED`, our definition: no NeAT fixtures exist) is the same
//! rule over NeAT's keys with namespaces `vgg`, `transform`, `decoder` (e.g. `vgg:2.weight`, the same
//! encoder as StyA2K's; `transform:align1.attn.f.weight`; `decoder:28.bias`) and the default
//! [`NeatConfig`] (paper prior: blur 7 px / sigma 1.4, bilateral 25 / 100, ridge 1e-7, weight 0.5).
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use candle_core::{DType, Device, Result, Shape, Tensor};
use candle_nn::{Init, VarBuilder};

use crate::models::neat::{Neat, NeatConfig};
use crate::models::stya2k::StyA2K;
use crate::models::vgg::Vgg;

/// The seed of the golden fixtures in `shared/fixtures/stya2k/`.
pub const GOLDEN_SEED: u64 = 20261122;

fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xCBF2_9CE4_8422_2325, |h, &b| (h ^ b as u64).wrapping_mul(0x0100_0000_01B3))
}

fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The uniform stream of a key: element `i` is in [-1, 1).
pub fn uniform(key: &str, seed: u64, i: u64) -> f64 {
    let z = splitmix64((fnv1a64(key.as_bytes()) ^ seed).wrapping_add(i));
    2.0 * ((z >> 11) as f64 / (1u64 << 53) as f64) - 1.0
}

/// The values of the tensor `key` (formula key, `<ns>:<official key>`) of shape `dims`.
pub fn values(key: &str, dims: &[usize], seed: u64) -> Vec<f32> {
    let numel: usize = dims.iter().product();
    let map: Box<dyn Fn(f64) -> f64> = if dims.len() == 4 {
        let fan_in = (dims[1] * dims[2] * dims[3]) as f64;
        let scale = (6.0 / fan_in).sqrt();
        Box::new(move |u| u * scale)
    } else if key.ends_with("sim_alpha") {
        Box::new(|u| 1.0 + 0.5 * u)
    } else if key.ends_with("sim_beta") {
        Box::new(|u| 0.5 * u)
    } else {
        Box::new(|u| 0.05 * u)
    };
    (0..numel as u64).map(|i| map(uniform(key, seed, i)) as f32).collect()
}

/// A [`VarBuilder`] whose tensors come from the formula: the bundle key `ns.rest` (as the models
/// request it) is the formula key `ns:rest`.
pub fn var_builder(seed: u64, device: &Device) -> VarBuilder<'static> {
    VarBuilder::from_backend(Box::new(FormulaBackend { seed, made: None }), DType::F32, device.clone())
}

/// Every StyA2K parameter under its bundle key, from the formula (to write a bundle of them).
pub fn stya2k_tensors(seed: u64) -> Result<HashMap<String, Tensor>> {
    record(seed, StyA2K::new)
}

/// The `vgg.` tensors of the formula: the fixed random encoder `random:SEED` (see
/// `checkpoint::Encoder`). He-uniform conv weights (`u * sqrt(6 / fan_in)`) keep the activation scale
/// through the ReLU stack, and the colour conv is a random 3x3 colour mixing.
pub fn vgg_tensors(seed: u64) -> Result<HashMap<String, Tensor>> {
    record(seed, |vb| Vgg::new(vb.pp("vgg")))
}

/// Every NeAT parameter under its bundle key, from the formula (to write a bundle of them).
pub fn neat_tensors(seed: u64, config: NeatConfig) -> Result<HashMap<String, Tensor>> {
    record(seed, |vb| Neat::new(config, vb))
}

/// The tensors `build` asks for, made by the formula.
fn record<M>(seed: u64, build: impl FnOnce(VarBuilder) -> Result<M>) -> Result<HashMap<String, Tensor>> {
    let made = Arc::new(Mutex::new(HashMap::new()));
    let backend = FormulaBackend { seed, made: Some(made.clone()) };
    build(VarBuilder::from_backend(Box::new(backend), DType::F32, Device::Cpu))?;
    let tensors = made.lock().map(|m| m.clone()).unwrap_or_default();
    Ok(tensors)
}

struct FormulaBackend {
    seed: u64,
    /// Records every tensor handed out, when set.
    made: Option<Arc<Mutex<HashMap<String, Tensor>>>>,
}

impl candle_nn::var_builder::SimpleBackend for FormulaBackend {
    fn get(&self, shape: Shape, name: &str, _: Init, dtype: DType, dev: &Device) -> Result<Tensor> {
        let key = name.replacen('.', ":", 1);
        let t = Tensor::from_vec(values(&key, shape.dims(), self.seed), shape, dev)?;
        if let Some(Ok(mut made)) = self.made.as_ref().map(|m| m.lock()) {
            made.insert(name.to_string(), t.clone());
        }
        t.to_dtype(dtype)
    }

    fn get_unchecked(&self, name: &str, _: DType, _: &Device) -> Result<Tensor> {
        candle_core::bail!("formula weights need the shape of `{name}`")
    }

    fn contains_tensor(&self, _: &str) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_documented_self_check() {
        // shared/docs/stya2k.md: key "q.weight", seed 7, first four u.
        let want = [0.08490163324418187, 0.7553796976931921, -0.2855729844414563, 0.36993715714588804];
        for (i, w) in want.iter().enumerate() {
            assert_eq!(uniform("q.weight", 7, i as u64), *w);
        }
    }
}
