//! `sempart eval-video`: J and flicker of video sequences, segmented per frame and as streams
//! of several temporal-stability strengths, with the same model in the same run.

use crate::inputs::{collect_inputs, progress};
use crate::model_args::{open_model, ModelArgs};
use anyhow::{bail, Context, Result};
use sempart::eval::video::{evaluate_sequence, Scores, SequenceReport};
use serde_json::json;
use std::path::Path;

/// The mean of J, flicker and resets over the sequences for one setting.
fn mean(reports: &[SequenceReport], pick: impl Fn(&SequenceReport) -> &Scores) -> (f64, f64, f64) {
    let n = reports.len().max(1) as f64;
    let s = reports.iter().map(&pick);
    let (j, f, r) = s.fold((0.0, 0.0, 0.0), |(j, f, r), x| (j + x.j, f + x.flicker, r + x.resets as f64));
    (j / n, f / n, r / n)
}

pub fn cmd_eval_video(
    args: &ModelArgs,
    sequences: &Path,
    strengths: &[f32],
    base: sempart::StreamOptions,
    as_json: bool,
) -> Result<()> {
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
        reports.push(evaluate_sequence(&model, name, &images, &dir.join("masks"), strengths, base)?);
        bar.inc(1);
    }
    bar.finish_and_clear();
    let per_frame = mean(&reports, |r| &r.per_frame);
    let streams: Vec<(f32, (f64, f64, f64))> =
        strengths.iter().enumerate().map(|(k, &s)| (s, mean(&reports, |r| &r.streams[k].1))).collect();
    if as_json {
        let doc = json!({
            "sequences": reports,
            "mean": {
                "per_frame": {"j": per_frame.0, "flicker": per_frame.1},
                "streams": streams.iter().map(|(s, m)| json!({"strength": s, "j": m.0, "flicker": m.1, "resets": m.2})).collect::<Vec<_>>(),
            },
            "provider": model.provider().name(),
        });
        println!("{}", serde_json::to_string_pretty(&doc)?);
        return Ok(());
    }
    let header: Vec<String> = strengths.iter().map(|s| format!("  stream {s:<4} J / flicker")).collect();
    println!("{:<20} {:>6}  per frame J / flicker{}", "sequence", "frames", header.join(""));
    for r in &reports {
        let cells: Vec<String> =
            r.streams.iter().map(|(_, s)| format!("  {:>8.3} / {:.3}      ", s.j, s.flicker)).collect();
        println!(
            "{:<20} {:>6}  {:>9.3} / {:.3}    {}",
            r.name,
            r.frames,
            r.per_frame.j,
            r.per_frame.flicker,
            cells.join("")
        );
    }
    let cells: Vec<String> = streams.iter().map(|(_, m)| format!("  {:>8.3} / {:.3}      ", m.0, m.1)).collect();
    println!("{:<20} {:>6}  {:>9.3} / {:.3}    {}", "mean", "", per_frame.0, per_frame.1, cells.join(""));
    Ok(())
}
