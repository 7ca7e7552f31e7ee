//! Tests of `sempart::metrics` against the reference data in `shared/data`.

use std::collections::BTreeMap;

use sempart::metrics::{
    box_iou, corloc, f_measure, is_correct, load_box_predictions, load_corloc_gt,
    threshold_value, BoxPredictions, SaliencyMetrics, NUM_THRESHOLDS,
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

#[test]
fn metrics_check_reproduces_expected() {
    let expected: serde_json::Value =
        serde_json::from_slice(&std::fs::read(data("metrics_check/expected.json")).unwrap())
            .unwrap();
    let per_image = expected["per_image"].as_object().unwrap();
    assert_eq!(per_image.len(), 6);
    let mut metrics = SaliencyMetrics::new();
    for (name, exp) in per_image {
        let scores = metrics
            .add_png(
                data(&format!("metrics_check/pred/{name}.png")),
                data(&format!("metrics_check/masks/{name}.png")),
            )
            .unwrap();
        for (key, got) in [
            ("iou", scores.iou),
            ("acc", scores.acc),
            ("f_at_0.5", scores.f_at_half),
        ] {
            let want = exp[key].as_f64().unwrap();
            assert!(close(got, want, 1e-5), "{name} {key}: {got} vs {want}");
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
    assert_eq!(
        s.maxf_threshold_index as u64,
        expected["argmax_threshold_index"].as_u64().unwrap()
    );
    assert!(close(
        s.maxf_threshold,
        s.maxf_threshold_index as f64 / 255.0,
        1e-12
    ));
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
    for (p, above) in [
        (t, false),
        (f32::from_bits(t.to_bits() + 1), true),
        (f32::from_bits(t.to_bits() - 1), false),
    ] {
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
        boxes: [("x.jpg".to_string(), [1.0, 2.5, 30.0, 40.0])]
            .into_iter()
            .collect(),
    };
    pred.save(&path).unwrap();
    assert_eq!(load_box_predictions(&path).unwrap(), pred);
    assert!(load_box_predictions(dir.path().join("missing.json")).is_err());
}

#[test]
fn tmp_debug_curve() {
    use sempart::metrics::{load_mask_image, load_probability_image};
    for name in ["a_soft_blob", "b_perfect", "c_empty_pred", "d_empty_gt", "e_ignore_band", "f_noise"] {
        let (p, _, _) = load_probability_image(data(&format!("metrics_check/pred/{name}.png"))).unwrap();
        let (g, _, _) = load_mask_image(data(&format!("metrics_check/masks/{name}.png"))).unwrap();
        let v: Vec<u32> = p.iter().map(|x| (x * 255.0).round() as u32).collect();
        let mut gh = std::collections::BTreeMap::new();
        for &x in &g { *gh.entry(x).or_insert(0) += 1; }
        let n127 = v.iter().filter(|&&x| x == 127).count();
        let n128 = v.iter().filter(|&&x| x == 128).count();
        let f127fg = v.iter().zip(&g).filter(|(&x, &gg)| x == 127 && gg > 128).count();
        let f127ig = v.iter().zip(&g).filter(|(&x, &gg)| x == 127 && gg == 128).count();
        let cnt = |thr: u32| {
            let (mut tp, mut pr, mut pos) = (0u64, 0u64, 0u64);
            for (&x, &gg) in v.iter().zip(&g) {
                if gg == 128 { continue; }
                let fg = gg > 127;
                if fg { pos += 1; }
                if x >= thr { pr += 1; if fg { tp += 1; } }
            }
            (tp, pr, pos, f_measure(tp, pr, pos))
        };
        let mut m = SaliencyMetrics::new();
        m.add(&p, &g);
        let c = m.f_curve();
        let exp: serde_json::Value = serde_json::from_slice(&std::fs::read(data("metrics_check/expected.json")).unwrap()).unwrap();
        let want = exp["per_image"][name]["f_at_0.5"].as_f64().unwrap();
        let ks: Vec<usize> = (0..255).filter(|&k| (c[k] - want).abs() < 1e-6).collect();
        println!("{name} matching k {ks:?}");
        let _ = &v;
        println!("{name} gt {gh:?} n127 {n127} n128 {n128} fg127 {f127fg} ig127 {f127ig} ge127 {:?} ge128 {:?}", cnt(127), cnt(128));
    }
}
#[test]
fn tmp_debug_total() {
    let mut metrics = SaliencyMetrics::new();
    for name in ["a_soft_blob", "b_perfect", "c_empty_pred", "d_empty_gt", "e_ignore_band", "f_noise"] {
        metrics.add_png(data(&format!("metrics_check/pred/{name}.png")), data(&format!("metrics_check/masks/{name}.png"))).unwrap();
    }
    let c = metrics.f_curve();
    println!("{:?} {:?}", metrics.finish(), &c[136..145]);
}
