//! `sempart eval-video`: J and flicker of video sequences, segmented per frame and as streams
//! of several temporal-stability settings, with the same model in the same run.

use crate::inputs::{collect_inputs, progress};
use crate::model_args::{open_model, ModelArgs};
use anyhow::{bail, Context, Result};
use sempart::eval::video::{evaluate_sequence, Scores, SequenceReport};
use sempart::StreamOptions;
use serde_json::json;
use std::path::Path;

/// The mean of J, flicker and resets over the sequences for one setting.
fn mean<'r>(reports: &'r [SequenceReport], pick: impl Fn(&'r SequenceReport) -> &'r Scores) -> (f64, f64, f64) {
    let n = reports.len().max(1) as f64;
    let (j, f, r) =
        reports.iter().map(pick).fold((0.0, 0.0, 0.0), |(j, f, r), x| (j + x.j, f + x.flicker, r + x.resets as f64));
    (j / n, f / n, r / n)
}

fn label(o: &StreamOptions) -> String {
    format!("s{} h{} m{}", o.strength, o.hysteresis, o.motion_threshold)
}

pub fn cmd_eval_video(args: &ModelArgs, sequences: &Path, settings: &[StreamOptions], as_json: bool) -> Result<()> {
    let mut names: Vec<String> = std::fs::read_dir(sequences)
        .with_context(|| format!("reading {}", sequences.display()))?
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("images").is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    if names.is_empty() {
        bail!("no sequence (a folder with images/ and masks/) in {}", sequences.display());
    }
    let model = open_model(args)?;
    let bar = progress(names.len());
    let mut reports = Vec::new();
    for name in &names {
        bar.set_message(name.clone());
        let dir = sequences.join(name);
        let images = collect_inputs(&[dir.join("images")])?;
        reports.push(evaluate_sequence(&model, name, &images, &dir.join("masks"), settings)?);
        bar.inc(1);
    }
    bar.finish_and_clear();
    let per_frame = mean(&reports, |r| &r.per_frame);
    let streams: Vec<(f64, f64, f64)> = (0..settings.len()).map(|k| mean(&reports, |r| &r.streams[k])).collect();
    if as_json {
        let doc = json!({
            "sequences": reports,
            "settings": settings.iter().map(|o| json!({"strength": o.strength, "hysteresis": o.hysteresis,
                "motion_threshold": o.motion_threshold, "scene_cut_threshold": o.scene_cut_threshold})).collect::<Vec<_>>(),
            "mean": {
                "per_frame": {"j": per_frame.0, "flicker": per_frame.1},
                "streams": streams.iter().map(|m| json!({"j": m.0, "flicker": m.1, "resets": m.2})).collect::<Vec<_>>(),
            },
            "provider": model.provider().name(),
        });
        println!("{}", serde_json::to_string_pretty(&doc)?);
        return Ok(());
    }
    let cell = |s: &Scores| format!("{:>7.3} / {:.3}", s.j, s.flicker);
    println!("{:<20} {:>6}  {:>17}  stream settings: J / flicker", "sequence", "frames", "per frame J / fl.");
    for r in &reports {
        let cells: Vec<String> = r.streams.iter().map(cell).collect();
        println!("{:<20} {:>6}  {:>17}  {}", r.name, r.frames, cell(&r.per_frame), cells.join("  "));
    }
    println!("mean over {} sequences:", reports.len());
    println!("  per frame            J {:.3}  flicker {:.3}", per_frame.0, per_frame.1);
    for (o, m) in settings.iter().zip(&streams) {
        println!("  stream {:<14}  J {:.3}  flicker {:.3}  resets {:.1}", label(o), m.0, m.1, m.2);
    }
    Ok(())
}
