//! Adam (Kingma & Ba 2015) with its state in the open, so a checkpoint can save and restore it.
//!
//! The update is PyTorch's `torch.optim.Adam` without weight decay, which the official trainer uses
//! (betas 0.9 / 0.999, eps 1e-8): `m = b1 m + (1 - b1) g`, `v = b2 v + (1 - b2) g^2`,
//! `p -= lr * m_hat / (sqrt(v_hat) + eps)` with bias-corrected `m_hat`, `v_hat`. candle-nn's `AdamW`
//! computes the same step (a test checks it) but keeps its moments private, and an exact `--resume`
//! needs them.
use std::collections::HashMap;

use candle_core::backprop::GradStore;
use candle_core::{Result, Tensor, Var};

pub const BETA1: f64 = 0.9;
pub const BETA2: f64 = 0.999;
pub const EPS: f64 = 1e-8;

/// One trainable tensor and its moments.
struct Slot {
    name: String,
    param: Var,
    m: Tensor,
    v: Tensor,
}

pub struct Adam {
    slots: Vec<Slot>,
    /// Steps taken (the bias-correction exponent).
    t: u64,
}

impl Adam {
    /// Fresh state (zero moments) for named parameters.
    pub fn new(params: Vec<(String, Var)>) -> Result<Self> {
        let slots = params
            .into_iter()
            .map(|(name, param)| {
                let zeros = param.as_tensor().zeros_like()?;
                Ok(Slot { name, param, m: zeros.clone(), v: zeros })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { slots, t: 0 })
    }

    pub fn steps(&self) -> u64 {
        self.t
    }

    /// One update with learning rate `lr`; parameters without a gradient are left alone.
    pub fn step(&mut self, grads: &GradStore, lr: f64) -> Result<()> {
        self.t += 1;
        let t = self.t as i32;
        let (c1, c2) = (1.0 - BETA1.powi(t), 1.0 - BETA2.powi(t));
        for slot in &mut self.slots {
            let Some(g) = grads.get(slot.param.as_tensor()) else { continue };
            // candle leaves a variable's gradient attached to the backward graph (it detaches only
            // intermediate nodes), which holds the step's activations; the moments would chain every
            // step's graph to the next (300 MB a step at 64 px crops) unless cut here.
            let g = &g.detach();
            slot.m = ((&slot.m * BETA1)? + (g * (1.0 - BETA1))?)?;
            slot.v = ((&slot.v * BETA2)? + (g.sqr()? * (1.0 - BETA2))?)?;
            let m_hat = (&slot.m / c1)?;
            let v_hat = (&slot.v / c2)?;
            let update = (m_hat / (v_hat.sqrt()? + EPS)?)?;
            slot.param.set(&(slot.param.as_tensor() - (update * lr)?)?)?;
        }
        Ok(())
    }

    /// The moments under `<prefix>m.<name>` and `<prefix>v.<name>`.
    pub fn state(&self, prefix: &str) -> HashMap<String, Tensor> {
        self.slots
            .iter()
            .flat_map(|s| {
                [
                    (format!("{prefix}m.{}", s.name), s.m.clone()),
                    (format!("{prefix}v.{}", s.name), s.v.clone()),
                ]
            })
            .collect()
    }

    /// Restores moments saved by [`Adam::state`] and the step count `t`; every parameter's moments
    /// must be present with the parameter's shape.
    pub fn restore(&mut self, prefix: &str, tensors: &HashMap<String, Tensor>, t: u64) -> Result<()> {
        for slot in &mut self.slots {
            let get = |which: &str| -> Result<Tensor> {
                let key = format!("{prefix}{which}.{}", slot.name);
                let saved = tensors
                    .get(&key)
                    .ok_or_else(|| candle_core::Error::Msg(format!("optimizer state `{key}` missing")))?;
                if saved.shape() != slot.param.shape() {
                    candle_core::bail!(
                        "optimizer state `{key}`: shape {:?}, parameter {:?}",
                        saved.dims(),
                        slot.param.dims()
                    );
                }
                saved.to_device(slot.param.device())
            };
            slot.m = get("m")?;
            slot.v = get("v")?;
        }
        self.t = t;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, D};
    use candle_nn::{AdamW, Optimizer, ParamsAdamW};

    /// A few steps on a least-squares problem agree with candle-nn's AdamW at weight decay 0.
    #[test]
    fn matches_candle_adamw_without_weight_decay() -> Result<()> {
        let dev = Device::Cpu;
        let a = Tensor::new(&[[1f32, 2.], [3., -1.], [0.5, 4.]], &dev)?;
        let y = Tensor::new(&[1f32, -2., 3.], &dev)?;
        let init = Tensor::new(&[0.3f32, -0.7], &dev)?;
        let loss =
            |w: &Var| (a.matmul(&w.as_tensor().unsqueeze(1)?)?.squeeze(D::Minus1)? - &y)?.sqr()?.sum_all();
        let (ours, theirs) = (Var::from_tensor(&init)?, Var::from_tensor(&init)?);
        let mut adam = Adam::new(vec![("w".into(), ours.clone())])?;
        let params = ParamsAdamW { lr: 0.05, beta1: BETA1, beta2: BETA2, eps: EPS, weight_decay: 0.0 };
        let mut reference = AdamW::new(vec![theirs.clone()], params)?;
        for _ in 0..5 {
            adam.step(&loss(&ours)?.backward()?, 0.05)?;
            reference.backward_step(&loss(&theirs)?)?;
        }
        let (o, t) = (ours.as_tensor().to_vec1::<f32>()?, theirs.as_tensor().to_vec1::<f32>()?);
        for (o, t) in o.iter().zip(&t) {
            assert!((o - t).abs() < 1e-6, "{o} vs {t}");
        }
        assert!((o[0] - 0.3).abs() > 0.1, "the parameters moved");
        Ok(())
    }

    /// The moments must not keep the step's graph: a parameter whose gradient flows through another
    /// parameter's activation gets a gradient that candle leaves attached to the backward graph.
    #[test]
    fn moments_hold_no_graph() -> Result<()> {
        let dev = Device::Cpu;
        let (w1, w2) = (Var::new(&[0.5f32, -1.0], &dev)?, Var::new(&[2.0f32, 3.0], &dev)?);
        let hidden = w1.as_tensor().exp()?; // an activation that tracks w1
        let loss = (w2.as_tensor() * &hidden)?.sum_all()?;
        let mut adam = Adam::new(vec![("w1".into(), w1), ("w2".into(), w2)])?;
        adam.step(&loss.backward()?, 0.1)?;
        for (name, t) in adam.state("") {
            assert!(!t.track_op(), "optimizer state `{name}` is attached to the graph");
        }
        Ok(())
    }
}
