//! Dynamic int8 quantisation of a model file's weight products, for the CPU provider.
//!
//! Every `MatMul` whose second input is a two-dimensional float initializer `W [K, N]` (the
//! backbone's and the heads' linear layers) becomes the pattern ONNX Runtime fuses into one
//! `DynamicQuantizeMatMul` kernel:
//!
//! ```text
//! x -> DynamicQuantizeLinear -> (x_q uint8, x_scale, x_zero)
//! MatMulInteger(x_q, W_q int8, x_zero) -> Cast(float) -> Mul(_, Mul(x_scale, W_scale)) -> y
//! ```
//!
//! so the activations are quantised per tensor at run time (asymmetric uint8) and the weights
//! ahead of time, symmetric int8 per output column: `W_scale[n] = max_k |W[k, n]| / 127`,
//! `W_q[k, n] = round_ties_even(W[k, n] / W_scale[n])`. The bias `Add` that follows stays
//! as it is. Products of two activations (attention), convolutions, normalisations and
//! everything else keep float32.
//!
//! Before that, each self-attention becomes one `MultiHeadAttention` node
//! ([`crate::model::onnx::fuse::fuse_attention`]), ONNX Runtime's fused CPU kernel (the attention
//! products stay float32).
//!
//! The arithmetic is one IEEE 754 division and one rounding per weight, in scalar `f32` (Rust
//! never contracts or reorders float operations), so the quantised file is the same bytes on
//! every processor, like the float file it comes from. The result carries
//! [`keys::PRECISION`] = `int8` and a fresh content digest.

use crate::error::{Error, Result, Status};
use crate::model::format::{self as model_format, keys, Precision};
use crate::model::onnx::proto::{attribute_type, data_type, AttributeProto, ModelProto, NodeProto, TensorProto};
use prost::Message;
use std::collections::{HashMap, HashSet};

/// Weights with fewer elements than this stay float32 (quantising them saves nothing).
pub const MIN_QUANTIZED_ELEMENTS: usize = 4096;

/// What [`quantize_int8`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct QuantizeStats {
    /// `MatMul` nodes rewritten to integer products.
    pub matmuls: usize,
    /// Bytes of the float32 weights they had.
    pub float_bytes: usize,
    /// Bytes of the int8 weights and float32 scales that replace them.
    pub int8_bytes: usize,
    /// Self-attentions fused into `MultiHeadAttention` nodes ([`crate::model::onnx::fuse`]).
    pub attentions: usize,
}

/// Weights of one linear layer, quantised per output column.
#[derive(Debug, Clone, PartialEq)]
pub struct QuantizedWeight {
    /// `[K, N]`, row-major.
    pub values: Vec<i8>,
    /// `[N]`: column `n` of the float weight is about `values[.., n] * scales[n]`.
    pub scales: Vec<f32>,
}

/// Quantises `w` (`[k, n]`, row-major) symmetrically per column; see the module docs. A
/// column of zeros gets scale 1.
pub fn quantize_columns(w: &[f32], k: usize, n: usize) -> QuantizedWeight {
    assert_eq!(w.len(), k * n, "weight of {} values is not {k} x {n}", w.len());
    let mut amax = vec![0.0f32; n];
    for row in w.chunks_exact(n) {
        for (m, &v) in amax.iter_mut().zip(row) {
            *m = m.max(v.abs());
        }
    }
    let scales: Vec<f32> = amax.iter().map(|&m| if m > 0.0 && m.is_finite() { m / 127.0 } else { 1.0 }).collect();
    let mut values = Vec::with_capacity(w.len());
    for row in w.chunks_exact(n) {
        for (&v, &s) in row.iter().zip(&scales) {
            values.push((v / s).round_ties_even().clamp(-127.0, 127.0) as i8);
        }
    }
    QuantizedWeight { values, scales }
}

fn node(op: &str, name: String, inputs: &[&str], outputs: &[&str], attribute: Vec<AttributeProto>) -> NodeProto {
    NodeProto {
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: outputs.iter().map(|s| s.to_string()).collect(),
        name,
        op_type: op.into(),
        attribute,
        ..Default::default()
    }
}

/// The quantised graph of a float32 Sempart model file, as a model file of precision
/// [`Precision::Int8`]; see the module docs. Weights of fewer than `min_elements` values stay
/// float32 (the SDK uses [`MIN_QUANTIZED_ELEMENTS`]). A file that is already int8 is refused.
pub fn quantize_int8(model: &[u8], min_elements: usize) -> Result<(Vec<u8>, QuantizeStats)> {
    let mut model = ModelProto::decode(model)
        .map_err(|e| Error::new(Status::ModelCorrupt, format!("the model is not a readable ONNX file: {e}")))?;
    let mut stats = QuantizeStats::default();
    let stated = model.metadata_props.iter().find(|p| p.key == keys::PRECISION).map(|p| p.value.clone());
    if let Some(p) = stated {
        if Precision::parse(&p) != Some(Precision::Fp32) {
            return Err(Error::invalid(format!(
                "the model's precision is '{p}', only a float32 model can be quantised"
            )));
        }
    }
    let graph = model.graph.as_mut().ok_or_else(|| Error::new(Status::ModelCorrupt, "the model has no graph"))?;
    stats.attentions = crate::model::onnx::fuse::fuse_attention(graph, &mut model.opset_import);
    let mut uses: HashMap<String, usize> = HashMap::new();
    for n in &graph.node {
        for i in &n.input {
            *uses.entry(i.clone()).or_default() += 1;
        }
    }
    let outputs: HashSet<&str> = graph.output.iter().map(|o| o.name.as_str()).collect();
    let weights: HashMap<String, usize> =
        graph.initializer.iter().enumerate().map(|(i, t)| (t.name.clone(), i)).collect();
    let mut nodes = Vec::with_capacity(graph.node.len() * 2);
    let mut replaced: HashSet<usize> = HashSet::new();
    let mut added = Vec::new();
    for n in std::mem::take(&mut graph.node) {
        let weight = (n.op_type == "MatMul" && n.domain.is_empty() && n.input.len() == 2 && n.output.len() == 1)
            .then(|| weights.get(&n.input[1]).copied())
            .flatten()
            .filter(|&i| {
                let t = &graph.initializer[i];
                t.data_type == data_type::FLOAT
                    && t.dims.len() == 2
                    && t.dims.iter().product::<i64>() as usize >= min_elements
                    && uses.get(&t.name) == Some(&1)
                    && !outputs.contains(n.output[0].as_str())
            });
        let Some(i) = weight else {
            nodes.push(n);
            continue;
        };
        let w = &graph.initializer[i];
        let (k, cols) = (w.dims[0] as usize, w.dims[1] as usize);
        let values = w.to_f32()?;
        if values.len() != k * cols {
            return Err(Error::new(
                Status::ModelCorrupt,
                format!("initializer {} has {} values for shape {k} x {cols}", w.name, values.len()),
            ));
        }
        let q = quantize_columns(&values, k, cols);
        stats.matmuls += 1;
        stats.float_bytes += values.len() * 4;
        stats.int8_bytes += q.values.len() + q.scales.len() * 4;
        let (x, y) = (&n.input[0], &n.output[0]);
        let wq_name = format!("{}.int8", w.name);
        let ws_name = format!("{}.scale", w.name);
        added.push(TensorProto {
            name: wq_name.clone(),
            dims: w.dims.clone(),
            data_type: data_type::INT8,
            raw_data: q.values.iter().map(|&v| v as u8).collect(),
            ..Default::default()
        });
        added.push(crate::model::onnx::builder::f32_tensor(&ws_name, &[cols as i64], &q.scales));
        replaced.insert(i);
        let v = |s: &str| format!("{y}/{s}");
        let (xq, xs, xz, int, float, scale) = (v("x_q"), v("x_scale"), v("x_zero"), v("int"), v("float"), v("scale"));
        let to_float = AttributeProto {
            name: "to".into(),
            r#type: attribute_type::INT,
            i: data_type::FLOAT as i64,
            ..Default::default()
        };
        nodes.push(node("DynamicQuantizeLinear", v("quantize"), &[x], &[&xq, &xs, &xz], vec![]));
        nodes.push(node("MatMulInteger", v("matmul"), &[&xq, &wq_name, &xz], &[&int], vec![]));
        nodes.push(node("Cast", v("cast"), &[&int], &[&float], vec![to_float]));
        nodes.push(node("Mul", v("scales"), &[&xs, &ws_name], &[&scale], vec![]));
        nodes.push(node("Mul", v("rescale"), &[&float, &scale], &[y], vec![]));
    }
    graph.node = nodes;
    let kept = std::mem::take(&mut graph.initializer).into_iter().enumerate().filter(|(i, _)| !replaced.contains(i));
    graph.initializer = kept.map(|(_, t)| t).chain(added).collect();
    model.metadata_props.retain(|p| p.key != keys::PRECISION);
    model.metadata_props.push(crate::model::onnx::proto::StringStringEntryProto {
        key: keys::PRECISION.into(),
        value: Precision::Int8.name().into(),
    });
    Ok((model_format::seal(model), stats))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_are_scaled_by_their_largest_magnitude() {
        // 2 x 3: column maxima 2, 0.5 and 0 (all zeros).
        let w = [2.0, -0.25, 0.0, -1.0, 0.5, 0.0];
        let q = quantize_columns(&w, 2, 3);
        assert_eq!(q.scales, vec![2.0 / 127.0, 0.5 / 127.0, 1.0]);
        assert_eq!(q.values, vec![127, -64, 0, -64, 127, 0]);
    }

    #[test]
    fn dequantised_weights_are_within_half_a_step() {
        let (k, n) = (37, 11);
        let w: Vec<f32> = (0..k * n).map(|i| ((i * 7919 % 1000) as f32 / 500.0 - 1.0) * (1 + i % n) as f32).collect();
        let q = quantize_columns(&w, k, n);
        for (i, (&v, &qv)) in w.iter().zip(&q.values).enumerate() {
            let s = q.scales[i % n];
            assert!(qv.unsigned_abs() <= 127);
            assert!((qv as f32 * s - v).abs() <= s * 0.5 + 1e-6, "weight {i}: {v} vs {qv} x {s}");
        }
    }

    #[test]
    fn ties_round_to_even() {
        // Column maximum 127 gives scale 1, so the values are quantised exactly as rounded.
        let w = [127.0, 2.5, -3.5, 0.5];
        let q = quantize_columns(&w, 4, 1);
        assert_eq!(q.values, vec![127, 2, -4, 0]);
    }
}
