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

// ------------------------------------------------------------------------------------------
// Randomness
// ------------------------------------------------------------------------------------------

/// SplitMix64: a tiny, fast, well-mixed generator whose whole state is one `u64`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator from a seed.
    pub fn new(seed: u64) -> SplitMix64 {
        SplitMix64(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (multiply-shift; the bias is below 2^-32 for any realistic `n`).
    pub fn below(&mut self, n: u64) -> u64 {
        ((self.next_u64() as u128 * n as u128) >> 64) as u64
    }
}

/// The images of epoch `epoch` in order, each with its flip: a Fisher-Yates permutation of
/// `0..n` and (with `hflip`) one fair coin per position, from a generator seeded by
/// `(seed, epoch)` only.
pub fn epoch_plan(seed: u64, epoch: u64, n: usize, hflip: bool) -> Vec<(usize, bool)> {
    let mut rng = SplitMix64::new(seed ^ (epoch.wrapping_add(1)).wrapping_mul(0xD1B5_4A32_D192_ED03));
    let mut perm: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        perm.swap(i, j);
    }
    perm.into_iter().map(|i| (i, hflip && rng.next_u64() >> 63 == 1)).collect()
}

/// Serialises the users of libtorch's global generator within this process.
static TORCH_RNG: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Runs `f` right after `tch::manual_seed(seed)`, holding a process-wide lock so that no other
/// caller of this function draws from libtorch's global generator meanwhile (tests run in
/// parallel threads; the heads' initialisation must not interleave with another's).
pub fn with_seeded_torch<T>(seed: i64, f: impl FnOnce() -> T) -> T {
    let _guard = TORCH_RNG.lock().unwrap_or_else(|e| e.into_inner());
    tch::manual_seed(seed);
    f()
}

// ------------------------------------------------------------------------------------------
// Adam
// ------------------------------------------------------------------------------------------

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

    fn state_tensors(&self) -> Vec<(String, Tensor)> {
        let mut out = Vec::with_capacity(2 * self.params.len());
        for (i, (name, _)) in self.params.iter().enumerate() {
            out.push((format!("{ADAM_M}{name}"), self.m[i].shallow_clone()));
            out.push((format!("{ADAM_V}{name}"), self.v[i].shallow_clone()));
        }
        out
    }

    fn load_state(&mut self, tensors: &BTreeMap<String, Tensor>, steps: &BTreeMap<String, u64>) -> Result<()> {
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

// ------------------------------------------------------------------------------------------
// Checkpoints
// ------------------------------------------------------------------------------------------

/// Where a run stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainState {
    /// Steps done in total.
    pub global_step: u64,
    /// The epoch to continue with (= epochs completed when `batch_in_epoch` is 0).
    pub epoch: u64,
    /// Batches of `epoch` already done.
    pub batch_in_epoch: u64,
    /// Training images.
    pub images: usize,
    /// SHA-256 over the images' content hashes, in order.
    pub dataset_hash: String,
    /// Training wall time so far, in seconds.
    pub elapsed_seconds: f64,
}

/// A checkpoint's contents.
#[derive(Debug)]
pub struct Checkpoint {
    /// The run's configuration.
    pub config: TrainConfig,
    /// The position.
    pub state: TrainState,
    /// The backbone identity ([`backbone_identity`]).
    pub backbone_identity: String,
    /// Every tensor: heads variables by `VarStore` name, Adam moments under `optim.adam.*`.
    pub tensors: BTreeMap<String, Tensor>,
    /// Adam step counts per parameter.
    pub adam_steps: BTreeMap<String, u64>,
}

fn f32_bytes(t: &Tensor) -> Vec<u8> {
    let t = t.to_device(Device::Cpu).to_kind(Kind::Float).contiguous();
    let n = t.numel();
    let mut buf = vec![0u8; 4 * n];
    t.copy_data_u8(&mut buf, n);
    buf
}

/// Serialises a checkpoint (see the module documentation) and writes it atomically.
pub fn save_checkpoint(
    path: &Path,
    cfg: &TrainConfig,
    vs: &nn::VarStore,
    adam: &Adam,
    state: &TrainState,
    backbone_identity: &str,
) -> Result<()> {
    let mut tensors: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
    tensors.extend(adam.state_tensors());
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    let raw: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
        .iter()
        .map(|(n, t)| (n.clone(), t.size().iter().map(|&s| s as usize).collect(), f32_bytes(t)))
        .collect();
    let views = raw
        .iter()
        .map(|(n, shape, data)| {
            Ok((n.as_str(), safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), data)?))
        })
        .collect::<Result<Vec<_>>>()?;
    let meta = HashMap::from([
        ("format".to_string(), "pt".to_string()),
        (META_STATE.to_string(), serde_json::to_string(state)?),
        (META_CONFIG.to_string(), serde_json::to_string(cfg)?),
        (META_ADAM_STEPS.to_string(), serde_json::to_string(&adam.steps())?),
        (META_HEADS.to_string(), serde_json::to_string(&cfg.heads)?),
        (META_BACKBONE.to_string(), backbone_identity.to_string()),
    ]);
    let bytes = safetensors::serialize(views, Some(meta))?;
    data::write_atomic(path, &bytes)
}

/// Reads a checkpoint written by [`save_checkpoint`].
pub fn read_checkpoint(path: &Path) -> Result<Checkpoint> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let bad = |e: safetensors::SafeTensorError| anyhow!("{}: not a checkpoint: {e}", path.display());
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).map_err(bad)?;
    let meta = meta.metadata().clone().unwrap_or_default();
    let get = |k: &str| meta.get(k).with_context(|| format!("{}: not a training checkpoint (no {k})", path.display()));
    let config: TrainConfig = serde_json::from_str(get(META_CONFIG)?).context("checkpoint configuration")?;
    let state: TrainState = serde_json::from_str(get(META_STATE)?).context("checkpoint state")?;
    let adam_steps: BTreeMap<String, u64> =
        serde_json::from_str(get(META_ADAM_STEPS)?).context("checkpoint Adam steps")?;
    let backbone_identity = get(META_BACKBONE)?.clone();
    let st = safetensors::SafeTensors::deserialize(&bytes).map_err(bad)?;
    let tensors = st
        .tensors()
        .into_iter()
        .map(|(n, v)| Ok((n.clone(), crate::backbone::safetensor_to_tensor(&n, &v)?)))
        .collect::<Result<BTreeMap<_, _>>>()?;
    Ok(Checkpoint { config, state, backbone_identity, tensors, adam_steps })
}

/// Copies the checkpoint's heads variables into `vs` (every variable of `vs` must be there).
pub fn restore_variables(vs: &nn::VarStore, tensors: &BTreeMap<String, Tensor>) -> Result<()> {
    tch::no_grad(|| -> Result<()> {
        for (name, mut var) in vs.variables() {
            let src = tensors.get(&name).with_context(|| format!("the checkpoint has no variable {name}"))?;
            ensure!(
                src.size() == var.size(),
                "variable {name}: checkpoint shape {:?}, model {:?}",
                src.size(),
                var.size()
            );
            var.f_copy_(src)?;
        }
        Ok(())
    })
}

/// Loads trained heads from a checkpoint (for export and evaluation): the configuration, the
/// `VarStore` and the heads built on it.
pub fn load_heads_checkpoint(path: &Path) -> Result<(TrainConfig, nn::VarStore, Heads)> {
    let ck = read_checkpoint(path)?;
    let (vs, heads) = heads_from_checkpoint(&ck)?;
    Ok((ck.config, vs, heads))
}

/// [`load_heads_checkpoint`] for another input size (`height`, `width` in pixels, multiples of
/// the patch): the heads are size-agnostic except for the encoder's positional embedding,
/// which is resized bicubically from the trained grid to the new one (its [CLS] entry kept),
/// as the backbone's own table is. Quality at another size is measured, not assumed (README).
pub fn load_heads_checkpoint_at(path: &Path, height: i64, width: i64) -> Result<(TrainConfig, nn::VarStore, Heads)> {
    let mut ck = read_checkpoint(path)?;
    let (gh0, gw0) = ck.config.heads.grid();
    ck.config.heads.input_height = height;
    ck.config.heads.input_width = width;
    ck.config.heads.validate()?;
    let (gh, gw) = ck.config.heads.grid();
    if let Some(pos) = ck.tensors.get_mut("encoder.pos_embed") {
        let e = pos.size()[2];
        ensure!(pos.size() == [1, 1 + gh0 * gw0, e], "encoder.pos_embed has shape {:?}", pos.size());
        let kind = pos.kind();
        let p = pos.to_kind(tch::Kind::Double);
        let cls = p.narrow(1, 0, 1);
        let grid = p.narrow(1, 1, gh0 * gw0).reshape([1, gh0, gw0, e]).permute([0, 3, 1, 2]);
        let resized =
            grid.upsample_bicubic2d([gh, gw], false, None, None).permute([0, 2, 3, 1]).reshape([1, gh * gw, e]);
        *pos = Tensor::cat(&[cls, resized], 1).to_kind(kind);
    }
    let (vs, heads) = heads_from_checkpoint(&ck)?;
    Ok((ck.config, vs, heads))
}

/// The heads of a read checkpoint, on the CPU.
fn heads_from_checkpoint(ck: &Checkpoint) -> Result<(nn::VarStore, Heads)> {
    let vs = nn::VarStore::new(Device::Cpu);
    let heads = Heads::new(&vs.root(), &ck.config.heads, ck.config.input.mean, ck.config.input.std)?;
    restore_variables(&vs, &ck.tensors)?;
    Ok((vs, heads))
}

/// The parts of a configuration a resumed run must share with the checkpoint's.
fn resume_fingerprint(cfg: &TrainConfig) -> BTreeMap<&'static str, serde_json::Value> {
    let s = &cfg.schedule;
    let j = |v: serde_json::Result<serde_json::Value>| v.unwrap_or_default();
    BTreeMap::from([
        ("input", j(serde_json::to_value(&cfg.input))),
        ("loss", j(serde_json::to_value(&cfg.loss))),
        ("optim", j(serde_json::to_value(&cfg.optim))),
        ("heads", j(serde_json::to_value(&cfg.heads))),
        ("data.hflip", serde_json::json!(cfg.data.hflip)),
        ("schedule.batch_size", serde_json::json!(s.batch_size)),
        ("schedule.seed", serde_json::json!(s.seed)),
        ("schedule.joint", serde_json::json!(s.joint)),
        ("schedule.coarse_only_epochs", serde_json::json!(s.coarse_only_epochs)),
        ("schedule.freeze_coarse", serde_json::json!(s.freeze_coarse)),
    ])
}

// ------------------------------------------------------------------------------------------
// Evaluation
// ------------------------------------------------------------------------------------------

/// Scores of the two outputs of the heads.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct HeadsScores {
    /// The fine mask.
    pub fine: SaliencyScores,
    /// The coarse mask.
    pub coarse: SaliencyScores,
}

/// Scores the heads (eval mode) on a labelled set with the SDK's post-processing
/// ([`sempart::postprocess::foreground_maps`], the fine map refined by `refine` with the image as
/// the guide)
/// and metrics ([`sempart::metrics::FineCoarseMetrics`]): each prediction is resized to its mask's size. Features
/// come from `store` (cached or computed), `batch` images at a time. Unreadable images or
/// masks are reported and skipped.
pub fn evaluate_heads(
    heads: &Heads,
    store: &FeatureStore<'_>,
    set: &[LabelledImage],
    batch: usize,
    refine: &GuidedFilter,
) -> Result<HeadsScores> {
    let cfg = heads.config();
    let (gh, gw) = cfg.grid();
    let (ih, iw) = (cfg.input_height, cfg.input_width);
    let mut scores = sempart::metrics::FineCoarseMetrics::new();
    for chunk in set.chunks(batch.max(1)) {
        let items: Vec<_> = chunk.iter().map(|l| (&l.image, false)).collect();
        let feats = store.get_many(&items);
        let mut ok: Vec<(&LabelledImage, Features)> = Vec::new();
        for (l, f) in chunk.iter().zip(feats) {
            if let Some(f) = f {
                ok.push((l, f));
            }
        }
        if ok.is_empty() {
            continue;
        }
        let tokens = Tensor::stack(&ok.iter().map(|(_, f)| f.tokens.shallow_clone()).collect::<Vec<_>>(), 0);
        let images = Tensor::stack(&ok.iter().map(|(_, f)| f.image.shallow_clone()).collect::<Vec<_>>(), 0);
        let out = tch::no_grad(|| heads_forward(heads, &tokens, &images, false, true));
        for (i, (l, _)) in ok.iter().enumerate() {
            let Some(((gt, mw, mh), guide)) = data::mask_and_guide(l, refine) else { continue };
            let frame = guide.as_ref().map(|g| g.frame()).transpose()?;
            let coarse = Vec::<f32>::try_from(&out.coarse.get(i as i64).reshape([-1]))?;
            let fine = Vec::<f32>::try_from(&out.fine.get(i as i64).reshape([-1]))?;
            let (gw, gh) = (gw as usize, gh as usize);
            let maps = sempart::postprocess::foreground_maps(
                &coarse,
                gw,
                gh,
                &fine,
                iw as usize,
                ih as usize,
                mw,
                mh,
                frame.as_ref().map(|f| (f, refine)),
            );
            scores.add(&maps.fine, (mw, mh), &maps.coarse, (gw, gh), &gt, (mw, mh));
        }
    }
    Ok(HeadsScores { fine: scores.fine.finish(), coarse: scores.coarse.finish() })
}

// ------------------------------------------------------------------------------------------
// Training
// ------------------------------------------------------------------------------------------

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

/// Self-training targets of every training image and orientation, from the frozen features, as
/// `[1, h, w]` 0/1 maps indexed like `records x flips`: TokenCut's foreground (`tau` =
/// `loss.pseudo_tau`, corner rule, the loss's affinity features), or the coarse foreground of
/// the `loss.pseudo_from` checkpoint, which must have been trained on the same backbone
/// (`identity`) and grid. An image whose features cannot be read gets `None` (its steps skip
/// it, as they skip its features).
fn pseudo_labels(
    cfg: &TrainConfig,
    identity: &str,
    store: &FeatureStore,
    records: &[ImageRecord],
    flips: &[bool],
    progress: bool,
) -> Result<Vec<Option<Tensor>>> {
    let tc = TokenCutConfig { tau: cfg.loss.pseudo_tau, ..TokenCutConfig::with_features(cfg.loss.features) };
    let (gh, gw) = cfg.heads.grid();
    let teacher = match &cfg.loss.pseudo_from {
        None => None,
        Some(path) => {
            let ck = read_checkpoint(path).with_context(|| format!("loss.pseudo_from {}", path.display()))?;
            ensure!(
                ck.backbone_identity == identity,
                "loss.pseudo_from {}: trained on another backbone",
                path.display()
            );
            ensure!(
                ck.config.heads.grid() == (gh, gw) && ck.config.heads.feature_dim == cfg.heads.feature_dim,
                "loss.pseudo_from {}: its heads read a {:?} grid of {} features, this run a {:?} grid of {}",
                path.display(),
                ck.config.heads.grid(),
                ck.config.heads.feature_dim,
                (gh, gw),
                cfg.heads.feature_dim
            );
            Some(heads_from_checkpoint(&ck)?)
        }
    };
    let what = if teacher.is_some() { "pseudo-masks (checkpoint)" } else { "pseudo-masks (TokenCut)" };
    let bar = progress_bar((records.len() * flips.len()) as u64, progress, what);
    let mut out = Vec::with_capacity(records.len() * flips.len());
    for r in records {
        for &flip in flips {
            let target = match store.get_many(&[(r, flip)]).pop().flatten() {
                Some(f) => {
                    let fg: Vec<f32> = match &teacher {
                        None => tokencut(tokencut_features(&f, tc.features)?, (gh, gw), &tc)?.probability(),
                        Some((_, heads)) => coarse_foreground(heads, &f.tokens)?,
                    };
                    Some(Tensor::from_slice(&fg).reshape([1, gh, gw]))
                }
                None => None,
            };
            out.push(target);
            bar.inc(1);
        }
    }
    bar.finish_and_clear();
    Ok(out)
}

/// The heads' coarse foreground of one image's patch tokens `[T, C]`, as 0/1 values on the grid
/// (row-major), by the SDK's rule: binarised at its threshold, oriented by the corner rule.
fn coarse_foreground(heads: &Heads, tokens: &Tensor) -> Result<Vec<f32>> {
    use sempart::postprocess::{binarize, select_foreground, THRESHOLD};
    let (gh, gw) = heads.config().grid();
    let p = tch::no_grad(|| heads.coarse_from(&heads.encode(&tokens.unsqueeze(0))));
    let mut mask = binarize(&Vec::<f32>::try_from(p.flatten(0, -1))?, THRESHOLD);
    select_foreground(&mut mask, gw as usize, gh as usize);
    Ok(mask.into_iter().map(|f| if f { 1.0 } else { 0.0 }).collect())
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
