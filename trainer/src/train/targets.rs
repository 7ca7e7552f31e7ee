//! The self-training targets: TokenCut's masks of the frozen features, and the coarse map
//! they are compared with.

use super::checkpoint::{heads_from_checkpoint, read_checkpoint};
use crate::config::TrainConfig;
use crate::data::ImageRecord;
use crate::feature_cache::{progress_bar, FeatureStore};
use crate::heads::Heads;
use crate::tokencut::{tokencut, tokencut_features, TokenCutConfig};
use anyhow::{ensure, Context, Result};
use tch::Tensor;

/// Self-training targets of every training image and orientation, from the frozen features, as
/// `[1, h, w]` maps indexed like `records x flips`: TokenCut's foreground (`tau` =
/// `loss.pseudo_tau`, corner rule, the loss's affinity features; with `loss.pseudo_extra_taus`
/// the mean of the masks at every threshold), or the coarse foreground of
/// the `loss.pseudo_from` checkpoint, which must have been trained on the same backbone
/// (`identity`) and grid. An image whose features cannot be read gets `None` (its steps skip
/// it, as they skip its features).
pub(super) fn pseudo_labels(
    cfg: &TrainConfig,
    identity: &str,
    store: &FeatureStore,
    records: &[ImageRecord],
    flips: &[bool],
    progress: bool,
) -> Result<Vec<Option<Tensor>>> {
    let cuts: Vec<TokenCutConfig> = std::iter::once(cfg.loss.pseudo_tau)
        .chain(cfg.loss.pseudo_extra_taus.iter().copied())
        .map(|tau| TokenCutConfig { tau, ..TokenCutConfig::with_features(cfg.loss.features) })
        .collect();
    let (gh, gw) = cfg.heads.grid();
    let teacher = match &cfg.loss.pseudo_from {
        None => None,
        Some(path) => {
            let ck = read_checkpoint(path).with_context(|| format!("loss.pseudo_from {}", path.display()))?;
            ensure!(
                ck.backbone_identity == identity,
                "loss.pseudo_from {}: trained on another backbone",
                path.display()
            );
            ensure!(
                ck.config.heads.grid() == (gh, gw) && ck.config.heads.feature_dim == cfg.heads.feature_dim,
                "loss.pseudo_from {}: its heads read a {:?} grid of {} features, this run a {:?} grid of {}",
                path.display(),
                ck.config.heads.grid(),
                ck.config.heads.feature_dim,
                (gh, gw),
                cfg.heads.feature_dim
            );
            Some(heads_from_checkpoint(&ck)?)
        }
    };
    let what = if teacher.is_some() { "pseudo-masks (checkpoint)" } else { "pseudo-masks (TokenCut)" };
    let bar = progress_bar((records.len() * flips.len()) as u64, progress, what);
    let mut out = Vec::with_capacity(records.len() * flips.len());
    for r in records {
        for &flip in flips {
            let target = match store.get_many(&[(r, flip)]).pop().flatten() {
                Some(f) => {
                    let fg: Vec<f32> = match &teacher {
                        None => mean_tokencut_mask(&f, (gh, gw), &cuts)?,
                        Some((_, heads)) => coarse_foreground(heads, &f.tokens)?,
                    };
                    Some(Tensor::from_slice(&fg).reshape([1, gh, gw]))
                }
                None => None,
            };
            out.push(target);
            bar.inc(1);
        }
    }
    bar.finish_and_clear();
    Ok(out)
}

/// The mean of TokenCut's foreground masks of one image's features over `cuts` (one cut: its
/// 0/1 mask itself).
fn mean_tokencut_mask(
    f: &crate::feature_cache::Features,
    grid: (i64, i64),
    cuts: &[TokenCutConfig],
) -> Result<Vec<f32>> {
    let mut sum = vec![0f32; (grid.0 * grid.1) as usize];
    for tc in cuts {
        let mask = tokencut(tokencut_features(f, tc.features)?, grid, tc)?.probability();
        sum.iter_mut().zip(&mask).for_each(|(s, m)| *s += m);
    }
    let n = cuts.len() as f32;
    Ok(sum.into_iter().map(|s| s / n).collect())
}

/// The heads' coarse foreground of one image's patch tokens `[T, C]`, as 0/1 values on the grid
/// (row-major), by the SDK's rule: binarised at its threshold, oriented by the corner rule.
pub(super) fn coarse_foreground(heads: &Heads, tokens: &Tensor) -> Result<Vec<f32>> {
    use sempart::postprocess::{binarize, select_foreground, THRESHOLD};
    let (gh, gw) = heads.config().grid();
    let p = tch::no_grad(|| heads.coarse_from(&heads.encode(&tokens.unsqueeze(0))));
    let mut mask = binarize(&Vec::<f32>::try_from(p.flatten(0, -1))?, THRESHOLD);
    select_foreground(&mut mask, gw as usize, gh as usize);
    Ok(mask.into_iter().map(|f| if f { 1.0 } else { 0.0 }).collect())
}
