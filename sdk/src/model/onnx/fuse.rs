//! Graph rewrites into ONNX Runtime's fused CPU kernels that its own optimiser does not find
//! in the exporter's graph.
//!
//! [`fuse_attention`] replaces each self-attention the exporter writes (per head: reshape and
//! transpose of the query, key and value projections, `q k^T`, scale, softmax, `a v`, and the
//! transpose and reshape back) by one `com.microsoft.MultiHeadAttention` node on the three
//! projections `[N, T, D]`, which computes the same function without materialising the
//! transposed copies. The rewrite moves no weight and changes no other node; the float values
//! it computes differ from the unfused graph's only by summation order.

use super::proto::{attribute_type, AttributeProto, GraphProto, NodeProto, OperatorSetIdProto, TensorProto};
use std::collections::{HashMap, HashSet};

/// Domain of ONNX Runtime's contributed operators.
pub const MS_DOMAIN: &str = "com.microsoft";

/// A one-value float initializer's value.
fn float_scalar(t: &TensorProto) -> Option<f32> {
    t.to_f32().ok().filter(|v| v.len() == 1).map(|v| v[0])
}

fn perm(n: &NodeProto) -> Vec<i64> {
    n.attribute.iter().find(|a| a.name == "perm").map(|a| a.ints.clone()).unwrap_or_default()
}

/// One matched attention: the nodes it replaces and the fused node's inputs and output.
struct Attention {
    nodes: Vec<usize>,
    q: String,
    k: String,
    v: String,
    heads: i64,
    scale: f32,
    output: String,
}

/// Replaces the exporter's self-attention pattern by `MultiHeadAttention` nodes (see the
/// module docs) and adds the `com.microsoft` opset to `opsets` when it did. Returns how many
/// attentions were fused. A subgraph that differs in any way (another permutation, a value
/// used outside the pattern, a non-constant scale) is left as it is.
pub fn fuse_attention(graph: &mut GraphProto, opsets: &mut Vec<OperatorSetIdProto>) -> usize {
    let producer: HashMap<&str, usize> =
        graph.node.iter().enumerate().flat_map(|(i, n)| n.output.iter().map(move |o| (o.as_str(), i))).collect();
    let mut consumers: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, n) in graph.node.iter().enumerate() {
        for input in &n.input {
            consumers.entry(input.as_str()).or_default().push(i);
        }
    }
    let outputs: HashSet<&str> = graph.output.iter().map(|o| o.name.as_str()).collect();
    let constants: HashMap<&str, &TensorProto> = graph.initializer.iter().map(|t| (t.name.as_str(), t)).collect();
    let nodes = &graph.node;
    // The single node consuming `value`, when it is of type `op` and nothing else (no graph
    // output) reads the value.
    let only_consumer = |value: &str, op: &str| -> Option<usize> {
        match consumers.get(value).map(Vec::as_slice) {
            Some([i]) if nodes[*i].op_type == op && nodes[*i].domain.is_empty() && !outputs.contains(value) => Some(*i),
            _ => None,
        }
    };
    // The node of type `op` making `value`, when the value has that one reader only.
    let made_by = |value: &str, op: &str| -> Option<usize> {
        let &i = producer.get(value)?;
        let single_use = consumers.get(value).map_or(0, Vec::len) == 1 && !outputs.contains(value);
        (nodes[i].op_type == op && nodes[i].domain.is_empty() && single_use).then_some(i)
    };
    // Input `k` and output 0 of node `i`, when it has them (a malformed graph may not).
    let input = |i: usize, k: usize| nodes[i].input.get(k).map(String::as_str);
    let output = |i: usize| nodes[i].output.first().map(String::as_str);
    // `Transpose(Reshape(x, [0, -1, heads, hd]), perm)`: returns (x, heads, reshape, transpose).
    let head_split = |value: &str, want_perm: &[i64]| -> Option<(String, i64, usize, usize)> {
        let t = made_by(value, "Transpose")?;
        if perm(&nodes[t]) != want_perm {
            return None;
        }
        let r = made_by(input(t, 0)?, "Reshape")?;
        let shape = constants.get(nodes[r].input.get(1)?.as_str())?.to_i64().ok()?;
        match shape.as_slice() {
            [0, -1, heads, _] if *heads > 0 => Some((input(r, 0)?.to_string(), *heads, r, t)),
            _ => None,
        }
    };
    let mut found = Vec::new();
    for (softmax, n) in nodes.iter().enumerate() {
        if n.op_type != "Softmax" || !n.domain.is_empty() {
            continue;
        }
        let axis = n.attribute.iter().find(|a| a.name == "axis").map_or(-1, |a| a.i);
        let matched = (|| -> Option<Attention> {
            if axis != -1 && axis != 3 {
                return None;
            }
            let mul = made_by(input(softmax, 0)?, "Mul")?;
            let scale = float_scalar(constants.get(nodes[mul].input.get(1)?.as_str())?)?;
            let qk = made_by(input(mul, 0)?, "MatMul")?;
            let (q, hq, qr, qt) = head_split(input(qk, 0)?, &[0, 2, 1, 3])?;
            let (k, hk, kr, kt) = head_split(input(qk, 1)?, &[0, 2, 3, 1])?;
            let probabilities = output(softmax)?;
            let av = only_consumer(probabilities, "MatMul")?;
            if input(av, 0)? != probabilities {
                return None;
            }
            let (v, hv, vr, vt) = head_split(input(av, 1)?, &[0, 2, 1, 3])?;
            let back = only_consumer(output(av)?, "Transpose")?;
            if perm(&nodes[back]) != [0, 2, 1, 3] {
                return None;
            }
            let merge = only_consumer(output(back)?, "Reshape")?;
            let shape = constants.get(nodes[merge].input.get(1)?.as_str())?.to_i64().ok()?;
            if !(hq == hk && hk == hv && matches!(shape.as_slice(), [0, -1, _])) {
                return None;
            }
            Some(Attention {
                nodes: vec![qr, qt, kr, kt, vr, vt, qk, mul, softmax, av, back, merge],
                q,
                k,
                v,
                heads: hq,
                scale,
                output: output(merge)?.to_string(),
            })
        })();
        found.extend(matched);
    }
    if found.is_empty() {
        return 0;
    }
    // Each fused node takes the place of the pattern's last node, so the order stays
    // topological (its inputs, the projections, come before the pattern).
    let mut replace: HashMap<usize, NodeProto> = HashMap::new();
    let mut drop: HashSet<usize> = HashSet::new();
    for (i, a) in found.iter().enumerate() {
        drop.extend(a.nodes.iter().copied());
        let attr = |name: &str, r#type: i32| AttributeProto { name: name.into(), r#type, ..Default::default() };
        let heads = AttributeProto { i: a.heads, ..attr("num_heads", attribute_type::INT) };
        let scale = AttributeProto { f: a.scale, ..attr("scale", attribute_type::FLOAT) };
        let last = *a.nodes.last().expect("the pattern has nodes");
        replace.insert(
            last,
            NodeProto {
                input: vec![a.q.clone(), a.k.clone(), a.v.clone()],
                output: vec![a.output.clone()],
                name: format!("sempart_attention_{i}"),
                op_type: "MultiHeadAttention".into(),
                domain: MS_DOMAIN.into(),
                attribute: vec![heads, scale],
                ..Default::default()
            },
        );
    }
    let old = std::mem::take(&mut graph.node);
    graph.node = old
        .into_iter()
        .enumerate()
        .filter_map(|(i, n)| match replace.remove(&i) {
            Some(fused) => Some(fused),
            None => (!drop.contains(&i)).then_some(n),
        })
        .collect();
    // Initializers only the removed nodes read (the head shapes, the scales).
    let read: HashSet<&str> = graph.node.iter().flat_map(|n| n.input.iter().map(String::as_str)).collect();
    let unread: HashSet<String> =
        graph.initializer.iter().filter(|t| !read.contains(t.name.as_str())).map(|t| t.name.clone()).collect();
    graph.initializer.retain(|t| !unread.contains(&t.name));
    if !opsets.iter().any(|o| o.domain == MS_DOMAIN) {
        opsets.push(OperatorSetIdProto { domain: MS_DOMAIN.into(), version: 1 });
    }
    found.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::onnx::proto::data_type;

    fn node(op: &str, inputs: &[&str], outputs: &[&str]) -> NodeProto {
        NodeProto {
            op_type: op.into(),
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: outputs.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    /// Found by `sdk/tests/fuzz.rs` (a mutated file whose Transpose had lost its input): a
    /// pattern with missing inputs or outputs is left alone instead of indexing past them.
    #[test]
    fn malformed_nodes_are_skipped_not_indexed() {
        let scale = TensorProto {
            name: "c".into(),
            data_type: data_type::FLOAT,
            raw_data: 0.125f32.to_le_bytes().to_vec(),
            ..Default::default()
        };
        let cases = [
            vec![
                node("Transpose", &[], &["qT"]),
                node("MatMul", &["qT", "kT"], &["m"]),
                node("Mul", &["m", "c"], &["s"]),
                node("Softmax", &["s"], &["a"]),
            ],
            vec![node("MatMul", &["qT"], &["m"]), node("Mul", &["m", "c"], &["s"]), node("Softmax", &["s"], &["a"])],
            vec![node("Mul", &[], &["s"]), node("Softmax", &["s"], &["a"])],
            vec![node("Softmax", &[], &[])],
            vec![node("Softmax", &["s"], &[]), node("MatMul", &[], &[])],
        ];
        for nodes in cases {
            let mut graph = GraphProto { node: nodes.clone(), initializer: vec![scale.clone()], ..Default::default() };
            let mut opsets = Vec::new();
            assert_eq!(fuse_attention(&mut graph, &mut opsets), 0);
            assert_eq!(graph.node, nodes);
            assert!(opsets.is_empty());
        }
    }
}
