//! The `sempart` command, run as a user would, on the tiny fixture model.

use std::path::{Path, PathBuf};
use std::process::Command;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn sempart() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sempart"));
    c.current_dir(workspace());
    c
}

fn tiny() -> String {
    workspace().join("tests/fixtures/tiny.onnx").display().to_string()
}

fn write_png(path: &Path, w: u32, h: u32, f: impl Fn(u32, u32) -> [u8; 3]) {
    image::RgbImage::from_fn(w, h, |x, y| image::Rgb(f(x, y))).save(path).unwrap();
}

#[test]
fn segment_writes_masks_overlays_and_boxes_and_reports_bad_images() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    std::fs::create_dir(&input).unwrap();
    write_png(&input.join("a.png"), 80, 60, |x, y| {
        if (x as i32 - 40).pow(2) + (y as i32 - 30).pow(2) < 200 {
            [250, 250, 0]
        } else {
            [10, 40, 90]
        }
    });
    write_png(&input.join("b.png"), 33, 47, |x, y| [(x * 7) as u8, (y * 5) as u8, 128]);
    std::fs::write(input.join("broken.jpg"), b"not a jpeg").unwrap();
    let out = dir.path().join("out");
    // Every component listed (the default leaves out the smallest), so their pixels cover the mask.
    let res = sempart()
        .args(["segment", "--model", &tiny(), "--min-component-fraction", "0", "--overlay", "--out"])
        .arg(&out)
        .arg(&input)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&res.stderr);
    assert_eq!(res.status.code(), Some(1), "a skipped image makes the exit code 1: {stderr}");
    assert_eq!(stderr.lines().filter(|l| l.contains("broken.jpg")).count(), 1, "{stderr}");
    for f in ["a.mask.png", "a.overlay.png", "b.mask.png", "b.overlay.png", "boxes.json"] {
        assert!(out.join(f).is_file(), "{f} missing");
    }
    let mask = image::open(out.join("b.mask.png")).unwrap().to_luma8();
    assert_eq!(mask.dimensions(), (33, 47));
    assert!(mask.pixels().all(|p| p.0[0] == 0 || p.0[0] == 255));
    let boxes: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("boxes.json")).unwrap()).unwrap();
    let images = boxes["images"].as_object().unwrap();
    assert_eq!(images.len(), 2);
    let fg = mask.pixels().filter(|p| p.0[0] == 255).count() as u64;
    let b = images.iter().find(|(k, _)| k.ends_with("b.png")).unwrap().1;
    let counted: u64 = b["boxes"].as_array().unwrap().iter().map(|c| c["pixels"].as_u64().unwrap()).sum();
    assert_eq!(counted, fg, "component pixel counts cover the mask");
}

#[test]
fn errors_are_one_readable_line_and_nonzero() {
    let dir = tempfile::tempdir().unwrap();
    let res = sempart()
        .args(["segment", "--model", "/nonexistent/model.onnx", "--out"])
        .arg(dir.path())
        .arg("examples/images")
        .output()
        .unwrap();
    assert_eq!(res.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&res.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("cannot read model file /nonexistent/model.onnx"), "{stderr}");

    let res = sempart().args(["info", "--model", &tiny(), "--provider", "gpu9000"]).output().unwrap();
    assert_eq!(res.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&res.stderr).contains("unknown provider 'gpu9000'"));

    let res = sempart().args(["info", "--model", &tiny(), "--provider", "cuda", "--no-fallback"]).output().unwrap();
    if !res.status.success() {
        let stderr = String::from_utf8_lossy(&res.stderr);
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
        assert!(stderr.contains("cuda"), "{stderr}");
    }
}

#[test]
fn eval_json_has_the_documented_keys_and_scores_a_perfect_mask() {
    let dir = tempfile::tempdir().unwrap();
    let (images, masks) = (dir.path().join("images"), dir.path().join("masks"));
    std::fs::create_dir(&images).unwrap();
    std::fs::create_dir(&masks).unwrap();
    for i in 0..3u32 {
        write_png(&images.join(format!("f{i}.png")), 64, 48, |x, y| [(x * 3 + i * 20) as u8, (y * 4) as u8, 60]);
        image::GrayImage::from_fn(64, 48, |x, _| image::Luma([if x < 20 + i * 5 { 255 } else { 0 }]))
            .save(masks.join(format!("f{i}.png")))
            .unwrap();
    }
    let res = sempart()
        .args(["eval", "--model", &tiny(), "--json", "--images"])
        .arg(&images)
        .arg("--masks")
        .arg(&masks)
        .output()
        .unwrap();
    assert!(res.status.success(), "{}", String::from_utf8_lossy(&res.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&res.stdout).unwrap();
    assert_eq!(doc["n"], 3);
    for key in ["fine.acc", "fine.iou", "fine.maxf", "coarse.acc", "coarse.iou", "coarse.maxf", "latency_ms_median"] {
        let v = doc[key].as_f64().unwrap_or_else(|| panic!("{key} missing: {doc}"));
        assert!(v.is_finite() && v >= 0.0, "{key} = {v}");
    }
    for key in ["fine.acc", "fine.iou", "coarse.iou"] {
        assert!(doc[key].as_f64().unwrap() <= 1.0);
    }
}

#[test]
fn eval_with_a_peer_scores_it_beside_the_model_and_a_missing_peer_is_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let (images, masks) = (dir.path().join("images"), dir.path().join("masks"));
    std::fs::create_dir(&images).unwrap();
    std::fs::create_dir(&masks).unwrap();
    write_png(&images.join("f.png"), 64, 48, |x, y| [(x * 3) as u8, (y * 4) as u8, 60]);
    image::GrayImage::from_fn(64, 48, |x, _| image::Luma([if x < 20 { 255 } else { 0 }]))
        .save(masks.join("f.png"))
        .unwrap();
    let run = |peer: &str| {
        sempart()
            .args(["eval", "--model", &tiny(), "--json", "--peer", peer, "--images"])
            .arg(&images)
            .arg("--masks")
            .arg(&masks)
            .output()
            .unwrap()
    };
    // The fixture model is a peer too: one [N, 3, 64, 64] input, a map as its first output.
    let res = run(&tiny());
    assert!(res.status.success(), "{}", String::from_utf8_lossy(&res.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&res.stdout).unwrap();
    assert_eq!((doc["n"].as_u64(), doc["peer.n"].as_u64()), (Some(1), Some(1)), "{doc}");
    assert_eq!(doc["peer.input"], "64x64");
    assert_eq!(doc["peer.failed"], 0);
    for key in ["peer.acc", "peer.iou", "peer.maxf"] {
        let v = doc[key].as_f64().unwrap_or_else(|| panic!("{key} missing: {doc}"));
        assert!((0.0..=1.0).contains(&v), "{key} = {v}");
    }
    let missing = dir.path().join("no-such-peer.onnx");
    let res = run(&missing.display().to_string());
    assert!(!res.status.success());
    let err = String::from_utf8_lossy(&res.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("no-such-peer.onnx"), "{err}");
}

#[test]
fn corloc_of_the_published_lost_boxes_is_61_90() {
    let data = workspace().join("../shared/data/corloc");
    let res = sempart()
        .args(["corloc", "--json", "--gt"])
        .arg(data.join("voc07_trainval_gt.json"))
        .arg("--pred")
        .arg(data.join("lost_voc07_pred.json"))
        .output()
        .unwrap();
    assert!(res.status.success(), "{}", String::from_utf8_lossy(&res.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&res.stdout).unwrap();
    assert_eq!(doc["correct"], 3102);
    assert_eq!(doc["total"], 5011);
    assert_eq!(format!("{:.2}", doc["corloc_percent"].as_f64().unwrap()), "61.90");
}
