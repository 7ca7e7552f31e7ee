//! Adam on the heads, implemented here (not tch's) so that its state can be checkpointed.

use crate::config::OptimConfig;
use anyhow::{Context, Result};
use std::collections::BTreeMap;
use tch::{nn, Tensor};

/// Name prefix of Adam's first moments in a checkpoint.
pub(super) const ADAM_M: &str = "optim.adam.m.";
/// Name prefix of Adam's second moments in a checkpoint.
pub(super) const ADAM_V: &str = "optim.adam.v.";

/// Adam (Kingma and Ba) with PyTorch's update and per-parameter step counts, whose state can be
/// saved: `m = b1 m + (1 - b1) g`, `v = b2 v + (1 - b2) g^2`,
/// `p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)`. Parameters without a gradient
/// are skipped (their step count does not advance), as in PyTorch.
#[derive(Debug)]
pub struct Adam {
    /// Learning rate.
    pub lr: f64,
    beta1: f64,
    beta2: f64,
    eps: f64,
    params: Vec<(String, Tensor)>,
    m: Vec<Tensor>,
    v: Vec<Tensor>,
    steps: Vec<u64>,
    frozen: Vec<bool>,
}

impl Adam {
    /// Adam over the trainable variables of `vs` (those that require a gradient; BatchNorm
    /// running statistics do not).
    pub fn new(vs: &nn::VarStore, cfg: &OptimConfig) -> Adam {
        let mut params: Vec<(String, Tensor)> = vs.variables().into_iter().filter(|(_, t)| t.requires_grad()).collect();
        params.sort_by(|a, b| a.0.cmp(&b.0));
        let m = params.iter().map(|(_, p)| p.zeros_like().detach()).collect();
        let v = params.iter().map(|(_, p)| p.zeros_like().detach()).collect();
        let steps = vec![0; params.len()];
        let frozen = vec![false; params.len()];
        Adam { lr: cfg.lr, beta1: cfg.betas[0], beta2: cfg.betas[1], eps: cfg.eps, params, m, v, steps, frozen }
    }

    /// Freezes the parameters for which `trains(name)` is false and unfreezes the others. A
    /// frozen parameter is left as it is by [`Adam::step`] (its moments and step count too),
    /// even when it holds a gradient.
    pub fn set_trainable(&mut self, trains: impl Fn(&str) -> bool) {
        for ((name, _), frozen) in self.params.iter().zip(&mut self.frozen) {
            *frozen = !trains(name);
        }
    }

    /// Names of the optimised parameters, sorted.
    pub fn names(&self) -> Vec<&str> {
        self.params.iter().map(|(n, _)| n.as_str()).collect()
    }

    /// Per-parameter step counts.
    pub fn steps(&self) -> BTreeMap<String, u64> {
        self.params.iter().zip(&self.steps).map(|((n, _), &s)| (n.clone(), s)).collect()
    }

    /// Zeroes the gradients.
    pub fn zero_grad(&mut self) {
        for (_, p) in &mut self.params {
            p.zero_grad();
        }
    }

    /// One update from the current gradients.
    pub fn step(&mut self) {
        let (b1, b2) = (self.beta1, self.beta2);
        tch::no_grad(|| {
            for i in 0..self.params.len() {
                let g = self.params[i].1.grad();
                if self.frozen[i] || !g.defined() {
                    continue;
                }
                self.steps[i] += 1;
                let t = self.steps[i] as i32;
                let m = &self.m[i] * b1 + &g * (1.0 - b1);
                let v = &self.v[i] * b2 + (&g * &g) * (1.0 - b2);
                self.m[i].copy_(&m);
                self.v[i].copy_(&v);
                let bc1 = 1.0 - b1.powi(t);
                let bc2 = 1.0 - b2.powi(t);
                let denom = v.sqrt() / bc2.sqrt() + self.eps;
                let update = m / denom * (self.lr / bc1);
                let _ = self.params[i].1.f_sub_(&update).expect("Adam update");
            }
        });
    }

    pub(super) fn state_tensors(&self) -> Vec<(String, Tensor)> {
        let mut out = Vec::with_capacity(2 * self.params.len());
        for (i, (name, _)) in self.params.iter().enumerate() {
            out.push((format!("{ADAM_M}{name}"), self.m[i].shallow_clone()));
            out.push((format!("{ADAM_V}{name}"), self.v[i].shallow_clone()));
        }
        out
    }

    pub(super) fn load_state(
        &mut self,
        tensors: &BTreeMap<String, Tensor>,
        steps: &BTreeMap<String, u64>,
    ) -> Result<()> {
        tch::no_grad(|| -> Result<()> {
            for (i, (name, _)) in self.params.iter().enumerate() {
                let m = tensors
                    .get(&format!("{ADAM_M}{name}"))
                    .with_context(|| format!("checkpoint has no Adam state for {name}"))?;
                let v = tensors
                    .get(&format!("{ADAM_V}{name}"))
                    .with_context(|| format!("checkpoint has no Adam state for {name}"))?;
                self.m[i].f_copy_(m)?;
                self.v[i].f_copy_(v)?;
                self.steps[i] =
                    *steps.get(name).with_context(|| format!("checkpoint has no Adam step count for {name}"))?;
            }
            Ok(())
        })
    }
}
