//! The training loop: Adam on the heads over a frozen backbone, batches from the feature cache,
//! an optional coarse-only warm-up, then joint training (or the fine branch alone over the frozen
//! warm-up model, `schedule.freeze_coarse`); a JSON-lines log, atomic checkpoints, exact resume,
//! and per-epoch validation with the SDK's post-processing and metrics.
//!
//! Output folder (`out_dir`):
//!
//! | file | content |
//! | --- | --- |
//! | `checkpoint.safetensors` | heads weights under their `VarStore` names (BatchNorm statistics included; `VarStore::load` reads it), Adam moments (`optim.adam.m.<name>`, `optim.adam.v.<name>`), and in the metadata the [`TrainState`], the [`TrainConfig`], the per-parameter Adam step counts and the backbone identity. Written atomically after every epoch (and every `checkpoint_every_steps`). |
//! | `log.jsonl` | one [`StepRecord`] per step |
//! | `val.jsonl` | one [`ValRecord`] per validation |
//! | `config.toml` | the resolved configuration |
//!
//! Determinism: the heads are initialised after `tch::manual_seed(seed)`; the order of the
//! images and the flips of epoch `e` are a pure function of `(seed, e)` ([`epoch_plan`]); no
//! other randomness is used (no dropout). A fixed seed gives bit-identical weights on the same
//! machine and thread count.
//!
//! Resume restores everything the continuation depends on: the weights and BatchNorm
//! statistics, Adam's first and second moments and per-parameter step counts (Adam is
//! implemented here, not tch's, so its state can be saved), and the position (global step,
//! epoch, batch within the epoch); the epoch's order and flips are recomputed from the seed.
//! A resumed run therefore produces the same weights as an uninterrupted one. Resume refuses a
//! checkpoint whose configuration (anything but epochs, checkpointing, validation and paths
//! of outputs), backbone or image set differs.

use crate::backbone::{Backbone, BackboneFormat};
use crate::config::TrainConfig;
use crate::feature_cache::PrepareStats;
use crate::heads::Heads;
use crate::progress::{Progress, ProgressMode};
use anyhow::{bail, ensure, Context, Result};
use sempart::GuidedFilter;
use std::path::{Path, PathBuf};
use std::time::Instant;
use tch::{nn, Device};

/// File name of the checkpoint inside `out_dir`.
pub const CHECKPOINT_FILE: &str = "checkpoint.safetensors";
pub use logs::{LOG_FILE, VAL_LOG_FILE};

mod adam;
mod checkpoint;
mod dataset;
mod evaluation;
mod fine_targets;
mod logs;
mod rng;
mod schedule;
mod step;
mod target_cache;
mod targets;

pub use adam::Adam;
pub use checkpoint::{
    load_heads_checkpoint, load_heads_checkpoint_at, read_checkpoint, restore_variables, save_checkpoint, Checkpoint,
    TrainState,
};
pub use evaluation::{evaluate_heads, HeadsScores};
pub use logs::{phase_costs, StepRecord, ValRecord};
pub use rng::{epoch_plan, with_seeded_torch, SplitMix64};
pub use schedule::{learning_rate, Phase, Steps};
pub use step::{channels_last, heads_forward};

use dataset::TrainingSet;
use logs::RunLogs;

/// How [`train`] runs.
#[derive(Debug, Clone)]
pub struct TrainOptions {
    /// Continue from `out_dir/checkpoint.safetensors`.
    pub resume: bool,
    /// Start afresh even if `out_dir` holds a checkpoint (it is replaced).
    pub overwrite: bool,
    /// Show progress bars.
    pub progress: bool,
    /// Stop (with a checkpoint) once the global step reaches this.
    pub max_steps: Option<u64>,
}

impl Default for TrainOptions {
    fn default() -> Self {
        TrainOptions { resume: false, overwrite: false, progress: true, max_steps: None }
    }
}

/// What a run did.
#[derive(Debug)]
pub struct TrainSummary {
    /// Final position.
    pub state: TrainState,
    /// The steps of this invocation.
    pub steps: Vec<StepRecord>,
    /// Validation results of this invocation.
    pub validation: Vec<ValRecord>,
    /// Feature preparation.
    pub prepare: PrepareStats,
    /// The checkpoint file.
    pub checkpoint: PathBuf,
    /// The trained heads' variables.
    pub vs: nn::VarStore,
}

/// Loads the configured backbone (format detected when not given) onto the CPU.
pub fn load_backbone_for(cfg: &TrainConfig) -> Result<Backbone> {
    let format: BackboneFormat = cfg.backbone_format()?;
    Backbone::load(&cfg.backbone.path, format, cfg.backbone.num_heads, Device::Cpu)
}

/// Loads the backbone and trains (see [`train_with_backbone`]).
pub fn train(cfg: &TrainConfig, opts: &TrainOptions) -> Result<TrainSummary> {
    let backbone = load_backbone_for(cfg)?;
    train_with_backbone(cfg, &backbone, opts)
}

/// Trains the heads over `backbone` as `cfg` says (the configured backbone path is not read;
/// its identity is taken from the weights). Writes the outputs described in the module
/// documentation.
pub fn train_with_backbone(cfg: &TrainConfig, backbone: &Backbone, opts: &TrainOptions) -> Result<TrainSummary> {
    check_backbone(cfg, backbone)?;
    let ckpt_path = prepare_out_dir(cfg, opts)?;
    let set = TrainingSet::prepare(cfg, backbone, opts.progress)?;
    let vs = nn::VarStore::new(Device::Cpu);
    let heads = with_seeded_torch(cfg.schedule.seed as i64, || {
        Heads::new(&vs.root(), &cfg.heads, cfg.input.mean, cfg.input.std)
    })?;
    let mut adam = Adam::new(&vs, &cfg.optim);
    let (state, logs) = if opts.resume {
        let state = checkpoint::resume(&ckpt_path, cfg, &set.run_data(), &vs, &mut adam)?;
        let logs = RunLogs::resumed(&cfg.out_dir, state.global_step)?;
        (state, logs)
    } else {
        if ckpt_path.is_file() {
            std::fs::remove_file(&ckpt_path)?;
        }
        (TrainState::start(&set.run_data()), RunLogs::fresh(&cfg.out_dir)?)
    };
    crate::data::write_atomic(&cfg.out_dir.join("config.toml"), cfg.to_toml()?.as_bytes())?;
    let per_epoch = schedule::steps_per_epoch(&cfg.schedule, set.records.len());
    let schedule = Steps::of(&cfg.schedule, per_epoch);
    let bar = Progress::new(schedule.total, ProgressMode::for_stderr(opts.progress), "train");
    bar.set_position(state.global_step.min(schedule.total));
    let mut run = Run {
        cfg,
        opts,
        set: &set,
        per_epoch,
        schedule,
        heads: &heads,
        vs: &vs,
        checkpoint: &ckpt_path,
        adam,
        logs,
        bar,
        steps: Vec::new(),
        validation: Vec::new(),
        started: Instant::now(),
        elapsed_before: state.elapsed_seconds,
        state,
    };
    while !run.schedule_done() {
        if !run.epoch()? {
            break;
        }
        run.validate()?;
    }
    let (state, steps, validation) = run.finish()?;
    Ok(TrainSummary { state, steps, validation, prepare: set.prepare, checkpoint: ckpt_path, vs })
}

/// Refuses a backbone whose patch or width differs from the heads'.
fn check_backbone(cfg: &TrainConfig, backbone: &Backbone) -> Result<()> {
    cfg.validate()?;
    let bcfg = backbone.config();
    ensure!(
        bcfg.patch_size == cfg.heads.patch_size,
        "heads.patch_size = {} but the backbone's patch is {}",
        cfg.heads.patch_size,
        bcfg.patch_size
    );
    ensure!(
        bcfg.embed_dim == cfg.heads.feature_dim,
        "heads.feature_dim = {} but the backbone's width is {}",
        cfg.heads.feature_dim,
        bcfg.embed_dim
    );
    Ok(())
}

/// Creates `out_dir` and checks that the run may use it: a resume needs its checkpoint, a fresh
/// run may replace one only when told to. Returns the checkpoint's path.
fn prepare_out_dir(cfg: &TrainConfig, opts: &TrainOptions) -> Result<PathBuf> {
    let out_dir = &cfg.out_dir;
    std::fs::create_dir_all(out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    let ckpt_path = out_dir.join(CHECKPOINT_FILE);
    if opts.resume {
        ensure!(ckpt_path.is_file(), "nothing to resume: {} does not exist", ckpt_path.display());
    } else if ckpt_path.is_file() && !opts.overwrite {
        bail!("{} exists: resume it, allow overwriting, or choose another out_dir", ckpt_path.display());
    }
    Ok(ckpt_path)
}

/// A run in progress: the heads and their optimiser, the position, and what the run writes.
struct Run<'a> {
    cfg: &'a TrainConfig,
    opts: &'a TrainOptions,
    set: &'a TrainingSet<'a>,
    /// Steps in one epoch over the set.
    per_epoch: u64,
    schedule: Steps,
    heads: &'a Heads,
    vs: &'a nn::VarStore,
    checkpoint: &'a Path,
    adam: Adam,
    state: TrainState,
    logs: RunLogs,
    bar: Progress,
    steps: Vec<StepRecord>,
    validation: Vec<ValRecord>,
    started: Instant,
    elapsed_before: f64,
}

impl Run<'_> {
    /// Runs the rest of the current epoch (up to the schedule's last step); false when
    /// `max_steps` or the schedule's end stopped the run within it.
    fn epoch(&mut self) -> Result<bool> {
        let epoch = self.state.epoch;
        let (n, bs) = (self.set.records.len(), self.cfg.schedule.batch_size);
        let plan = epoch_plan(self.cfg.schedule.seed, epoch, n, self.cfg.data.hflip);
        let mut trainable = None;
        for b in self.state.batch_in_epoch..self.per_epoch {
            if self.stop_reached() || self.schedule_done() {
                return Ok(false);
            }
            let phase = self.schedule.phase(self.state.global_step);
            if trainable != Some(phase) {
                self.adam.set_trainable(|name| phase.trains(name));
                trainable = Some(phase);
            }
            let lo = b as usize * bs;
            self.step(phase, b, &plan[lo..(lo + bs).min(n)])?;
        }
        if self.state.epoch == epoch {
            // Only when the epoch had no batch left to run.
            self.state.epoch += 1;
        }
        self.state.batch_in_epoch = 0;
        Ok(true)
    }

    /// Batch `b` of the current epoch (the `chosen` images): one optimisation step, its log
    /// line, and a checkpoint at the end of the epoch, every `checkpoint_every_steps` and when
    /// the run stops.
    fn step(&mut self, phase: Phase, b: u64, chosen: &[(usize, bool)]) -> Result<()> {
        let t0 = Instant::now();
        let epoch = self.state.epoch;
        let batch = self.set.batch(chosen)?;
        self.state.global_step += 1;
        self.state.batch_in_epoch = b + 1;
        if let Some(batch) = batch {
            self.adam.lr = self.schedule.learning_rate(&self.cfg.optim, self.state.global_step - 1);
            let values = step::train_step(self.cfg, self.heads, &mut self.adam, &batch, phase)?;
            ensure!(values.total.is_finite(), "the loss is not finite at step {}: {values:?}", self.state.global_step);
            let rec = StepRecord {
                step: self.state.global_step,
                epoch,
                phase,
                losses: values,
                lr: self.adam.lr,
                batch: batch.len(),
                seconds: t0.elapsed().as_secs_f64(),
            };
            self.logs.step(&rec)?;
            self.bar.set_message(rec.progress_message());
            self.steps.push(rec);
        }
        self.bar.inc(1);
        self.state.elapsed_seconds = self.elapsed_before + self.started.elapsed().as_secs_f64();
        let end_of_epoch = b + 1 == self.per_epoch;
        if end_of_epoch {
            self.state.epoch += 1;
            self.state.batch_in_epoch = 0;
        }
        let periodic =
            self.cfg.schedule.checkpoint_every_steps.is_some_and(|k| self.state.global_step.is_multiple_of(k));
        if end_of_epoch || periodic || self.stop_reached() || self.schedule_done() {
            self.save()?;
        }
        Ok(())
    }

    /// Scores the heads on the validation set when one is configured and the epoch is due.
    fn validate(&mut self) -> Result<()> {
        let due = self.state.epoch.is_multiple_of(self.cfg.schedule.validate_every_epochs);
        if self.set.validation.is_empty() || !due {
            return Ok(());
        }
        let t0 = Instant::now();
        let bs = self.cfg.schedule.batch_size;
        let scores = evaluate_heads(self.heads, &self.set.store, &self.set.validation, bs, &GuidedFilter::DEFAULT)?;
        let (epoch, step, seconds) = (self.state.epoch, self.state.global_step, t0.elapsed().as_secs_f64());
        let rec = ValRecord { epoch, step, scores, seconds };
        self.logs.validation(&rec)?;
        self.bar.println(&format!(
            "epoch {epoch}: IoU fine {:.3} coarse {:.3}, maxF fine {:.3} coarse {:.3}",
            scores.fine.iou, scores.coarse.iou, scores.fine.maxf, scores.coarse.maxf
        ));
        self.validation.push(rec);
        Ok(())
    }

    /// Whether the schedule's last step has run.
    fn schedule_done(&self) -> bool {
        self.state.global_step >= self.schedule.total
    }

    fn stop_reached(&self) -> bool {
        self.opts.max_steps.is_some_and(|m| self.state.global_step >= m)
    }

    fn save(&self) -> Result<()> {
        save_checkpoint(self.checkpoint, self.cfg, self.vs, &self.adam, &self.state, &self.set.identity)
    }

    /// Ends the run (with a checkpoint when none was written): the position, steps and
    /// validations.
    fn finish(self) -> Result<(TrainState, Vec<StepRecord>, Vec<ValRecord>)> {
        self.bar.finish();
        if !self.checkpoint.is_file() {
            self.save()?;
        }
        Ok((self.state, self.steps, self.validation))
    }
}
