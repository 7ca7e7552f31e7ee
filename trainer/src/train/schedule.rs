//! The schedule: which branches a step trains, and its learning rate. A schedule is written in
//! epochs (`schedule.epochs`, `schedule.coarse_only_epochs`) or in steps (`schedule.steps`,
//! `schedule.coarse_only_steps`: the same recipe on a folder of another size); both become the
//! step counts of [`Steps`].

use crate::config::{LrDecay, OptimConfig, ScheduleConfig, TrainConfig};
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
    /// Whether the parameter `name` trains in this phase (the fine branch's parameters are
    /// named `fine.*`).
    pub fn trains(self, name: &str) -> bool {
        self != Phase::Fine || name.starts_with("fine.")
    }
}

/// Steps in an epoch over `images` training images (the last batch may be short).
pub fn steps_per_epoch(s: &ScheduleConfig, images: usize) -> u64 {
    images.div_ceil(s.batch_size) as u64
}

/// A schedule in steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Steps {
    /// Coarse-only steps at the start (the warm-up).
    pub warm_up: u64,
    /// All steps, warm-up included.
    pub total: u64,
    freeze_coarse: bool,
}

impl Steps {
    /// The steps of `s` for epochs of `per_epoch` steps (`schedule.steps` when set, else whole
    /// epochs).
    pub fn of(s: &ScheduleConfig, per_epoch: u64) -> Steps {
        let (warm_up, total) = match s.steps {
            Some(n) => (s.coarse_only_steps.unwrap_or(0).min(n), n),
            None => (s.coarse_only_epochs.min(s.epochs) * per_epoch, s.epochs * per_epoch),
        };
        Steps { warm_up, total, freeze_coarse: s.freeze_coarse }
    }

    /// The learning rate of the step that follows `done` steps (`optim.decay`; with a cosine,
    /// it restarts at the end of the warm-up).
    pub fn learning_rate(&self, o: &OptimConfig, done: u64) -> f64 {
        let in_warm_up = done < self.warm_up;
        match o.decay {
            LrDecay::Constant => o.lr,
            LrDecay::CosineAfterWarmUp if in_warm_up => o.lr,
            LrDecay::Cosine | LrDecay::CosineAfterWarmUp => {
                let (first, end) = if in_warm_up { (0, self.warm_up) } else { (self.warm_up, self.total) };
                let k = done - first;
                let total = (end - first).max(1);
                o.lr * 0.5 * (1.0 + (std::f64::consts::PI * k as f64 / total as f64).cos())
            }
        }
    }

    /// The phase of the step that follows `done` steps.
    pub fn phase(&self, done: u64) -> Phase {
        if done < self.warm_up {
            Phase::Coarse
        } else if self.freeze_coarse {
            Phase::Fine
        } else {
            Phase::Joint
        }
    }
}

/// The learning rate of the step that follows `done` steps for epochs of `per_epoch` steps
/// ([`Steps::learning_rate`] of the schedule).
pub fn learning_rate(cfg: &TrainConfig, done: u64, per_epoch: u64) -> f64 {
    Steps::of(&cfg.schedule, per_epoch).learning_rate(&cfg.optim, done)
}
