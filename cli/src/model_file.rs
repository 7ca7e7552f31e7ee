//! `sempart compose` and `sempart quantize`: writing checked model files.

use anyhow::{bail, Context, Result};
use clap::Args;
use std::path::{Path, PathBuf};

/// Where a checked model file goes and what it is checked against (both commands).
#[derive(Args, Clone)]
pub(crate) struct CheckedOutput {
    /// Expected sha256 of the written file: 64 hex digits, or a `sha256sum` file.
    #[arg(long)]
    sha256: Option<String>,
    /// Reference folder (frame.pb, fine.pb, coarse.pb) to check the outputs against: within
    /// sempart::reference::TOLERANCE for a float32 model, on average within
    /// sempart::reference::INT8_MEAN_TOLERANCE for an int8 one.
    #[arg(long)]
    reference: Option<PathBuf>,
    /// Where to write the model.
    #[arg(long)]
    out: PathBuf,
}

/// `--sha256` takes the digest itself or a file in sha256sum's format.
fn expected_sha256(sha256: Option<&str>) -> Result<Option<String>> {
    Ok(match sha256 {
        Some(s) if s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()) => Some(s.to_ascii_lowercase()),
        Some(file) => {
            let text = std::fs::read_to_string(file).with_context(|| format!("reading {file}"))?;
            let digest = text.split_whitespace().next().unwrap_or_default();
            if digest.len() != 64 {
                bail!("{file} does not start with a sha256 digest");
            }
            Some(digest.to_ascii_lowercase())
        }
        None => None,
    })
}

fn print_report(what: &str, out: &Path, report: &sempart::compose::ComposeReport, expected: bool) {
    println!("{what} {} ({} bytes): content digest verified", out.display(), report.bytes);
    if expected {
        println!("sha256 {} (matches the expected checksum)", report.sha256);
    } else {
        println!("sha256 {}", report.sha256);
    }
    if let Some(d) = report.reference {
        println!(
            "reference frame: |difference| fine max {:.2e} mean {:.2e}, coarse max {:.2e} mean {:.2e} (within \
             tolerance: max {:e} for float32 models, mean {:e} for int8)",
            d.fine,
            d.fine_mean,
            d.coarse,
            d.coarse_mean,
            sempart::reference::TOLERANCE,
            sempart::reference::INT8_MEAN_TOLERANCE
        );
    }
}

pub(crate) fn cmd_compose(template: &Path, backbone: &Path, output: &CheckedOutput) -> Result<()> {
    let expected = expected_sha256(output.sha256.as_deref())?;
    let out = &output.out;
    let report =
        sempart::compose::compose_file(template, backbone, out, expected.as_deref(), output.reference.as_deref())?;
    print_report("composed", out, &report, expected.is_some());
    Ok(())
}

pub(crate) fn cmd_quantize(model: &Path, output: &CheckedOutput) -> Result<()> {
    let expected = expected_sha256(output.sha256.as_deref())?;
    let reference = output.reference.as_deref().map(sempart::reference::Reference::read).transpose()?;
    // The float model is read once; its content digest is checked before it is quantised.
    let bytes = std::fs::read(model).with_context(|| format!("reading {}", model.display()))?;
    sempart::model_format::verified_info(&model.display().to_string(), &bytes)?;
    let (int8, stats) = sempart::quantize::quantize_int8(&bytes, sempart::quantize::MIN_QUANTIZED_ELEMENTS)?;
    let report = sempart::compose::write_checked(&int8, &output.out, expected.as_deref(), reference.as_ref())?;
    println!(
        "fused {} attentions; quantised {} MatMul weights ({:.1} MB float32 -> {:.1} MB int8 and scales)",
        stats.attentions,
        stats.matmuls,
        stats.float_bytes as f64 / 1e6,
        stats.int8_bytes as f64 / 1e6
    );
    print_report("wrote", &output.out, &report, expected.is_some());
    Ok(())
}
