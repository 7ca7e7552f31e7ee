//! `sempart info`, `sempart eval` and `sempart corloc`: what a model is and how well it scores.

use crate::inputs::{collect_inputs, progress};
use crate::model_args::{model_path, open_model, options, ModelArgs};
use anyhow::{bail, Context, Result};
use sempart::{metrics, Options};
use serde_json::json;
use std::path::Path;

pub fn cmd_info(args: &ModelArgs, as_json: bool) -> Result<()> {
    let model = open_model(args)?;
    let path = model_path(args, &options(args)?);
    let options = Options::default();
    let available: Vec<&str> = sempart::runtime::available_providers(&options)?.iter().map(|p| p.name()).collect();
    let info = model.info();
    if as_json {
        let doc = json!({"sdk_version": sempart::VERSION, "model_path": path.display().to_string(), "info": info, "providers_available": available, "provider_in_use": model.provider().name()});
        println!("{}", serde_json::to_string_pretty(&doc)?);
        return Ok(());
    }
    println!("sempart SDK {}", sempart::VERSION);
    println!("model file       {}", path.display());
    println!("format version   {}", info.format_version);
    println!("precision        {}", info.precision.name());
    println!(
        "input            {}x{} px, patch {} px, grid {}x{}",
        info.input_width_px, info.input_height_px, info.patch_size_px, info.grid_width, info.grid_height
    );
    println!("normalisation    mean {:?} std {:?}", info.mean, info.std);
    println!("backbone         {}", info.backbone_name);
    println!("backbone origin  {}", info.backbone_origin);
    println!("training         {}", info.training);
    println!("integrity        {}", info.integrity.name());
    println!("providers        available: {}; in use: {}", available.join(", "), model.provider().name());
    Ok(())
}

pub fn cmd_eval(
    args: &ModelArgs,
    images: &Path,
    masks: &Path,
    as_json: bool,
    limit: Option<usize>,
    boxes_out: Option<&Path>,
    peer: Option<&Path>,
) -> Result<bool> {
    let mut files = collect_inputs(&[images.to_path_buf()])?;
    if let Some(n) = limit {
        files.truncate(n);
    }
    if files.is_empty() {
        bail!("no images in {}", images.display());
    }
    let model = open_model(args)?;
    let peer = peer
        .map(|p| sempart::peer::PeerModel::open(p, &options(args)?).with_context(|| format!("peer {}", p.display())))
        .transpose()?;
    let bar = progress(files.len());
    let report = sempart::evaluate::evaluate(&model, &files, masks, |_| bar.inc(1))?;
    bar.finish_and_clear();
    for (path, why) in &report.failed {
        eprintln!("sempart: skipped {}: {why}", path.display());
    }
    // The peer's input size ("WxH") with its report.
    let peer_report = match &peer {
        Some(p) => {
            let bar = progress(files.len());
            let r = sempart::evaluate::evaluate_peer(p, &files, masks, |_| bar.inc(1))?;
            bar.finish_and_clear();
            for (path, why) in &r.failed {
                eprintln!("sempart: peer skipped {}: {why}", path.display());
            }
            let (w, h) = p.input_size();
            Some((format!("{w}x{h}"), r))
        }
        None => None,
    };
    if let Some(p) = boxes_out {
        report.boxes.save(p)?;
    }
    let (f, c, loc) = (&report.fine, &report.coarse, &report.corloc);
    let failed = report.failed.len();
    let peer_failed = peer_report.as_ref().map_or(0, |(_, r)| r.failed.len());
    let median = report.latency_ms_median;
    if as_json {
        let mut doc = json!({
            "n": f.n,
            "fine.acc": f.acc, "fine.iou": f.iou, "fine.maxf": f.maxf,
            "coarse.acc": c.acc, "coarse.iou": c.iou, "coarse.maxf": c.maxf,
            "corloc": loc.corloc_percent,
            "latency_ms_median": median,
            "failed": failed,
            "provider": model.provider().name(),
            "backbone": model.info().backbone_name,
            "refine_radius": model.refine().radius,
            "refine_eps": model.refine().eps,
        });
        if let Some((input, r)) = &peer_report {
            doc["peer.acc"] = json!(r.map.acc);
            doc["peer.iou"] = json!(r.map.iou);
            doc["peer.maxf"] = json!(r.map.maxf);
            doc["peer.n"] = json!(r.map.n);
            doc["peer.failed"] = json!(peer_failed);
            doc["peer.input"] = json!(input);
            doc["peer.latency_ms_median"] = json!(r.latency_ms_median);
        }
        println!("{}", serde_json::to_string(&doc)?);
    } else {
        println!("images           {} ({} failed)", f.n, failed);
        println!("fine             Acc {:.3}  IoU {:.3}  maxF {:.3}", f.acc, f.iou, f.maxf);
        println!("coarse           Acc {:.3}  IoU {:.3}  maxF {:.3}", c.acc, c.iou, c.maxf);
        println!("CorLoc (masks)   {:.2} ({}/{})", loc.corloc_percent, loc.correct, loc.total);
        println!("latency median   {median:.1} ms ({})", model.provider().name());
        let r = model.refine();
        println!("refinement       radius {} eps {} (model-input pixels; 0: off)", r.radius, r.eps);
        if let Some((input, r)) = &peer_report {
            let m = &r.map;
            println!("peer ({input})     Acc {:.3}  IoU {:.3}  maxF {:.3}  ({} images)", m.acc, m.iou, m.maxf, m.n);
            println!("peer latency     {:.1} ms", r.latency_ms_median);
        }
    }
    Ok(failed == 0 && peer_failed == 0)
}

pub fn cmd_corloc(gt: &Path, pred: &Path, as_json: bool) -> Result<()> {
    let gt = metrics::load_corloc_gt(gt)?;
    let pred = metrics::load_box_predictions(pred)?;
    let score = gt.score(&pred);
    if as_json {
        println!("{}", serde_json::to_string(&score)?);
    } else {
        println!(
            "CorLoc {:.2} ({}/{}, {} images without a prediction)",
            score.corloc_percent, score.correct, score.total, score.missing
        );
    }
    Ok(())
}
