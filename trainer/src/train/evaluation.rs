//! Scoring trained heads on a labelled set with the SDK's post-processing and scoring step.

use super::step::heads_forward;
use crate::data::{self, LabelledImage};
use crate::feature_cache::{FeatureStore, Features};
use crate::heads::Heads;
use anyhow::Result;
use sempart::metrics::{FineCoarseMetrics, SaliencyScores};
use sempart::plane::Plane;
use sempart::postprocess::{foreground_maps, FineOutput};
use sempart::GuidedFilter;
use serde::{Deserialize, Serialize};
use tch::Tensor;

/// Scores of the two outputs of the heads.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct HeadsScores {
    /// The fine mask.
    pub fine: SaliencyScores,
    /// The coarse mask.
    pub coarse: SaliencyScores,
}

/// Scores the heads (eval mode) on a labelled set with the SDK's post-processing
/// ([`sempart::postprocess::foreground_maps`], the fine map refined by `refine` with the image as
/// the guide)
/// and metrics ([`sempart::metrics::FineCoarseMetrics`]): each prediction is resized to its mask's size. Features
/// come from `store` (cached or computed), `batch` images at a time. Unreadable images or
/// masks are reported and skipped.
pub fn evaluate_heads(
    heads: &Heads,
    store: &FeatureStore<'_>,
    set: &[LabelledImage],
    batch: usize,
    refine: &GuidedFilter,
) -> Result<HeadsScores> {
    let cfg = heads.config();
    let (gh, gw) = cfg.grid();
    let (ih, iw) = (cfg.input_height, cfg.input_width);
    let mut scores = FineCoarseMetrics::new();
    for chunk in set.chunks(batch.max(1)) {
        let items: Vec<_> = chunk.iter().map(|l| (&l.image, false)).collect();
        let feats = store.get_many(&items);
        let mut ok: Vec<(&LabelledImage, Features)> = Vec::new();
        for (l, f) in chunk.iter().zip(feats) {
            if let Some(f) = f {
                ok.push((l, f));
            }
        }
        if ok.is_empty() {
            continue;
        }
        let tokens = Tensor::stack(&ok.iter().map(|(_, f)| f.tokens.shallow_clone()).collect::<Vec<_>>(), 0);
        let images = Tensor::stack(&ok.iter().map(|(_, f)| f.image.shallow_clone()).collect::<Vec<_>>(), 0);
        let out = tch::no_grad(|| heads_forward(heads, &tokens, &images, false, true));
        for (i, (l, _)) in ok.iter().enumerate() {
            let Some(((gt, mw, mh), guide)) = data::mask_and_guide(l, refine) else { continue };
            let frame = guide.as_ref().map(|g| g.frame()).transpose()?;
            let coarse = Vec::<f32>::try_from(&out.coarse.get(i as i64).reshape([-1]))?;
            let fine = Vec::<f32>::try_from(&out.fine.get(i as i64).reshape([-1]))?;
            let (gw, gh) = (gw as usize, gh as usize);
            let output = match &frame {
                Some(frame) => FineOutput::Refined { frame, view: None, filter: refine },
                None => FineOutput::Resized { width: mw, height: mh },
            };
            let maps =
                foreground_maps(Plane::new(&coarse, gw, gh), Plane::new(&fine, iw as usize, ih as usize), output);
            scores.add(Plane::new(&maps.fine, mw, mh), Plane::new(&maps.coarse, gw, gh), Plane::new(&gt, mw, mh));
        }
    }
    Ok(HeadsScores { fine: scores.fine.finish(), coarse: scores.coarse.finish() })
}
