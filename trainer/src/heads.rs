//! The Sempart heads (spec section 1): a one-layer transformer encoder over the frozen
//! backbone's patch tokens, the coarse branch (1x1 conv + sigmoid on the patch grid) and the
//! fine branch (bilinear x2 upsampling steps, each concatenating the image at that size and
//! running conv3x3 -> BatchNorm -> LeakyReLU, then one more block, a last concatenation of the
//! image and a 1x1 conv + sigmoid at the input resolution).

use crate::backbone::vit::{Block, LayerNorm, Linear, PosInterpolation, VitConfig};
use anyhow::{ensure, Result};
use serde::{Deserialize, Serialize};
use tch::{nn, nn::ModuleT, Tensor};

/// Which version of the image the fine branch concatenates (spec: OPEN).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FineImage {
    /// RGB in [0, 1].
    Raw,
    /// The normalised network input.
    Normalized,
}

/// Architecture of the heads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeadsConfig {
    /// Backbone token width (384 for ViT-S).
    pub feature_dim: i64,
    /// Encoder width (64 in the paper).
    pub encoder_dim: i64,
    /// Encoder attention heads (2 in the paper).
    pub encoder_heads: i64,
    /// Encoder MLP width as a multiple of `encoder_dim`.
    pub encoder_mlp_ratio: i64,
    /// Learned positional embedding in the encoder (spec: OPEN).
    pub encoder_pos_embed: bool,
    /// Widths of the fine branch's blocks: one per upsampling step, then the final block
    /// (paper, patch 8: 192, 128, 128, 128).
    pub fine_widths: Vec<i64>,
    /// Which image the fine branch concatenates.
    pub fine_image: FineImage,
    /// Input height in pixels (a multiple of the patch size).
    pub input_height: i64,
    /// Input width in pixels (a multiple of the patch size).
    pub input_width: i64,
    /// Backbone patch size.
    pub patch_size: i64,
}

impl HeadsConfig {
    /// Token grid `(h, w)`.
    pub fn grid(&self) -> (i64, i64) {
        (self.input_height / self.patch_size, self.input_width / self.patch_size)
    }

    /// Sizes after each upsampling step of the fine branch: doubling the grid while that stays
    /// below the input, the last step going to the input size exactly. Patch 8 gives three
    /// steps, patch 14 and 16 four.
    pub fn fine_sizes(&self) -> Vec<(i64, i64)> {
        let steps = (self.patch_size as f64).log2().ceil() as u32;
        let (gh, gw) = self.grid();
        (1..=steps)
            .map(|k| if k == steps { (self.input_height, self.input_width) } else { (gh << k, gw << k) })
            .collect()
    }

    /// Checks the configuration.
    pub fn validate(&self) -> Result<()> {
        ensure!(self.patch_size >= 2, "patch_size must be at least 2");
        ensure!(
            self.input_height % self.patch_size == 0 && self.input_width % self.patch_size == 0,
            "input size {}x{} is not a multiple of the patch size {}",
            self.input_height,
            self.input_width,
            self.patch_size
        );
        ensure!(self.encoder_dim > 0 && self.encoder_heads > 0, "encoder_dim and encoder_heads must be positive");
        ensure!(
            self.encoder_dim % self.encoder_heads == 0,
            "encoder_dim {} is not a multiple of encoder_heads {}",
            self.encoder_dim,
            self.encoder_heads
        );
        let steps = self.fine_sizes().len();
        ensure!(
            self.fine_widths.len() == steps + 1,
            "fine_widths has {} entries; patch {} needs {} upsampling blocks plus the final block = {}",
            self.fine_widths.len(),
            self.patch_size,
            steps,
            steps + 1
        );
        ensure!(self.fine_widths.iter().all(|&w| w > 0), "fine_widths must be positive");
        Ok(())
    }

    /// The encoder's transformer layer as a ViT block configuration.
    pub fn encoder_block(&self) -> VitConfig {
        VitConfig {
            name: "sempart-encoder".into(),
            patch_size: self.patch_size,
            embed_dim: self.encoder_dim,
            depth: 1,
            num_heads: self.encoder_heads,
            mlp_hidden: self.encoder_dim * self.encoder_mlp_ratio,
            layer_scale: false,
            pos_grid: 1,
            pos_interpolation: PosInterpolation::Official,
            ln_eps: 1e-6,
        }
    }
}

/// BatchNorm epsilon of the fine branch (PyTorch's default).
pub const BN_EPS: f64 = 1e-5;

/// One fine-branch block: conv3x3 -> BatchNorm -> LeakyReLU(0.01).
#[derive(Debug)]
pub struct FineBlock {
    /// The convolution (`conv.weight`, `conv.bias`).
    pub conv: nn::Conv2D,
    /// The normalisation (`bn.*`).
    pub bn: nn::BatchNorm,
}

impl FineBlock {
    fn new(vs: &nn::Path, c_in: i64, c_out: i64) -> FineBlock {
        let conv = nn::conv2d(vs / "conv", c_in, c_out, 3, nn::ConvConfig { padding: 1, ..Default::default() });
        let bn = nn::batch_norm2d(vs / "bn", c_out, nn::BatchNormConfig { eps: BN_EPS, ..Default::default() });
        FineBlock { conv, bn }
    }

    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        self.bn.forward_t(&x.apply(&self.conv), train).leaky_relu()
    }
}

/// The outputs of the heads.
#[derive(Debug)]
pub struct HeadsOutput {
    /// Fine probabilities `[N, 1, H, W]`.
    pub fine: Tensor,
    /// Coarse probabilities `[N, 1, h, w]`.
    pub coarse: Tensor,
}

/// The heads, with weights under the names the exporter reads.
#[derive(Debug)]
pub struct Heads {
    cfg: HeadsConfig,
    /// `encoder.input_proj`.
    pub input_proj: Linear,
    /// `encoder.cls_token` `[1, 1, E]`.
    pub cls_token: Tensor,
    /// `encoder.pos_embed` `[1, 1 + h * w, E]` when configured.
    pub pos_embed: Option<Tensor>,
    /// `encoder.block`.
    pub block: Block,
    /// `encoder.norm`.
    pub norm: LayerNorm,
    /// `coarse` 1x1 conv.
    pub coarse: nn::Conv2D,
    /// `fine.blocks.{i}`.
    pub fine_blocks: Vec<FineBlock>,
    /// `fine.head` 1x1 conv.
    pub fine_head: nn::Conv2D,
    mean: Tensor,
    std: Tensor,
}

/// Creates trainable transformer-block variables with ViT initialisation (truncated-normal-like
/// N(0, 0.02) weights, zero biases, unit LayerNorm gains) so that [`Block::new`] picks them up.
fn init_block(vs: &nn::Path, cfg: &VitConfig) {
    let d = cfg.embed_dim;
    let w = |p: &nn::Path, name: &str, dims: &[i64]| {
        let _ = p.var(name, dims, nn::Init::Randn { mean: 0.0, stdev: 0.02 });
    };
    let zeros = |p: &nn::Path, name: &str, dims: &[i64]| {
        let _ = p.var(name, dims, nn::Init::Const(0.0));
    };
    for norm in ["norm1", "norm2"] {
        let _ = (vs / norm).var("weight", &[d], nn::Init::Const(1.0));
        zeros(&(vs / norm), "bias", &[d]);
    }
    w(&(vs / "attn" / "qkv"), "weight", &[3 * d, d]);
    zeros(&(vs / "attn" / "qkv"), "bias", &[3 * d]);
    w(&(vs / "attn" / "proj"), "weight", &[d, d]);
    zeros(&(vs / "attn" / "proj"), "bias", &[d]);
    w(&(vs / "mlp" / "fc1"), "weight", &[cfg.mlp_hidden, d]);
    zeros(&(vs / "mlp" / "fc1"), "bias", &[cfg.mlp_hidden]);
    w(&(vs / "mlp" / "fc2"), "weight", &[d, cfg.mlp_hidden]);
    zeros(&(vs / "mlp" / "fc2"), "bias", &[d]);
}

impl Heads {
    /// Creates (or, when the variables exist already, reuses) the heads under `vs`.
    /// `mean` and `std` are the input normalisation, needed to recover the raw image.
    pub fn new(vs: &nn::Path, cfg: &HeadsConfig, mean: [f64; 3], std: [f64; 3]) -> Result<Heads> {
        cfg.validate()?;
        let e = cfg.encoder_dim;
        let (gh, gw) = cfg.grid();
        let enc = vs / "encoder";
        let ip = &enc / "input_proj";
        let _ = ip.var("weight", &[e, cfg.feature_dim], nn::Init::Randn { mean: 0.0, stdev: 0.02 });
        let _ = ip.var("bias", &[e], nn::Init::Const(0.0));
        let input_proj = Linear::new(&ip, cfg.feature_dim, e)?;
        let cls_token = enc.var("cls_token", &[1, 1, e], nn::Init::Randn { mean: 0.0, stdev: 0.02 });
        let pos_embed = cfg
            .encoder_pos_embed
            .then(|| enc.var("pos_embed", &[1, 1 + gh * gw, e], nn::Init::Randn { mean: 0.0, stdev: 0.02 }));
        let block_cfg = cfg.encoder_block();
        init_block(&(&enc / "block"), &block_cfg);
        let block = Block::new(&(&enc / "block"), &block_cfg)?;
        let _ = (&enc / "norm").var("weight", &[e], nn::Init::Const(1.0));
        let _ = (&enc / "norm").var("bias", &[e], nn::Init::Const(0.0));
        let norm = LayerNorm::new(&(&enc / "norm"), e, 1e-6)?;
        let coarse = nn::conv2d(vs / "coarse", e, 1, 1, Default::default());

        let fine = vs / "fine";
        let steps = cfg.fine_sizes().len();
        let mut fine_blocks = Vec::with_capacity(steps + 1);
        let mut c_in = e;
        for (i, &width) in cfg.fine_widths.iter().enumerate() {
            let extra = if i < steps { 3 } else { 0 };
            fine_blocks.push(FineBlock::new(&(&fine / "blocks" / i), c_in + extra, width));
            c_in = width;
        }
        let fine_head = nn::conv2d(&fine / "head", c_in + 3, 1, 1, Default::default());
        let dev = vs.device();
        let as_t = |v: [f64; 3]| Tensor::from_slice(&v.map(|x| x as f32)).reshape([1, 3, 1, 1]).to_device(dev);
        Ok(Heads {
            cfg: cfg.clone(),
            input_proj,
            cls_token,
            pos_embed,
            block,
            norm,
            coarse,
            fine_blocks,
            fine_head,
            mean: as_t(mean),
            std: as_t(std),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &HeadsConfig {
        &self.cfg
    }

    /// The encoder's output map `[N, E, h, w]` from the backbone's patch tokens `[N, h*w, F]`.
    pub fn encode(&self, patch_tokens: &Tensor) -> Tensor {
        let (n, t, _) = patch_tokens.size3().expect("patch tokens must be [N, T, F]");
        let (gh, gw) = self.cfg.grid();
        assert_eq!(t, gh * gw, "expected {} patch tokens for a {gh}x{gw} grid, got {t}", gh * gw);
        let e = self.cfg.encoder_dim;
        let x = self.input_proj.forward(patch_tokens);
        let x = Tensor::cat(&[self.cls_token.expand([n, 1, e], false), x], 1);
        let x = match &self.pos_embed {
            Some(p) => x + p,
            None => x,
        };
        let (x, _) = self.block.forward(&x, false);
        let x = self.norm.forward(&x);
        x.narrow(1, 1, t).reshape([n, gh, gw, e]).permute([0, 3, 1, 2]).contiguous()
    }

    /// Coarse probabilities from an encoder map.
    pub fn coarse_from(&self, encoded: &Tensor) -> Tensor {
        encoded.apply(&self.coarse).sigmoid()
    }

    /// Fine probabilities from an encoder map and the normalised image `[N, 3, H, W]`.
    pub fn fine_from(&self, encoded: &Tensor, image: &Tensor, train: bool) -> Tensor {
        let image = match self.cfg.fine_image {
            FineImage::Raw => image * &self.std + &self.mean,
            FineImage::Normalized => image.shallow_clone(),
        };
        let mut x = encoded.shallow_clone();
        let sizes = self.cfg.fine_sizes();
        for (block, &(h, w)) in self.fine_blocks.iter().zip(&sizes) {
            let up = x.upsample_bilinear2d([h, w], false, None, None);
            let img = if (h, w) == (self.cfg.input_height, self.cfg.input_width) {
                image.shallow_clone()
            } else {
                image.upsample_bilinear2d([h, w], false, None, None)
            };
            x = block.forward_t(&Tensor::cat(&[up, img], 1), train);
        }
        let last = self.fine_blocks.last().expect("validated: at least one block");
        x = last.forward_t(&x, train);
        Tensor::cat(&[x, image], 1).apply(&self.fine_head).sigmoid()
    }

    /// Both outputs. With `joint = false` the fine branch does not train the encoder (the
    /// paper's "w/o joint training" ablation).
    pub fn forward_t(&self, patch_tokens: &Tensor, image: &Tensor, train: bool, joint: bool) -> HeadsOutput {
        let encoded = self.encode(patch_tokens);
        let coarse = self.coarse_from(&encoded);
        let fine_in = if joint { encoded } else { encoded.detach() };
        let fine = self.fine_from(&fine_in, image, train);
        HeadsOutput { fine, coarse }
    }
}
