//! The run's two JSON-lines logs (`log.jsonl`, one [`StepRecord`] per step; `val.jsonl`, one
//! [`ValRecord`] per validation): their records, and opening them for a fresh or a resumed run.

use super::evaluation::HeadsScores;
use super::schedule::Phase;
use crate::data;
use crate::losses::LossValues;
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io::Write;
use std::path::Path;

/// File name of the step log inside `out_dir`.
pub const LOG_FILE: &str = "log.jsonl";
/// File name of the validation log inside `out_dir`.
pub const VAL_LOG_FILE: &str = "val.jsonl";

/// One line of `log.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    /// Global step number (1-based).
    pub step: u64,
    /// Epoch (0-based).
    pub epoch: u64,
    /// Phase.
    pub phase: Phase,
    /// Loss terms (unweighted) and the weighted total.
    #[serde(flatten)]
    pub losses: LossValues,
    /// Learning rate.
    pub lr: f64,
    /// Images in the batch.
    pub batch: usize,
    /// Wall time of the step (data loading included), seconds.
    pub seconds: f64,
}

/// One line of `val.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ValRecord {
    /// Epochs completed.
    pub epoch: u64,
    /// Global step.
    pub step: u64,
    /// Scores.
    #[serde(flatten)]
    pub scores: HeadsScores,
    /// Wall time of the evaluation, seconds.
    pub seconds: f64,
}

impl StepRecord {
    /// The progress bar's line for this step.
    pub(super) fn progress_message(&self) -> String {
        let v = &self.losses;
        let opt = |x: Option<f64>| x.map_or_else(|| "-".to_string(), |x| format!("{x:.4}"));
        format!(
            "ep {} {:?} ncut {:.4} gtvc {:.4} sr {} gtvf {} pseudo {} total {:.4}",
            self.epoch,
            self.phase,
            v.ncut,
            v.gtv_coarse,
            opt(v.sr),
            opt(v.gtv_fine),
            opt(v.pseudo),
            v.total
        )
    }
}

/// The two logs of a run, open for appending.
pub(super) struct RunLogs {
    steps: File,
    validation: File,
}

impl RunLogs {
    /// Empties (or creates) both logs in `out_dir`: a run that starts afresh.
    pub(super) fn fresh(out_dir: &Path) -> Result<RunLogs> {
        for name in [LOG_FILE, VAL_LOG_FILE] {
            let path = out_dir.join(name);
            std::fs::write(&path, b"").with_context(|| format!("creating {}", path.display()))?;
        }
        Self::open(out_dir)
    }

    /// Keeps the lines of both logs up to `global_step` (those after it belong to steps the
    /// resumed run repeats) and opens them.
    pub(super) fn resumed(out_dir: &Path, global_step: u64) -> Result<RunLogs> {
        for name in [LOG_FILE, VAL_LOG_FILE] {
            truncate_log(&out_dir.join(name), global_step)?;
        }
        Self::open(out_dir)
    }

    fn open(out_dir: &Path) -> Result<RunLogs> {
        let append = |name: &str| -> Result<File> {
            let path = out_dir.join(name);
            std::fs::OpenOptions::new()
                .append(true)
                .create(true)
                .open(&path)
                .with_context(|| format!("opening {}", path.display()))
        };
        Ok(RunLogs { steps: append(LOG_FILE)?, validation: append(VAL_LOG_FILE)? })
    }

    /// Appends one step.
    pub(super) fn step(&mut self, record: &StepRecord) -> Result<()> {
        append_line(&mut self.steps, record)
    }

    /// Appends one validation.
    pub(super) fn validation(&mut self, record: &ValRecord) -> Result<()> {
        append_line(&mut self.validation, record)
    }
}

/// Keeps the JSON lines of a log whose `step` is at most `max_step` (for resume).
fn truncate_log(path: &Path, max_step: u64) -> Result<()> {
    if !path.is_file() {
        return Ok(());
    }
    let text = std::fs::read_to_string(path)?;
    let mut out = String::new();
    for line in text.lines() {
        let keep = serde_json::from_str::<serde_json::Value>(line)
            .ok()
            .and_then(|v| v.get("step").and_then(|s| s.as_u64()))
            .is_some_and(|s| s <= max_step);
        if keep {
            out.push_str(line);
            out.push('\n');
        }
    }
    Ok(data::write_atomic(path, out.as_bytes())?)
}

fn append_line<T: Serialize>(file: &mut File, v: &T) -> Result<()> {
    let mut line = serde_json::to_string(v)?;
    line.push('\n');
    file.write_all(line.as_bytes())?;
    file.flush()?;
    Ok(())
}

/// One line per phase of `steps`: how many steps ran and the minutes each 1,000 of them took
/// (the steps' own wall times, data loading included).
pub fn phase_costs(steps: &[StepRecord]) -> Vec<String> {
    let mut out = Vec::new();
    for phase in [Phase::Coarse, Phase::Joint, Phase::Fine] {
        let (n, secs) =
            steps.iter().filter(|r| r.phase == phase).fold((0u64, 0f64), |(n, s), r| (n + 1, s + r.seconds));
        if n > 0 {
            out.push(format!(
                "{phase:?} phase: {n} steps in {secs:.0} s, {:.1} min per 1,000 steps",
                secs / 60.0 * 1000.0 / n as f64
            ));
        }
    }
    out
}
