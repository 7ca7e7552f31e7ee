//! Evaluation metrics: saliency (Acc, IoU, maxF) and single-object localisation
//! (CorLoc), the one implementation in the workspace (spec section 6).
//!
//! - [`SaliencyMetrics`] accumulates per-image scores of probability maps against
//!   ground-truth masks and gives the dataset means and maxF ([`SaliencyScores`]).
//!   [`SaliencyMetrics::add_png`] scores a prediction stored as an 8-bit PNG.
//! - [`box_iou`] and [`corloc`] score predicted boxes against ground-truth boxes;
//!   [`load_corloc_gt`] and [`load_box_predictions`] read the JSON formats of
//!   `shared/data/corloc/`, and [`BoxPredictions::save`] writes the prediction format.
//!
//! The implementation is checked against `shared/data/metrics_check/expected.json` and
//! against the published LOST CorLoc on VOC07 (61.90, 3102 of 5011 images).
#![warn(missing_docs)]

use crate::pipeline::plane::Plane;

/// Errors of the metric loaders.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// An image could not be decoded.
    #[error("{path}: {source}")]
    Image {
        /// The file.
        path: String,
        /// The underlying error.
        #[source]
        source: image::ImageError,
    },
    /// A JSON file does not have the expected format.
    #[error("{path}: {source}")]
    Json {
        /// The file.
        path: String,
        /// The underlying error.
        #[source]
        source: serde_json::Error,
    },
}

mod corloc;
mod saliency;

pub use corloc::*;
pub use saliency::*;

/// The fine and the coarse map of a model scored together, one prediction at a time: the
/// scoring step that `sempart eval`, the trainer's evaluation and the tests share.
#[derive(Debug, Clone, Default)]
pub struct FineCoarseMetrics {
    /// Scores of the fine map.
    pub fine: SaliencyMetrics,
    /// Scores of the coarse map.
    pub coarse: SaliencyMetrics,
}

impl FineCoarseMetrics {
    /// Nothing scored yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Scores one prediction against its mask `gt`: the foreground probabilities of the fine
    /// map (e.g. at the frame's size) and of the coarse map (its grid), each resized bilinearly
    /// to the mask's size when it differs.
    pub fn add(&mut self, fine: Plane<'_, f32>, coarse: Plane<'_, f32>, gt: Plane<'_, u8>) {
        self.fine.add_resized(fine.values(), fine.size(), gt.values(), gt.size());
        self.coarse.add_resized(coarse.values(), coarse.size(), gt.values(), gt.size());
    }
}
