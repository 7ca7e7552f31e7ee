//! The losses' configuration: which features make the affinity, how the squared norms are
//! reduced, and every weight and threshold of the terms (`[loss]` in a training config), with
//! its validation.

use crate::tokencut::TokenCutComponents;
use anyhow::{ensure, Result};
use serde::{Deserialize, Serialize};

pub use crate::affinity::AffinityFeatures;

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
    /// Weight of the self-training term ([`pseudo_label_loss`](super::pseudo_label_loss))
    /// against TokenCut's foreground mask of each training image (0, the paper: off).
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
    /// The backbone block (0-based) whose output tokens, before any norm, the TokenCut targets
    /// cut instead of the loss's affinity features (none, the default: those features). Each
    /// training image runs through the backbone once more to read them. TokenCut targets only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pseudo_layer: Option<usize>,
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
            pseudo_layer: None,
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
            self.pseudo_layer.is_none() || self.pseudo_from.is_none(),
            "loss.pseudo_layer chooses TokenCut's tokens: it does not apply with loss.pseudo_from"
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

/// The self-training target of a cell that
/// [`pseudo_label_loss`](super::pseudo_label_loss) leaves out.
pub const IGNORED_TARGET: f32 = -1.0;

/// Serde's test for the default of [`LossConfig::pseudo_components`].
fn is_all_components(c: &TokenCutComponents) -> bool {
    *c == TokenCutComponents::All
}
