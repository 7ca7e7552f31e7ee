//! A Vision Transformer in `tch`, covering the DINO ViT-S/8 and ViT-S/16 releases and the
//! DINOv2 ViT-S/14 release (layer scale).
//!
//! The architecture is the one of the official code: pre-norm blocks
//! `x = x + ls1(attn(norm1(x))); x = x + ls2(mlp(norm2(x)))`, a `qkv` linear layer with bias,
//! attention scale `head_dim^-0.5`, exact (erf) GELU, LayerNorm with `eps = 1e-6`.
//!
//! Weights live in a [`tch::nn::VarStore`] under the canonical names of the official
//! DINO/DINOv2 state dicts (`cls_token`, `pos_embed`, `patch_embed.proj.weight`,
//! `blocks.{i}.norm1.weight`, `blocks.{i}.attn.qkv.weight`, `blocks.{i}.ls1.gamma`,
//! `blocks.{i}.mlp.fc1.weight`, ..., `norm.weight`). The variables are created as
//! non-trainable (the backbone is frozen); [`Vit::new`] reuses variables that already exist
//! under those names, so a `VarStore` filled by a loader can be handed to it directly.

use anyhow::{ensure, Context};
use tch::{nn, Tensor};

pub use super::vit_config::{PosInterpolation, VitConfig};

/// Gets the variable `name` under `vs`, creating it (zero, non-trainable) if it does not
/// exist yet, and checks its shape.
fn param(vs: &nn::Path, name: &str, dims: &[i64]) -> anyhow::Result<Tensor> {
    let t = match vs.get(name) {
        Some(t) => t,
        None => vs.add(name, Tensor::zeros(dims, (tch::Kind::Float, vs.device())), false),
    };
    ensure!(t.size() == dims, "variable {} has shape {:?}, expected {:?}", vs.path(name), t.size(), dims);
    Ok(t)
}

/// LayerNorm over the last dimension (`weight`, `bias`).
#[derive(Debug)]
pub struct LayerNorm {
    weight: Tensor,
    bias: Tensor,
    eps: f64,
}

impl LayerNorm {
    /// Reads `weight` and `bias` of width `dim` under `vs`.
    pub fn new(vs: &nn::Path, dim: i64, eps: f64) -> anyhow::Result<LayerNorm> {
        Ok(LayerNorm { weight: param(vs, "weight", &[dim])?, bias: param(vs, "bias", &[dim])?, eps })
    }

    /// Normalises over the last dimension.
    pub fn forward(&self, x: &Tensor) -> Tensor {
        let d = *x.size().last().expect("LayerNorm input has at least one dimension");
        x.layer_norm([d], Some(&self.weight), Some(&self.bias), self.eps, false)
    }
}

/// Linear layer with bias (`weight` `[out, in]`, `bias` `[out]`).
#[derive(Debug)]
pub struct Linear {
    weight: Tensor,
    bias: Tensor,
}

impl Linear {
    /// Reads `weight` and `bias` under `vs`.
    pub fn new(vs: &nn::Path, in_dim: i64, out_dim: i64) -> anyhow::Result<Linear> {
        Ok(Linear { weight: param(vs, "weight", &[out_dim, in_dim])?, bias: param(vs, "bias", &[out_dim])? })
    }

    /// `x W^T + b`.
    pub fn forward(&self, x: &Tensor) -> Tensor {
        x.linear(&self.weight, Some(&self.bias))
    }
}

/// Patch embedding: a `p x p` convolution with stride `p` (`proj.weight`, `proj.bias`).
/// Like PyTorch's convolution it floors: trailing pixels that do not fill a patch are dropped.
#[derive(Debug)]
pub struct PatchEmbed {
    weight: Tensor,
    bias: Tensor,
    patch: i64,
}

impl PatchEmbed {
    /// Reads `proj.weight` `[D, 3, p, p]` and `proj.bias` `[D]` under `vs` (= `patch_embed`).
    pub fn new(vs: &nn::Path, patch: i64, dim: i64) -> anyhow::Result<PatchEmbed> {
        let proj = vs / "proj";
        Ok(PatchEmbed {
            weight: param(&proj, "weight", &[dim, 3, patch, patch])?,
            bias: param(&proj, "bias", &[dim])?,
            patch,
        })
    }

    /// `[N, 3, H, W]` -> `[N, D, H // p, W // p]`.
    pub fn forward(&self, x: &Tensor) -> Tensor {
        x.conv2d(&self.weight, Some(&self.bias), [self.patch, self.patch], [0, 0], [1, 1], 1)
    }
}

/// What an attention layer returns.
#[derive(Debug)]
pub struct AttentionOutput {
    /// Output after the projection, `[N, T, D]`.
    pub out: Tensor,
    /// Keys, heads concatenated (the k slice of the qkv output), `[N, T, D]`.
    pub keys: Tensor,
    /// Softmax attention `[N, heads, T, T]`, when asked for.
    pub attention: Option<Tensor>,
}

/// Multi-head self-attention (`qkv`, `proj`).
#[derive(Debug)]
pub struct Attention {
    qkv: Linear,
    proj: Linear,
    num_heads: i64,
    scale: f64,
}

impl Attention {
    /// Reads `qkv.*` `[3D, D]` and `proj.*` `[D, D]` under `vs` (= `blocks.{i}.attn`).
    pub fn new(vs: &nn::Path, dim: i64, num_heads: i64) -> anyhow::Result<Attention> {
        ensure!(num_heads > 0 && dim % num_heads == 0, "width {dim} is not a multiple of {num_heads} heads");
        Ok(Attention {
            qkv: Linear::new(&(vs / "qkv"), dim, 3 * dim)?,
            proj: Linear::new(&(vs / "proj"), dim, dim)?,
            num_heads,
            scale: ((dim / num_heads) as f64).powf(-0.5),
        })
    }

    /// Attention over `x` `[N, T, D]`. With `want_attention` the softmax matrix is formed
    /// explicitly (as the official code does) and returned; without it the fused
    /// scaled-dot-product kernel is used.
    pub fn forward(&self, x: &Tensor, want_attention: bool) -> AttentionOutput {
        let (n, t, d) = x.size3().expect("attention input must be [N, T, D]");
        let h = self.num_heads;
        let qkv = self.qkv.forward(x);
        let keys = qkv.narrow(2, d, d);
        let heads = qkv.reshape([n, t, 3, h, d / h]).permute([2, 0, 3, 1, 4]);
        let (q, k, v) = (heads.get(0), heads.get(1), heads.get(2));
        let (ctx, attention) = if want_attention {
            let attn = (q.matmul(&k.transpose(-2, -1)) * self.scale).softmax(-1, q.kind());
            (attn.matmul(&v), Some(attn))
        } else {
            let ctx = Tensor::scaled_dot_product_attention(&q, &k, &v, None::<Tensor>, 0.0, false, self.scale, false);
            (ctx, None)
        };
        let out = self.proj.forward(&ctx.transpose(1, 2).reshape([n, t, d]));
        AttentionOutput { out, keys, attention }
    }
}

/// Two-layer MLP with exact (erf) GELU (`fc1`, `fc2`).
#[derive(Debug)]
pub struct Mlp {
    fc1: Linear,
    fc2: Linear,
}

impl Mlp {
    /// Reads `fc1.*` `[hidden, D]` and `fc2.*` `[D, hidden]` under `vs` (= `blocks.{i}.mlp`).
    pub fn new(vs: &nn::Path, dim: i64, hidden: i64) -> anyhow::Result<Mlp> {
        Ok(Mlp { fc1: Linear::new(&(vs / "fc1"), dim, hidden)?, fc2: Linear::new(&(vs / "fc2"), hidden, dim)? })
    }

    /// `fc2(gelu(fc1(x)))`.
    pub fn forward(&self, x: &Tensor) -> Tensor {
        self.fc2.forward(&self.fc1.forward(x).gelu("none"))
    }
}

/// One pre-norm transformer block (`norm1`, `attn`, `ls1`, `norm2`, `mlp`, `ls2`).
#[derive(Debug)]
pub struct Block {
    norm1: LayerNorm,
    attn: Attention,
    ls1: Option<Tensor>,
    norm2: LayerNorm,
    mlp: Mlp,
    ls2: Option<Tensor>,
}

impl Block {
    /// Reads the block's weights under `vs` (= `blocks.{i}`).
    pub fn new(vs: &nn::Path, cfg: &VitConfig) -> anyhow::Result<Block> {
        let d = cfg.embed_dim;
        let gamma = |name: &str| -> anyhow::Result<Option<Tensor>> {
            if cfg.layer_scale {
                Ok(Some(param(&(vs / name), "gamma", &[d])?))
            } else {
                Ok(None)
            }
        };
        Ok(Block {
            norm1: LayerNorm::new(&(vs / "norm1"), d, cfg.ln_eps)?,
            attn: Attention::new(&(vs / "attn"), d, cfg.num_heads)?,
            ls1: gamma("ls1")?,
            norm2: LayerNorm::new(&(vs / "norm2"), d, cfg.ln_eps)?,
            mlp: Mlp::new(&(vs / "mlp"), d, cfg.mlp_hidden)?,
            ls2: gamma("ls2")?,
        })
    }

    /// Returns the block output and the attention layer's keys / attention.
    pub fn forward(&self, x: &Tensor, want_attention: bool) -> (Tensor, AttentionOutput) {
        let mut a = self.attn.forward(&self.norm1.forward(x), want_attention);
        let attn_out = std::mem::replace(&mut a.out, Tensor::new());
        let attn_out = match &self.ls1 {
            Some(g) => attn_out * g,
            None => attn_out,
        };
        let x = x + attn_out;
        let m = self.mlp.forward(&self.norm2.forward(&x));
        let m = match &self.ls2 {
            Some(g) => m * g,
            None => m,
        };
        (x + m, a)
    }
}

/// Everything the forward pass exposes.
#[derive(Debug)]
pub struct VitOutput {
    /// Final tokens after the last LayerNorm, `[N, 1 + h0 * w0, D]` (\[CLS\] first, then the
    /// patches row-major over `(h0, w0)`).
    pub tokens: Tensor,
    /// Tokens before the final LayerNorm, same shape.
    pub prenorm: Tensor,
    /// Keys of the last block's attention (k slice of its qkv output, heads concatenated:
    /// head j is columns `j * hd .. (j + 1) * hd`), `[N, 1 + h0 * w0, D]`.
    pub keys: Tensor,
    /// Last block's softmax attention, `[N, heads, T, T]` with `T = 1 + h0 * w0`.
    pub attention: Tensor,
    /// Token grid `(h0, w0) = (H // p, W // p)`.
    pub grid: (i64, i64),
}

impl VitOutput {
    /// Drops the \[CLS\] row of a `[N, 1 + h0 * w0, C]` tensor of this output (tokens, prenorm
    /// or keys) and lays the patches out as a feature map `[N, C, h0, w0]`.
    pub fn patch_map(&self, t: &Tensor) -> Tensor {
        let (n, tt, c) = t.size3().expect("expected [N, T, C]");
        let (h0, w0) = self.grid;
        assert_eq!(tt, 1 + h0 * w0, "token count does not match the grid {:?}", self.grid);
        t.narrow(1, 1, h0 * w0).reshape([n, h0, w0, c]).permute([0, 3, 1, 2]).contiguous()
    }
}

/// The ViT backbone. Build it with [`Vit::new`] on a path of a `VarStore` (usually the root
/// of a `VarStore` a loader filled, see [`crate::backbone::load_backbone`]).
#[derive(Debug)]
pub struct Vit {
    cfg: VitConfig,
    cls_token: Tensor,
    pos_embed: Tensor,
    patch_embed: PatchEmbed,
    blocks: Vec<Block>,
    norm: LayerNorm,
}

impl Vit {
    /// Builds the model on `vs` under the canonical names. Variables that already exist are
    /// reused (their shape is checked); missing ones are created as zeros, non-trainable.
    ///
    /// Panics when the configuration is invalid or an existing variable has the wrong shape;
    /// [`Vit::try_new`] returns those as errors.
    pub fn new(vs: &nn::Path, cfg: &VitConfig) -> Vit {
        Self::try_new(vs, cfg).expect("building the ViT")
    }

    /// Like [`Vit::new`], returning configuration and shape mismatches as errors.
    pub fn try_new(vs: &nn::Path, cfg: &VitConfig) -> anyhow::Result<Vit> {
        cfg.validate()?;
        let d = cfg.embed_dim;
        let m = cfg.pos_grid;
        let blocks = (0..cfg.depth)
            .map(|i| Block::new(&(vs / "blocks" / i), cfg).with_context(|| format!("block {i}")))
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Vit {
            cls_token: param(vs, "cls_token", &[1, 1, d])?,
            pos_embed: param(vs, "pos_embed", &[1, 1 + m * m, d])?,
            patch_embed: PatchEmbed::new(&(vs / "patch_embed"), cfg.patch_size, d)?,
            blocks,
            norm: LayerNorm::new(&(vs / "norm"), d, cfg.ln_eps)?,
            cfg: cfg.clone(),
        })
    }

    /// The architecture.
    pub fn config(&self) -> &VitConfig {
        &self.cfg
    }

    /// The positional embedding actually added for a `(h0, w0)` token grid and an input of
    /// `height_px x width_px` pixels: `[1, 1 + h0 * w0, D]`, resampled from the trained
    /// `M x M` grid by the configuration's [`PosInterpolation`] rule (the \[CLS\] row is never
    /// resampled). Computed in float64, then rounded to the parameters' kind: libtorch's float32
    /// bicubic kernels round differently on AVX-512, AVX2 and plain CPUs, and this table is
    /// baked into the exported model, whose bytes must not depend on the machine.
    pub fn pos_embed_for(&self, h0: i64, w0: i64, height_px: i64, width_px: i64) -> Tensor {
        let m = self.cfg.pos_grid;
        let d = self.cfg.embed_dim;
        if h0 * w0 == m * m && height_px == width_px {
            return self.pos_embed.shallow_clone();
        }
        let kind = self.pos_embed.kind();
        let pos = self.pos_embed.to_kind(tch::Kind::Double);
        let cls = pos.narrow(1, 0, 1);
        let grid = pos.narrow(1, 1, m * m).reshape([1, m, m, d]).permute([0, 3, 1, 2]);
        let resized = match self.cfg.pos_interpolation {
            // PyTorch's `scale_factor` path: the kernel uses 1 / scale_factor as the
            // source step, i.e. M / (n0 + 0.1).
            PosInterpolation::Official => {
                grid.upsample_bicubic2d([h0, w0], false, (h0 as f64 + 0.1) / m as f64, (w0 as f64 + 0.1) / m as f64)
            }
            // Exact size: the kernel uses input / output = M / n0 as the source step.
            PosInterpolation::HuggingFace => grid.upsample_bicubic2d([h0, w0], false, None, None),
        };
        let patches = resized.permute([0, 2, 3, 1]).reshape([1, h0 * w0, d]);
        Tensor::cat(&[cls, patches], 1).to_kind(kind)
    }

    /// The output of every block (pre-norm, \[CLS\] first): `depth` tensors `[N, T, D]` for a
    /// normalised batch `[N, 3, H, W]`; the last one is [`VitOutput::prenorm`] of
    /// [`Vit::forward`], and [`Vit::final_norm`] of it its tokens. For probes of the
    /// intermediate layers (`trainer/examples/tokencut_layers.rs`) and `loss.pseudo_layer`.
    pub fn forward_hidden(&self, x: &Tensor) -> Vec<Tensor> {
        let (mut h, _) = self.embed(x);
        let mut out = Vec::with_capacity(self.blocks.len());
        for block in &self.blocks {
            h = block.forward(&h, false).0;
            out.push(h.shallow_clone());
        }
        out
    }

    /// The final LayerNorm.
    pub fn final_norm(&self, x: &Tensor) -> Tensor {
        self.norm.forward(x)
    }

    /// The tokens entering the first block (\[CLS\] + patch embeddings + positional table) and
    /// the token grid, for a normalised batch `[N, 3, H, W]`.
    fn embed(&self, x: &Tensor) -> (Tensor, (i64, i64)) {
        let (n, c, height, width) = x.size4().expect("ViT input must be [N, 3, H, W]");
        assert_eq!(c, 3, "ViT input must have 3 channels, got {c}");
        let d = self.cfg.embed_dim;
        let feat = self.patch_embed.forward(x);
        let (h0, w0) = (feat.size()[2], feat.size()[3]);
        assert!(h0 > 0 && w0 > 0, "input {height}x{width} is smaller than one patch");
        let patches = feat.flatten(2, 3).transpose(1, 2);
        let cls = self.cls_token.expand([n, 1, d], true);
        (Tensor::cat(&[cls, patches], 1) + self.pos_embed_for(h0, w0, height, width), (h0, w0))
    }

    /// Runs the backbone on a normalised batch `[N, 3, H, W]` (H, W need not be multiples of
    /// the patch: the patch convolution floors). Returns final tokens, pre-norm tokens and the
    /// last block's keys and attention.
    pub fn forward(&self, x: &Tensor) -> VitOutput {
        let (mut h, (h0, w0)) = self.embed(x);
        let last = self.blocks.len() - 1;
        let mut keys = None;
        let mut attention = None;
        for (i, block) in self.blocks.iter().enumerate() {
            let (next, a) = block.forward(&h, i == last);
            h = next;
            if i == last {
                keys = Some(a.keys);
                attention = a.attention;
            }
        }
        let tokens = self.norm.forward(&h);
        VitOutput {
            tokens,
            prenorm: h,
            keys: keys.expect("at least one block"),
            attention: attention.expect("last block returns attention"),
            grid: (h0, w0),
        }
    }
}
