//! The trainer's own backbone format: a safetensors file of the canonical weights (float32)
//! with the [`VitConfig`] as JSON in its metadata under [`SAVED_CONFIG_KEY`]
//! (`trainer import-backbone` writes it).

use super::vit_config::VitConfig;
use super::weights::{check_weights, safetensors_weights, weights_to_varstore, Weights, SAVED_CONFIG_KEY};
use anyhow::Context;
use std::collections::HashMap;
use std::path::Path;
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

/// Float32 little-endian bytes of a tensor.
fn tensor_f32_bytes(t: &Tensor) -> anyhow::Result<Vec<u8>> {
    let flat = t.to_kind(Kind::Float).to_device(Device::Cpu).contiguous().view([-1]);
    let v = Vec::<f32>::try_from(&flat)?;
    Ok(v.iter().flat_map(|x| x.to_le_bytes()).collect())
}

/// Saves an imported backbone in our own form: a safetensors file of the canonical weights
/// (float32) whose metadata holds the [`VitConfig`] as JSON under [`SAVED_CONFIG_KEY`].
pub fn save_backbone(path: &Path, cfg: &VitConfig, vs: &VarStore) -> anyhow::Result<()> {
    let vars = vs.variables();
    let weights: Weights = cfg
        .parameter_shapes()
        .into_iter()
        .map(|(name, _)| {
            let t = vars.get(&name).with_context(|| format!("the VarStore has no {name}"))?;
            Ok((name, t.shallow_clone()))
        })
        .collect::<anyhow::Result<_>>()?;
    save_weights(path, cfg, &weights)
}

/// Like [`save_backbone`], from a weight map.
pub fn save_weights(path: &Path, cfg: &VitConfig, weights: &Weights) -> anyhow::Result<()> {
    check_weights(cfg, weights)?;
    let bytes: Vec<(String, Vec<i64>, Vec<u8>)> =
        weights.iter().map(|(n, t)| Ok((n.clone(), t.size(), tensor_f32_bytes(t)?))).collect::<anyhow::Result<_>>()?;
    let views = bytes
        .iter()
        .map(|(n, shape, data)| {
            let shape: Vec<usize> = shape.iter().map(|&s| s as usize).collect();
            Ok((n.as_str(), safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape, data)?))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let meta = HashMap::from([
        ("format".to_string(), "pt".to_string()),
        (SAVED_CONFIG_KEY.to_string(), serde_json::to_string(cfg)?),
    ]);
    safetensors::serialize_to_file(views, Some(meta), path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// Reads a file written by [`save_backbone`]: the configuration and the weights.
pub fn read_saved_weights(path: &Path) -> anyhow::Result<(VitConfig, Weights)> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes)
        .map_err(|e| anyhow::anyhow!("{}: not a safetensors file: {e}", path.display()))?;
    let json = meta
        .metadata()
        .as_ref()
        .and_then(|m| m.get(SAVED_CONFIG_KEY))
        .with_context(|| format!("{}: no {SAVED_CONFIG_KEY} metadata (not a saved backbone)", path.display()))?;
    let cfg: VitConfig = serde_json::from_str(json).context("parsing the saved ViT config")?;
    let st = safetensors::SafeTensors::deserialize(&bytes)
        .map_err(|e| anyhow::anyhow!("{}: bad safetensors file: {e}", path.display()))?;
    let weights = safetensors_weights(&st)?;
    check_weights(&cfg, &weights)?;
    Ok((cfg, weights))
}

/// Loads a file written by [`save_backbone`] into a new frozen CPU `VarStore`.
pub fn load_saved_backbone(path: &Path) -> anyhow::Result<(VitConfig, VarStore)> {
    let (cfg, weights) = read_saved_weights(path)?;
    let vs = weights_to_varstore(&cfg, &weights, Device::Cpu)?;
    Ok((cfg, vs))
}
