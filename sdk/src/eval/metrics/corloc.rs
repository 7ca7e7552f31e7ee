//! Single-object localisation: box IoU, CorLoc, the box of a mask, and the JSON formats of
//! ground-truth boxes and box predictions.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::MetricsError;

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
