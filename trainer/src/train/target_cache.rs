//! The self-training targets of a run, kept on disk beside the feature cache so that a restarted
//! or resumed run does not cut every image again (TokenCut over DUTS-TR's 10,553 photos takes
//! 12 to 25 minutes on two cores).
//!
//! One file per target set: `<cache_dir>/targets/<key>.safetensors`, where the key is a SHA-256
//! over everything the targets depend on: [`TARGETS_FORMAT_VERSION`], the feature cache's spec
//! (backbone identity, input size, normalisation, dtypes), the images' content hashes in order,
//! the orientations, and the target settings of `[loss]` (affinity features, thresholds,
//! component rule, layer, and the SHA-256 of a `pseudo_from` checkpoint). Another backbone,
//! size, image set or setting gives another file, never a stale one. The file holds `targets`
//! (`f32 [N, h, w]`, N = images x orientations) and `present` (`u8 [N]`: 0 where the image's
//! features could not be read), and repeats its key in the metadata; a file that does not match
//! is reported and recomputed. It is written atomically: a killed run leaves the old file or
//! none.

use crate::config::TrainConfig;
use crate::data;
use crate::feature_cache::CacheSpec;
use anyhow::{anyhow, ensure, Context, Result};
use serde::Serialize;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use tch::Tensor;

/// Version of the targets' file layout and of the TokenCut code that makes them; part of the
/// key (raise it when either changes).
pub const TARGETS_FORMAT_VERSION: u32 = 1;

const META_KEY: &str = "sempart.targets.key";

/// A run's target file.
#[derive(Debug, Clone)]
pub(super) struct TargetCache {
    path: PathBuf,
    key: String,
    grid: (i64, i64),
}

#[derive(Serialize)]
struct KeyMaterial<'a> {
    version: u32,
    features: &'a CacheSpec,
    dataset_hash: &'a str,
    flips: &'a [bool],
    grid: (i64, i64),
    loss_features: String,
    pseudo_tau: f64,
    pseudo_extra_taus: &'a [f64],
    pseudo_components: String,
    pseudo_dropped: String,
    pseudo_layer: Option<usize>,
    pseudo_from_sha256: Option<String>,
}

impl TargetCache {
    /// The target file of this run in the feature cache folder `dir` (whose spec is `spec`).
    pub(super) fn new(
        dir: &Path,
        spec: &CacheSpec,
        cfg: &TrainConfig,
        dataset_hash: &str,
        flips: &[bool],
    ) -> Result<TargetCache> {
        let l = &cfg.loss;
        let pseudo_from_sha256 = match &l.pseudo_from {
            None => None,
            Some(p) => {
                Some(data::sha256_hex(&std::fs::read(p).with_context(|| format!("loss.pseudo_from {}", p.display()))?))
            }
        };
        let grid = cfg.heads.grid();
        let m = KeyMaterial {
            version: TARGETS_FORMAT_VERSION,
            features: spec,
            dataset_hash,
            flips,
            grid,
            loss_features: format!("{:?}", l.features),
            pseudo_tau: l.pseudo_tau,
            pseudo_extra_taus: &l.pseudo_extra_taus,
            pseudo_components: format!("{:?}", l.pseudo_components),
            pseudo_dropped: format!("{:?}", l.pseudo_dropped),
            pseudo_layer: l.pseudo_layer,
            pseudo_from_sha256,
        };
        let key = data::sha256_hex(serde_json::to_string(&m)?.as_bytes());
        let path = dir.join("targets").join(format!("{key}.safetensors"));
        Ok(TargetCache { path, key, grid })
    }

    /// The file.
    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    /// The `n` targets when the file exists and matches; `None` when there is none; a file
    /// that cannot be read or does not match is reported on stderr and treated as missing.
    pub(super) fn load(&self, n: usize) -> Option<Vec<Option<Tensor>>> {
        if !self.path.is_file() {
            return None;
        }
        match self.read(n) {
            Ok(t) => Some(t),
            Err(e) => {
                eprintln!("target cache: ignoring {}: {e:#} (the targets are computed again)", self.path.display());
                None
            }
        }
    }

    fn read(&self, n: usize) -> Result<Vec<Option<Tensor>>> {
        let bytes = std::fs::read(&self.path)?;
        let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).map_err(|e| anyhow!("{e}"))?;
        let stored = meta.metadata().as_ref().and_then(|m| m.get(META_KEY)).cloned().unwrap_or_default();
        ensure!(stored == self.key, "key mismatch (file says {stored:?})");
        let st = safetensors::SafeTensors::deserialize(&bytes).map_err(|e| anyhow!("{e}"))?;
        let present = st.tensor("present").map_err(|e| anyhow!("present: {e}"))?;
        ensure!(present.shape() == [n], "present has shape {:?}, expected [{n}]", present.shape());
        let targets = st.tensor("targets").map_err(|e| anyhow!("targets: {e}"))?;
        let (gh, gw) = self.grid;
        ensure!(
            targets.shape() == [n, gh as usize, gw as usize],
            "targets have shape {:?}, expected [{n}, {gh}, {gw}]",
            targets.shape()
        );
        let all = crate::backbone::safetensor_to_tensor("targets", &targets)?;
        Ok(present.data().iter().enumerate().map(|(i, &p)| (p != 0).then(|| all.get(i as i64).unsqueeze(0))).collect())
    }

    /// Writes the targets (`[1, h, w]` each, `None` for an image without features).
    pub(super) fn store(&self, targets: &[Option<Tensor>]) -> Result<()> {
        let (gh, gw) = self.grid;
        let cells = (gh * gw) as usize;
        let mut values = Vec::with_capacity(targets.len() * cells * 4);
        let mut present = Vec::with_capacity(targets.len());
        for t in targets {
            let cell_values: Vec<f32> = match t {
                Some(t) => Vec::<f32>::try_from(t.flatten(0, -1))?,
                None => vec![0.0; cells],
            };
            ensure!(cell_values.len() == cells, "a target has {} cells, expected {cells}", cell_values.len());
            values.extend(cell_values.iter().flat_map(|v| v.to_le_bytes()));
            present.push(u8::from(t.is_some()));
        }
        let views = vec![
            (
                "targets",
                safetensors::tensor::TensorView::new(
                    safetensors::Dtype::F32,
                    vec![targets.len(), gh as usize, gw as usize],
                    &values,
                )?,
            ),
            ("present", safetensors::tensor::TensorView::new(safetensors::Dtype::U8, vec![targets.len()], &present)?),
        ];
        let meta = HashMap::from([(META_KEY.to_string(), self.key.clone())]);
        let bytes = safetensors::serialize(views, Some(meta))?;
        let dir = self.path.parent().expect("inside the targets folder");
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        data::write_atomic(&self.path, &bytes).with_context(|| format!("writing {}", self.path.display()))
    }
}
