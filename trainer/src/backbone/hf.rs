//! Reader for Hugging Face `Dinov2Model` weights (`facebook/dinov2-small` `model.safetensors`).
//!
//! Key mapping to the canonical (official DINOv2) names:
//!
//! | Hugging Face | canonical |
//! | --- | --- |
//! | `embeddings.cls_token` | `cls_token` |
//! | `embeddings.position_embeddings` | `pos_embed` |
//! | `embeddings.patch_embeddings.projection.{weight,bias}` | `patch_embed.proj.*` |
//! | `encoder.layer.{i}.norm1.*`, `norm2.*` | `blocks.{i}.norm1.*`, `norm2.*` |
//! | `encoder.layer.{i}.attention.attention.{query,key,value}.*` | `blocks.{i}.attn.qkv.*` (q, k, v concatenated) |
//! | `encoder.layer.{i}.attention.output.dense.*` | `blocks.{i}.attn.proj.*` |
//! | `encoder.layer.{i}.layer_scale{1,2}.lambda1` | `blocks.{i}.ls{1,2}.gamma` |
//! | `encoder.layer.{i}.mlp.fc{1,2}.*` | `blocks.{i}.mlp.fc{1,2}.*` |
//! | `layernorm.*` | `norm.*` |
//! | `embeddings.mask_token` | dropped |
//!
//! The Hugging Face port resizes the positional grid to an exact size, so these weights get
//! [`PosInterpolation::HuggingFace`].

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{bail, ensure, Context};
use tch::Tensor;

use super::vit_config::{PosInterpolation, VitConfig};
use super::weights::{infer_config, Weights};

/// Loads Hugging Face `Dinov2Model` safetensors. The heads come from `num_heads_hint`, else
/// from a `config.json` next to the file (`num_attention_heads`, `layer_norm_eps`), else
/// `dim / 64`.
pub fn load_hf_safetensors(path: &Path, num_heads_hint: Option<i64>) -> anyhow::Result<(VitConfig, Weights)> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let st = safetensors::SafeTensors::deserialize(&bytes)
        .map_err(|e| anyhow::anyhow!("{}: not a safetensors file: {e}", path.display()))?;
    let hf = super::safetensors_weights(&st)?;
    let (cfg_heads, cfg_eps) = read_config_json(path);
    hf_to_canonical(hf, num_heads_hint.or(cfg_heads), PosInterpolation::HuggingFace, cfg_eps.unwrap_or(1e-6))
}

/// `num_attention_heads` and `layer_norm_eps` of a `config.json` beside `path`, if any.
fn read_config_json(path: &Path) -> (Option<i64>, Option<f64>) {
    let Some(dir) = path.parent() else {
        return (None, None);
    };
    let Ok(text) = std::fs::read_to_string(dir.join("config.json")) else {
        return (None, None);
    };
    let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) else {
        return (None, None);
    };
    if v.get("model_type").and_then(|m| m.as_str()) != Some("dinov2") {
        return (None, None);
    }
    (v.get("num_attention_heads").and_then(|h| h.as_i64()), v.get("layer_norm_eps").and_then(|e| e.as_f64()))
}

/// Maps weights in Hugging Face `Dinov2Model` names (an optional `dinov2.` / `backbone.`
/// prefix is stripped) to canonical names and infers the architecture.
pub fn hf_to_canonical(
    hf: Weights,
    num_heads: Option<i64>,
    pos_interpolation: PosInterpolation,
    ln_eps: f64,
) -> anyhow::Result<(VitConfig, Weights)> {
    let mut out = Weights::new();
    // (layer, q/k/v index, weight-or-bias) -> tensor
    let mut qkv: BTreeMap<(u32, bool), [Option<Tensor>; 3]> = BTreeMap::new();
    let mut unknown = Vec::new();
    for (key, t) in hf {
        let mut name = key.as_str();
        for p in ["dinov2.", "backbone."] {
            name = name.strip_prefix(p).unwrap_or(name);
        }
        let canonical = match name {
            "embeddings.cls_token" => "cls_token".to_string(),
            "embeddings.position_embeddings" => "pos_embed".to_string(),
            "embeddings.patch_embeddings.projection.weight" => "patch_embed.proj.weight".to_string(),
            "embeddings.patch_embeddings.projection.bias" => "patch_embed.proj.bias".to_string(),
            "embeddings.mask_token" => continue,
            "layernorm.weight" => "norm.weight".to_string(),
            "layernorm.bias" => "norm.bias".to_string(),
            _ => {
                let Some((idx, field)) = name.strip_prefix("encoder.layer.").and_then(|r| r.split_once('.')) else {
                    unknown.push(key);
                    continue;
                };
                let Ok(i) = idx.parse::<u32>() else {
                    unknown.push(key);
                    continue;
                };
                let qkv_slot = |f: &str| -> Option<(usize, bool)> {
                    let (which, wb) = f.strip_prefix("attention.attention.")?.split_once('.')?;
                    let j = ["query", "key", "value"].iter().position(|w| *w == which)?;
                    match wb {
                        "weight" => Some((j, true)),
                        "bias" => Some((j, false)),
                        _ => None,
                    }
                };
                if let Some((j, is_weight)) = qkv_slot(field) {
                    let slot = &mut qkv.entry((i, is_weight)).or_default()[j];
                    ensure!(slot.is_none(), "duplicate weight {key}");
                    *slot = Some(t);
                    continue;
                }
                let mapped = match field {
                    "norm1.weight" | "norm1.bias" | "norm2.weight" | "norm2.bias" | "mlp.fc1.weight"
                    | "mlp.fc1.bias" | "mlp.fc2.weight" | "mlp.fc2.bias" => field.to_string(),
                    "attention.output.dense.weight" => "attn.proj.weight".to_string(),
                    "attention.output.dense.bias" => "attn.proj.bias".to_string(),
                    "layer_scale1.lambda1" => "ls1.gamma".to_string(),
                    "layer_scale2.lambda1" => "ls2.gamma".to_string(),
                    _ => {
                        unknown.push(key);
                        continue;
                    }
                };
                format!("blocks.{i}.{mapped}")
            }
        };
        ensure!(out.insert(canonical.clone(), t).is_none(), "duplicate weight {canonical} (from {key})");
    }
    ensure!(unknown.is_empty(), "unsupported Hugging Face keys: {}", unknown.join(", "));
    for ((i, is_weight), parts) in qkv {
        let wb = if is_weight { "weight" } else { "bias" };
        let parts: Vec<Tensor> = match parts {
            [Some(q), Some(k), Some(v)] => vec![q, k, v],
            _ => bail!("layer {i}: query/key/value {wb} incomplete"),
        };
        out.insert(format!("blocks.{i}.attn.qkv.{wb}"), Tensor::cat(&parts, 0).contiguous());
    }
    let cfg = infer_config(&out, num_heads, pos_interpolation, ln_eps)?;
    Ok((cfg, out))
}
