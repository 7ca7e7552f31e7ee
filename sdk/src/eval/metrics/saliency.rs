//! Saliency scores of probability maps against ground-truth masks: Acc, IoU and maxF (spec
//! section 6), and the image loaders of predictions and masks.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::MetricsError;
use crate::pipeline::postprocess;

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
    /// (bilinear, see [`crate::pipeline::resize::resize_bilinear`]); `gt` is the mask, 0..255,
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
        self.add(&crate::pipeline::resize::resize_bilinear(prob, size.0, size.1, gt_size.0, gt_size.1), gt)
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
