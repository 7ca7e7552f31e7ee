//! Masks over time: J (mean IoU against the ground truth) and flicker of video sequences,
//! segmented frame by frame and as streams of several temporal-stability settings, with the
//! same model in the same run (`sempart eval-video`).
//!
//! Flicker of a sequence: the mean over consecutive frames of
//! `|(M_t xor M_t-1) and not (G_t xor G_t-1)| / |M_t or M_t-1|` (0 where both masks are empty):
//! the share of the mask that changes where the ground truth does not.
//!
//! Each frame is segmented once; every setting's stream filter ([`TemporalFilter`]) runs on
//! that frame's per-frame result, which is what a [`crate::Stream`] with those options computes.

use crate::error::{Error, Result, Status};
use crate::files::decode::load_rgb;
use crate::pipeline::frame::{Frame, PixelFormat};
use crate::pipeline::segmenter::Segmenter;
use crate::pipeline::temporal::{StreamOptions, TemporalFilter};
use std::path::{Path, PathBuf};

/// The timestamps fed to the streams: DAVIS's 24 frames per second.
pub const FRAME_INTERVAL_NS: i64 = 1_000_000_000 / 24;

/// J and flicker of one sequence for one setting.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Scores {
    /// Mean IoU of the fine mask against the ground truth over the frames (1 where both are empty).
    pub j: f64,
    /// Mean flicker over consecutive frames (module doc).
    pub flicker: f64,
    /// Frames at which the stream started its average again (the first frame included).
    pub resets: usize,
}

/// One sequence's scores: per-frame segmentation first, then one entry per stream strength.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SequenceReport {
    /// The sequence's folder name.
    pub name: String,
    /// Frames scored.
    pub frames: usize,
    /// Per-frame segmentation (no stream).
    pub per_frame: Scores,
    /// The scores of each stream setting asked for, in order.
    pub streams: Vec<Scores>,
}

/// Running sums of J and flicker for one setting.
#[derive(Default)]
struct Tally {
    iou: f64,
    flicker: f64,
    pairs: usize,
    frames: usize,
    resets: usize,
    previous: Option<Vec<bool>>,
}

impl Tally {
    fn add(&mut self, mask: Vec<bool>, truth: &[bool], truth_changed: &[bool]) {
        self.iou += iou(&mask, truth);
        self.frames += 1;
        if let Some(prev) = &self.previous {
            let (mut changed, mut union) = (0usize, 0usize);
            for i in 0..mask.len() {
                changed += usize::from((mask[i] != prev[i]) && !truth_changed[i]);
                union += usize::from(mask[i] || prev[i]);
            }
            self.flicker += if union == 0 { 0.0 } else { changed as f64 / union as f64 };
            self.pairs += 1;
        }
        self.previous = Some(mask);
    }

    fn scores(&self) -> Scores {
        Scores {
            j: self.iou / self.frames.max(1) as f64,
            flicker: self.flicker / self.pairs.max(1) as f64,
            resets: self.resets,
        }
    }
}

fn iou(a: &[bool], b: &[bool]) -> f64 {
    let (mut inter, mut union) = (0usize, 0usize);
    for (&x, &y) in a.iter().zip(b) {
        inter += usize::from(x && y);
        union += usize::from(x || y);
    }
    if union == 0 {
        1.0
    } else {
        inter as f64 / union as f64
    }
}

/// A ground-truth mask as booleans (> 127 is foreground, the first channel of any colour type).
fn load_truth(path: &Path, w: u32, h: u32) -> Result<Vec<bool>> {
    let m = load_rgb(path)?;
    if m.dimensions() != (w, h) {
        return Err(Error::new(
            Status::InvalidArgument,
            format!("{}: mask is {}x{}, the frame {w}x{h}", path.display(), m.width(), m.height()),
        ));
    }
    Ok(m.pixels().map(|p| p.0[0] > 127).collect())
}

/// Scores one sequence: `images` in order (the frames), each with a mask of the same stem
/// (`.png`) in `masks`; one stream per entry of `settings`.
pub fn evaluate_sequence(
    model: &Segmenter,
    name: &str,
    images: &[PathBuf],
    masks: &Path,
    settings: &[StreamOptions],
) -> Result<SequenceReport> {
    let mut filters = settings.iter().map(|&o| TemporalFilter::new(o)).collect::<Result<Vec<_>>>()?;
    let mut per_frame = Tally::default();
    let mut streams: Vec<Tally> = settings.iter().map(|_| Tally::default()).collect();
    let mut previous_truth: Option<Vec<bool>> = None;
    for (k, path) in images.iter().enumerate() {
        let rgb = load_rgb(path)?;
        let (w, h) = rgb.dimensions();
        let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        let truth = load_truth(&masks.join(format!("{stem}.png")), w, h)?;
        let changed: Vec<bool> = match &previous_truth {
            Some(p) => truth.iter().zip(p).map(|(a, b)| a != b).collect(),
            None => vec![false; truth.len()],
        };
        let frame = Frame::new(rgb.as_raw(), w, h, w as usize * 3, PixelFormat::Rgb8)?;
        let seg = model.segment(&frame)?;
        per_frame.add(seg.fine_mask.iter().map(|&v| v > 127).collect(), &truth, &changed);
        for (filter, tally) in filters.iter_mut().zip(&mut streams) {
            let (mut p, mut m) = (seg.fine_probability.clone(), seg.fine_mask.clone());
            if filter.apply(&frame, k as i64 * FRAME_INTERVAL_NS, &mut p, &mut m)?.is_some() {
                tally.resets += 1;
            }
            tally.add(m.iter().map(|&v| v > 127).collect(), &truth, &changed);
        }
        previous_truth = Some(truth);
    }
    Ok(SequenceReport {
        name: name.to_string(),
        frames: images.len(),
        per_frame: per_frame.scores(),
        streams: streams.iter().map(Tally::scores).collect(),
    })
}
