//! `sempart compose` and `sempart quantize`: writing checked model files.

use anyhow::{bail, Context, Result};
use sempart::{GuidedFilter, Options, Segmenter};
use std::path::Path;

/// `--sha256` takes the digest itself or a file in sha256sum's format.
pub(crate) fn expected_sha256(sha256: Option<&str>) -> Result<Option<String>> {
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

pub(crate) fn print_report(what: &str, out: &Path, report: &sempart::compose::ComposeReport, expected: bool) {
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

pub(crate) fn cmd_compose(
    template: &Path,
    backbone: &Path,
    sha256: Option<&str>,
    reference: Option<&Path>,
    out: &Path,
) -> Result<()> {
    let expected = expected_sha256(sha256)?;
    let report = sempart::compose::compose_file(template, backbone, out, expected.as_deref(), reference)?;
    print_report("composed", out, &report, expected.is_some());
    Ok(())
}

pub(crate) fn cmd_quantize(model: &Path, sha256: Option<&str>, reference: Option<&Path>, out: &Path) -> Result<()> {
    let expected = expected_sha256(sha256)?;
    let reference = reference.map(sempart::reference::Reference::read).transpose()?;
    // Open the float model first: its content digest is checked before it is read again.
    Segmenter::open(model, &Options { refine: GuidedFilter::OFF, ..Options::default() })?;
    let bytes = std::fs::read(model).with_context(|| format!("reading {}", model.display()))?;
    let (int8, stats) = sempart::quantize::quantize_int8(&bytes, sempart::quantize::MIN_QUANTIZED_ELEMENTS)?;
    let report = sempart::compose::write_checked(&int8, out, expected.as_deref(), reference.as_ref())?;
    println!(
        "fused {} attentions; quantised {} MatMul weights ({:.1} MB float32 -> {:.1} MB int8 and scales)",
        stats.attentions,
        stats.matmuls,
        stats.float_bytes as f64 / 1e6,
        stats.int8_bytes as f64 / 1e6
    );
    print_report("wrote", out, &report, expected.is_some());
    Ok(())
}
