//! The Sempart losses on graphs small enough to check by hand, and a finite-difference
//! gradient check of the total loss in double precision.

use tch::{Kind, Tensor};
use trainer::losses::*;
use trainer::tokencut::TokenCutComponents;
use trainer::train::with_seeded_torch;

const EPS: f64 = 1e-6;

fn t2(rows: &[&[f64]]) -> Tensor {
    let flat: Vec<f64> = rows.iter().flat_map(|r| r.iter().copied()).collect();
    Tensor::from_slice(&flat).reshape([rows.len() as i64, rows[0].len() as i64])
}

fn close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol * (1.0 + b.abs())
}

#[test]
fn affinity_thresholds_cosines_and_drops_self_loops() {
    // cos(f0, f1) ~ 0.995, cos(f0, f2) = 0, cos(f1, f2) ~ 0.0995.
    let f = t2(&[&[1.0, 0.0], &[1.0, 0.1], &[0.0, 1.0]]).unsqueeze(0);
    let w = affinity(&f, false, 0.2, EPS, false);
    let got: Vec<f64> = Vec::try_from(&w.reshape([-1])).unwrap();
    let e = EPS;
    let want = [0.0, 1.0, e, 1.0, 0.0, e, e, e, 0.0];
    for (g, w) in got.iter().zip(want) {
        assert!((g - w).abs() < 1e-15, "{got:?}");
    }
    // With self loops the diagonal is 1.
    let w = affinity(&f, false, 0.2, EPS, true);
    assert_eq!(w.double_value(&[0, 1, 1]), 1.0);
}

#[test]
fn centering_subtracts_the_mean_token() {
    // Raw: cos((2,1), (0,1)) = 1/sqrt(5) = 0.447 > 0.2. Centred: (1,0) and (-1,0), cos = -1.
    let f = t2(&[&[2.0, 1.0], &[0.0, 1.0]]).unsqueeze(0);
    assert_eq!(affinity(&f, false, 0.2, EPS, false).double_value(&[0, 0, 1]), 1.0);
    assert_eq!(affinity(&f, true, 0.2, EPS, false).double_value(&[0, 0, 1]), EPS);
    assert!(AffinityFeatures::CenteredKeys.centered());
    assert!(AffinityFeatures::Keys.uses_keys() && !AffinityFeatures::CenteredTokens.uses_keys());
}

/// Two cliques {0, 1} and {2, 3} joined by eps edges, no self loops.
fn two_cliques() -> Tensor {
    let e = EPS;
    t2(&[&[0.0, 1.0, e, e], &[1.0, 0.0, e, e], &[e, e, 0.0, 1.0], &[e, e, 1.0, 0.0]]).unsqueeze(0)
}

#[test]
fn ncut_of_a_perfect_split_of_two_cliques_is_almost_zero() {
    let w = two_cliques();
    let s = Tensor::from_slice(&[1.0f64, 1.0, 0.0, 0.0]).unsqueeze(0);
    // cut(A, B) = 4 eps; assoc(A) = assoc(B) = 2 (1 + 2 eps): Ncut = 2 * 4 eps / (2 + 4 eps).
    let want = 2.0 * 4.0 * EPS / (2.0 + 4.0 * EPS);
    let got = ncut_loss(&s, &w).double_value(&[]);
    assert!(close(got, want, 1e-12), "{got} vs {want}");
    assert!(got < 1e-5);
    // The uniform map s = 0.5 gives exactly 1 (the stationary point the spec warns about).
    let half = Tensor::full([1, 4], 0.5, (Kind::Double, tch::Device::Cpu));
    assert!(close(ncut_loss(&half, &w).double_value(&[]), 1.0, 1e-12));
    // The wrong split {0, 2} / {1, 3} cuts both cliques: cut = 2 + 2 eps; every node has
    // degree 1 + 2 eps, so assoc(A) = assoc(B) = 2 + 4 eps.
    let bad = Tensor::from_slice(&[1.0f64, 0.0, 1.0, 0.0]).unsqueeze(0);
    let want = 2.0 * (2.0 + 2.0 * EPS) / (2.0 + 4.0 * EPS);
    assert!(close(ncut_loss(&bad, &w).double_value(&[]), want, 1e-12));
}

#[test]
fn ncut_matches_an_explicit_sum_on_soft_assignments() {
    let w = two_cliques();
    let s = [0.9, 0.8, 0.1, 0.3];
    let wv: Vec<f64> = Vec::try_from(&w.reshape([-1])).unwrap();
    let term = |a: &[f64]| {
        let (mut cut, mut assoc) = (0.0, 0.0);
        for i in 0..4 {
            for j in 0..4 {
                cut += a[i] * wv[i * 4 + j] * (1.0 - a[j]);
                assoc += a[i] * wv[i * 4 + j];
            }
        }
        cut / assoc
    };
    let b: Vec<f64> = s.iter().map(|v| 1.0 - v).collect();
    let want = term(&s) + term(&b);
    let got = ncut_loss(&Tensor::from_slice(&s).unsqueeze(0), &w).double_value(&[]);
    assert!(close(got, want, 1e-12), "{got} vs {want}");
    // Batch mean: a second image with the perfect split.
    let s2 = Tensor::from_slice(&[0.9, 0.8, 0.1, 0.3, 1.0, 1.0, 0.0, 0.0]).reshape([2, 4]);
    let per = ncut_per_image(&s2, &Tensor::cat(&[&w, &w], 0));
    assert!(close(per.double_value(&[0]), want, 1e-12));
    let mean = ncut_loss(&s2, &Tensor::cat(&[&w, &w], 0)).double_value(&[]);
    assert!(close(mean, (want + per.double_value(&[1])) / 2.0, 1e-12));
}

#[test]
fn gtv_of_a_constant_map_is_zero_and_a_hand_value() {
    let a = GridAffinity {
        horizontal: Tensor::from_slice(&[0.5f64, 2.0]).reshape([1, 2, 1]),
        vertical: Tensor::from_slice(&[3.0f64, 7.0]).reshape([1, 1, 2]),
    };
    assert_eq!(a.pairs(), 4);
    let c = Tensor::full([1, 1, 2, 2], 0.37, (Kind::Double, tch::Device::Cpu));
    assert_eq!(gtv(&c, &a, Reduction::Sum).double_value(&[0]), 0.0);
    // s = [[0, 1], [1, 1]]: horizontal pairs (0,1)->1 with A 0.5, (1,1)->0; vertical (0,1)->1
    // with A 3, (1,1)->0: GTV = 0.5 + 3 = 3.5 (unordered pairs = 1/2 of the ordered sum).
    let s = Tensor::from_slice(&[0.0f64, 1.0, 1.0, 1.0]).reshape([1, 1, 2, 2]);
    assert_eq!(gtv(&s, &a, Reduction::Sum).double_value(&[0]), 3.5);
    assert_eq!(gtv(&s, &a, Reduction::Mean).double_value(&[0]), 3.5 / 4.0);
    // s = [[0.2, 0.5], [0.6, 0.1]]: 0.5 * 0.09 + 2 * 0.25 + 3 * 0.16 + 7 * 0.16.
    let s = Tensor::from_slice(&[0.2f64, 0.5, 0.6, 0.1]).reshape([1, 2, 2]);
    let want = 0.5 * 0.09 + 2.0 * 0.25 + 3.0 * 0.16 + 7.0 * 0.16;
    assert!(close(gtv(&s, &a, Reduction::Sum).double_value(&[0]), want, 1e-12));
}

#[test]
fn grid_affinities_match_their_definitions() {
    // A 2x2 grid of features: (0,0) and (0,1) alike, (1,0) orthogonal to (0,0), (1,1) opposite
    // to (0,1).
    let f = t2(&[&[1.0, 0.0], &[1.0, 0.2], &[0.0, 1.0], &[-1.0, -0.2]]).unsqueeze(0);
    let a = grid_affinity_from_features(&f, (2, 2), false, 0.0, EPS);
    let h: Vec<f64> = Vec::try_from(&a.horizontal.reshape([-1])).unwrap();
    let v: Vec<f64> = Vec::try_from(&a.vertical.reshape([-1])).unwrap();
    // Horizontal: (f0, f1) cos > 0 -> 1; (f2, f3) cos = -0.196 -> eps.
    assert_eq!(h, vec![1.0, EPS]);
    // Vertical: (f0, f2) cos = 0, not > 0 -> eps; (f1, f3) cos = -1 -> eps.
    assert_eq!(v, vec![EPS, EPS]);
    // Same as the full affinity at tau = 0 on those pairs.
    let full = affinity(&f, false, 0.0, EPS, false);
    assert_eq!(full.double_value(&[0, 0, 1]), h[0]);
    assert_eq!(full.double_value(&[0, 2, 3]), h[1]);

    // Colours: a 1x2 image black | white, sigma 1 -> exp(-3); sigma 3 -> exp(-1).
    let img = Tensor::from_slice(&[0.0f64, 1.0, 0.0, 1.0, 0.0, 1.0]).reshape([1, 3, 1, 2]);
    let a = grid_affinity_from_image(&img, 1.0);
    assert!(close(a.horizontal.double_value(&[0, 0, 0]), (-3.0f64).exp(), 1e-12));
    assert_eq!(a.vertical.size(), vec![1, 0, 2]);
    let a = grid_affinity_from_image(&img, 3.0);
    assert!(close(a.horizontal.double_value(&[0, 0, 0]), (-1.0f64).exp(), 1e-12));
}

#[test]
fn sr_pools_by_the_patch_and_reduces_as_configured() {
    // 4x4 fine map, patch 2: the pooled cells are 0.25, 0.5, 0.75, 1.
    let fine = Tensor::from_slice(&[
        0.0f64, 0.5, 1.0, 0.0, //
        0.5, 0.0, 0.0, 1.0, //
        1.0, 1.0, 1.0, 1.0, //
        0.0, 1.0, 1.0, 1.0,
    ])
    .reshape([1, 1, 4, 4]);
    let coarse = Tensor::from_slice(&[0.0f64, 0.5, 1.0, 0.5]).reshape([1, 1, 2, 2]);
    // Differences 0.25, 0, -0.25, 0.5: squares 0.0625 + 0 + 0.0625 + 0.25 = 0.375.
    assert!(close(sr_per_image(&fine, &coarse, 2, Reduction::Sum).double_value(&[0]), 0.375, 1e-12));
    assert!(close(sr_per_image(&fine, &coarse, 2, Reduction::Mean).double_value(&[0]), 0.375 / 4.0, 1e-12));
}

#[test]
fn total_loss_weights_the_terms() {
    let cfg = LossConfig::default();
    assert_eq!(
        (cfg.tau, cfg.eps, cfg.w_ncut, cfg.w_gtv_coarse, cfg.w_gtv_fine, cfg.w_sr),
        (0.2, 1e-6, 1.0, 0.0006, 0.0002, 20.0)
    );
    assert_eq!(cfg.sr_reduction, Reduction::Mean);
    let (coarse, fine, feats, img) = random_problem(3);
    let w = affinity_for(&cfg, &feats);
    let ga = grid_affinity_from_features(&feats, (3, 3), true, 0.0, 1e-6);
    let ia = grid_affinity_from_image(&img, 1.0);
    let t = sempart_loss(
        &cfg,
        &coarse,
        &w,
        &ga,
        Some(FineInputs { fine: &fine, coarse_for_sr: &coarse, image_affinity: &ia, patch: 2 }),
    );
    let v = t.values();
    let want = v.ncut + 0.0006 * v.gtv_coarse + 0.0002 * v.gtv_fine.unwrap() + 20.0 * v.sr.unwrap();
    assert!(close(v.total, want, 1e-12));
    let coarse_only = sempart_loss(&cfg, &coarse, &w, &ga, None).values();
    assert!(coarse_only.sr.is_none() && coarse_only.gtv_fine.is_none());
    assert!(close(coarse_only.total, v.ncut + 0.0006 * v.gtv_coarse, 1e-12));
}

#[test]
fn pseudo_label_term_is_the_mean_binary_cross_entropy_and_adds_to_the_total() {
    // Two images of 1x2 cells: s = (0.8, 0.3 | 0.5, 0.9), targets (1, 0 | 0, 1).
    let s = Tensor::from_slice(&[0.8f64, 0.3, 0.5, 0.9]).reshape([2, 1, 1, 2]);
    let t = Tensor::from_slice(&[1.0f64, 0.0, 0.0, 1.0]).reshape([2, 1, 1, 2]);
    let want = -(0.8f64.ln() + 0.7f64.ln() + 0.5f64.ln() + 0.9f64.ln()) / 4.0;
    let got = pseudo_label_loss(&s, &t).double_value(&[]);
    assert!(close(got, want, 1e-12), "{got} vs {want}");
    // Perfect targets cost (almost) nothing; the weight scales the term in the total.
    assert!(pseudo_label_loss(&t.clamp(1e-9, 1.0 - 1e-9), &t).double_value(&[]) < 1e-8);
    // Ignored cells leave the sum and the count: only 0.8 (target 1) and 0.9 (target 1) count.
    let ig = IGNORED_TARGET as f64;
    let partial = Tensor::from_slice(&[1.0f64, ig, ig, 1.0]).reshape([2, 1, 1, 2]);
    let want_partial = -(0.8f64.ln() + 0.9f64.ln()) / 2.0;
    let got_partial = pseudo_label_loss(&s, &partial).double_value(&[]);
    assert!(close(got_partial, want_partial, 1e-12), "{got_partial} vs {want_partial}");
    assert_eq!(
        pseudo_label_loss(&s, &Tensor::full([2, 1, 1, 2], ig, (Kind::Double, tch::Device::Cpu))).double_value(&[]),
        0.0
    );
    let mut terms = LossTerms {
        ncut: Tensor::from(0.25f64),
        gtv_coarse: Tensor::from(0.0f64),
        sr: None,
        gtv_fine: None,
        pseudo: None,
        fine_pseudo: None,
        total: Tensor::from(0.25f64),
    };
    terms.add_pseudo(&s, &t, 2.0);
    let v = terms.values();
    assert!(close(v.pseudo.unwrap(), want, 1e-12));
    assert!(close(v.total, 0.25 + 2.0 * want, 1e-12));
    assert!(v.fine_pseudo.is_none());
    // The fine self-training term is the same cross-entropy, with its own weight.
    terms.add_fine_pseudo(&s, &t, 3.0);
    let v = terms.values();
    assert!(close(v.fine_pseudo.unwrap(), want, 1e-12));
    assert!(close(v.total, 0.25 + 5.0 * want, 1e-12));
}

#[test]
fn loss_config_validation_names_the_field() {
    let mut c = LossConfig { tau: 1.5, ..LossConfig::default() };
    assert!(c.validate().unwrap_err().to_string().contains("loss.tau"));
    c.tau = 0.2;
    c.w_sr = -1.0;
    assert!(c.validate().unwrap_err().to_string().contains("loss.w_sr"));
    c.w_sr = 20.0;
    c.eps = 0.0;
    assert!(c.validate().unwrap_err().to_string().contains("loss.eps"));
    c.eps = 1e-6;
    c.w_pseudo = f64::NAN;
    assert!(c.validate().unwrap_err().to_string().contains("loss.w_pseudo"));
    c.w_pseudo = 1.0;
    c.pseudo_tau = 1.0;
    assert!(c.validate().unwrap_err().to_string().contains("loss.pseudo_tau"));
    c.pseudo_tau = 0.5;
    c.validate().unwrap();
    c.pseudo_extra_taus = vec![0.3, 1.5];
    assert!(c.validate().unwrap_err().to_string().contains("loss.pseudo_extra_taus"));
    c.pseudo_extra_taus = vec![0.3, 0.6];
    c.validate().unwrap();
    c.pseudo_from = Some("round1.safetensors".into());
    assert!(c.validate().unwrap_err().to_string().contains("loss.pseudo_extra_taus"));
    c.pseudo_extra_taus.clear();
    c.pseudo_components = TokenCutComponents::Seed;
    assert!(c.validate().unwrap_err().to_string().contains("loss.pseudo_components"));
    c.pseudo_from = None;
    c.validate().unwrap();
    c.pseudo_components = TokenCutComponents::All;
    c.pseudo_dropped = PseudoDropped::Ignore;
    assert!(c.validate().unwrap_err().to_string().contains("loss.pseudo_dropped"));
}

/// Coarse `[2, 1, 3, 3]` and fine `[2, 1, 6, 6]` maps in (0, 1), features `[2, 9, 5]` and an
/// image `[2, 3, 6, 6]`, all f64.
fn random_problem(seed: i64) -> (Tensor, Tensor, Tensor, Tensor) {
    with_seeded_torch(seed, || {
        let opts = (Kind::Double, tch::Device::Cpu);
        let coarse = Tensor::rand([2, 1, 3, 3], opts) * 0.9 + 0.05;
        let fine = Tensor::rand([2, 1, 6, 6], opts) * 0.9 + 0.05;
        let feats = Tensor::randn([2, 9, 5], opts);
        let img = Tensor::rand([2, 3, 6, 6], opts);
        (coarse, fine, feats, img)
    })
}

#[test]
fn total_loss_gradient_matches_finite_differences() {
    // Weights raised so that every term matters; sums and means both exercised.
    let cfg = LossConfig {
        w_gtv_coarse: 0.3,
        w_gtv_fine: 0.2,
        w_sr: 2.0,
        gtv_fine_reduction: Reduction::Mean,
        tau: 0.0,
        ..LossConfig::default()
    };
    let (coarse0, fine0, feats, img) = random_problem(11);
    let w = affinity_for(&cfg, &feats);
    let ga = grid_affinity_from_features(&feats, (3, 3), true, 0.0, 1e-6);
    let ia = grid_affinity_from_image(&img, 1.0);
    let loss = |c: &Tensor, f: &Tensor| {
        sempart_loss(&cfg, c, &w, &ga, Some(FineInputs { fine: f, coarse_for_sr: c, image_affinity: &ia, patch: 2 }))
            .total
    };
    let coarse = coarse0.copy().set_requires_grad(true);
    let fine = fine0.copy().set_requires_grad(true);
    loss(&coarse, &fine).backward();
    let (gc, gf) = (coarse.grad(), fine.grad());
    let h = 1e-6;
    let mut worst = 0.0f64;
    for (which, base, grad) in [(0, &coarse0, &gc), (1, &fine0, &gf)] {
        let n = base.numel() as i64;
        let flat = base.reshape([-1]);
        for i in 0..n {
            let bump = |d: f64| {
                let v = flat.copy();
                let _ = v.get(i).fill_(flat.double_value(&[i]) + d);
                let v = v.reshape(base.size());
                tch::no_grad(|| if which == 0 { loss(&v, &fine0) } else { loss(&coarse0, &v) }).double_value(&[])
            };
            let numeric = (bump(h) - bump(-h)) / (2.0 * h);
            let analytic = grad.reshape([-1]).double_value(&[i]);
            let err = (numeric - analytic).abs() / (1e-6 + numeric.abs().max(analytic.abs()));
            worst = worst.max(err);
            assert!(
                err < 1e-5,
                "{} [{i}]: analytic {analytic} numeric {numeric}",
                if which == 0 { "coarse" } else { "fine" }
            );
        }
    }
    eprintln!("worst relative gradient error {worst:.2e}");
}
