//! The images a command reads: files and folders named on the command line, decoding, and
//! the progress bar over them.

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use sempart::{Frame, PixelFormat, Segmentation, Segmenter};
use std::path::{Path, PathBuf};

const IMAGE_EXTENSIONS: [&str; 8] = ["jpg", "jpeg", "png", "bmp", "tif", "tiff", "webp", "ppm"];

pub fn is_image(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

/// Files named on the command line, and the images inside named folders (sorted).
pub fn collect_inputs(inputs: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for input in inputs {
        if input.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(input)
                .with_context(|| format!("reading folder {}", input.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_file() && is_image(p))
                .collect();
            found.sort();
            out.extend(found);
        } else {
            out.push(input.clone());
        }
    }
    Ok(out)
}

pub fn segment_file(model: &Segmenter, path: &Path) -> Result<(image::RgbImage, Segmentation)> {
    let rgb = sempart::files::decode::load_rgb(path)?;
    let (w, h) = rgb.dimensions();
    let frame = Frame::new(rgb.as_raw(), w, h, w as usize * 3, PixelFormat::Rgb8)?;
    let seg = model.segment(&frame)?;
    Ok((rgb, seg))
}

pub fn progress(n: usize) -> ProgressBar {
    let bar = if n > 1 { ProgressBar::new(n as u64) } else { ProgressBar::hidden() };
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} {elapsed_precise} eta {eta} {msg}")
            .expect("valid progress template"),
    );
    bar
}

/// Runs `work` on every file under a progress bar; a failure is reported in one line and the
/// file skipped. Returns the number of failures.
pub fn for_each_file(files: &[PathBuf], mut work: impl FnMut(&Path) -> Result<()>) -> usize {
    let bar = progress(files.len());
    let mut failed = 0;
    for path in files {
        bar.set_message(path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default());
        if let Err(e) = work(path) {
            failed += 1;
            bar.suspend(|| eprintln!("sempart: skipped {}: {e:#}", path.display()));
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    failed
}
