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

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::postprocess;

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

// ---------------------------------------------------------------------------------
// Saliency: Acc, IoU, maxF
// ---------------------------------------------------------------------------------

/// Number of maxF thresholds: `t = k / 255` for `k` in `0..=254`.
pub const NUM_THRESHOLDS: usize = 255;

/// The F-measure weight beta^2 of the saliency protocol (0.3).
pub const BETA2: f64 = 0.3;

/// The maxF threshold `k / 255`, computed in `f32` as the comparisons use it.
pub fn threshold_value(k: usize) -> f32 {
    k as f32 / 255.0
}

/// F-measure with beta^2 = [`BETA2`] from true positives, predicted positives and
/// ground-truth positives, with the protocol's conventions: precision is 1 when
/// nothing is predicted, recall is 1 when the ground truth is empty, and F is 0 when
/// `beta2 * P + R` is 0.
pub fn f_measure(tp: u64, predicted: u64, positives: u64) -> f64 {
    let p = if predicted == 0 { 1.0 } else { tp as f64 / predicted as f64 };
    let r = if positives == 0 { 1.0 } else { tp as f64 / positives as f64 };
    let den = BETA2 * p + r;
    if den == 0.0 {
        0.0
    } else {
        (1.0 + BETA2) * p * r / den
    }
}

/// Histogram bin of a probability: the number of thresholds `k / 255` (`k` in
/// `0..=254`, computed in `f32`) that `p` strictly exceeds, so that `p > k / 255`
/// exactly when `bin > k`. NaN and values <= 0 give bin 0.
fn threshold_bin(p: f32) -> usize {
    if p.is_nan() || p <= 0.0 {
        return 0;
    }
    // First guess, then fix it up with exact comparisons against the f32 thresholds.
    let mut b = ((p * 255.0).ceil().max(0.0) as usize).min(NUM_THRESHOLDS);
    while b > 0 && p <= threshold_value(b - 1) {
        b -= 1;
    }
    while b < NUM_THRESHOLDS && p > threshold_value(b) {
        b += 1;
    }
    b
}

/// Scores of one image.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct ImageScores {
    /// Intersection over union of the binary prediction (`prob > 0.5`) and the ground
    /// truth; 1 when both are empty.
    pub iou: f64,
    /// Fraction of the scored (non-ignored) pixels where the binary prediction equals
    /// the ground truth; 1 when no pixel is scored.
    pub acc: f64,
    /// F-measure (beta^2 = 0.3) of the binary prediction `prob > 0.5`.
    #[serde(rename = "f_at_0.5")]
    pub f_at_half: f64,
    /// Number of pixels scored (ground-truth value other than 128).
    pub scored_pixels: u64,
}

/// Dataset-level saliency scores (means over images), as reported in the paper's
/// Table 1.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct SaliencyScores {
    /// Number of images.
    pub n: usize,
    /// Mean per-image accuracy.
    pub acc: f64,
    /// Mean per-image IoU.
    pub iou: f64,
    /// maxF: the largest, over the 255 thresholds, of the mean per-image F-measure.
    pub maxf: f64,
    /// The threshold `k / 255` that gives maxF (the first one on ties).
    pub maxf_threshold: f64,
    /// The index `k` of that threshold.
    pub maxf_threshold_index: usize,
}

/// Accumulator of the saliency metrics of spec section 6 (TokenCut / MOVE protocol).
///
/// Feed it one image at a time with [`SaliencyMetrics::add`], read the dataset scores
/// with [`SaliencyMetrics::finish`]. Per image, with pixels whose ground truth is
/// exactly 128 left out of every count:
///
/// - ground-truth foreground G: mask value > 127;
/// - binary prediction P: probability > 0.5; IoU = |P and G| / |P or G| (1 when both
///   are empty); Acc = fraction of pixels where P equals G;
/// - for each threshold t in {0, 1/255, ..., 254/255}: prediction `prob > t`,
///   precision TP / |prob > t| (1 if nothing is predicted), recall TP / |G| (1 if G is
///   empty), F = 1.3 P R / (0.3 P + R) (0 when undefined).
///
/// Dataset scores: means over images; maxF is the maximum over t of the mean F at t
/// (one threshold for the whole dataset, not per-image maxima).
///
/// The per-threshold counts come from a 256-bin histogram, `O(pixels + 256)` per
/// image. Thresholds and comparisons are in `f32`, so a probability `v / 255.0` from
/// an 8-bit PNG is above `k / 255` exactly when `v > k`.
#[derive(Clone, Debug)]
pub struct SaliencyMetrics {
    n: usize,
    sum_iou: f64,
    sum_acc: f64,
    sum_f: [f64; NUM_THRESHOLDS],
}

impl Default for SaliencyMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl SaliencyMetrics {
    /// An empty accumulator.
    pub fn new() -> Self {
        Self { n: 0, sum_iou: 0.0, sum_acc: 0.0, sum_f: [0.0; NUM_THRESHOLDS] }
    }

    /// Number of images added so far.
    pub fn len(&self) -> usize {
        self.n
    }

    /// Whether no image has been added.
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// Scores one image and adds it to the dataset.
    ///
    /// `prob` holds probabilities in [0, 1], already resized to the ground-truth size
    /// (bilinear, see [`crate::resize::resize_bilinear`]); `gt` is the mask, 0..255,
    /// foreground > 127, 128 ignored. Both row-major, same length.
    ///
    /// # Panics
    /// When the lengths differ.
    pub fn add(&mut self, prob: &[f32], gt: &[u8]) -> ImageScores {
        assert_eq!(prob.len(), gt.len(), "SaliencyMetrics::add: prediction and ground truth sizes differ");
        // hist_all[b] / hist_fg[b]: scored pixels (all / ground-truth foreground) in
        // threshold bin b (see threshold_bin).
        let mut hist_all = [0u64; NUM_THRESHOLDS + 1];
        let mut hist_fg = [0u64; NUM_THRESHOLDS + 1];
        let (mut tp, mut fp, mut fn_, mut tn) = (0u64, 0u64, 0u64, 0u64);
        for (&p, &g) in prob.iter().zip(gt) {
            if g == 128 {
                continue;
            }
            let fg = g > 127;
            let b = threshold_bin(p);
            hist_all[b] += 1;
            if fg {
                hist_fg[b] += 1;
            }
            let pred = p > postprocess::THRESHOLD;
            match (pred, fg) {
                (true, true) => tp += 1,
                (true, false) => fp += 1,
                (false, true) => fn_ += 1,
                (false, false) => tn += 1,
            }
        }
        let scored = tp + fp + fn_ + tn;
        let positives = tp + fn_;
        let union = tp + fp + fn_;
        let iou = if union == 0 { 1.0 } else { tp as f64 / union as f64 };
        let acc = if scored == 0 { 1.0 } else { (tp + tn) as f64 / scored as f64 };
        let f_at_half = f_measure(tp, tp + fp, positives);

        // prob > k/255  <=>  bin > k: suffix sums over the bins.
        let (mut pred_k, mut tp_k) = (0u64, 0u64);
        for k in (0..NUM_THRESHOLDS).rev() {
            pred_k += hist_all[k + 1];
            tp_k += hist_fg[k + 1];
            self.sum_f[k] += f_measure(tp_k, pred_k, positives);
        }
        self.n += 1;
        self.sum_iou += iou;
        self.sum_acc += acc;
        ImageScores { iou, acc, f_at_half, scored_pixels: scored }
    }

    /// Scores a prediction stored as an image file (8-bit probabilities, `v / 255`; a
    /// colour image is converted to luma) against a mask image file, and adds it.
    ///
    /// A prediction of another size than the mask is first resized bilinearly to the
    /// mask size, as the protocol prescribes.
    pub fn add_png(
        &mut self,
        prediction: impl AsRef<Path>,
        mask: impl AsRef<Path>,
    ) -> Result<ImageScores, MetricsError> {
        let (prob, pw, ph) = load_probability_image(prediction)?;
        let (gt, gw, gh) = load_mask_image(mask)?;
        Ok(self.add_resized(&prob, (pw, ph), &gt, (gw, gh)))
    }

    /// Resizes `prob` (`size` = width, height) bilinearly to the mask's size `gt_size` when
    /// they differ, as the protocol prescribes, and adds it ([`SaliencyMetrics::add`]).
    pub fn add_resized(
        &mut self,
        prob: &[f32],
        size: (usize, usize),
        gt: &[u8],
        gt_size: (usize, usize),
    ) -> ImageScores {
        if size == gt_size {
            return self.add(prob, gt);
        }
        self.add(&crate::resize::resize_bilinear(prob, size.0, size.1, gt_size.0, gt_size.1), gt)
    }

    /// Mean F-measure over the images added so far, for each threshold `k / 255`
    /// (`k` in `0..=254`); all zeros when no image was added.
    pub fn f_curve(&self) -> Vec<f64> {
        let n = self.n.max(1) as f64;
        self.sum_f.iter().map(|s| s / n).collect()
    }

    /// The dataset scores of the images added so far (all zeros when none).
    pub fn finish(&self) -> SaliencyScores {
        if self.n == 0 {
            return SaliencyScores {
                n: 0,
                acc: 0.0,
                iou: 0.0,
                maxf: 0.0,
                maxf_threshold: 0.0,
                maxf_threshold_index: 0,
            };
        }
        let n = self.n as f64;
        let mut best = 0;
        for k in 1..NUM_THRESHOLDS {
            if self.sum_f[k] > self.sum_f[best] {
                best = k;
            }
        }
        SaliencyScores {
            n: self.n,
            acc: self.sum_acc / n,
            iou: self.sum_iou / n,
            maxf: self.sum_f[best] / n,
            maxf_threshold: best as f64 / 255.0,
            maxf_threshold_index: best,
        }
    }
}

/// Loads a prediction image as probabilities `v / 255` (in `f32`; 16-bit images are
/// reduced to 8 bits, colour images converted to luma). Returns `(values, width,
/// height)`, row-major.
pub fn load_probability_image(path: impl AsRef<Path>) -> Result<(Vec<f32>, usize, usize), MetricsError> {
    let (v, w, h) = load_luma8(path.as_ref())?;
    Ok((v.into_iter().map(|v| v as f32 / 255.0).collect(), w, h))
}

/// Loads a ground-truth mask image as 8-bit values (foreground > 127, 128 ignored).
/// Returns `(values, width, height)`, row-major.
pub fn load_mask_image(path: impl AsRef<Path>) -> Result<(Vec<u8>, usize, usize), MetricsError> {
    load_luma8(path.as_ref())
}

fn load_luma8(path: &Path) -> Result<(Vec<u8>, usize, usize), MetricsError> {
    let img = image::open(path).map_err(|source| MetricsError::Image { path: path.display().to_string(), source })?;
    let luma = img.to_luma8();
    let (w, h) = (luma.width() as usize, luma.height() as usize);
    Ok((luma.into_raw(), w, h))
}

// ---------------------------------------------------------------------------------
// CorLoc
// ---------------------------------------------------------------------------------

/// A box `[x0, y0, x1, y1]` in pixel coordinates of the original image.
pub type BoxXyxy = [f32; 4];

/// IoU of two `xyxy` boxes in continuous coordinates: area = `(x1 - x0) * (y1 - y0)`
/// (no "+1": a box `[0, 0, 1, 1]` covers one pixel), computed in `f64`.
///
/// This convention reproduces the LOST paper's CorLoc on VOC07 trainval exactly (3102
/// of 5011 images, 61.90); the pixel-inclusive VOC-devkit convention (`+1` on widths
/// and heights) gives 3108 (62.02) on the same files. Degenerate boxes have area 0;
/// IoU is 0 when the union is empty.
pub fn box_iou(a: BoxXyxy, b: BoxXyxy) -> f32 {
    box_iou_f64(a, b) as f32
}

fn box_iou_f64(a: BoxXyxy, b: BoxXyxy) -> f64 {
    let [ax0, ay0, ax1, ay1] = a.map(f64::from);
    let [bx0, by0, bx1, by1] = b.map(f64::from);
    let iw = (ax1.min(bx1) - ax0.max(bx0)).max(0.0);
    let ih = (ay1.min(by1) - ay0.max(by0)).max(0.0);
    let inter = iw * ih;
    let area_a = (ax1 - ax0).max(0.0) * (ay1 - ay0).max(0.0);
    let area_b = (bx1 - bx0).max(0.0) * (by1 - by0).max(0.0);
    let union = area_a + area_b - inter;
    if union <= 0.0 {
        0.0
    } else {
        inter / union
    }
}

/// The IoU a predicted box needs with some ground-truth box for the image to count as
/// correctly localised.
pub const CORLOC_IOU: f64 = 0.5;

/// Whether `prediction` localises one of `ground_truth`: IoU >= 0.5 (in `f64`) with
/// any of the boxes.
pub fn is_correct(prediction: BoxXyxy, ground_truth: &[BoxXyxy]) -> bool {
    ground_truth.iter().any(|&g| box_iou_f64(prediction, g) >= CORLOC_IOU)
}

/// A CorLoc result.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct CorLocScore {
    /// Images whose predicted box has IoU >= 0.5 with some ground-truth box.
    pub correct: usize,
    /// Images in the ground truth.
    pub total: usize,
    /// `100 * correct / total` (0 when `total` is 0).
    pub corloc_percent: f64,
    /// Ground-truth images without a prediction (counted as wrong).
    pub missing: usize,
}

/// Bounding box of all foreground pixels of a ground-truth mask of width `w` (`xyxy`,
/// exclusive ends; foreground > 127, 128 ignored), the ground truth CorLoc is scored against
/// when a set has masks but no boxes; `None` for an empty mask.
pub fn mask_box(mask: &[u8], w: usize) -> Option<BoxXyxy> {
    let mut b: Option<[usize; 4]> = None;
    for (i, &v) in mask.iter().enumerate() {
        if v > 127 && v != 128 {
            let (x, y) = (i % w, i / w);
            let e = b.get_or_insert([x, y, x + 1, y + 1]);
            e[0] = e[0].min(x);
            e[1] = e[1].min(y);
            e[2] = e[2].max(x + 1);
            e[3] = e[3].max(y + 1);
        }
    }
    b.map(|b| b.map(|v| v as f32))
}

/// CorLoc of one predicted box per image against the ground-truth boxes.
///
/// Every image of `ground_truth` counts: it is correct when its predicted box has IoU
/// (see [`box_iou`]) >= 0.5 with ANY of its ground-truth boxes; an image without a
/// prediction is wrong. Predictions for images not in `ground_truth` are ignored.
pub fn corloc(predictions: &BTreeMap<String, BoxXyxy>, ground_truth: &BTreeMap<String, Vec<BoxXyxy>>) -> CorLocScore {
    corloc_iter(predictions, ground_truth.iter().map(|(k, v)| (k.as_str(), v.as_slice())))
}

fn corloc_iter<'a>(
    predictions: &BTreeMap<String, BoxXyxy>,
    ground_truth: impl Iterator<Item = (&'a str, &'a [BoxXyxy])>,
) -> CorLocScore {
    let (mut correct, mut total, mut missing) = (0, 0, 0);
    for (name, gt) in ground_truth {
        total += 1;
        match predictions.get(name) {
            Some(&p) => correct += is_correct(p, gt) as usize,
            None => missing += 1,
        }
    }
    CorLocScore {
        correct,
        total,
        corloc_percent: if total == 0 { 0.0 } else { 100.0 * correct as f64 / total as f64 },
        missing,
    }
}

/// One image of a CorLoc ground-truth file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GtImage {
    /// Image size `[width, height]` in pixels.
    pub size: [u32; 2],
    /// All ground-truth boxes of the image (`xyxy` pixels, difficult objects included).
    pub boxes: Vec<BoxXyxy>,
}

/// A CorLoc ground-truth file, the format of
/// `shared/data/corloc/voc07_trainval_gt.json`:
/// `{"source": "...", "images": {"<file name>": {"size": [w, h], "boxes": [[x0, y0, x1,
/// y1], ...]}}}`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CorLocGroundTruth {
    /// Free-text provenance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Ground truth per image, keyed by image file name.
    pub images: BTreeMap<String, GtImage>,
}

impl CorLocGroundTruth {
    /// Scores `predictions` against this ground truth (see [`corloc`]).
    pub fn score(&self, predictions: &BoxPredictions) -> CorLocScore {
        corloc_iter(&predictions.boxes, self.images.iter().map(|(k, v)| (k.as_str(), v.boxes.as_slice())))
    }

    /// The ground-truth boxes per image, the form [`corloc`] takes.
    pub fn boxes(&self) -> BTreeMap<String, Vec<BoxXyxy>> {
        self.images.iter().map(|(k, v)| (k.clone(), v.boxes.clone())).collect()
    }
}

/// A box prediction file, the format of `shared/data/corloc/lost_voc07_pred.json`:
/// `{"source": "...", "boxes": {"<file name>": [x0, y0, x1, y1]}}`, one box per image,
/// `xyxy` pixels of the original image. `sempart eval` reads and writes this format.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct BoxPredictions {
    /// Free-text provenance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// The predicted box per image, keyed by image file name.
    pub boxes: BTreeMap<String, BoxXyxy>,
}

impl BoxPredictions {
    /// Writes the predictions as JSON (the format [`load_box_predictions`] reads).
    pub fn save(&self, path: impl AsRef<Path>) -> Result<(), MetricsError> {
        let path = path.as_ref();
        let json = serde_json::to_string(self)
            .map_err(|source| MetricsError::Json { path: path.display().to_string(), source })?;
        std::fs::write(path, json).map_err(|source| MetricsError::Io { path: path.display().to_string(), source })
    }
}

fn load_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, MetricsError> {
    let bytes = std::fs::read(path).map_err(|source| MetricsError::Io { path: path.display().to_string(), source })?;
    serde_json::from_slice(&bytes).map_err(|source| MetricsError::Json { path: path.display().to_string(), source })
}

/// Reads a CorLoc ground-truth file (format: [`CorLocGroundTruth`]).
pub fn load_corloc_gt(path: impl AsRef<Path>) -> Result<CorLocGroundTruth, MetricsError> {
    load_json(path.as_ref())
}

/// Reads a box prediction file (format: [`BoxPredictions`]).
pub fn load_box_predictions(path: impl AsRef<Path>) -> Result<BoxPredictions, MetricsError> {
    load_json(path.as_ref())
}

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

    /// Scores one prediction against its mask: the foreground probabilities of the fine map
    /// (`fine_size` = width, height; e.g. the frame's) and of the coarse map (its `grid`), each
    /// resized bilinearly to the mask's size `gt_size` when it differs.
    pub fn add(
        &mut self,
        fine: &[f32],
        fine_size: (usize, usize),
        coarse: &[f32],
        grid: (usize, usize),
        gt: &[u8],
        gt_size: (usize, usize),
    ) {
        self.fine.add_resized(fine, fine_size, gt, gt_size);
        self.coarse.add_resized(coarse, grid, gt, gt_size);
    }
}
