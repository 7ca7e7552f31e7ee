//! TokenCut (Wang et al. 2022), the training-free baseline: a normalised-cut bipartition of the
//! patch graph from the second smallest generalised eigenvector, per image.
//!
//! Per image, from the same backbone features as Sempart:
//!
//! 1. `W_ij = 1` where `cos(f_i, f_j) > tau`, else `eps` (TokenCut: `tau = 0.2`,
//!    `eps = 1e-5`). TokenCut keeps the diagonal (`A = F F^T > tau` includes `cos(f_i, f_i) =
//!    1`), so [`TokenCutConfig::self_loops`] defaults to `true` here, unlike Sempart's loss.
//! 2. `D = diag(W 1)`; the second smallest eigenvector `x` of `(D - W) x = lambda D x`, solved
//!    through the symmetric normalised form `D^-1/2 (D - W) D^-1/2 y = lambda y`,
//!    `x = D^-1/2 y`, with `torch.linalg.eigh` in `f64`.
//! 3. Bipartition by the mean of `x` (TokenCut's rule): partition A is `x > mean(x)`.
//! 4. Foreground: by default the same corner rule as Sempart
//!    ([`sempart::postprocess::foreground_is_a`]); TokenCut's own rule (the side holding the
//!    entry of largest `|x|`) is [`TokenCutForeground::Seed`].
//!
//! The result is a 0/1 foreground map on the patch grid; evaluation resizes it bilinearly to the
//! ground-truth size like any probability map. TokenCut's own post-processing (largest connected
//! component around the seed, bilateral solver) is not applied; for a like-for-like comparison
//! with the SDK's output, [`evaluate_tokencut`] can apply the SDK's refinement instead.

use crate::affinity::{normalize_features, AffinityFeatures};
use crate::data::{mask_and_guide, LabelledImage};
use crate::feature_cache::{FeatureStore, Features};
use anyhow::{ensure, Context, Result};
use sempart::metrics::{SaliencyMetrics, SaliencyScores};
use sempart::postprocess::foreground_is_a;
use sempart::refine::{refine_to_frame, GuidedFilter};
use sempart::resize::resize_bilinear;
use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

/// How TokenCut picks the foreground side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenCutForeground {
    /// Sempart's corner rule ([`sempart::postprocess::foreground_is_a`]).
    Corners,
    /// TokenCut's rule: the side that holds the largest `|x|`.
    Seed,
}

/// Which part of TokenCut's foreground is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum TokenCutComponents {
    /// Every foreground patch.
    #[default]
    All,
    /// The 4-connected component that holds the most confident foreground patch (largest
    /// `|x - mean(x)|`): TokenCut's and LOST's single-object rule, on the patch grid.
    Seed,
    /// As `Seed`, but the components are those of the foreground dilated by one patch (3x3):
    /// parts of the object that the grid separates by one patch (a leg, a head) stay with it,
    /// regions further away are dropped.
    SeedNear,
    /// The largest 4-connected component.
    Largest,
}

/// TokenCut's parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TokenCutConfig {
    /// Features of the graph. Default: the last layer's output tokens, as the Sempart loss
    /// default (TokenCut itself uses the keys, which are degenerate for DINOv2 without
    /// centring). `trainer eval --tokencut` uses the checkpoint's `loss.features`.
    pub features: AffinityFeatures,
    /// Cosine threshold (0.2).
    pub tau: f64,
    /// Weight below the threshold (TokenCut: 1e-5).
    pub eps: f64,
    /// Keep `W_ii = 1` (TokenCut does).
    pub self_loops: bool,
    /// Foreground rule.
    pub foreground: TokenCutForeground,
    /// Which part of the foreground is kept (default: all of it).
    pub components: TokenCutComponents,
}

impl Default for TokenCutConfig {
    fn default() -> Self {
        TokenCutConfig {
            features: AffinityFeatures::Tokens,
            tau: 0.2,
            eps: 1e-5,
            self_loops: true,
            foreground: TokenCutForeground::Corners,
            components: TokenCutComponents::All,
        }
    }
}

impl TokenCutConfig {
    /// TokenCut's defaults on the given features (the Sempart run's `loss.features`, so that the
    /// baseline and the self-training masks use the heads' graph).
    pub fn with_features(features: AffinityFeatures) -> Self {
        TokenCutConfig { features, ..TokenCutConfig::default() }
    }
}

/// TokenCut's result for one image, on the `h x w` patch grid (row-major).
#[derive(Debug, Clone, PartialEq)]
pub struct TokenCutResult {
    /// The second smallest generalised eigenvalue.
    pub eigenvalue: f64,
    /// Its eigenvector `x` (sign arbitrary).
    pub eigenvector: Vec<f64>,
    /// Partition A: `x > mean(x)`.
    pub partition_a: Vec<bool>,
    /// The foreground (after [`TokenCutConfig::components`]).
    pub foreground: Vec<bool>,
    /// Patches of the cut's foreground side that [`TokenCutConfig::components`] dropped.
    pub dropped: Vec<bool>,
}

impl TokenCutResult {
    /// The foreground as a 0/1 probability map.
    pub fn probability(&self) -> Vec<f32> {
        self.foreground.iter().map(|&f| if f { 1.0 } else { 0.0 }).collect()
    }
}

/// TokenCut on one image's patch features `[T, C]` (`T = h * w`, row-major).
pub fn tokencut(features: &Tensor, grid: (i64, i64), cfg: &TokenCutConfig) -> Result<TokenCutResult> {
    let (t, _) = features.size2().context("TokenCut features must be [T, C]")?;
    let (gh, gw) = grid;
    ensure!(t == gh * gw, "{t} tokens do not fill a {gh}x{gw} grid");
    ensure!(t >= 2, "TokenCut needs at least two patches");
    let (eigenvalue, x) = tch::no_grad(|| -> Result<(f64, Vec<f64>)> {
        let f =
            normalize_features(&features.to_kind(Kind::Double).unsqueeze(0), cfg.features.centered()).squeeze_dim(0);
        let cos = f.matmul(&f.transpose(0, 1));
        let mut w = cos.gt(cfg.tau).to_kind(Kind::Double) * (1.0 - cfg.eps) + cfg.eps;
        let eye = Tensor::eye(t, (Kind::Double, f.device()));
        w = if cfg.self_loops { &w * (eye.ones_like() - &eye) + &eye } else { &w * (eye.ones_like() - &eye) };
        let d = w.sum_dim_intlist(1, false, Kind::Double);
        let dinv = d.rsqrt();
        let l = &eye - &w * dinv.unsqueeze(1) * dinv.unsqueeze(0);
        let (vals, vecs) = l.f_linalg_eigh("L")?;
        let y = vecs.select(1, 1);
        let x = y * &dinv;
        Ok((vals.double_value(&[1]), Vec::<f64>::try_from(&x.contiguous())?))
    })?;
    let mean = x.iter().sum::<f64>() / x.len() as f64;
    let partition_a: Vec<bool> = x.iter().map(|&v| v > mean).collect();
    let a_is_fg = match cfg.foreground {
        TokenCutForeground::Corners => foreground_is_a(&partition_a, gw as usize, gh as usize),
        TokenCutForeground::Seed => {
            let seed = x.iter().enumerate().max_by(|a, b| a.1.abs().total_cmp(&b.1.abs())).map(|(i, _)| i).unwrap_or(0);
            partition_a[seed]
        }
    };
    let side: Vec<bool> = partition_a.iter().map(|&a| a == a_is_fg).collect();
    let foreground = keep_components(&side, &x, (gh as usize, gw as usize), cfg.components);
    let dropped = side.iter().zip(&foreground).map(|(&s, &f)| s && !f).collect();
    Ok(TokenCutResult { eigenvalue, eigenvector: x, partition_a, foreground, dropped })
}

/// The part of the foreground `side` (an `h x w` grid, row-major) that `rule` keeps; `x` is the
/// eigenvector whose cut made it (the seed is the foreground patch farthest from its mean; the
/// first such patch on ties, as for the largest component).
pub fn keep_components(side: &[bool], x: &[f64], grid: (usize, usize), rule: TokenCutComponents) -> Vec<bool> {
    let seed = match rule {
        TokenCutComponents::All => return side.to_vec(),
        TokenCutComponents::Largest => return largest_component(side, grid),
        TokenCutComponents::Seed | TokenCutComponents::SeedNear => {
            let mean = x.iter().sum::<f64>() / x.len().max(1) as f64;
            (0..side.len())
                .filter(|&i| side[i])
                .rev()
                .max_by(|&i, &j| (x[i] - mean).abs().total_cmp(&(x[j] - mean).abs()))
        }
    };
    let Some(seed) = seed else { return side.to_vec() };
    if rule == TokenCutComponents::SeedNear {
        let near = component_around(&dilate(side, grid), grid, seed);
        side.iter().zip(near).map(|(&f, n)| f && n).collect()
    } else {
        component_around(side, grid, seed)
    }
}

/// The largest 4-connected component of `side` (the first in raster order on ties; `side`
/// itself when it is empty), from the SDK's component labelling.
fn largest_component(side: &[bool], (h, w): (usize, usize)) -> Vec<bool> {
    let (labels, comps) = sempart::postprocess::component_labels(side, w, h);
    let mut best: Option<usize> = None;
    for (k, c) in comps.iter().enumerate() {
        if best.is_none_or(|b| c.pixel_count > comps[b].pixel_count) {
            best = Some(k);
        }
    }
    match best {
        Some(b) => labels.iter().map(|&l| l == b as u32).collect(),
        None => side.to_vec(),
    }
}

/// The 4-connected component of `mask` (an `h x w` grid, row-major) that holds `seed` (a set
/// pixel), from the SDK's component labelling.
fn component_around(mask: &[bool], (h, w): (usize, usize), seed: usize) -> Vec<bool> {
    let (labels, _) = sempart::postprocess::component_labels(mask, w, h);
    labels.iter().map(|&l| l == labels[seed]).collect()
}

/// `mask` (an `h x w` grid, row-major) dilated by the 3x3 square.
fn dilate(mask: &[bool], (h, w): (usize, usize)) -> Vec<bool> {
    (0..h * w)
        .map(|i| {
            let (y, x) = (i / w, i % w);
            (y.saturating_sub(1)..(y + 2).min(h))
                .any(|yy| (x.saturating_sub(1)..(x + 2).min(w)).any(|xx| mask[yy * w + xx]))
        })
        .collect()
}

/// The features TokenCut uses from cached backbone outputs.
pub fn tokencut_features(f: &Features, which: AffinityFeatures) -> Result<&Tensor> {
    if which.uses_keys() {
        f.keys.as_ref().context("TokenCut is configured on keys but the features hold none (extract with keys)")
    } else {
        Ok(&f.tokens)
    }
}

/// Scores TokenCut on a labelled set (spec section 6 protocol): the 0/1 grid map is resized
/// bilinearly to each mask's size, or, when `refine` is on, refined there with the image as
/// the guide exactly as the SDK refines Sempart's fine map ([`refine_to_frame`]), and scored
/// with [`SaliencyMetrics`]. The baseline of the issue is TokenCut with the refinement off.
/// Images whose features, image or mask cannot be read are reported and skipped.
pub fn evaluate_tokencut(
    store: &FeatureStore<'_>,
    set: &[LabelledImage],
    cfg: &TokenCutConfig,
    refine: &GuidedFilter,
) -> Result<SaliencyScores> {
    ensure!(
        !cfg.features.uses_keys() || store.extractor().with_keys(),
        "TokenCut on keys needs a feature store that extracts keys"
    );
    let grid = store.extractor().grid();
    let spec = store.extractor().spec();
    let model_input = (spec.width_px, spec.height_px);
    let mut metrics = SaliencyMetrics::new();
    for chunk in set.chunks(8) {
        let items: Vec<_> = chunk.iter().map(|l| (&l.image, false)).collect();
        let feats = store.get_many(&items);
        for (l, f) in chunk.iter().zip(feats) {
            let Some(f) = f else { continue };
            let Some(((gt, mw, mh), guide)) = mask_and_guide(l, refine) else { continue };
            let r = tokencut(tokencut_features(&f, cfg.features)?, grid, cfg)?;
            let (gw, gh) = (grid.1 as usize, grid.0 as usize);
            let prob = match &guide {
                Some(g) => refine_to_frame(&g.frame()?, None, &r.probability(), gw, gh, model_input, refine),
                None => resize_bilinear(&r.probability(), gw, gh, mw, mh),
            };
            metrics.add(&prob, &gt);
        }
    }
    Ok(metrics.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 4x4 grid whose centre 2x2 patches point one way and the rest another (with noise).
    fn two_regions() -> Tensor {
        let mut rows = Vec::new();
        for y in 0..4 {
            for x in 0..4 {
                let centre = (1..3).contains(&y) && (1..3).contains(&x);
                rows.push(if centre { [1.0f32, 0.1, 0.0] } else { [0.0, 0.2, 1.0] });
            }
        }
        let flat: Vec<f32> = rows.into_iter().flatten().collect();
        let noise = crate::train::with_seeded_torch(3, || Tensor::randn([16, 3], (Kind::Float, tch::Device::Cpu)));
        Tensor::from_slice(&flat).reshape([16, 3]) + noise * 0.05
    }

    #[test]
    fn tokencut_separates_two_regions_and_finds_the_centre() {
        let f = two_regions();
        for foreground in [TokenCutForeground::Corners, TokenCutForeground::Seed] {
            for features in [AffinityFeatures::Tokens, AffinityFeatures::CenteredTokens] {
                let cfg = TokenCutConfig { foreground, features, ..TokenCutConfig::default() };
                let r = tokencut(&f, (4, 4), &cfg).unwrap();
                let want: Vec<bool> = (0..16).map(|i| (1..3).contains(&(i / 4)) && (1..3).contains(&(i % 4))).collect();
                // The seed rule picks the side with the largest |x|: for this graph the smaller,
                // centre side.
                assert_eq!(r.foreground, want, "{foreground:?} {features:?}");
                assert!(r.eigenvalue >= -1e-9 && r.eigenvalue < 0.5, "{}", r.eigenvalue);
                assert_eq!(r.probability().iter().sum::<f32>(), 4.0);
            }
        }
        // Generalised eigenvector check: (D - W) x = lambda D x.
        let cfg = TokenCutConfig::default();
        let r = tokencut(&f, (4, 4), &cfg).unwrap();
        let fd = normalize_features(&f.to_kind(Kind::Double).unsqueeze(0), true).squeeze_dim(0);
        let mut w = fd.matmul(&fd.transpose(0, 1)).gt(cfg.tau).to_kind(Kind::Double) * (1.0 - cfg.eps) + cfg.eps;
        let eye = Tensor::eye(16, (Kind::Double, tch::Device::Cpu));
        w = &w * (eye.ones_like() - &eye) + &eye;
        let d = w.sum_dim_intlist(1, false, Kind::Double);
        let x = Tensor::from_slice(&r.eigenvector);
        let lhs = d.diag(0).matmul(&x) - w.matmul(&x);
        let rhs = (&d * &x) * r.eigenvalue;
        assert!((lhs - rhs).abs().max().double_value(&[]) < 1e-9);
    }

    /// A 5x6 grid, row-major, from rows of '#' (foreground) and '.'.
    fn grid(rows: &[&str]) -> Vec<bool> {
        rows.iter().flat_map(|r| r.chars().map(|c| c == '#')).collect()
    }

    #[test]
    fn component_rules_keep_the_seed_the_near_parts_or_the_largest() {
        // Three parts: a 2x2 square (top left), a 1x3 bar one patch right of it, a lone patch
        // far away (bottom right) holding the most confident value.
        let side = grid(&["##.###", "##....", "......", "......", ".....#"]);
        let mut x: Vec<f64> = side.iter().map(|&f| if f { 1.0 } else { -1.0 }).collect();
        x[29] = 5.0;
        let g = (5, 6);
        let lone = grid(&["......", "......", "......", "......", ".....#"]);
        let square = grid(&["##....", "##....", "......", "......", "......"]);
        let square_and_bar = grid(&["##.###", "##....", "......", "......", "......"]);
        use TokenCutComponents::{All, Largest, Seed, SeedNear};
        let cases = [(All, &side), (Seed, &lone), (SeedNear, &lone), (Largest, &square)];
        for (rule, want) in cases {
            assert_eq!(&keep_components(&side, &x, g, rule), want, "{rule:?}");
        }
        // Seed in the square: the bar, one patch away, stays with it under SeedNear only.
        x[29] = 1.0;
        x[7] = 4.0;
        for (rule, want) in [(Seed, &square), (SeedNear, &square_and_bar)] {
            assert_eq!(&keep_components(&side, &x, g, rule), want, "{rule:?}");
        }
        // No foreground: nothing to keep, whatever the rule.
        let empty = vec![false; 30];
        assert_eq!(keep_components(&empty, &x, g, TokenCutComponents::Seed), empty);
    }

    #[test]
    fn tokencut_reports_what_the_component_rule_dropped() {
        // A 4x6 grid with two separate objects of the same features: a 2x2 square and a 2x1 bar.
        let objects = grid(&["......", ".##.#.", ".##.#.", "......"]);
        let square = grid(&["......", ".##...", ".##...", "......"]);
        let bar = grid(&["......", "....#.", "....#.", "......"]);
        let rows: Vec<f32> =
            objects.iter().flat_map(|&o| if o { [1.0f32, 0.1, 0.0] } else { [0.0, 0.2, 1.0] }).collect();
        let noise = crate::train::with_seeded_torch(5, || Tensor::randn([24, 3], (Kind::Float, tch::Device::Cpu)));
        let f = Tensor::from_slice(&rows).reshape([24, 3]) + noise * 0.05;
        let all = tokencut(&f, (4, 6), &TokenCutConfig::default()).unwrap();
        assert_eq!(all.foreground, objects);
        assert!(all.dropped.iter().all(|&d| !d));
        for components in [TokenCutComponents::Seed, TokenCutComponents::Largest] {
            let r = tokencut(&f, (4, 6), &TokenCutConfig { components, ..TokenCutConfig::default() }).unwrap();
            assert!(r.foreground == square || r.foreground == bar, "{components:?}: {:?}", r.foreground);
            let union: Vec<bool> = r.foreground.iter().zip(&r.dropped).map(|(&a, &b)| a || b).collect();
            assert_eq!(union, objects, "{components:?}");
            assert!(r.foreground.iter().zip(&r.dropped).all(|(&a, &b)| !(a && b)));
        }
        let largest = tokencut(
            &f,
            (4, 6),
            &TokenCutConfig { components: TokenCutComponents::Largest, ..TokenCutConfig::default() },
        );
        assert_eq!(largest.unwrap().foreground, square);
    }
}
