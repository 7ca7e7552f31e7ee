//! `sempart segment`: masks, overlays and `boxes.json` for a list of images.

use crate::draw;
use crate::inputs::{collect_inputs, for_each_file, segment_file};
use crate::model_args::{open_model, ModelArgs};
use anyhow::{anyhow, bail, Context, Result};
use sempart::Segmentation;
use serde_json::json;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn boxes_json(seg: &Segmentation) -> serde_json::Value {
    let boxes: Vec<_> = seg
        .components
        .iter()
        .map(|c| json!({"x0": c.x0, "y0": c.y0, "x1": c.x1, "y1": c.y1, "pixels": c.pixel_count}))
        .collect();
    json!({
        "width": seg.width_px,
        "height": seg.height_px,
        "object": seg.object.map(|i| { let c = &seg.components[i]; [c.x0, c.y0, c.x1, c.y1] }),
        "boxes": boxes,
        "timing_ms": seg.timing,
    })
}

pub fn cmd_segment(args: &ModelArgs, out: &Path, with_overlay: bool, inputs: &[PathBuf]) -> Result<bool> {
    let files = collect_inputs(inputs)?;
    if files.is_empty() {
        bail!("no images found in the inputs");
    }
    let model = open_model(args)?;
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let mut results = BTreeMap::new();
    let mut used_stems = std::collections::HashSet::new();
    let failed = for_each_file(&files, |path| {
        let (rgb, seg) = segment_file(&model, path)?;
        let base = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "image".into());
        let mut stem = base.clone();
        let mut k = 1;
        while !used_stems.insert(stem.clone()) {
            k += 1;
            stem = format!("{base}-{k}");
        }
        let mask = image::GrayImage::from_raw(seg.width_px, seg.height_px, seg.fine_mask.clone())
            .ok_or_else(|| anyhow!("mask size mismatch"))?;
        let mask_path = out.join(format!("{stem}.mask.png"));
        mask.save(&mask_path).with_context(|| format!("cannot write {}", mask_path.display()))?;
        if with_overlay {
            let p = out.join(format!("{stem}.overlay.png"));
            draw::overlay(&rgb, &seg).save(&p).with_context(|| format!("cannot write {}", p.display()))?;
        }
        let mut entry = boxes_json(&seg);
        entry["mask"] = json!(format!("{stem}.mask.png"));
        results.insert(path.display().to_string(), entry);
        Ok(())
    });
    let info = model.info();
    let doc = json!({
        "model": {"backbone": info.backbone_name, "backbone_origin": info.backbone_origin},
        "provider": model.provider().name(),
        "images": results,
    });
    let boxes_path = out.join("boxes.json");
    std::fs::write(&boxes_path, serde_json::to_string_pretty(&doc)?)
        .with_context(|| format!("cannot write {}", boxes_path.display()))?;
    println!("segmented {} of {} images into {} ({} failed)", files.len() - failed, files.len(), out.display(), failed);
    Ok(failed == 0)
}
