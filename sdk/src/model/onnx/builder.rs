//! A small builder for ONNX graphs: named initializers, nodes with attributes, and the
//! pieces (linear, LayerNorm, GELU, convolution, resize, token reshapes) the trainer's export
//! writes the Sempart graph from. It takes plain `f32` values, so it needs no tensor library.

use super::proto::{
    attribute_type, data_type, AttributeProto, Dimension, DimensionValue, GraphProto, ModelProto, NodeProto,
    OperatorSetIdProto, StringStringEntryProto, TensorProto, TensorShapeProto, TensorTypeProto, TypeProto,
    ValueInfoProto,
};
use prost::Message;

/// The opset the exporter targets (LayerNormalization needs 17).
pub const OPSET: i64 = 17;
/// ONNX IR version matching opset 17.
pub const IR_VERSION: i64 = 8;

/// An attribute value.
pub enum Attr {
    /// One integer.
    Int(i64),
    /// One float.
    Float(f32),
    /// Integers.
    Ints(Vec<i64>),
    /// A string.
    Str(&'static str),
}

/// Float values with their shape (row-major), as an initializer holds them.
#[derive(Debug, Clone, PartialEq)]
pub struct FloatTensor {
    /// Shape.
    pub dims: Vec<i64>,
    /// Values, row-major.
    pub values: Vec<f32>,
}

/// Accumulates a graph.
#[derive(Default)]
pub struct GraphBuilder {
    nodes: Vec<NodeProto>,
    initializers: Vec<TensorProto>,
    counter: usize,
}

/// A float initializer holding `values` (little-endian raw data).
pub fn f32_tensor(name: &str, dims: &[i64], values: &[f32]) -> TensorProto {
    let mut raw = Vec::with_capacity(values.len() * 4);
    for v in values {
        raw.extend_from_slice(&v.to_le_bytes());
    }
    TensorProto {
        name: name.into(),
        dims: dims.to_vec(),
        data_type: data_type::FLOAT,
        raw_data: raw,
        ..Default::default()
    }
}

impl GraphBuilder {
    /// A fresh, unique value name with the given stem.
    pub fn fresh(&mut self, stem: &str) -> String {
        self.counter += 1;
        format!("{stem}_{}", self.counter)
    }

    /// Adds a float initializer under the given name.
    pub fn weight(&mut self, name: &str, t: &FloatTensor) -> String {
        self.initializers.push(f32_tensor(name, &t.dims, &t.values));
        name.to_string()
    }

    /// Adds a float initializer from values.
    pub fn floats(&mut self, stem: &str, dims: &[i64], values: &[f32]) -> String {
        let name = self.fresh(stem);
        self.initializers.push(f32_tensor(&name, dims, values));
        name
    }

    /// Adds an int64 initializer (shapes, axes).
    pub fn ints(&mut self, stem: &str, values: &[i64]) -> String {
        let name = self.fresh(stem);
        let mut raw = Vec::with_capacity(values.len() * 8);
        for v in values {
            raw.extend_from_slice(&v.to_le_bytes());
        }
        self.initializers.push(TensorProto {
            name: name.clone(),
            dims: vec![values.len() as i64],
            data_type: data_type::INT64,
            raw_data: raw,
            ..Default::default()
        });
        name
    }

    /// Adds a node with one output and returns the output's name.
    pub fn node(&mut self, op: &str, inputs: &[&str], attrs: Vec<(&str, Attr)>) -> String {
        let out = self.fresh(&op.to_ascii_lowercase());
        self.node_named(op, inputs, attrs, &out);
        out
    }

    /// Adds a node whose single output gets the given name.
    pub fn node_named(&mut self, op: &str, inputs: &[&str], attrs: Vec<(&str, Attr)>, output: &str) {
        let attribute = attrs
            .into_iter()
            .map(|(name, a)| {
                let mut p = AttributeProto { name: name.into(), ..Default::default() };
                match a {
                    Attr::Int(i) => {
                        p.r#type = attribute_type::INT;
                        p.i = i;
                    }
                    Attr::Float(f) => {
                        p.r#type = attribute_type::FLOAT;
                        p.f = f;
                    }
                    Attr::Ints(v) => {
                        p.r#type = attribute_type::INTS;
                        p.ints = v;
                    }
                    Attr::Str(s) => {
                        p.r#type = attribute_type::STRING;
                        p.s = s.as_bytes().to_vec();
                    }
                }
                p
            })
            .collect();
        let name = self.fresh(&format!("n_{op}"));
        self.nodes.push(NodeProto {
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![output.to_string()],
            name,
            op_type: op.into(),
            attribute,
            ..Default::default()
        });
    }

    /// `x W + b` with `weight_t` stored `[in, out]` (a PyTorch linear layer's weight, transposed).
    pub fn linear(&mut self, x: &str, name: &str, weight_t: &FloatTensor, bias: &FloatTensor) -> String {
        let wt = self.weight(&format!("{name}.weight_t"), weight_t);
        let b = self.weight(&format!("{name}.bias"), bias);
        let mm = self.node("MatMul", &[x, &wt], vec![]);
        self.node("Add", &[&mm, &b], vec![])
    }

    /// LayerNormalization over the last axis.
    pub fn layer_norm(&mut self, x: &str, name: &str, weight: &FloatTensor, bias: &FloatTensor, eps: f64) -> String {
        let w = self.weight(&format!("{name}.weight"), weight);
        let b = self.weight(&format!("{name}.bias"), bias);
        self.node(
            "LayerNormalization",
            &[x, &w, &b],
            vec![("axis", Attr::Int(-1)), ("epsilon", Attr::Float(eps as f32))],
        )
    }

    /// Exact GELU: `x * 0.5 * (1 + erf(x / sqrt(2)))` (ONNX Runtime fuses the pattern).
    pub fn gelu(&mut self, x: &str) -> String {
        let sqrt2 = self.floats("sqrt2", &[], &[std::f32::consts::SQRT_2]);
        let one = self.floats("one", &[], &[1.0]);
        let half = self.floats("half", &[], &[0.5]);
        let d = self.node("Div", &[x, &sqrt2], vec![]);
        let e = self.node("Erf", &[&d], vec![]);
        let a = self.node("Add", &[&e, &one], vec![]);
        let m = self.node("Mul", &[x, &a], vec![]);
        self.node("Mul", &[&m, &half], vec![])
    }

    /// Conv2d with bias (`weight` `[out, in, kh, kw]`), padding and stride. `None` when the
    /// weight is not 4-D.
    pub fn conv(
        &mut self,
        x: &str,
        name: &str,
        weight: &FloatTensor,
        bias: &FloatTensor,
        stride: i64,
        pad: i64,
    ) -> Option<String> {
        let k = &weight.dims;
        if k.len() != 4 {
            return None;
        }
        let kernel = vec![k[2], k[3]];
        let w = self.weight(&format!("{name}.weight"), weight);
        let b = self.weight(&format!("{name}.bias"), bias);
        Some(self.node(
            "Conv",
            &[x, &w, &b],
            vec![
                ("kernel_shape", Attr::Ints(kernel)),
                ("strides", Attr::Ints(vec![stride, stride])),
                ("pads", Attr::Ints(vec![pad, pad, pad, pad])),
            ],
        ))
    }

    /// Bilinear resize (half-pixel centres, no antialias: PyTorch's
    /// `interpolate(mode="bilinear", align_corners=False)`) of `[N, C, h, w]` to `height x width`.
    pub fn resize_bilinear(&mut self, x: &str, height: i64, width: i64) -> String {
        let shape = self.node("Shape", &[x], vec![("start", Attr::Int(0)), ("end", Attr::Int(2))]);
        let hw = self.ints("size_hw", &[height, width]);
        let sizes = self.node("Concat", &[&shape, &hw], vec![("axis", Attr::Int(0))]);
        self.node(
            "Resize",
            &[x, "", "", &sizes],
            vec![("mode", Attr::Str("linear")), ("coordinate_transformation_mode", Attr::Str("half_pixel"))],
        )
    }

    /// Prepends a learned token `[1, 1, D]` to `tokens` `[N, T, D]`, broadcast over the batch.
    pub fn prepend_token(&mut self, tokens: &str, token_init: &str, dim: i64) -> String {
        let n = self.node("Shape", &[tokens], vec![("start", Attr::Int(0)), ("end", Attr::Int(1))]);
        let rest = self.ints("one_d", &[1, dim]);
        let shape = self.node("Concat", &[&n, &rest], vec![("axis", Attr::Int(0))]);
        let cls = self.node("Expand", &[token_init, &shape], vec![]);
        self.node("Concat", &[&cls, tokens], vec![("axis", Attr::Int(1))])
    }

    /// `[N, C, h, w]` -> `[N, h * w, C]`.
    pub fn map_to_tokens(&mut self, x: &str, channels: i64) -> String {
        let shape = self.ints("shape", &[0, channels, -1]);
        let r = self.node("Reshape", &[x, &shape], vec![]);
        self.node("Transpose", &[&r], vec![("perm", Attr::Ints(vec![0, 2, 1]))])
    }

    /// `[N, 1 + h * w, C]` -> `[N, C, h, w]`, dropping the first ([CLS]) token.
    pub fn tokens_to_map(&mut self, x: &str, channels: i64, h: i64, w: i64) -> String {
        let starts = self.ints("starts", &[1]);
        let ends = self.ints("ends", &[i64::MAX]);
        let axes = self.ints("axes", &[1]);
        let patches = self.node("Slice", &[x, &starts, &ends, &axes], vec![]);
        let t = self.node("Transpose", &[&patches], vec![("perm", Attr::Ints(vec![0, 2, 1]))]);
        let shape = self.ints("shape", &[0, channels, h, w]);
        self.node("Reshape", &[&t, &shape], vec![])
    }

    /// Finishes the model: one float input `[batch, 3, H, W]`, the given outputs (name and
    /// shape with `batch` as the symbolic first dimension), and metadata. [`encode`] writes it.
    pub fn finish(
        self,
        input: (&str, [i64; 3]),
        outputs: &[(&str, [i64; 3])],
        metadata: &[(String, String)],
        doc: &str,
    ) -> ModelProto {
        let value_info = |name: &str, dims: [i64; 3]| ValueInfoProto {
            name: name.into(),
            r#type: Some(TypeProto {
                tensor_type: Some(TensorTypeProto {
                    elem_type: data_type::FLOAT,
                    shape: Some(TensorShapeProto {
                        dim: std::iter::once(Dimension { value: Some(DimensionValue::DimParam("batch".into())) })
                            .chain(dims.iter().map(|&d| Dimension { value: Some(DimensionValue::DimValue(d)) }))
                            .collect(),
                    }),
                }),
            }),
        };
        let graph = GraphProto {
            node: self.nodes,
            name: "sempart".into(),
            initializer: self.initializers,
            input: vec![value_info(input.0, input.1)],
            output: outputs.iter().map(|(n, d)| value_info(n, *d)).collect(),
            ..Default::default()
        };
        ModelProto {
            ir_version: IR_VERSION,
            producer_name: "sempart-trainer".into(),
            producer_version: env!("CARGO_PKG_VERSION").into(),
            doc_string: doc.into(),
            opset_import: vec![OperatorSetIdProto { domain: String::new(), version: OPSET }],
            metadata_props: metadata
                .iter()
                .map(|(k, v)| StringStringEntryProto { key: k.clone(), value: v.clone() })
                .collect(),
            graph: Some(graph),
            ..Default::default()
        }
    }
}

/// The bytes of a model file: every field but the graph first, then the graph. A file cut
/// anywhere so loses (part of) the graph, and the SDK reports it as truncated rather than as a
/// foreign model. Protobuf reads the two parts as one message; the same model always gives the
/// same bytes.
pub fn encode(model: &ModelProto) -> Vec<u8> {
    let mut bytes = model.clone_without_graph().encode_to_vec();
    if let Some(graph) = &model.graph {
        // Field 7 of ModelProto, written from the borrowed graph.
        prost::encoding::message::encode(7, graph, &mut bytes);
    }
    bytes
}
