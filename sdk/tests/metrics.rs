//! Tests of `sempart::metrics` against the reference data in `shared/data`.

use std::collections::BTreeMap;

use sempart::metrics::{
    box_iou, corloc, f_measure, is_correct, load_box_predictions, load_corloc_gt, threshold_value, BoxPredictions,
    SaliencyMetrics, NUM_THRESHOLDS,
};

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/data");

fn data(rel: &str) -> String {
    format!("{DATA}/{rel}")
}

fn close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol
}

// ---------------------------------------------------------------------------------
// saliency
// ---------------------------------------------------------------------------------

/// The images whose `f_at_0.5` in `metrics_check/expected.json` cannot be reproduced
/// from the PNGs by any single thresholding rule.
///
/// Their prediction is a Gaussian blob, `255 * exp(-r^2 / 288)` around (33, 26); the
/// 12 pixels at `r^2 = 200` have the float value 0.49935 (127.33 / 255) and are stored
/// as 127 in the PNG. The generator evidently scored `f_at_0.5` on the unquantised map
/// at the grid threshold 127/255 (0.49804), where those pixels are above it; from the
/// PNG they are exactly 127/255, not above, and not above 0.5. `f_noise` (integer noise)
/// shows the other side: its own v = 127 pixels must NOT count to match its expected
/// value. Every other number of expected.json (per-image IoU and Acc, mean IoU, mean
/// Acc, maxF and its threshold index) matches the PNG-exact computation.
const SOFT_BLOB: [&str; 2] = ["a_soft_blob", "e_ignore_band"];

#[test]
fn metrics_check_reproduces_expected() {
    let expected: serde_json::Value =
        serde_json::from_slice(&std::fs::read(data("metrics_check/expected.json")).unwrap()).unwrap();
    let per_image = expected["per_image"].as_object().unwrap();
    assert_eq!(per_image.len(), 6);
    let mut metrics = SaliencyMetrics::new();
    for (name, exp) in per_image {
        let scores = metrics
            .add_png(data(&format!("metrics_check/pred/{name}.png")), data(&format!("metrics_check/masks/{name}.png")))
            .unwrap();
        for (key, got) in [("iou", scores.iou), ("acc", scores.acc)] {
            let want = exp[key].as_f64().unwrap();
            assert!(close(got, want, 1e-5), "{name} {key}: {got} vs {want}");
        }
        let want_f = exp["f_at_0.5"].as_f64().unwrap();
        if SOFT_BLOB.contains(&name.as_str()) {
            // Known defect of expected.json (see SOFT_BLOB): its value is F with the
            // 12 pixels stored as 127 counted as predicted, i.e. F(v >= 127), which is
            // this image's F curve one threshold lower. Check exactly that, and that
            // the PNG-exact F(v > 127) = F(prob > 0.5) is what we report.
            let mut single = SaliencyMetrics::new();
            let again = single
                .add_png(
                    data(&format!("metrics_check/pred/{name}.png")),
                    data(&format!("metrics_check/masks/{name}.png")),
                )
                .unwrap();
            assert_eq!(again, scores);
            let curve = single.f_curve();
            assert!(close(curve[126], want_f, 1e-5), "{name}: {}", curve[126]);
            assert!(close(curve[127], scores.f_at_half, 1e-12));
            assert!(!close(scores.f_at_half, want_f, 1e-3));
        } else {
            let got = scores.f_at_half;
            assert!(close(got, want_f, 1e-5), "{name} f_at_0.5: {got} vs {want_f}");
        }
        // The serialised form uses the expected.json key names.
        let json = serde_json::to_value(scores).unwrap();
        assert!(json.get("f_at_0.5").is_some());
    }
    let s = metrics.finish();
    assert_eq!(s.n, expected["n"].as_u64().unwrap() as usize);
    assert_eq!(metrics.len(), 6);
    for (key, got) in [("mean_iou", s.iou), ("mean_acc", s.acc), ("maxf", s.maxf)] {
        let want = expected[key].as_f64().unwrap();
        assert!(close(got, want, 1e-5), "{key}: {got} vs {want}");
    }
    assert_eq!(s.maxf_threshold_index as u64, expected["argmax_threshold_index"].as_u64().unwrap());
    assert!(close(s.maxf_threshold, s.maxf_threshold_index as f64 / 255.0, 1e-12));
    let curve = metrics.f_curve();
    assert_eq!(curve.len(), NUM_THRESHOLDS);
    assert!(curve.iter().all(|&f| f <= s.maxf));
}

#[test]
fn thresholds_are_exact_for_8bit_probabilities() {
    // One foreground pixel with probability v/255: at threshold k it is predicted
    // (F = 1) exactly when v > k, else nothing is predicted and R = 0 (F = 0).
    for v in 0..=255u32 {
        let mut m = SaliencyMetrics::new();
        m.add(&[v as f32 / 255.0], &[255]);
        for (k, f) in m.f_curve().into_iter().enumerate() {
            let want = if v as usize > k { 1.0 } else { 0.0 };
            assert_eq!(f, want, "v = {v}, k = {k}");
        }
    }
    // Values just around a threshold.
    let t = threshold_value(100);
    for (p, above) in [(t, false), (f32::from_bits(t.to_bits() + 1), true), (f32::from_bits(t.to_bits() - 1), false)] {
        let mut m = SaliencyMetrics::new();
        m.add(&[p], &[255]);
        assert_eq!(m.f_curve()[100], if above { 1.0 } else { 0.0 });
    }
}

#[test]
fn saliency_edge_cases() {
    // Both empty: IoU 1, Acc 1, F 1 (P = 1, R = 1).
    let mut m = SaliencyMetrics::new();
    let s = m.add(&[0.1, 0.2, 0.0], &[0, 0, 0]);
    assert_eq!((s.iou, s.acc, s.f_at_half), (1.0, 1.0, 1.0));
    // Ignored pixels (128) count nowhere; 127 is background, 129 foreground.
    let s = m.add(&[0.9, 0.9, 0.1, 0.9], &[128, 129, 127, 255]);
    assert_eq!(s.scored_pixels, 3);
    assert_eq!((s.iou, s.acc, s.f_at_half), (1.0, 1.0, 1.0));
    // Prediction > 0.5 is strict.
    let s = m.add(&[0.5], &[255]);
    assert_eq!((s.iou, s.acc, s.f_at_half), (0.0, 0.0, 0.0));
    // Everything ignored.
    let s = m.add(&[0.9], &[128]);
    assert_eq!((s.iou, s.acc, s.scored_pixels), (1.0, 1.0, 0));
    assert_eq!(m.finish().n, 4);
    assert_eq!(SaliencyMetrics::new().finish().n, 0);
}

#[test]
fn f_measure_conventions() {
    assert_eq!(f_measure(0, 0, 0), 1.0);
    assert_eq!(f_measure(0, 0, 5), 0.0);
    assert_eq!(f_measure(0, 5, 0), 0.0);
    assert!(close(f_measure(5, 10, 5), 1.3 * 0.5 / (0.3 * 0.5 + 1.0), 1e-12));
}

// ---------------------------------------------------------------------------------
// CorLoc
// ---------------------------------------------------------------------------------

#[test]
fn box_iou_continuous_areas() {
    assert_eq!(box_iou([0.0, 0.0, 2.0, 2.0], [0.0, 0.0, 2.0, 2.0]), 1.0);
    assert!((box_iou([0.0, 0.0, 2.0, 2.0], [1.0, 0.0, 3.0, 2.0]) - 1.0 / 3.0).abs() < 1e-7);
    // Touching edges share no area.
    assert_eq!(box_iou([0.0, 0.0, 1.0, 1.0], [1.0, 0.0, 2.0, 1.0]), 0.0);
    assert_eq!(box_iou([0.0, 0.0, 1.0, 1.0], [5.0, 5.0, 6.0, 6.0]), 0.0);
    // Contained: 4 / 16.
    assert_eq!(box_iou([0.0, 0.0, 4.0, 4.0], [1.0, 1.0, 3.0, 3.0]), 0.25);
    // Degenerate boxes.
    assert_eq!(box_iou([1.0, 1.0, 1.0, 1.0], [1.0, 1.0, 1.0, 1.0]), 0.0);
    assert_eq!(box_iou([3.0, 3.0, 1.0, 1.0], [0.0, 0.0, 4.0, 4.0]), 0.0);
    // Exactly 0.5 counts as correct.
    assert!(is_correct([0.0, 0.0, 2.0, 1.0], &[[0.0, 0.0, 1.0, 1.0]]));
    assert!(!is_correct([0.0, 0.0, 3.0, 1.0], &[[0.0, 0.0, 1.0, 1.0]]));
}

#[test]
fn corloc_lost_voc07_is_61_90() {
    let gt = load_corloc_gt(data("corloc/voc07_trainval_gt.json")).unwrap();
    let pred = load_box_predictions(data("corloc/lost_voc07_pred.json")).unwrap();
    assert_eq!(gt.images.len(), 5011);
    assert_eq!(gt.images["000005.jpg"].size, [500, 375]);
    assert_eq!(pred.boxes.len(), 5011);
    let score = gt.score(&pred);
    assert_eq!((score.correct, score.total, score.missing), (3102, 5011, 0));
    assert_eq!(format!("{:.2}", score.corloc_percent), "61.90");
    // The map-based entry point agrees.
    assert_eq!(corloc(&pred.boxes, &gt.boxes()), score);
}

#[test]
fn corloc_any_box_and_missing_predictions() {
    let gt: BTreeMap<String, Vec<[f32; 4]>> = [
        ("a".into(), vec![[0.0, 0.0, 10.0, 10.0], [20.0, 20.0, 30.0, 30.0]]),
        ("b".into(), vec![[0.0, 0.0, 10.0, 10.0]]),
        ("c".into(), vec![[0.0, 0.0, 10.0, 10.0]]),
    ]
    .into_iter()
    .collect();
    let pred: BTreeMap<String, [f32; 4]> = [
        ("a".into(), [21.0, 21.0, 30.0, 30.0]), // matches the second box
        ("b".into(), [5.0, 5.0, 15.0, 15.0]),   // IoU 25 / 175
        ("z".into(), [0.0, 0.0, 1.0, 1.0]),     // not in the ground truth
    ]
    .into_iter()
    .collect();
    let s = corloc(&pred, &gt);
    assert_eq!((s.correct, s.total, s.missing), (1, 3, 1));
    assert!(close(s.corloc_percent, 100.0 / 3.0, 1e-9));
    assert_eq!(corloc(&pred, &BTreeMap::new()).corloc_percent, 0.0);
}

#[test]
fn box_predictions_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("boxes.json");
    let pred = BoxPredictions {
        source: Some("test".into()),
        boxes: [("x.jpg".to_string(), [1.0, 2.5, 30.0, 40.0])].into_iter().collect(),
    };
    pred.save(&path).unwrap();
    assert_eq!(load_box_predictions(&path).unwrap(), pred);
    assert!(load_box_predictions(dir.path().join("missing.json")).is_err());
}
