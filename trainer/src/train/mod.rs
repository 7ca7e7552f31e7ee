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
use crate::config::{LrDecay, OptimConfig, TrainConfig};
use crate::data::{self, ImageRecord, LabelledImage};
use crate::feature_cache::{backbone_identity, progress_bar, Extractor, FeatureStore, Features, PrepareStats};
use crate::heads::Heads;
use crate::losses::{self, FineInputs, LossValues};
use crate::tokencut::{tokencut, tokencut_features, TokenCutConfig};
use anyhow::{anyhow, bail, ensure, Context, Result};
use sempart::metrics::SaliencyScores;
use sempart::GuidedFilter;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;
use tch::{nn, Device, Kind, Tensor};

/// File name of the checkpoint inside `out_dir`.
pub const CHECKPOINT_FILE: &str = "checkpoint.safetensors";
/// File name of the step log inside `out_dir`.
pub const LOG_FILE: &str = "log.jsonl";
/// File name of the validation log inside `out_dir`.
pub const VAL_LOG_FILE: &str = "val.jsonl";

const META_STATE: &str = "sempart.train.state";
const META_CONFIG: &str = "sempart.train.config";
const META_ADAM_STEPS: &str = "sempart.train.adam_steps";
const META_HEADS: &str = sempart::model_format::keys::HEADS_CONFIG;
const META_BACKBONE: &str = "sempart.train.backbone_identity";
const ADAM_M: &str = "optim.adam.m.";
const ADAM_V: &str = "optim.adam.v.";

mod adam;
mod checkpoint;
mod evaluation;
mod rng;
mod schedule;
mod targets;

pub use adam::*;
pub use checkpoint::*;
pub use evaluation::*;
pub use rng::*;
pub use schedule::*;
use targets::*;

// ------------------------------------------------------------------------------------------
// Training
// ------------------------------------------------------------------------------------------

/// One line of `log.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    /// Global step number (1-based).
    pub step: u64,
    /// Epoch (0-based).
    pub epoch: u64,
    /// Phase.
    pub phase: Phase,
    /// Loss terms (unweighted) and the weighted total.
    #[serde(flatten)]
    pub losses: LossValues,
    /// Learning rate.
    pub lr: f64,
    /// Images in the batch.
    pub batch: usize,
    /// Wall time of the step (data loading included), seconds.
    pub seconds: f64,
}

/// One line of `val.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ValRecord {
    /// Epochs completed.
    pub epoch: u64,
    /// Global step.
    pub step: u64,
    /// Scores.
    #[serde(flatten)]
    pub scores: HeadsScores,
    /// Wall time of the evaluation, seconds.
    pub seconds: f64,
}

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

/// A batch ready for the heads.
struct Batch {
    tokens: Tensor,
    affinity_features: Tensor,
    image: Tensor,
    /// Self-training targets `[N, 1, h, w]` (when `loss.w_pseudo > 0`).
    pseudo: Option<Tensor>,
}

fn make_batch(feats: &[Features], use_keys: bool, pseudo: Option<Vec<Tensor>>) -> Result<Batch> {
    let stack = |f: &dyn Fn(&Features) -> Option<Tensor>| -> Result<Tensor> {
        let v = feats.iter().map(f).collect::<Option<Vec<_>>>().context("missing keys in the features")?;
        Ok(Tensor::stack(&v, 0))
    };
    let tokens = stack(&|f| Some(f.tokens.shallow_clone()))?;
    let affinity_features =
        if use_keys { stack(&|f| f.keys.as_ref().map(|k| k.shallow_clone()))? } else { tokens.shallow_clone() };
    let image = stack(&|f| Some(f.image.shallow_clone()))?;
    let pseudo = pseudo.map(|p| Tensor::stack(&p, 0));
    Ok(Batch { tokens, affinity_features, image, pseudo })
}

/// The same tensor with channels-last strides (NHWC in memory, NCHW logically): libtorch's CPU
/// convolutions and bilinear upsampling run 2-5x faster on the fine branch's few-channel,
/// large maps in this layout.
pub fn channels_last(t: &Tensor) -> Tensor {
    t.permute([0, 2, 3, 1]).contiguous().permute([0, 3, 1, 2])
}

/// [`Heads::forward_t`] with the fine branch run on channels-last activations (same
/// mathematics, faster on the CPU): the encoder map and the image are laid out channels-last
/// before the fine branch.
pub fn heads_forward(
    heads: &Heads,
    patch_tokens: &Tensor,
    image: &Tensor,
    train: bool,
    joint: bool,
) -> crate::heads::HeadsOutput {
    let encoded = heads.encode(patch_tokens);
    let coarse = heads.coarse_from(&encoded);
    let fine_in = if joint { encoded } else { encoded.detach() };
    let fine = heads.fine_from(&channels_last(&fine_in), &channels_last(image), train);
    crate::heads::HeadsOutput { fine, coarse }
}

/// One optimisation step; returns the loss values.
fn train_step(cfg: &TrainConfig, heads: &Heads, adam: &mut Adam, batch: &Batch, phase: Phase) -> LossValues {
    let l = &cfg.loss;
    let grid = cfg.heads.grid();
    let w = losses::affinity_for(l, &batch.affinity_features);
    let ga = losses::grid_affinity_from_features(
        &batch.affinity_features,
        grid,
        l.features.centered(),
        l.gtv_coarse_tau,
        l.gtv_coarse_eps,
    );
    let (mut terms, coarse) = match phase {
        Phase::Coarse => {
            let coarse = heads.coarse_from(&heads.encode(&batch.tokens));
            (losses::sempart_loss(l, &coarse, &w, &ga, None), coarse)
        }
        Phase::Joint | Phase::Fine => {
            let joint = cfg.schedule.joint;
            let mut out = heads_forward(heads, &batch.tokens, &batch.image, true, joint);
            if phase == Phase::Fine {
                // Frozen coarse branch: its terms are logged but train nothing.
                out.coarse = out.coarse.detach();
            }
            let ia = tch::no_grad(|| {
                let dev = batch.image.device();
                let mean =
                    Tensor::from_slice(&cfg.input.mean).to_kind(Kind::Float).reshape([1, 3, 1, 1]).to_device(dev);
                let std = Tensor::from_slice(&cfg.input.std).to_kind(Kind::Float).reshape([1, 3, 1, 1]).to_device(dev);
                let rgb01 = &batch.image * std + mean;
                losses::grid_affinity_from_image(&(rgb01 * l.gtv_fine_color_scale), l.gtv_fine_sigma)
            });
            let coarse_sr = if joint { out.coarse.shallow_clone() } else { out.coarse.detach() };
            let fine = FineInputs {
                fine: &out.fine,
                coarse_for_sr: &coarse_sr,
                image_affinity: &ia,
                patch: cfg.heads.patch_size,
            };
            (losses::sempart_loss(l, &out.coarse, &w, &ga, Some(fine)), out.coarse)
        }
    };
    if let Some(p) = &batch.pseudo {
        terms.add_pseudo(&coarse, p, l.w_pseudo);
    }
    adam.zero_grad();
    terms.total.backward();
    adam.step();
    terms.values()
}

/// Keeps the JSON lines of a log whose `step` is at most `max_step` (for resume).
fn truncate_log(path: &Path, max_step: u64) -> Result<()> {
    if !path.is_file() {
        return Ok(());
    }
    let text = std::fs::read_to_string(path)?;
    let mut out = String::new();
    for line in text.lines() {
        let keep = serde_json::from_str::<serde_json::Value>(line)
            .ok()
            .and_then(|v| v.get("step").and_then(|s| s.as_u64()))
            .is_some_and(|s| s <= max_step);
        if keep {
            out.push_str(line);
            out.push('\n');
        }
    }
    data::write_atomic(path, out.as_bytes())
}

fn append_line<T: Serialize>(file: &mut std::fs::File, v: &T) -> Result<()> {
    let mut line = serde_json::to_string(v)?;
    line.push('\n');
    file.write_all(line.as_bytes())?;
    file.flush()?;
    Ok(())
}

fn fmt_opt(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_string(), |x| format!("{x:.4}"))
}

/// Trains the heads over `backbone` as `cfg` says (the configured backbone path is not read;
/// its identity is taken from the weights). Writes the outputs described in the module
/// documentation.
pub fn train_with_backbone(cfg: &TrainConfig, backbone: &Backbone, opts: &TrainOptions) -> Result<TrainSummary> {
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
    let out_dir = &cfg.out_dir;
    std::fs::create_dir_all(out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    let ckpt_path = out_dir.join(CHECKPOINT_FILE);
    if opts.resume {
        ensure!(ckpt_path.is_file(), "nothing to resume: {} does not exist", ckpt_path.display());
    } else if ckpt_path.is_file() && !opts.overwrite {
        bail!("{} exists: resume it, allow overwriting, or choose another out_dir", ckpt_path.display());
    }

    // Features.
    let use_keys = cfg.loss.features.uses_keys();
    let extractor = Extractor::new(backbone, cfg.input_spec(), use_keys)?;
    let store = FeatureStore::with_cache_dir(
        extractor,
        cfg.data.cache_dir.as_deref(),
        cfg.data.feature_dtype,
        cfg.data.image_dtype,
        cfg.data.extract_batch,
    )?;
    let identity = match store.cache() {
        Some(c) => c.spec().backbone.clone(),
        None => backbone_identity(backbone)?,
    };
    let mut paths = data::list_images_in(&cfg.data.train_dirs)?;
    if let Some(m) = cfg.data.max_images {
        paths.truncate(m);
    }
    let records = data::records_for(&paths);
    let flips: &[bool] = if cfg.data.hflip { &[false, true] } else { &[false] };
    let (records, prepare) = store.prepare(&records, flips, opts.progress)?;
    ensure!(!records.is_empty(), "no readable training image in {:?}", cfg.data.train_dirs);
    let dataset_hash =
        data::sha256_hex(records.iter().map(|r| r.content_hash.as_str()).collect::<Vec<_>>().join("\n").as_bytes());
    let pseudo = if cfg.loss.w_pseudo > 0.0 {
        Some(pseudo_labels(cfg, &identity, &store, &records, flips, opts.progress)?)
    } else {
        None
    };
    let val_set: Vec<LabelledImage> = match &cfg.data.val_dir {
        Some(d) => data::list_labelled(d, cfg.data.val_max_images)?,
        None => Vec::new(),
    };

    // Model and optimiser.
    let vs = nn::VarStore::new(Device::Cpu);
    let heads = with_seeded_torch(cfg.schedule.seed as i64, || {
        Heads::new(&vs.root(), &cfg.heads, cfg.input.mean, cfg.input.std)
    })?;
    let mut adam = Adam::new(&vs, &cfg.optim);
    let mut state = TrainState {
        global_step: 0,
        epoch: 0,
        batch_in_epoch: 0,
        images: records.len(),
        dataset_hash: dataset_hash.clone(),
        elapsed_seconds: 0.0,
    };
    let log_path = out_dir.join(LOG_FILE);
    let val_path = out_dir.join(VAL_LOG_FILE);
    if opts.resume {
        let ck = read_checkpoint(&ckpt_path)?;
        let (old, new) = (resume_fingerprint(&ck.config), resume_fingerprint(cfg));
        let differ: Vec<&str> = new.keys().filter(|k| old.get(*k) != new.get(*k)).copied().collect();
        ensure!(
            differ.is_empty(),
            "cannot resume {}: the configuration differs in {}",
            ckpt_path.display(),
            differ.join(", ")
        );
        ensure!(
            ck.backbone_identity == identity,
            "cannot resume {}: it was trained over another backbone",
            ckpt_path.display()
        );
        ensure!(
            ck.state.dataset_hash == dataset_hash,
            "cannot resume {}: the training images changed ({} at the checkpoint, {} now)",
            ckpt_path.display(),
            ck.state.images,
            records.len()
        );
        restore_variables(&vs, &ck.tensors)?;
        adam.load_state(&ck.tensors, &ck.adam_steps)?;
        state = ck.state;
        truncate_log(&log_path, state.global_step)?;
        truncate_log(&val_path, state.global_step)?;
    } else {
        std::fs::write(&log_path, b"").with_context(|| format!("creating {}", log_path.display()))?;
        std::fs::write(&val_path, b"")?;
        if ckpt_path.is_file() {
            std::fs::remove_file(&ckpt_path)?;
        }
    }
    data::write_atomic(&out_dir.join("config.toml"), cfg.to_toml()?.as_bytes())?;
    let mut log = std::fs::OpenOptions::new().append(true).create(true).open(&log_path)?;
    let mut val_log = std::fs::OpenOptions::new().append(true).create(true).open(&val_path)?;

    let n = records.len();
    let bs = cfg.schedule.batch_size;
    let steps_per_epoch = n.div_ceil(bs) as u64;
    let epochs = cfg.schedule.epochs;
    let total_steps = epochs * steps_per_epoch;
    let bar = progress_bar(total_steps, opts.progress, "train");
    bar.set_position(state.global_step.min(total_steps));
    let mut steps = Vec::new();
    let mut validation = Vec::new();
    let save = |state: &TrainState, adam: &Adam| save_checkpoint(&ckpt_path, cfg, &vs, adam, state, &identity);

    let run_start = Instant::now();
    let elapsed0 = state.elapsed_seconds;
    'epochs: while state.epoch < epochs {
        let epoch = state.epoch;
        let phase = Phase::of_epoch(&cfg.schedule, epoch);
        adam.set_trainable(|name| phase.trains(name));
        let plan = epoch_plan(cfg.schedule.seed, epoch, n, cfg.data.hflip);
        for b in state.batch_in_epoch..steps_per_epoch {
            if opts.max_steps.is_some_and(|m| state.global_step >= m) {
                break 'epochs;
            }
            let t0 = Instant::now();
            let lo = b as usize * bs;
            let chosen = &plan[lo..(lo + bs).min(n)];
            let items: Vec<(&ImageRecord, bool)> = chosen.iter().map(|&(i, f)| (&records[i], f)).collect();
            let mut feats: Vec<Features> = Vec::with_capacity(items.len());
            let mut targets: Vec<Tensor> = Vec::with_capacity(items.len());
            for (f, &(i, flip)) in store.get_many(&items).into_iter().zip(chosen) {
                let Some(f) = f else { continue };
                match &pseudo {
                    None => feats.push(f),
                    // An image without a pseudo-mask (features unreadable then) is skipped.
                    Some(p) => {
                        if let Some(t) = &p[i * flips.len() + usize::from(flip)] {
                            feats.push(f);
                            targets.push(t.shallow_clone());
                        }
                    }
                }
            }
            state.global_step += 1;
            state.batch_in_epoch = b + 1;
            if !feats.is_empty() {
                let batch = make_batch(&feats, use_keys, pseudo.as_ref().map(|_| targets))?;
                adam.lr = learning_rate(cfg, epoch, b, steps_per_epoch);
                let values = train_step(cfg, &heads, &mut adam, &batch, phase);
                ensure!(values.total.is_finite(), "the loss is not finite at step {}: {values:?}", state.global_step);
                let rec = StepRecord {
                    step: state.global_step,
                    epoch,
                    phase,
                    losses: values,
                    lr: adam.lr,
                    batch: feats.len(),
                    seconds: t0.elapsed().as_secs_f64(),
                };
                append_line(&mut log, &rec)?;
                bar.set_message(format!(
                    "ep {epoch} {phase:?} ncut {:.4} gtvc {:.4} sr {} gtvf {} pseudo {} total {:.4}",
                    values.ncut,
                    values.gtv_coarse,
                    fmt_opt(values.sr),
                    fmt_opt(values.gtv_fine),
                    fmt_opt(values.pseudo),
                    values.total
                ));
                steps.push(rec);
            }
            bar.inc(1);
            state.elapsed_seconds = elapsed0 + run_start.elapsed().as_secs_f64();
            let end_of_epoch = b + 1 == steps_per_epoch;
            if end_of_epoch {
                state.epoch += 1;
                state.batch_in_epoch = 0;
            }
            let periodic = cfg.schedule.checkpoint_every_steps.is_some_and(|k| state.global_step.is_multiple_of(k));
            let stopping = opts.max_steps.is_some_and(|m| state.global_step >= m);
            if end_of_epoch || periodic || stopping {
                save(&state, &adam)?;
            }
        }
        if state.epoch == epoch {
            // Only when the epoch had no batch left to run.
            state.epoch += 1;
        }
        state.batch_in_epoch = 0;
        if !val_set.is_empty() && state.epoch.is_multiple_of(cfg.schedule.validate_every_epochs) {
            let t0 = Instant::now();
            let scores = evaluate_heads(&heads, &store, &val_set, bs, &GuidedFilter::DEFAULT)?;
            let rec =
                ValRecord { epoch: state.epoch, step: state.global_step, scores, seconds: t0.elapsed().as_secs_f64() };
            append_line(&mut val_log, &rec)?;
            bar.println(format!(
                "epoch {}: IoU fine {:.3} coarse {:.3}, maxF fine {:.3} coarse {:.3}",
                state.epoch, scores.fine.iou, scores.coarse.iou, scores.fine.maxf, scores.coarse.maxf
            ));
            validation.push(rec);
        }
    }
    bar.finish_and_clear();
    if !ckpt_path.is_file() {
        save(&state, &adam)?;
    }
    Ok(TrainSummary { state, steps, validation, prepare, checkpoint: ckpt_path, vs })
}
