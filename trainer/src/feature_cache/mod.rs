//! The frozen backbone's outputs, computed once per image and kept on disk.
//!
//! One safetensors file per (image, flip) in the cache folder, named by a SHA-256 key over
//! everything the content depends on:
//!
//! - [`CACHE_FORMAT_VERSION`];
//! - the backbone's identity ([`backbone_identity`]: SHA-256 of its `VitConfig` and of every
//!   weight, so the same weights loaded from any file format share entries, and a changed
//!   loader or positional-interpolation rule invalidates them);
//! - the model input: width, height, mean, std;
//! - what is stored (keys or not) and the dtypes;
//! - the horizontal-flip flag;
//! - the SHA-256 of the image file's bytes.
//!
//! A changed component gives another key, hence another file: stale entries are never read
//! (they can be deleted at any time). The file's metadata repeats the key, checked on load.
//!
//! Each file holds:
//!
//! | tensor | shape | content |
//! | --- | --- | --- |
//! | `tokens` | `[T, C]` | the patch tokens after the final LayerNorm (the encoder's input), row-major over the `h x w` grid, [CLS] dropped |
//! | `keys` | `[T, C]` | (only when the affinity uses keys) the last block's keys of the patches |
//! | `image` | `[3, H, W]` | the normalised model input exactly as [`sempart::preprocess::frame_to_input`] made it (planar RGB, `(v / 255 - mean) / std`), mirrored for a flipped entry |
//!
//! stored as `f32` by default (then training from the cache is bit-identical to training
//! without it) or `f16` (half the disk). Files are written atomically (tmp + rename), so a
//! killed run leaves either no entry or a complete one.

use crate::backbone::Backbone;
use crate::data::{self, ImageRecord, RgbImage};
use crate::progress::{Progress, ProgressMode};
use anyhow::{anyhow, bail, ensure, Context, Result};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use sha2::Digest;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Instant;
use tch::{Kind, Tensor};

mod extractor;
pub use extractor::Extractor;

/// Version of the cache's file layout; part of every key.
pub const CACHE_FORMAT_VERSION: u32 = 1;

/// Metadata key holding the entry's key.
const META_KEY: &str = "sempart.cache.key";

/// Storage type of cached tensors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CacheDtype {
    /// 32-bit floats: exact.
    F32,
    /// 16-bit floats: half the size, about 3 significant digits.
    F16,
}

impl CacheDtype {
    fn kind(self) -> Kind {
        match self {
            CacheDtype::F32 => Kind::Float,
            CacheDtype::F16 => Kind::Half,
        }
    }

    fn st(self) -> safetensors::Dtype {
        match self {
            CacheDtype::F32 => safetensors::Dtype::F32,
            CacheDtype::F16 => safetensors::Dtype::F16,
        }
    }
}

/// The backbone outputs of one image (all `f32`, CPU).
#[derive(Debug)]
pub struct Features {
    /// Patch tokens after the final LayerNorm, `[T, C]`, row-major over the grid.
    pub tokens: Tensor,
    /// Last-block keys of the patches, `[T, C]`, when requested.
    pub keys: Option<Tensor>,
    /// The normalised model input `[3, H, W]`.
    pub image: Tensor,
}

/// SHA-256 (hex) of a backbone's configuration (JSON) and of every variable (name, shape,
/// `f32` little-endian bytes, sorted by name): the backbone part of the cache key.
pub fn backbone_identity(backbone: &Backbone) -> Result<String> {
    let mut h = sha2::Sha256::new();
    h.update(serde_json::to_string(backbone.config())?.as_bytes());
    let vars: BTreeMap<String, Tensor> = backbone.vs.variables().into_iter().collect();
    for (name, t) in vars {
        h.update(name.as_bytes());
        h.update(format!("{:?}", t.size()).as_bytes());
        h.update(tensor_bytes(&t, Kind::Float));
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// Raw little-endian bytes of a tensor converted to `kind` (CPU, contiguous).
fn tensor_bytes(t: &Tensor, kind: Kind) -> Vec<u8> {
    let t = t.to_device(tch::Device::Cpu).to_kind(kind).contiguous();
    let numel = t.numel();
    let mut buf = vec![0u8; numel * kind.elt_size_in_bytes()];
    t.copy_data_u8(&mut buf, numel);
    buf
}

/// The parts of a cache key that are the same for every entry of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CacheSpec {
    /// [`backbone_identity`].
    pub backbone: String,
    /// Input width.
    pub width: usize,
    /// Input height.
    pub height: usize,
    /// Normalisation mean.
    pub mean: [f32; 3],
    /// Normalisation std.
    pub std: [f32; 3],
    /// Whether entries hold keys.
    pub with_keys: bool,
    /// Dtype of tokens and keys.
    pub feature_dtype: CacheDtype,
    /// Dtype of the stored input image.
    pub image_dtype: CacheDtype,
}

/// A cache folder for one [`CacheSpec`].
#[derive(Debug, Clone)]
pub struct FeatureCache {
    dir: PathBuf,
    spec: CacheSpec,
}

#[derive(Serialize)]
struct KeyMaterial<'a> {
    version: u32,
    spec: &'a CacheSpec,
    hflip: bool,
    content_sha256: &'a str,
}

impl FeatureCache {
    /// Opens (creating it if needed) a cache folder.
    pub fn new(dir: &Path, spec: CacheSpec) -> Result<FeatureCache> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating the cache folder {}", dir.display()))?;
        Ok(FeatureCache { dir: dir.to_path_buf(), spec })
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The spec.
    pub fn spec(&self) -> &CacheSpec {
        &self.spec
    }

    /// The key (hex SHA-256) of an entry.
    pub fn key(&self, content_hash: &str, hflip: bool) -> String {
        let m = KeyMaterial { version: CACHE_FORMAT_VERSION, spec: &self.spec, hflip, content_sha256: content_hash };
        data::sha256_hex(serde_json::to_string(&m).expect("serialisable").as_bytes())
    }

    /// The file of an entry.
    pub fn path(&self, content_hash: &str, hflip: bool) -> PathBuf {
        self.dir.join(format!("{}.safetensors", self.key(content_hash, hflip)))
    }

    /// Whether an entry's file exists (its content is checked only by [`FeatureCache::load`]).
    pub fn contains(&self, content_hash: &str, hflip: bool) -> bool {
        self.path(content_hash, hflip).is_file()
    }

    /// Reads an entry. `Ok(None)` when there is none; an unreadable or inconsistent file is
    /// reported (one line on stderr) and treated as missing (it will be overwritten).
    pub fn load(&self, content_hash: &str, hflip: bool) -> Option<Features> {
        let path = self.path(content_hash, hflip);
        if !path.is_file() {
            return None;
        }
        match self.read(&path, &self.key(content_hash, hflip)) {
            Ok(f) => Some(f),
            Err(e) => {
                eprintln!("feature cache: ignoring bad entry {}: {e:#}", path.display());
                None
            }
        }
    }

    fn read(&self, path: &Path, key: &str) -> Result<Features> {
        let bytes = std::fs::read(path)?;
        let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).map_err(|e| anyhow!("{e}"))?;
        let stored = meta.metadata().as_ref().and_then(|m| m.get(META_KEY)).cloned().unwrap_or_default();
        ensure!(stored == key, "key mismatch (file says {stored:?})");
        let st = safetensors::SafeTensors::deserialize(&bytes).map_err(|e| anyhow!("{e}"))?;
        let get = |name: &str| -> Result<Tensor> {
            let v = st.tensor(name).map_err(|e| anyhow!("{name}: {e}"))?;
            crate::backbone::safetensor_to_tensor(name, &v)
        };
        let tokens = get("tokens")?;
        let keys = if self.spec.with_keys { Some(get("keys")?) } else { None };
        let image = get("image")?;
        ensure!(
            image.size() == [3, self.spec.height as i64, self.spec.width as i64],
            "image has shape {:?}",
            image.size()
        );
        Ok(Features { tokens, keys, image })
    }

    /// Writes an entry atomically.
    pub fn store(&self, content_hash: &str, hflip: bool, f: &Features) -> Result<()> {
        let key = self.key(content_hash, hflip);
        let fd = self.spec.feature_dtype;
        let mut tensors: Vec<(&str, Vec<i64>, Vec<u8>, safetensors::Dtype)> =
            vec![("tokens", f.tokens.size(), tensor_bytes(&f.tokens, fd.kind()), fd.st())];
        if self.spec.with_keys {
            let k = f.keys.as_ref().context("the features have no keys but the cache stores keys")?;
            tensors.push(("keys", k.size(), tensor_bytes(k, fd.kind()), fd.st()));
        }
        let idt = self.spec.image_dtype;
        tensors.push(("image", f.image.size(), tensor_bytes(&f.image, idt.kind()), idt.st()));
        let views = tensors
            .iter()
            .map(|(n, shape, data, dt)| {
                let shape: Vec<usize> = shape.iter().map(|&s| s as usize).collect();
                Ok((*n, safetensors::tensor::TensorView::new(*dt, shape, data)?))
            })
            .collect::<Result<Vec<_>>>()?;
        let meta = HashMap::from([(META_KEY.to_string(), key)]);
        let bytes = safetensors::serialize(views, Some(meta))?;
        Ok(data::write_atomic(&self.path(content_hash, hflip), &bytes)?)
    }
}

/// What [`FeatureStore::prepare`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct PrepareStats {
    /// Images kept.
    pub images: usize,
    /// Entries found in the cache.
    pub hits: usize,
    /// Entries computed (backbone runs).
    pub computed: usize,
    /// Images skipped (unreadable).
    pub skipped: usize,
    /// Wall time of decoding, preprocessing, the backbone and writing, in seconds.
    pub compute_seconds: f64,
}

impl PrepareStats {
    /// Backbone entries computed per second (0 when none).
    pub fn computed_per_second(&self) -> f64 {
        if self.computed == 0 || self.compute_seconds <= 0.0 {
            0.0
        } else {
            self.computed as f64 / self.compute_seconds
        }
    }

    /// One line: the images kept, found in the cache, computed (with the rate) and skipped.
    pub fn report(&self) -> String {
        let mut line = format!("features: {} images, {} entries from the cache", self.images, self.hits);
        if self.computed > 0 {
            line.push_str(&format!(
                ", {} computed in {:.0} s ({:.2}/s)",
                self.computed,
                self.compute_seconds,
                self.computed_per_second()
            ));
        }
        if self.skipped > 0 {
            line.push_str(&format!(", {} skipped (unreadable)", self.skipped));
        }
        line
    }
}

/// Features on demand: from the cache when there is one and it holds the entry, else decoded
/// and computed (and stored when there is a cache).
#[derive(Debug)]
pub struct FeatureStore<'a> {
    extractor: Extractor<'a>,
    cache: Option<FeatureCache>,
    chunk: usize,
}

impl<'a> FeatureStore<'a> {
    /// A store over an extractor; `cache` is optional; `chunk` images go through the backbone
    /// at once.
    pub fn new(extractor: Extractor<'a>, cache: Option<FeatureCache>, chunk: usize) -> FeatureStore<'a> {
        FeatureStore { extractor, cache, chunk: chunk.max(1) }
    }

    /// Opens the cache for `dir` (`None`: no cache) with a spec derived from the extractor.
    pub fn with_cache_dir(
        extractor: Extractor<'a>,
        dir: Option<&Path>,
        feature_dtype: CacheDtype,
        image_dtype: CacheDtype,
        chunk: usize,
    ) -> Result<FeatureStore<'a>> {
        let cache = match dir {
            None => None,
            Some(dir) => {
                let s = extractor.spec();
                let spec = CacheSpec {
                    backbone: backbone_identity(extractor.backbone())?,
                    width: s.width_px,
                    height: s.height_px,
                    mean: s.mean,
                    std: s.std,
                    with_keys: extractor.with_keys(),
                    feature_dtype,
                    image_dtype,
                };
                Some(FeatureCache::new(dir, spec)?)
            }
        };
        Ok(FeatureStore::new(extractor, cache, chunk))
    }

    /// The extractor.
    pub fn extractor(&self) -> &Extractor<'a> {
        &self.extractor
    }

    /// The cache, if any.
    pub fn cache(&self) -> Option<&FeatureCache> {
        self.cache.as_ref()
    }

    /// Features of `(image, hflip)` items, in order. `None` for an image that cannot be read or
    /// decoded (reported on stderr). Misses are decoded in parallel, run through the backbone
    /// in chunks and, with a cache, stored (a failed write is reported, not fatal).
    pub fn get_many(&self, items: &[(&ImageRecord, bool)]) -> Vec<Option<Features>> {
        let mut out: Vec<Option<Features>> =
            items.iter().map(|(r, flip)| self.cache.as_ref().and_then(|c| c.load(&r.content_hash, *flip))).collect();
        let missing: Vec<usize> = (0..items.len()).filter(|&i| out[i].is_none()).collect();
        if missing.is_empty() {
            return out;
        }
        // Decode each distinct image (file, or its grayscale copy) once.
        let mut images: Vec<&ImageRecord> = missing.iter().map(|&i| items[i].0).collect();
        images.sort_by(|a, b| (&a.path, a.gray).cmp(&(&b.path, b.gray)));
        images.dedup_by(|a, b| a.path == b.path && a.gray == b.gray);
        let decoded: HashMap<(&Path, bool), Option<RgbImage>> = images
            .par_iter()
            .map(|r| {
                let img = match r.load_for_training() {
                    Ok(img) => Some(img),
                    Err(e) => {
                        eprintln!("skipping unreadable image: {e:#}");
                        None
                    }
                };
                ((r.path.as_path(), r.gray), img)
            })
            .collect();
        let spec = self.extractor.spec().clone();
        let inputs: Vec<(usize, Result<Vec<f32>>)> = missing
            .par_iter()
            .filter_map(|&i| {
                let (r, flip) = items[i];
                decoded[&(r.path.as_path(), r.gray)].as_ref().map(|img| (i, data::preprocess(img, &spec, flip)))
            })
            .collect();
        let shape = [3, spec.height_px as i64, spec.width_px as i64];
        let mut ok_idx = Vec::new();
        let mut ok_inputs = Vec::new();
        for (i, t) in inputs {
            match t {
                Ok(v) => {
                    ok_idx.push(i);
                    ok_inputs.push(Tensor::from_slice(&v).reshape(shape));
                }
                Err(e) => eprintln!("skipping {}: {e:#}", items[i].0.path.display()),
            }
        }
        let feats = self.extractor.compute_inputs(ok_inputs, self.chunk);
        for (i, f) in ok_idx.into_iter().zip(feats) {
            if let Some(c) = &self.cache {
                let (r, flip) = items[i];
                if let Err(e) = c.store(&r.content_hash, flip, &f) {
                    eprintln!("feature cache: cannot store {}: {e:#}", r.path.display());
                }
            }
            out[i] = Some(f);
        }
        out
    }

    /// Features of one image.
    pub fn get(&self, record: &ImageRecord, hflip: bool) -> Result<Features> {
        self.get_many(&[(record, hflip)])
            .pop()
            .flatten()
            .with_context(|| format!("no features for {}", record.path.display()))
    }

    /// Makes sure every `(record, flip)` for `flip` in `flips` is cached (computing the missing
    /// ones, `chunk` images at a time, with a progress bar when `progress`), and returns the
    /// records that could be read, in order. Without a cache, only checks that every image
    /// decodes.
    pub fn prepare(
        &self,
        records: &[ImageRecord],
        flips: &[bool],
        progress: bool,
    ) -> Result<(Vec<ImageRecord>, PrepareStats)> {
        if flips.is_empty() {
            bail!("prepare: no flip setting given");
        }
        let mut stats = PrepareStats::default();
        let mut kept = Vec::with_capacity(records.len());
        let bar = Progress::new(records.len() as u64, ProgressMode::for_stderr(progress), "features");
        let Some(cache) = &self.cache else {
            for r in records {
                match r.load_for_training() {
                    Ok(_) => kept.push(r.clone()),
                    Err(e) => {
                        eprintln!("skipping unreadable image: {e:#}");
                        stats.skipped += 1;
                    }
                }
                bar.inc(1);
            }
            bar.finish();
            stats.images = kept.len();
            return Ok((kept, stats));
        };
        let per_group = (self.chunk * 2).max(8);
        for group in records.chunks(per_group) {
            let mut todo: Vec<(&ImageRecord, bool)> = Vec::new();
            for r in group {
                for &f in flips {
                    if cache.contains(&r.content_hash, f) {
                        stats.hits += 1;
                    } else {
                        todo.push((r, f));
                    }
                }
            }
            let mut failed = std::collections::HashSet::new();
            if !todo.is_empty() {
                let t0 = Instant::now();
                let got = self.get_many(&todo);
                stats.compute_seconds += t0.elapsed().as_secs_f64();
                for ((r, _), f) in todo.iter().zip(got) {
                    match f {
                        Some(_) => stats.computed += 1,
                        None => {
                            failed.insert(r.path.clone());
                        }
                    }
                }
                if stats.compute_seconds > 0.0 {
                    bar.set_message(format!("{:.2} img/s", stats.computed_per_second()));
                }
            }
            for r in group {
                if failed.contains(&r.path) {
                    stats.skipped += 1;
                } else {
                    kept.push(r.clone());
                }
            }
            bar.inc(group.len() as u64);
        }
        bar.finish();
        stats.images = kept.len();
        Ok((kept, stats))
    }
}
