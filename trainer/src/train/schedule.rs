//! The schedule: which branches an epoch trains, and the learning rate of each step.

use crate::config::{LrDecay, TrainConfig};
use serde::{Deserialize, Serialize};

/// Which branches a step trains.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Encoder + coarse branch (Ncut + GTV coarse); the fine branch is not run.
    Coarse,
    /// Everything (all four terms).
    Joint,
    /// The fine branch only (SR + GTV fine), over the frozen encoder and coarse branch
    /// (`schedule.freeze_coarse`); the coarse terms are still computed, for the log.
    Fine,
}

impl Phase {
    /// The phase of `epoch` under `s`.
    pub fn of_epoch(s: &crate::config::ScheduleConfig, epoch: u64) -> Phase {
        if epoch < s.coarse_only_epochs {
            Phase::Coarse
        } else if s.freeze_coarse {
            Phase::Fine
        } else {
            Phase::Joint
        }
    }

    /// Whether the parameter `name` trains in this phase (the fine branch's parameters are
    /// named `fine.*`).
    pub fn trains(self, name: &str) -> bool {
        self != Phase::Fine || name.starts_with("fine.")
    }
}

/// The learning rate of the step of `epoch` that follows `batch` of its batches
/// (`optim.decay`; the phases are those of [`Phase::of_epoch`]: warm-up, then the rest).
pub fn learning_rate(cfg: &TrainConfig, epoch: u64, batch: u64, steps_per_epoch: u64) -> f64 {
    let (o, s) = (&cfg.optim, &cfg.schedule);
    let warm = s.coarse_only_epochs.min(s.epochs);
    match o.decay {
        LrDecay::Constant => o.lr,
        LrDecay::CosineAfterWarmUp if epoch < warm => o.lr,
        LrDecay::Cosine | LrDecay::CosineAfterWarmUp => {
            let (first, end) = if epoch < warm { (0, warm) } else { (warm, s.epochs) };
            let k = (epoch - first) * steps_per_epoch + batch;
            let total = ((end - first) * steps_per_epoch).max(1);
            o.lr * 0.5 * (1.0 + (std::f64::consts::PI * k as f64 / total as f64).cos())
        }
    }
}
