//! Can self-training targets on the patch grid carry the refinement's gain? TokenCut's mask of
//! each image (final tokens, `tau` 0.4 as `loss.pseudo_tau`, corner rule) is refined at the
//! image's size by the SDK's default guided filter, then averaged back over each patch
//! ("pooled", a soft target in [0, 1]; "pooled-bin" binarised at 0.5). Each map is scored by
//! the spec's protocol, resized bilinearly and, for the grid maps, also refined again (what the
//! SDK would do to a coarse map that matched the target exactly).
//!
//! The features come from the recipe's feature cache (`data.cache_dir`), as for `trainer eval`;
//! images not cached yet run through the backbone and are stored.
//!
//! Run from the repository root (about 0.2 s per image on 2 cores with the features cached):
//!     cargo run --release -p trainer --example tokencut_pooled_targets -- ../shared/data/horses

use anyhow::{bail, Result};
use sempart::metrics::SaliencyMetrics;
use sempart::refine::{refine_to_frame, GuidedFilter};
use sempart::resize::resize_bilinear;
use std::path::{Path, PathBuf};
use trainer::config::TrainConfig;
use trainer::data::{list_labelled, mask_and_guide};
use trainer::feature_cache::{CacheDtype, Extractor, FeatureStore};
use trainer::tokencut::{tokencut, tokencut_features, TokenCutConfig};

/// The mean of `p` (`w x h`) over each cell of a `gw x gh` grid, computed on an 8x finer grid
/// (bilinear) so that cells need not align with pixels.
fn pool(p: &[f32], w: usize, h: usize, gw: usize, gh: usize) -> Vec<f32> {
    const S: usize = 8;
    let fine = resize_bilinear(p, w, h, gw * S, gh * S);
    let mut out = vec![0f32; gw * gh];
    for (y, row) in fine.chunks(gw * S).enumerate() {
        for (x, v) in row.iter().enumerate() {
            out[(y / S) * gw + x / S] += v;
        }
    }
    out.iter().map(|v| v / (S * S) as f32).collect()
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [data] = args.as_slice() else { bail!("usage: tokencut_pooled_targets LABELLED_DIR") };
    let data = PathBuf::from(data);
    let cfg = TrainConfig::load(Path::new("models/default/config.toml"), &[])?;
    let set = list_labelled(&data, None)?;
    if set.is_empty() {
        bail!("no labelled images in {}", data.display());
    }
    // The features `trainer eval` reads: from the recipe's cache when it holds them.
    let backbone = trainer::train::load_backbone_for(&cfg)?;
    let extractor = Extractor::new(&backbone, cfg.input_spec(), false)?;
    let store =
        FeatureStore::with_cache_dir(extractor, cfg.data.cache_dir.as_deref(), CacheDtype::F32, CacheDtype::F32, 4)?;
    let cut_cfg = TokenCutConfig { tau: 0.4, ..TokenCutConfig::with_features(cfg.loss.features) };
    let refine = GuidedFilter::DEFAULT;
    let (gh, gw) = store.extractor().grid();
    let (gh, gw) = (gh as usize, gw as usize);
    let spec = store.extractor().spec();
    let input_size = (spec.width_px, spec.height_px);
    let names = ["raw", "refined", "pooled", "pooled+refined", "pooled-bin", "pooled-bin+refined"];
    let mut scores: Vec<SaliencyMetrics> = names.iter().map(|_| SaliencyMetrics::new()).collect();
    for chunk in set.chunks(8) {
        let items: Vec<_> = chunk.iter().map(|l| (&l.image, false)).collect();
        for (l, f) in chunk.iter().zip(store.get_many(&items)) {
            let Some(f) = f else { continue };
            let Some(((gt, mw, mh), Some(guide))) = mask_and_guide(l, &refine) else { continue };
            let cut = tokencut(tokencut_features(&f, cut_cfg.features)?, (gh as i64, gw as i64), &cut_cfg)?;
            let p = cut.probability();
            let frame = guide.frame()?;
            let refined = refine_to_frame(&frame, None, &p, gw, gh, input_size, &refine);
            let pooled = pool(&refined, mw, mh, gw, gh);
            let pooled_bin: Vec<f32> = pooled.iter().map(|&v| if v > 0.5 { 1.0 } else { 0.0 }).collect();
            let maps = [
                resize_bilinear(&p, gw, gh, mw, mh),
                refined,
                resize_bilinear(&pooled, gw, gh, mw, mh),
                refine_to_frame(&frame, None, &pooled, gw, gh, input_size, &refine),
                resize_bilinear(&pooled_bin, gw, gh, mw, mh),
                refine_to_frame(&frame, None, &pooled_bin, gw, gh, input_size, &refine),
            ];
            for (m, s) in maps.iter().zip(scores.iter_mut()) {
                s.add(m, &gt);
            }
        }
    }
    println!("TokenCut targets, {} ({} images), IoU / maxF", data.display(), set.len());
    for (n, s) in names.iter().zip(&scores) {
        let s = s.finish();
        println!("{n:20} {:.4} / {:.4}", s.iou, s.maxf);
    }
    Ok(())
}
