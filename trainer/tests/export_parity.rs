//! The exported ONNX file, run by the SDK (ONNX Runtime), agrees with the tch model it came
//! from within 1e-4 on both outputs: for random weights, and for heads the trainer trained.

use trainer::backbone::Backbone;
use trainer::export::{check_parity, export_onnx, Provenance};
use trainer::fixtures;
use trainer::train::{load_heads_checkpoint, train_with_backbone, with_seeded_torch, Phase, TrainOptions};

fn picture(w: usize, h: usize, seed: u32) -> Vec<u8> {
    (0..w * h * 3)
        .map(|i| {
            let (x, y, c) = ((i / 3) % w, (i / 3) / w, i % 3);
            let blob = ((x as i32 - 30).pow(2) + (y as i32 - 28).pow(2) < 300) as u32;
            ((x as u32 * 3 + y as u32 * 5 + c as u32 * 40 + seed * 17 + blob * 120) % 256) as u8
        })
        .collect()
}

#[test]
fn random_weights_tch_and_onnx_runtime_agree() {
    let seed = 11;
    let model = with_seeded_torch(seed, || fixtures::tiny_model(seed).unwrap());
    let onnx = fixtures::tiny_model_onnx(&model, seed).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tiny.onnx");
    std::fs::write(&path, &onnx).unwrap();
    let frames: Vec<Vec<u8>> = (0..3).map(|s| picture(64, 64, s)).collect();
    let p = check_parity(&model.vit, &model.heads, &path, &frames).unwrap();
    println!("random weights: max |tch - ORT| fine {:.2e}, coarse {:.2e}", p.fine, p.coarse);
    assert!(p.fine <= 1e-4 && p.coarse <= 1e-4, "{p:?}");
}

/// The end-to-end check: a tiny model trains a few steps (its loss falls), exports, and
/// the SDK runs the file with the same outputs as tch.
#[test]
fn trained_heads_export_and_run_in_the_sdk_with_parity() {
    let dir = tempfile::tempdir().unwrap();
    let train_dir = dir.path().join("train");
    std::fs::create_dir(&train_dir).unwrap();
    for i in 0..6u32 {
        image::RgbImage::from_fn(72, 64, |x, y| {
            let inside = (x as i32 - 30 - i as i32 * 3).pow(2) + (y as i32 - 32).pow(2) < 250;
            image::Rgb(if inside { [230, 210, 30] } else { [(x * 3) as u8, 50 + (y * 2) as u8, 120] })
        })
        .save(train_dir.join(format!("{i}.png")))
        .unwrap();
    }
    let mut cfg = fixtures::tiny_train_config(&dir.path().join("run"), &train_dir).unwrap();
    cfg.schedule.epochs = 6;
    cfg.schedule.seed = 3;
    cfg.schedule.coarse_only_epochs = 2;
    let m = with_seeded_torch(7, || fixtures::tiny_model(7).unwrap());
    let backbone = Backbone { vs: m.backbone_vs, vit: m.vit };
    let summary =
        train_with_backbone(&cfg, &backbone, &TrainOptions { progress: false, ..TrainOptions::default() }).unwrap();
    // Each phase lowers what it optimises: the coarse-only phase the Ncut loss, the joint phase
    // the weighted total (where the fine terms dominate and Ncut may trade off against them).
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let coarse: Vec<f64> = summary.steps.iter().filter(|s| s.phase == Phase::Coarse).map(|s| s.losses.ncut).collect();
    let joint: Vec<f64> = summary.steps.iter().filter(|s| s.phase == Phase::Joint).map(|s| s.losses.total).collect();
    assert_eq!((coarse.len(), joint.len()), (6, 12), "2 coarse-only and 4 joint epochs of 3 steps");
    let (first, last) = (mean(&coarse[..2]), mean(&coarse[4..]));
    assert!(last < 0.5 * first, "coarse phase: Ncut did not fall: {first} -> {last}");
    let (first, last) = (mean(&joint[..2]), mean(&joint[10..]));
    assert!(last < 0.7 * first, "joint phase: total loss did not fall: {first} -> {last}");

    let (_, heads_vs, heads) = load_heads_checkpoint(&summary.checkpoint).unwrap();
    let provenance = Provenance {
        backbone_name: "tiny-random-vit".into(),
        backbone_origin: "test".into(),
        training: serde_json::json!({"steps": summary.state.global_step}),
    };
    let onnx = export_onnx(&backbone.vs, &backbone.vit, &heads_vs, &heads, cfg.input.mean, cfg.input.std, &provenance)
        .unwrap();
    let path = dir.path().join("trained.onnx");
    std::fs::write(&path, onnx).unwrap();
    let frames: Vec<Vec<u8>> = (0..3).map(|s| picture(64, 64, s)).collect();
    let p = check_parity(&backbone.vit, &heads, &path, &frames).unwrap();
    println!("trained heads: max |tch - ORT| fine {:.2e}, coarse {:.2e}", p.fine, p.coarse);
    assert!(p.fine <= 1e-4 && p.coarse <= 1e-4, "{p:?}");
}
