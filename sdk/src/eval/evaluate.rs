//! The evaluation procedure of a model on a labelled folder (spec section 6): each image is
//! segmented as the SDK ships it, its fine and coarse maps are scored against the mask
//! ([`FineCoarseMetrics`]) and its object box against the mask's box (CorLoc). `sempart eval`
//! prints what [`evaluate`] returns; the trainer scores its heads with the same
//! [`FineCoarseMetrics`].

use crate::error::{Error, Result, Status};
use crate::eval::metrics::{self, BoxPredictions, CorLocScore, FineCoarseMetrics, SaliencyScores};
use crate::pipeline::frame::{Frame, PixelFormat};
use crate::pipeline::plane::Plane;
use crate::pipeline::segmenter::Segmenter;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// What an evaluation found.
#[derive(Debug, Clone)]
pub struct EvalReport {
    /// Fine-map scores.
    pub fine: SaliencyScores,
    /// Coarse-map scores.
    pub coarse: SaliencyScores,
    /// CorLoc of the object boxes against the masks' boxes.
    pub corloc: CorLocScore,
    /// Median time of `segment` per image, in milliseconds.
    pub latency_ms_median: f64,
    /// Images that could not be evaluated (no mask, unreadable), with the reason.
    pub failed: Vec<(PathBuf, String)>,
    /// The object box of every image, in the mask's pixels (the CorLoc box-file format).
    pub boxes: BoxPredictions,
}

/// The mask of image stem `stem` in `masks` (`.png`, `.PNG`, `.bmp` or `.jpg`).
pub fn find_mask(masks: &Path, stem: &str) -> Option<PathBuf> {
    ["png", "PNG", "bmp", "jpg"].iter().map(|e| masks.join(format!("{stem}.{e}"))).find(|p| p.is_file())
}

pub use crate::files::decode::load_rgb;

/// Segments every image of `images` with `model` and scores it against its mask in `masks`
/// (same stem). `progress` is called after each image. Images without a mask or that cannot
/// be read are listed in [`EvalReport::failed`] and skipped; no evaluated image at all is an
/// error.
pub fn evaluate(
    model: &Segmenter,
    images: &[PathBuf],
    masks: &Path,
    mut progress: impl FnMut(&Path),
) -> Result<EvalReport> {
    let mut scores = FineCoarseMetrics::new();
    let mut latencies = Vec::new();
    let mut boxes =
        BoxPredictions { source: Some("sempart eval: object box of the fine mask".into()), ..Default::default() };
    let mut gt_boxes = BTreeMap::new();
    let mut failed = Vec::new();
    for path in images {
        let mut one = || -> Result<()> {
            let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
            let mask_path = find_mask(masks, &stem)
                .ok_or_else(|| Error::new(Status::Io, format!("no mask for {stem} in {}", masks.display())))?;
            let (gt, gw, gh) = metrics::load_mask_image(&mask_path)
                .map_err(|e| Error::new(Status::Io, format!("{}: {e}", mask_path.display())))?;
            let rgb = load_rgb(path)?;
            let (w, h) = (rgb.width(), rgb.height());
            let frame = Frame::new(rgb.as_raw(), w, h, w as usize * 3, PixelFormat::Rgb8)?;
            let seg = model.segment(&frame)?;
            let t = seg.timing;
            latencies.push(t.preprocess_ms + t.inference_ms + t.postprocess_ms);
            let (w, h) = (w as usize, h as usize);
            let grid = (seg.grid_width as usize, seg.grid_height as usize);
            scores.add(
                Plane::new(&seg.fine_probability, w, h),
                Plane::new(&seg.coarse_probability, grid.0, grid.1),
                Plane::new(&gt, gw, gh),
            );
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            if let Some(b) = metrics::mask_box(&gt, gw) {
                gt_boxes.insert(name.clone(), vec![b]);
            }
            if let Some(o) = seg.object {
                let (sx, sy) = (gw as f32 / w as f32, gh as f32 / h as f32);
                boxes.boxes.insert(name, seg.components[o].xyxy_scaled(sx, sy));
            }
            Ok(())
        };
        if let Err(e) = one() {
            failed.push((path.clone(), e.message().to_string()));
        }
        progress(path);
    }
    if scores.fine.is_empty() {
        return Err(Error::invalid(format!("none of the {} images could be evaluated", images.len())));
    }
    latencies.sort_by(|a, b| a.total_cmp(b));
    Ok(EvalReport {
        fine: scores.fine.finish(),
        coarse: scores.coarse.finish(),
        corloc: metrics::corloc(&boxes.boxes, &gt_boxes),
        latency_ms_median: latencies[latencies.len() / 2],
        failed,
        boxes,
    })
}
