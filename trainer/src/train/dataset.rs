//! What a run trains on: the training images with their cached backbone features, the dataset
//! fingerprint a resume must match, the self-training targets, the validation set, and the
//! stacking of one batch from them.

use super::checkpoint::RunData;
use super::step::{make_batch, Batch};
use super::target_cache::TargetCache;
use super::targets::pseudo_labels;
use crate::backbone::Backbone;
use crate::config::TrainConfig;
use crate::data::{self, ImageRecord, LabelledImage};
use crate::feature_cache::{backbone_identity, Extractor, FeatureStore, Features, PrepareStats};
use anyhow::{ensure, Result};
use std::time::Instant;
use tch::Tensor;

/// The prepared inputs of a run.
pub(super) struct TrainingSet<'b> {
    /// Features of the training images (and of the validation images, on demand).
    pub store: FeatureStore<'b>,
    /// The backbone identity ([`backbone_identity`]).
    pub identity: String,
    /// The readable training images, in order.
    pub records: Vec<ImageRecord>,
    /// The orientations cached for each image (`[false]`, or `[false, true]` with flips).
    pub flips: &'static [bool],
    /// SHA-256 over the images' content hashes, in order.
    pub dataset_hash: String,
    /// Self-training targets, `records x flips` (when `loss.w_pseudo > 0`).
    pub pseudo: Option<Vec<Option<Tensor>>>,
    /// The labelled validation images (`data.val_dir`), possibly none.
    pub validation: Vec<LabelledImage>,
    /// What feature preparation did.
    pub prepare: PrepareStats,
    use_keys: bool,
}

impl<'b> TrainingSet<'b> {
    /// Lists the training images, extracts (or reads from the cache) their features, and makes
    /// the self-training targets.
    pub(super) fn prepare(cfg: &TrainConfig, backbone: &'b Backbone, progress: bool) -> Result<TrainingSet<'b>> {
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
        let flips: &'static [bool] = if cfg.data.hflip { &[false, true] } else { &[false] };
        let mut records = data::check_duplicates(data::records_for(&paths), cfg.data.drop_duplicates);
        if cfg.data.gray_copies {
            let copies: Vec<_> = records.iter().map(|r| r.gray_copy()).collect();
            records.extend(copies);
        }
        let (records, prepare) = store.prepare(&records, flips, progress)?;
        ensure!(!records.is_empty(), "no readable training image in {:?}", cfg.data.train_dirs);
        let hashes: Vec<&str> = records.iter().map(|r| r.content_hash.as_str()).collect();
        let dataset_hash = data::sha256_hex(hashes.join("\n").as_bytes());
        if progress {
            eprintln!("{}", prepare.report());
        }
        let pseudo = if cfg.loss.w_pseudo > 0.0 {
            Some(targets_for(cfg, &identity, &store, &records, flips, &dataset_hash, progress)?)
        } else {
            None
        };
        let validation = match &cfg.data.val_dir {
            Some(d) => data::list_labelled(d, cfg.data.val_max_images)?,
            None => Vec::new(),
        };
        Ok(TrainingSet { store, identity, records, flips, dataset_hash, pseudo, validation, prepare, use_keys })
    }

    /// What a checkpoint records of this set, and a resume checks.
    pub(super) fn run_data(&self) -> RunData<'_> {
        RunData { identity: &self.identity, dataset_hash: &self.dataset_hash, images: self.records.len() }
    }

    /// The batch of the `chosen` (image index, flipped) pairs, without the images whose
    /// features (or, with self-training, targets) cannot be read; `None` when none is left.
    pub(super) fn batch(&self, chosen: &[(usize, bool)]) -> Result<Option<Batch>> {
        let items: Vec<(&ImageRecord, bool)> = chosen.iter().map(|&(i, f)| (&self.records[i], f)).collect();
        let mut feats: Vec<Features> = Vec::with_capacity(items.len());
        let mut targets: Vec<Tensor> = Vec::with_capacity(items.len());
        for (f, &(i, flip)) in self.store.get_many(&items).into_iter().zip(chosen) {
            let Some(f) = f else { continue };
            match &self.pseudo {
                None => feats.push(f),
                Some(p) => {
                    if let Some(t) = &p[i * self.flips.len() + usize::from(flip)] {
                        feats.push(f);
                        targets.push(t.shallow_clone());
                    }
                }
            }
        }
        if feats.is_empty() {
            return Ok(None);
        }
        Ok(Some(make_batch(&feats, self.use_keys, self.pseudo.as_ref().map(|_| targets))?))
    }
}

/// The self-training targets: read from the target cache when the run has a feature cache and
/// the file for these images and settings exists, else computed (and then stored; a failed
/// write is reported, not fatal). With `progress`, one line says which and how long it took.
fn targets_for(
    cfg: &TrainConfig,
    identity: &str,
    store: &FeatureStore,
    records: &[ImageRecord],
    flips: &[bool],
    dataset_hash: &str,
    progress: bool,
) -> Result<Vec<Option<Tensor>>> {
    let t0 = Instant::now();
    let n = records.len() * flips.len();
    let cache = match store.cache() {
        Some(c) => Some(TargetCache::new(c.dir(), c.spec(), cfg, dataset_hash, flips)?),
        None => None,
    };
    if let Some((c, targets)) = cache.as_ref().and_then(|c| Some((c, c.load(n)?))) {
        if progress {
            eprintln!("targets: {n} read from {} in {:.1} s", c.path().display(), t0.elapsed().as_secs_f64());
        }
        return Ok(targets);
    }
    let targets = pseudo_labels(cfg, identity, store, records, flips, progress)?;
    let computed = t0.elapsed().as_secs_f64();
    let stored = match &cache {
        Some(c) => match c.store(&targets) {
            Ok(()) => format!(", stored in {}", c.path().display()),
            Err(e) => {
                eprintln!("target cache: cannot store the targets: {e:#} (the run goes on; the next start computes them again)");
                String::new()
            }
        },
        None => String::new(),
    };
    if progress {
        eprintln!(
            "targets: {n} computed in {computed:.1} s ({:.1} ms each){stored}",
            1000.0 * computed / n.max(1) as f64
        );
    }
    Ok(targets)
}
