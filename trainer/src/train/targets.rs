//! The self-training targets: TokenCut's masks of the frozen features, and the coarse map
//! they are compared with.

use super::checkpoint::{heads_from_checkpoint, read_checkpoint};
use crate::config::TrainConfig;
use crate::data::ImageRecord;
use crate::feature_cache::{FeatureStore, Features};
use crate::heads::Heads;
use crate::losses::{PseudoDropped, IGNORED_TARGET};
use crate::progress::{Progress, ProgressMode};
use crate::tokencut::{tokencut, tokencut_features, TokenCutConfig, TokenCutResult};
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
        .map(|tau| TokenCutConfig {
            tau,
            components: cfg.loss.pseudo_components,
            ..TokenCutConfig::with_features(cfg.loss.features)
        })
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
    if let Some(layer) = cfg.loss.pseudo_layer {
        let depth = store.extractor().backbone().vit.config().depth as usize;
        ensure!(layer < depth, "loss.pseudo_layer = {layer}: the backbone has blocks 0..{}", depth - 1);
    }
    let what = if teacher.is_some() { "pseudo-masks (checkpoint)" } else { "pseudo-masks (TokenCut)" };
    let bar = Progress::new((records.len() * flips.len()) as u64, ProgressMode::for_stderr(progress), what);
    let mut out = Vec::with_capacity(records.len() * flips.len());
    for r in records {
        for &flip in flips {
            let target = match store.get_many(&[(r, flip)]).pop().flatten() {
                Some(f) => {
                    let fg: Vec<f32> = match &teacher {
                        None => {
                            let tokens = match cfg.loss.pseudo_layer {
                                None => tokencut_features(&f, cfg.loss.features)?.shallow_clone(),
                                Some(layer) => layer_tokens(store, &f, layer)?,
                            };
                            mean_tokencut_mask(&tokens, (gh, gw), &cuts, cfg.loss.pseudo_dropped)?
                        }
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
    bar.finish();
    Ok(out)
}

/// The patch tokens `[T, C]` that block `layer` (0-based) of the store's backbone outputs for
/// one image's cached model input (`loss.pseudo_layer`).
fn layer_tokens(store: &FeatureStore, f: &Features, layer: usize) -> Result<Tensor> {
    let backbone = store.extractor().backbone();
    let (gh, gw) = store.extractor().grid();
    tch::no_grad(|| {
        let input = f.image.unsqueeze(0).to_device(backbone.vs.device());
        let hidden = backbone.vit.forward_hidden(&input).swap_remove(layer);
        Ok(hidden.narrow(1, 1, gh * gw).squeeze_dim(0).to_device(tch::Device::Cpu))
    })
}

/// The mean of TokenCut's foreground masks of one image's patch tokens over `cuts` (one cut:
/// its 0/1 mask itself); see [`combine_cuts`].
fn mean_tokencut_mask(
    tokens: &Tensor,
    grid: (i64, i64),
    cuts: &[TokenCutConfig],
    dropped: PseudoDropped,
) -> Result<Vec<f32>> {
    let results = cuts.iter().map(|tc| tokencut(tokens, grid, tc)).collect::<Result<Vec<_>>>()?;
    Ok(combine_cuts(&results, dropped))
}

/// The self-training target of each patch from several cuts of one image: the share of the
/// cuts that put it in the foreground. With `dropped = Ignore` a cut does not count where its
/// component rule dropped the patch, and a patch that every cut dropped gets
/// [`IGNORED_TARGET`].
fn combine_cuts(results: &[TokenCutResult], dropped: PseudoDropped) -> Vec<f32> {
    let cells = results.first().map_or(0, |r| r.foreground.len());
    let (mut sum, mut count) = (vec![0f32; cells], vec![0f32; cells]);
    for r in results {
        for (i, m) in r.probability().into_iter().enumerate() {
            if !(dropped == PseudoDropped::Ignore && r.dropped[i]) {
                sum[i] += m;
                count[i] += 1.0;
            }
        }
    }
    sum.into_iter().zip(count).map(|(s, n)| if n > 0.0 { s / n } else { IGNORED_TARGET }).collect()
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

#[cfg(test)]
mod tests {
    use super::*;

    fn cut(foreground: [bool; 4], dropped: [bool; 4]) -> TokenCutResult {
        TokenCutResult {
            eigenvalue: 0.1,
            eigenvector: vec![0.0; 4],
            partition_a: foreground.to_vec(),
            foreground: foreground.to_vec(),
            dropped: dropped.to_vec(),
        }
    }

    #[test]
    fn combined_cuts_average_the_masks_and_leave_out_what_was_dropped() {
        let (t, f) = (true, false);
        // Patch 0 kept by both cuts, 1 kept by one, 2 dropped by one and background in the
        // other, 3 dropped by both.
        let cuts = [cut([t, t, f, f], [f, f, t, t]), cut([t, f, f, f], [f, f, f, t])];
        assert_eq!(combine_cuts(&cuts, PseudoDropped::Background), vec![1.0, 0.5, 0.0, 0.0]);
        assert_eq!(combine_cuts(&cuts, PseudoDropped::Ignore), vec![1.0, 0.5, 0.0, IGNORED_TARGET]);
        // One cut: its mask, ignored cells marked.
        assert_eq!(combine_cuts(&cuts[..1], PseudoDropped::Ignore), vec![1.0, 1.0, IGNORED_TARGET, IGNORED_TARGET]);
        assert_eq!(combine_cuts(&cuts[..1], PseudoDropped::Background), vec![1.0, 1.0, 0.0, 0.0]);
    }
}
