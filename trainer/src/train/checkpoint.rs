//! The checkpoint format (weights, Adam state, position and configuration in one safetensors
//! file, written atomically) and loading trained heads for export and evaluation.

use super::Adam;
use crate::config::TrainConfig;
use crate::data;
use crate::heads::Heads;
use anyhow::{anyhow, ensure, Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use tch::{nn, Device, Kind, Tensor};

const META_STATE: &str = "sempart.train.state";
const META_CONFIG: &str = "sempart.train.config";
const META_ADAM_STEPS: &str = "sempart.train.adam_steps";
const META_HEADS: &str = sempart::model_format::keys::HEADS_CONFIG;
const META_BACKBONE: &str = "sempart.train.backbone_identity";

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

/// What a run trains on, as a checkpoint records it and a resume checks it.
pub(super) struct RunData<'s> {
    /// The backbone identity (`feature_cache::backbone_identity`).
    pub identity: &'s str,
    /// SHA-256 over the training images' content hashes, in order.
    pub dataset_hash: &'s str,
    /// The number of training images.
    pub images: usize,
}

impl TrainState {
    /// The position of a run that has not started, on `data`.
    pub(super) fn start(data: &RunData<'_>) -> TrainState {
        TrainState {
            global_step: 0,
            epoch: 0,
            batch_in_epoch: 0,
            images: data.images,
            dataset_hash: data.dataset_hash.to_string(),
            elapsed_seconds: 0.0,
        }
    }
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

pub(super) fn f32_bytes(t: &Tensor) -> Vec<u8> {
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
    Ok(data::write_atomic(path, &bytes)?)
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
/// which is resized bicubically from the trained grid to the new one (its class-token entry kept),
/// as the backbone's own table is. Quality at another size is measured, not assumed (docs/PERFORMANCE.md).
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
pub(super) fn heads_from_checkpoint(ck: &Checkpoint) -> Result<(nn::VarStore, Heads)> {
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
        ("data.gray_copies", serde_json::json!(cfg.data.gray_copies)),
        ("schedule.batch_size", serde_json::json!(s.batch_size)),
        ("schedule.seed", serde_json::json!(s.seed)),
        ("schedule.joint", serde_json::json!(s.joint)),
        ("schedule.freeze_coarse", serde_json::json!(s.freeze_coarse)),
    ])
}

/// Restores the run saved at `path` into `vs` and `adam`, after checking that it can continue
/// under `cfg` on `data` (same configuration but for epochs or steps, checkpointing, validation and
/// output paths; same backbone; same images); returns its position.
pub(super) fn resume(
    path: &Path,
    cfg: &TrainConfig,
    data: &RunData<'_>,
    vs: &nn::VarStore,
    adam: &mut Adam,
) -> Result<TrainState> {
    let ck = read_checkpoint(path)?;
    let (old, new) = (resume_fingerprint(&ck.config), resume_fingerprint(cfg));
    let differ: Vec<&str> = new.keys().filter(|k| old.get(*k) != new.get(*k)).copied().collect();
    ensure!(differ.is_empty(), "cannot resume {}: the configuration differs in {}", path.display(), differ.join(", "));
    check_warm_up_move(&ck, cfg, data.images).with_context(|| format!("cannot resume {}", path.display()))?;
    ensure!(
        ck.backbone_identity == data.identity,
        "cannot resume {}: it was trained over another backbone",
        path.display()
    );
    ensure!(
        ck.state.dataset_hash == data.dataset_hash,
        "cannot resume {}: the training images changed ({} at the checkpoint, {} now)",
        path.display(),
        ck.state.images,
        data.images
    );
    restore_variables(vs, &ck.tensors)?;
    adam.load_state(&ck.tensors, &ck.adam_steps)?;
    Ok(ck.state)
}

/// A resume may move the end of the coarse-only warm-up (to branch fine phases off one warm-up,
/// or to lengthen it) only where the steps already run are the same under both schedules: all
/// of them inside both warm-ups, with a learning rate in the warm-up that does not depend on
/// its length (`optim.decay` constant or `cosine_after_warm_up`).
fn check_warm_up_move(ck: &Checkpoint, cfg: &TrainConfig, images: usize) -> Result<()> {
    let per_epoch = super::schedule::steps_per_epoch(&cfg.schedule, images);
    let old = super::Steps::of(&ck.config.schedule, per_epoch).warm_up;
    let new = super::Steps::of(&cfg.schedule, per_epoch).warm_up;
    if old == new {
        return Ok(());
    }
    let done = ck.state.global_step;
    ensure!(
        done <= old.min(new),
        "the coarse-only warm-up would end at step {new} instead of {old}, but {done} steps have run"
    );
    ensure!(
        cfg.optim.decay != crate::config::LrDecay::Cosine,
        "the coarse-only warm-up would end at step {new} instead of {old}, and with optim.decay = \"cosine\" \
         the rate of the steps already run depends on where it ends"
    );
    Ok(())
}
