//! Progress of the trainer's long stages (feature extraction, self-training targets, steps):
//! a redrawn bar on a terminal, plain lines with the rate and an ETA every
//! [`LINE_INTERVAL`] when stderr is a file or a pipe (a run under `nohup`, CI or a job
//! scheduler), or nothing.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How often a [`Progress`] writes a line when stderr is not a terminal.
pub const LINE_INTERVAL: Duration = Duration::from_secs(30);

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgressMode {
    /// Nothing.
    Hidden,
    /// An `indicatif` bar on stderr, redrawn in place.
    Bar,
    /// One line on stderr at most every this long, and one when the stage ends.
    Lines(Duration),
}

impl ProgressMode {
    /// `Hidden` when not `visible`; else a bar when stderr is a terminal and lines every
    /// [`LINE_INTERVAL`] when it is not.
    pub fn for_stderr(visible: bool) -> ProgressMode {
        if !visible {
            ProgressMode::Hidden
        } else if std::io::stderr().is_terminal() {
            ProgressMode::Bar
        } else {
            ProgressMode::Lines(LINE_INTERVAL)
        }
    }
}

/// The progress of one stage of `len` units.
#[derive(Debug)]
pub struct Progress {
    bar: Option<indicatif::ProgressBar>,
    lines: Option<Mutex<Lines>>,
}

#[derive(Debug)]
struct Lines {
    what: String,
    len: u64,
    pos: u64,
    /// Position and time the rate is measured from (the first position set, so a resumed
    /// stage's ETA counts only this run's speed).
    origin: (u64, Instant),
    interval: Duration,
    last: Instant,
    message: String,
}

impl Progress {
    /// A stage called `what` of `len` units, shown as `mode` says.
    pub fn new(len: u64, mode: ProgressMode, what: &str) -> Progress {
        match mode {
            ProgressMode::Hidden => Progress { bar: None, lines: None },
            ProgressMode::Bar => {
                let bar = indicatif::ProgressBar::new(len);
                let style = indicatif::ProgressStyle::with_template(&format!(
                    "{what} {{bar:30}} {{pos}}/{{len}} [{{elapsed_precise}}<{{eta_precise}}] {{msg}}"
                ))
                .expect("valid template");
                bar.set_style(style);
                Progress { bar: Some(bar), lines: None }
            }
            ProgressMode::Lines(interval) => {
                let now = Instant::now();
                let lines = Lines {
                    what: what.to_string(),
                    len,
                    pos: 0,
                    origin: (0, now),
                    interval,
                    last: now,
                    message: String::new(),
                };
                Progress { bar: None, lines: Some(Mutex::new(lines)) }
            }
        }
    }

    /// Advances by `n` units.
    pub fn inc(&self, n: u64) {
        if let Some(b) = &self.bar {
            b.inc(n);
        }
        self.with_lines(|l| {
            l.pos += n;
            l.maybe_print(false);
        });
    }

    /// Sets the position (a resumed stage starts where it stopped).
    pub fn set_position(&self, pos: u64) {
        if let Some(b) = &self.bar {
            b.set_position(pos);
        }
        self.with_lines(|l| {
            if l.pos == 0 && l.origin.0 == 0 {
                l.origin = (pos, Instant::now());
            }
            l.pos = pos;
        });
    }

    /// The text after the counts (rates, losses).
    pub fn set_message(&self, message: String) {
        if let Some(b) = &self.bar {
            b.set_message(message);
        } else {
            self.with_lines(|l| l.message = message);
        }
    }

    /// Prints a line above the bar, or on its own.
    pub fn println(&self, line: &str) {
        match &self.bar {
            Some(b) => b.println(line),
            None if self.lines.is_some() => eprintln!("{line}"),
            None => {}
        }
    }

    /// Ends the stage: the bar is cleared; in lines mode a last line says where it ended.
    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
        self.with_lines(|l| l.maybe_print(true));
    }

    fn with_lines(&self, f: impl FnOnce(&mut Lines)) {
        if let Some(m) = &self.lines {
            f(&mut m.lock().unwrap_or_else(|e| e.into_inner()));
        }
    }
}

impl Lines {
    fn maybe_print(&mut self, last: bool) {
        let now = Instant::now();
        if !last && now.duration_since(self.last) < self.interval {
            return;
        }
        self.last = now;
        let elapsed = now.duration_since(self.origin.1);
        let done = self.pos.saturating_sub(self.origin.0);
        eprintln!("{}", progress_line(&self.what, self.pos, self.len, done, elapsed, &self.message));
    }
}

/// One progress line: `what pos/len (pct), rate/s, elapsed E, ETA T: message`, where the rate
/// is `done` units over `elapsed` and the ETA the rest of `len` at that rate.
pub fn progress_line(what: &str, pos: u64, len: u64, done: u64, elapsed: Duration, message: &str) -> String {
    let pct = if len == 0 { 100.0 } else { 100.0 * pos as f64 / len as f64 };
    let secs = elapsed.as_secs_f64();
    let mut line = format!("{what} {pos}/{len} ({pct:.1}%), elapsed {}", clock(secs));
    if done > 0 && secs > 0.0 {
        let rate = done as f64 / secs;
        let eta = len.saturating_sub(pos) as f64 / rate;
        line.push_str(&format!(", {rate:.2}/s, ETA {}", clock(eta)));
    }
    if !message.is_empty() {
        line.push_str(": ");
        line.push_str(message);
    }
    line
}

/// `h:mm:ss` of a number of seconds (rounded down).
fn clock(secs: f64) -> String {
    let s = secs.max(0.0) as u64;
    format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_give_the_rate_and_the_time_left() {
        let l = progress_line("features", 250, 1000, 200, Duration::from_secs(100), "2.00 img/s");
        assert_eq!(l, "features 250/1000 (25.0%), elapsed 0:01:40, 2.00/s, ETA 0:06:15: 2.00 img/s");
        // Nothing done yet: no rate, no ETA.
        assert_eq!(progress_line("train", 0, 10, 0, Duration::ZERO, ""), "train 0/10 (0.0%), elapsed 0:00:00");
        assert_eq!(clock(3725.9), "1:02:05");
    }

    #[test]
    fn hidden_progress_accepts_every_call() {
        let p = Progress::new(3, ProgressMode::Hidden, "x");
        p.set_position(1);
        p.inc(1);
        p.set_message("m".into());
        p.println("line");
        p.finish();
    }
}
