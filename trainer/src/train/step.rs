//! One optimisation step: a batch stacked from cached features, the heads' forward pass (the
//! fine branch channels-last), the phase's loss terms, and Adam's update.

use super::fine_targets::refined_coarse_targets;
use super::{Adam, Phase};
use crate::config::TrainConfig;
use crate::feature_cache::Features;
use crate::heads::{Heads, HeadsOutput};
use crate::losses::{self, FineInputs, LossValues};
use anyhow::{Context, Result};
use tch::{Kind, Tensor};

/// A batch ready for the heads.
pub(super) struct Batch {
    tokens: Tensor,
    affinity_features: Tensor,
    image: Tensor,
    /// Self-training targets `[N, 1, h, w]` (when `loss.w_pseudo > 0`).
    pseudo: Option<Tensor>,
}

impl Batch {
    /// Images in the batch.
    pub(super) fn len(&self) -> usize {
        self.tokens.size()[0] as usize
    }
}

/// Stacks the features (and the self-training targets) of a batch's images.
pub(super) fn make_batch(feats: &[Features], use_keys: bool, pseudo: Option<Vec<Tensor>>) -> Result<Batch> {
    let stack = |f: &dyn Fn(&Features) -> Option<Tensor>| -> Result<Tensor> {
        let v = feats.iter().map(f).collect::<Option<Vec<_>>>().context("missing keys in the features")?;
        Ok(Tensor::stack(&v, 0))
    };
    let tokens = stack(&|f| Some(f.tokens.shallow_clone()))?;
    let affinity_features =
        if use_keys { stack(&|f| f.keys.as_ref().map(|k| k.shallow_clone()))? } else { tokens.shallow_clone() };
    let image = stack(&|f| Some(f.image.shallow_clone()))?;
    let pseudo = pseudo.map(|p| Tensor::stack(&p, 0));
    Ok(Batch { tokens, affinity_features, image, pseudo })
}

/// The same tensor with channels-last strides (NHWC in memory, NCHW logically): libtorch's CPU
/// convolutions and bilinear upsampling run 2-5x faster on the fine branch's few-channel,
/// large maps in this layout.
pub fn channels_last(t: &Tensor) -> Tensor {
    t.permute([0, 2, 3, 1]).contiguous().permute([0, 3, 1, 2])
}

/// [`Heads::forward_t`] with the fine branch run on channels-last activations (same
/// mathematics, faster on the CPU): the encoder map and the image are laid out channels-last
/// before the fine branch.
pub fn heads_forward(heads: &Heads, patch_tokens: &Tensor, image: &Tensor, train: bool, joint: bool) -> HeadsOutput {
    let encoded = heads.encode(patch_tokens);
    let coarse = heads.coarse_from(&encoded);
    let fine_in = if joint { encoded } else { encoded.detach() };
    let fine = heads.fine_from(&channels_last(&fine_in), &channels_last(image), train);
    HeadsOutput { fine, coarse }
}

/// One optimisation step; returns the loss values.
pub(super) fn train_step(
    cfg: &TrainConfig,
    heads: &Heads,
    adam: &mut Adam,
    batch: &Batch,
    phase: Phase,
) -> Result<LossValues> {
    let l = &cfg.loss;
    let grid = cfg.heads.grid();
    let w = losses::affinity_for(l, &batch.affinity_features);
    let ga = losses::grid_affinity_from_features(
        &batch.affinity_features,
        grid,
        l.features.centered(),
        l.gtv_coarse_tau,
        l.gtv_coarse_eps,
    );
    let (mut terms, coarse) = match phase {
        Phase::Coarse => {
            let coarse = heads.coarse_from(&heads.encode(&batch.tokens));
            (losses::sempart_loss(l, &coarse, &w, &ga, None), coarse)
        }
        Phase::Joint | Phase::Fine => {
            let joint = cfg.schedule.joint;
            let mut out = heads_forward(heads, &batch.tokens, &batch.image, true, joint);
            if phase == Phase::Fine {
                // Frozen coarse branch: its terms are logged but train nothing.
                out.coarse = out.coarse.detach();
            }
            let ia = tch::no_grad(|| {
                let dev = batch.image.device();
                let mean =
                    Tensor::from_slice(&cfg.input.mean).to_kind(Kind::Float).reshape([1, 3, 1, 1]).to_device(dev);
                let std = Tensor::from_slice(&cfg.input.std).to_kind(Kind::Float).reshape([1, 3, 1, 1]).to_device(dev);
                let rgb01 = &batch.image * std + mean;
                losses::grid_affinity_from_image(&(rgb01 * l.gtv_fine_color_scale), l.gtv_fine_sigma)
            });
            let coarse_sr = if joint { out.coarse.shallow_clone() } else { out.coarse.detach() };
            let fine = FineInputs {
                fine: &out.fine,
                coarse_for_sr: &coarse_sr,
                image_affinity: &ia,
                patch: cfg.heads.patch_size,
            };
            let mut terms = losses::sempart_loss(l, &out.coarse, &w, &ga, Some(fine));
            if l.w_fine_pseudo > 0.0 {
                let target =
                    refined_coarse_targets(&cfg.input, &out.coarse.detach(), &batch.image, &l.fine_pseudo_filter())?;
                terms.add_fine_pseudo(&out.fine, &target, l.w_fine_pseudo);
            }
            (terms, out.coarse)
        }
    };
    if let Some(p) = &batch.pseudo {
        terms.add_pseudo(&coarse, p, l.w_pseudo);
    }
    adam.zero_grad();
    terms.total.backward();
    adam.step();
    Ok(terms.values())
}
