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
//! - [`sr_per_image`]: super-resolution agreement `|| avgpool_p(S_fine) - S_coarse ||^2`.
//! - [`sempart_loss`]: the weighted total, averaged over the batch.
//! - [`pseudo_label_loss`]: the optional self-training term (not in the paper): binary
//!   cross-entropy of the coarse map against a per-image pseudo-mask (TokenCut's foreground,
//!   computed from the same frozen features; no label is read).

mod config;

pub use config::*;
use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

pub use crate::affinity::normalize_features;

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
