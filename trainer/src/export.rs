//! Export: the whole graph (backbone + encoder + both branches) as the single self-describing
//! ONNX file the SDK reads (`sempart::model_format`). BatchNorm is folded into the preceding
//! convolutions; the batch dimension is dynamic; the positional embedding is resampled for the
//! export's input size once, here, with the backbone's own rule.

use crate::backbone::vit::{Vit, VitConfig};
use crate::heads::{Heads, HeadsConfig, BN_EPS};
use anyhow::{anyhow, ensure, Result};
use sempart::model_format::{self, keys};
use sempart::onnx::builder::{Attr, FloatTensor, GraphBuilder};
use std::collections::HashMap;
use tch::{nn, Tensor};

/// A tch tensor's values as f32 on the CPU (a copy; the bits of f32 tensors are unchanged).
pub fn float_tensor(t: &Tensor) -> Result<FloatTensor> {
    let t = t.detach().to_kind(tch::Kind::Float).to_device(tch::Device::Cpu).contiguous();
    Ok(FloatTensor { dims: t.size(), values: Vec::<f32>::try_from(t.flatten(0, -1))? })
}

/// Variables of a `VarStore` by name.
struct Vars(HashMap<String, Tensor>);

impl Vars {
    fn get(&self, name: &str) -> Result<&Tensor> {
        self.0.get(name).ok_or_else(|| anyhow!("weight '{name}' is missing"))
    }

    /// The named variable's values.
    fn values(&self, name: &str) -> Result<FloatTensor> {
        float_tensor(self.get(name)?)
    }
}

/// A PyTorch linear layer (`weight` `[out, in]`) as `x W^T + b`.
fn linear(g: &mut GraphBuilder, x: &str, name: &str, weight: &Tensor, bias: &Tensor) -> Result<String> {
    Ok(g.linear(x, name, &float_tensor(&weight.transpose(0, 1))?, &float_tensor(bias)?))
}

/// A convolution with bias.
fn conv(g: &mut GraphBuilder, x: &str, name: &str, w: &Tensor, b: &Tensor, stride: i64, pad: i64) -> Result<String> {
    g.conv(x, name, &float_tensor(w)?, &float_tensor(b)?, stride, pad)
        .ok_or_else(|| anyhow!("{name}: conv weight must be 4-D"))
}

/// Writes one pre-norm transformer block (the names under `prefix` follow the official ViT
/// layout) and returns its output.
fn block(g: &mut GraphBuilder, x: &str, w: &Vars, prefix: &str, cfg: &VitConfig) -> Result<String> {
    let d = cfg.embed_dim;
    let heads = cfg.num_heads;
    let hd = d / heads;
    let p = |s: &str| format!("{prefix}.{s}");
    let h = g.layer_norm(x, &p("norm1"), &w.values(&p("norm1.weight"))?, &w.values(&p("norm1.bias"))?, cfg.ln_eps);
    let qkv_w = w.get(&p("attn.qkv.weight"))?;
    let qkv_b = w.get(&p("attn.qkv.bias"))?;
    let split = |t: &Tensor, i: i64| t.narrow(0, i * d, d);
    let heads_shape = g.ints("heads_shape", &[0, -1, heads, hd]);
    let project = |g: &mut GraphBuilder, i: i64, name: &str, perm: Vec<i64>| -> Result<String> {
        let y = linear(g, &h, &p(&format!("attn.{name}")), &split(qkv_w, i), &split(qkv_b, i))?;
        let r = g.node("Reshape", &[&y, &heads_shape], vec![]);
        Ok(g.node("Transpose", &[&r], vec![("perm", Attr::Ints(perm))]))
    };
    let q = project(g, 0, "q", vec![0, 2, 1, 3])?;
    let k = project(g, 1, "k", vec![0, 2, 3, 1])?;
    let v = project(g, 2, "v", vec![0, 2, 1, 3])?;
    let scale = g.floats("attn_scale", &[], &[(hd as f32).powf(-0.5)]);
    let s = g.node("MatMul", &[&q, &k], vec![]);
    let s = g.node("Mul", &[&s, &scale], vec![]);
    let a = g.node("Softmax", &[&s], vec![("axis", Attr::Int(-1))]);
    let ctx = g.node("MatMul", &[&a, &v], vec![]);
    let ctx = g.node("Transpose", &[&ctx], vec![("perm", Attr::Ints(vec![0, 2, 1, 3]))]);
    let merged = g.ints("merged_shape", &[0, -1, d]);
    let ctx = g.node("Reshape", &[&ctx, &merged], vec![]);
    let mut out = linear(g, &ctx, &p("attn.proj"), w.get(&p("attn.proj.weight"))?, w.get(&p("attn.proj.bias"))?)?;
    if cfg.layer_scale {
        let gamma = g.weight(&p("ls1.gamma"), &w.values(&p("ls1.gamma"))?);
        out = g.node("Mul", &[&out, &gamma], vec![]);
    }
    let x = g.node("Add", &[x, &out], vec![]);
    let h = g.layer_norm(&x, &p("norm2"), &w.values(&p("norm2.weight"))?, &w.values(&p("norm2.bias"))?, cfg.ln_eps);
    let h = linear(g, &h, &p("mlp.fc1"), w.get(&p("mlp.fc1.weight"))?, w.get(&p("mlp.fc1.bias"))?)?;
    let h = g.gelu(&h);
    let mut h = linear(g, &h, &p("mlp.fc2"), w.get(&p("mlp.fc2.weight"))?, w.get(&p("mlp.fc2.bias"))?)?;
    if cfg.layer_scale {
        let gamma = g.weight(&p("ls2.gamma"), &w.values(&p("ls2.gamma"))?);
        h = g.node("Mul", &[&h, &gamma], vec![]);
    }
    Ok(g.node("Add", &[&x, &h], vec![]))
}

/// Folds an eval-mode BatchNorm into the convolution before it.
fn fold_bn(conv: &nn::Conv2D, bn: &nn::BatchNorm) -> Result<(Tensor, Tensor)> {
    let gamma = bn.ws.as_ref().ok_or_else(|| anyhow!("BatchNorm without affine weight"))?;
    let beta = bn.bs.as_ref().ok_or_else(|| anyhow!("BatchNorm without affine bias"))?;
    let factor = gamma / (&bn.running_var + BN_EPS).sqrt();
    let weight = &conv.ws * factor.reshape([-1, 1, 1, 1]);
    let bias = conv.bs.as_ref().map_or_else(|| bn.running_mean.zeros_like(), |b| b.shallow_clone());
    let bias = (bias - &bn.running_mean) * &factor + beta;
    Ok((weight, bias))
}

/// What goes into the file's metadata besides the geometry.
#[derive(Debug, Clone)]
pub struct Provenance {
    /// Backbone name, e.g. `dinov2-small`.
    pub backbone_name: String,
    /// Where the backbone weights come from.
    pub backbone_origin: String,
    /// Training provenance as a JSON object.
    pub training: serde_json::Value,
}

/// Builds the ONNX file for a backbone and trained heads.
#[allow(clippy::too_many_arguments)]
pub fn export_onnx(
    backbone_vs: &nn::VarStore,
    vit: &Vit,
    heads_vs: &nn::VarStore,
    heads: &Heads,
    mean: [f64; 3],
    std: [f64; 3],
    provenance: &Provenance,
) -> Result<Vec<u8>> {
    let _guard = tch::no_grad_guard();
    let vcfg = vit.config();
    let hcfg: &HeadsConfig = heads.config();
    ensure!(
        vcfg.patch_size == hcfg.patch_size,
        "backbone patch {} != heads patch {}",
        vcfg.patch_size,
        hcfg.patch_size
    );
    ensure!(
        vcfg.embed_dim == hcfg.feature_dim,
        "backbone width {} != heads feature_dim {}",
        vcfg.embed_dim,
        hcfg.feature_dim
    );
    let (hh, ww) = (hcfg.input_height, hcfg.input_width);
    let (gh, gw) = hcfg.grid();
    let bw = Vars(backbone_vs.variables());
    let hw = Vars(heads_vs.variables());
    let mut g = GraphBuilder::default();
    let image = model_format::INPUT_NAME;

    // Backbone.
    let d = vcfg.embed_dim;
    let pe = conv(
        &mut g,
        image,
        "patch_embed.proj",
        bw.get("patch_embed.proj.weight")?,
        bw.get("patch_embed.proj.bias")?,
        vcfg.patch_size,
        0,
    )?;
    let tokens = g.map_to_tokens(&pe, d);
    let cls = g.weight("cls_token", &bw.values("cls_token")?);
    let x = g.prepend_token(&tokens, &cls, d);
    let pos = g.weight("pos_embed_resampled", &float_tensor(&vit.pos_embed_for(gh, gw, hh, ww))?);
    let mut x = g.node("Add", &[&x, &pos], vec![]);
    for i in 0..vcfg.depth {
        x = block(&mut g, &x, &bw, &format!("blocks.{i}"), vcfg)?;
    }
    let x = g.layer_norm(&x, "norm", &bw.values("norm.weight")?, &bw.values("norm.bias")?, vcfg.ln_eps);
    let starts = g.ints("starts", &[1]);
    let ends = g.ints("ends", &[i64::MAX]);
    let axes = g.ints("axes", &[1]);
    let patches = g.node("Slice", &[&x, &starts, &ends, &axes], vec![]);

    // Encoder.
    let e = hcfg.encoder_dim;
    let y = linear(
        &mut g,
        &patches,
        "encoder.input_proj",
        hw.get("encoder.input_proj.weight")?,
        hw.get("encoder.input_proj.bias")?,
    )?;
    let ecls = g.weight("encoder.cls_token", &hw.values("encoder.cls_token")?);
    let mut y = g.prepend_token(&y, &ecls, e);
    if hcfg.encoder_pos_embed {
        let p = g.weight("encoder.pos_embed", &hw.values("encoder.pos_embed")?);
        y = g.node("Add", &[&y, &p], vec![]);
    }
    let y = block(&mut g, &y, &hw, "encoder.block", &hcfg.encoder_block())?;
    let y =
        g.layer_norm(&y, "encoder.norm", &hw.values("encoder.norm.weight")?, &hw.values("encoder.norm.bias")?, 1e-6);
    let encoded = g.tokens_to_map(&y, e, gh, gw);

    // Coarse branch.
    let c = conv(
        &mut g,
        &encoded,
        "coarse",
        &heads.coarse.ws,
        heads.coarse.bs.as_ref().ok_or_else(|| anyhow!("coarse conv without bias"))?,
        1,
        0,
    )?;
    g.node_named("Sigmoid", &[&c], vec![], model_format::COARSE_OUTPUT);

    // Fine branch.
    let img = match hcfg.fine_image {
        crate::heads::FineImage::Normalized => image.to_string(),
        crate::heads::FineImage::Raw => {
            let s = g.floats("std", &[1, 3, 1, 1], &std.map(|v| v as f32));
            let m = g.floats("mean", &[1, 3, 1, 1], &mean.map(|v| v as f32));
            let t = g.node("Mul", &[image, &s], vec![]);
            g.node("Add", &[&t, &m], vec![])
        }
    };
    let mut f = encoded.clone();
    let sizes = hcfg.fine_sizes();
    for (i, (fb, &(h, w))) in heads.fine_blocks.iter().zip(&sizes).enumerate() {
        let up = g.resize_bilinear(&f, h, w);
        let im = if (h, w) == (hh, ww) { img.clone() } else { g.resize_bilinear(&img, h, w) };
        let cat = g.node("Concat", &[&up, &im], vec![("axis", Attr::Int(1))]);
        let (wt, b) = fold_bn(&fb.conv, &fb.bn)?;
        let c = conv(&mut g, &cat, &format!("fine.blocks.{i}"), &wt, &b, 1, 1)?;
        f = g.node("LeakyRelu", &[&c], vec![("alpha", Attr::Float(0.01))]);
    }
    let last = heads.fine_blocks.last().ok_or_else(|| anyhow!("no fine blocks"))?;
    let (wt, b) = fold_bn(&last.conv, &last.bn)?;
    let c = conv(&mut g, &f, &format!("fine.blocks.{}", sizes.len()), &wt, &b, 1, 1)?;
    let f = g.node("LeakyRelu", &[&c], vec![("alpha", Attr::Float(0.01))]);
    let cat = g.node("Concat", &[&f, &img], vec![("axis", Attr::Int(1))]);
    let fine_b = heads.fine_head.bs.as_ref().ok_or_else(|| anyhow!("fine head without bias"))?;
    let logits = conv(&mut g, &cat, "fine.head", &heads.fine_head.ws, fine_b, 1, 0)?;
    g.node_named("Sigmoid", &[&logits], vec![], model_format::FINE_OUTPUT);

    let triple = |v: [f64; 3]| format!("{},{},{}", v[0], v[1], v[2]);
    let metadata = vec![
        (keys::FORMAT_VERSION.to_string(), model_format::FORMAT_VERSION.to_string()),
        (keys::INPUT_WIDTH.to_string(), ww.to_string()),
        (keys::INPUT_HEIGHT.to_string(), hh.to_string()),
        (keys::PATCH_SIZE.to_string(), vcfg.patch_size.to_string()),
        (keys::MEAN.to_string(), triple(mean)),
        (keys::STD.to_string(), triple(std)),
        (keys::BACKBONE_NAME.to_string(), provenance.backbone_name.clone()),
        (keys::BACKBONE_ORIGIN.to_string(), provenance.backbone_origin.clone()),
        (keys::TRAINING.to_string(), provenance.training.to_string()),
        (keys::BACKBONE_CONFIG.to_string(), serde_json::to_string(vcfg)?),
        (keys::HEADS_CONFIG.to_string(), serde_json::to_string(hcfg)?),
    ];
    let doc = "Sempart salient-object segmentation (arXiv 2309.10972): DINO backbone + Sempart heads. \
               Input 'image' [N,3,H,W] normalised RGB; outputs 'fine' [N,1,H,W] and 'coarse' [N,1,H/p,W/p] probabilities of partition A.";
    Ok(model_format::seal(g.finish(
        (image, [3, hh, ww]),
        &[(model_format::FINE_OUTPUT, [1, hh, ww]), (model_format::COARSE_OUTPUT, [1, gh, gw])],
        &metadata,
        doc,
    )))
}

/// Largest absolute differences between the tch model and the exported file run by the SDK.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Parity {
    /// On the fine output.
    pub fine: f32,
    /// On the coarse output.
    pub coarse: f32,
}

/// Runs `frames` (RGB8, each exactly the model's input size, so that the SDK's resize is the
/// identity) through the tch backbone + heads and through the exported file opened by the SDK,
/// and returns the largest differences of the partition-A probabilities.
pub fn check_parity(vit: &Vit, heads: &Heads, onnx_path: &std::path::Path, frames: &[Vec<u8>]) -> Result<Parity> {
    use sempart::{Frame, GuidedFilter, Options, PixelFormat, Segmenter};
    // No refinement: the SDK's fine map is then the raw output (the resize is the identity).
    let sdk = Segmenter::open(onnx_path, &Options { refine: GuidedFilter::OFF, ..Options::default() })?;
    let spec = sdk.info().input_spec();
    let (w, h) = (spec.width_px, spec.height_px);
    let mut parity = Parity { fine: 0.0, coarse: 0.0 };
    for rgb in frames {
        let frame = Frame::new(rgb, w as u32, h as u32, w * 3, PixelFormat::Rgb8)?;
        let seg = sdk.segment(&frame)?;
        let mut input = vec![0f32; 3 * w * h];
        sempart::preprocess::frame_to_input(&frame, &spec, &mut input);
        let x = Tensor::from_slice(&input).reshape([1, 3, h as i64, w as i64]);
        let _g = tch::no_grad_guard();
        let out = vit.forward(&x);
        let patches = out.tokens.narrow(1, 1, out.tokens.size()[1] - 1);
        let heads_out = heads.forward_t(&patches, &x, false, true);
        // The SDK reports foreground probabilities; undo its orientation to compare raw outputs.
        let raw = |p: f32| if seg.foreground_is_b { 1.0 - p } else { p };
        let fine = Vec::<f32>::try_from(heads_out.fine.to_kind(tch::Kind::Float).flatten(0, -1))?;
        let coarse = Vec::<f32>::try_from(heads_out.coarse.to_kind(tch::Kind::Float).flatten(0, -1))?;
        ensure!(fine.len() == seg.fine_probability.len(), "fine output sizes differ");
        ensure!(coarse.len() == seg.coarse_probability.len(), "coarse output sizes differ");
        for (a, b) in fine.iter().zip(&seg.fine_probability) {
            parity.fine = parity.fine.max((a - raw(*b)).abs());
        }
        for (a, b) in coarse.iter().zip(&seg.coarse_probability) {
            parity.coarse = parity.coarse.max((a - raw(*b)).abs());
        }
    }
    Ok(parity)
}
