//! TokenCut on the tokens of each backbone layer: does an intermediate layer give better
//! self-training targets than the final tokens the recipe uses?
//!
//! For every image of a labelled folder (`images/` + `masks/`) the backbone of
//! `models/default/config.toml` runs at its input size; TokenCut (corner rule, all components)
//! cuts the patch graph of each variant's tokens at several thresholds, and the 0/1 grid mask is
//! scored by the spec's protocol, resized bilinearly ("raw", the TokenCut baseline) and refined
//! by the SDK's default guided filter ("refined"). Variants: `L<i>` the output of block `i`
//! (0-based, before any norm), `L11n` the final tokens (block 11 + the final LayerNorm, what the
//! recipe uses), `A+B` both unit-normalised and concatenated.
//!
//! Run from the repository root (about 1.4 s per image on 2 cores):
//!     cargo run --release -p trainer --example tokencut_layers -- ../shared/data/horses [LIMIT]

use anyhow::{bail, Context, Result};
use sempart::metrics::SaliencyMetrics;
use sempart::refine::{refine_to_frame, GuidedFilter};
use sempart::resize::resize_bilinear;
use std::path::{Path, PathBuf};
use tch::Tensor;
use trainer::config::TrainConfig;
use trainer::data::{list_labelled, mask_and_guide, preprocess};
use trainer::tokencut::{tokencut, TokenCutConfig};

/// A token variant: its name and the blocks whose outputs it concatenates, each with or without
/// the final LayerNorm.
struct Variant {
    name: &'static str,
    layers: &'static [(usize, bool)],
}

const VARIANTS: &[Variant] = &[
    Variant { name: "L11n", layers: &[(11, true)] },
    Variant { name: "L5", layers: &[(5, false)] },
    Variant { name: "L7", layers: &[(7, false)] },
    Variant { name: "L8", layers: &[(8, false)] },
    Variant { name: "L9", layers: &[(9, false)] },
    Variant { name: "L10", layers: &[(10, false)] },
    Variant { name: "L11", layers: &[(11, false)] },
    Variant { name: "L8+L11n", layers: &[(8, false), (11, true)] },
    Variant { name: "L9+L11n", layers: &[(9, false), (11, true)] },
];

const TAUS: [f64; 4] = [0.2, 0.3, 0.4, 0.5];

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (data, limit) = match args.as_slice() {
        [d] => (PathBuf::from(d), None),
        [d, n] => (PathBuf::from(d), Some(n.parse::<usize>().with_context(|| format!("LIMIT {n:?} is not a count"))?)),
        _ => bail!("usage: tokencut_layers LABELLED_DIR [LIMIT]"),
    };
    let cfg = TrainConfig::load(Path::new("models/default/config.toml"), &[])?;
    let backbone = trainer::train::load_backbone_for(&cfg)?;
    let depth = backbone.vit.config().depth as usize;
    if VARIANTS.iter().flat_map(|v| v.layers).any(|&(i, _)| i >= depth) {
        bail!("the backbone has {depth} blocks; this probe reads blocks up to 11");
    }
    let spec = cfg.input_spec();
    let set = list_labelled(&data, limit)?;
    if set.is_empty() {
        bail!("no labelled images in {}", data.display());
    }
    let refine = GuidedFilter::DEFAULT;
    let (gh, gw) = cfg.heads.grid();
    let (gh, gw) = (gh as usize, gw as usize);
    let mut scores: Vec<[(SaliencyMetrics, SaliencyMetrics); 4]> =
        VARIANTS.iter().map(|_| std::array::from_fn(|_| (SaliencyMetrics::new(), SaliencyMetrics::new()))).collect();
    for (k, l) in set.iter().enumerate() {
        let Some(((gt, mw, mh), Some(guide))) = mask_and_guide(l, &refine) else { continue };
        let input = preprocess(&l.image.load()?, &spec, false)?;
        let x = Tensor::from_slice(&input).reshape([1, 3, spec.height_px as i64, spec.width_px as i64]);
        let hidden = tch::no_grad(|| backbone.vit.forward_hidden(&x));
        let frame = guide.frame()?;
        for (v, per_tau) in VARIANTS.iter().zip(scores.iter_mut()) {
            let parts: Vec<Tensor> = v
                .layers
                .iter()
                .map(|&(i, norm)| {
                    let h = if norm { backbone.vit.final_norm(&hidden[i]) } else { hidden[i].shallow_clone() };
                    let p = h.narrow(1, 1, (gh * gw) as i64).squeeze_dim(0);
                    let len = p.norm_scalaropt_dim(2.0, [1i64].as_slice(), true).clamp_min(1e-8);
                    p / len
                })
                .collect();
            let tokens = Tensor::cat(&parts, 1);
            for (&tau, (raw, refined)) in TAUS.iter().zip(per_tau.iter_mut()) {
                let cut =
                    tokencut(&tokens, (gh as i64, gw as i64), &TokenCutConfig { tau, ..TokenCutConfig::default() })?;
                let p = cut.probability();
                raw.add(&resize_bilinear(&p, gw, gh, mw, mh), &gt);
                refined.add(&refine_to_frame(&frame, None, &p, gw, gh, (spec.width_px, spec.height_px), &refine), &gt);
            }
        }
        if k % 50 == 0 {
            eprintln!("{k}/{}", set.len());
        }
    }
    println!("TokenCut per layer, {} ({} images), IoU / maxF", data.display(), set.len());
    for (v, per_tau) in VARIANTS.iter().zip(&scores) {
        for (tau, (raw, refined)) in TAUS.iter().zip(per_tau) {
            let (a, b) = (raw.finish(), refined.finish());
            println!(
                "{:8} tau {tau:.1}: raw {:.3} / {:.3}, refined {:.3} / {:.3}",
                v.name, a.iou, a.maxf, b.iou, b.maxf
            );
        }
    }
    Ok(())
}
