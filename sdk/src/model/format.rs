//! The Sempart model file: one self-describing ONNX file. This module is the single definition
//! of what the file must contain; the trainer's exporter writes exactly these keys, and
//! `docs/MODEL_FORMAT.md` documents them.
//!
//! Graph interface (format versions 1 and 2):
//! - input `image`: float32 `[N, 3, H, W]`, RGB, normalised as `(v / 255 - mean) / std`;
//! - output `fine`: float32 `[N, 1, H, W]`, the fine branch's probabilities;
//! - output `coarse`: float32 `[N, 1, H / patch, W / patch]`, the coarse branch's probabilities.
//!
//! The probabilities are those of partition "A" of the cut; which partition is the foreground
//! is decided after inference (see [`crate::pipeline::postprocess`]).
//!
//! Integrity (format version 2): the metadata entry [`keys::CONTENT_SHA256`] holds the sha256
//! of the file's bytes with that entry's whole top-level protobuf field (key, length and the
//! entry) cut out. It covers the graph, every initializer and all other metadata; [`seal`]
//! writes it and [`verify_content`] checks it. Version 1 files have no digest and are still
//! read (their integrity is reported as [`Integrity::Unavailable`]).

use crate::error::{Error, Result, Status};
use crate::model::onnx::builder;
use crate::model::onnx::header::OnnxHeader;
use crate::model::onnx::proto::{ModelProto, StringStringEntryProto};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::Path;

/// How the model wants its input: size and per-channel normalisation
/// `(value / 255 - mean) / std`, channels in RGB order.
#[derive(Debug, Clone, PartialEq)]
pub struct InputSpec {
    /// Input width in pixels.
    pub width_px: usize,
    /// Input height in pixels.
    pub height_px: usize,
    /// Per-channel mean (RGB), on the 0..1 scale.
    pub mean: [f32; 3],
    /// Per-channel standard deviation (RGB), on the 0..1 scale.
    pub std: [f32; 3],
}

/// The model format version the trainer writes: 2 (version 1 plus the content digest).
pub const FORMAT_VERSION: u32 = 2;
/// The oldest format version this SDK still reads.
pub const OLDEST_FORMAT_VERSION: u32 = 1;
/// Name of the graph input.
pub const INPUT_NAME: &str = "image";
/// Name of the fine-mask output.
pub const FINE_OUTPUT: &str = "fine";
/// Name of the coarse-mask output.
pub const COARSE_OUTPUT: &str = "coarse";

/// Metadata keys (ONNX `metadata_props`).
pub use super::keys;

/// Numeric precision of a model's weights ([`keys::PRECISION`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Precision {
    /// Float32 throughout: the file the trainer exports, for every provider.
    Fp32,
    /// The linear layers' weights in int8 with dynamically quantised activations
    /// ([`crate::tools::quantize`]): the CPU provider's default.
    Int8,
}

impl Precision {
    /// The metadata value: `fp32` or `int8`.
    pub fn name(self) -> &'static str {
        match self {
            Precision::Fp32 => "fp32",
            Precision::Int8 => "int8",
        }
    }

    /// Parses [`Precision::name`]'s values.
    pub fn parse(text: &str) -> Option<Precision> {
        match text.trim() {
            "fp32" => Some(Precision::Fp32),
            "int8" => Some(Precision::Int8),
            _ => None,
        }
    }
}

/// What is known of a model file's integrity after opening it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Integrity {
    /// The content digest was checked and matches.
    Verified,
    /// The file has a digest, but the caller asked not to check it.
    NotChecked,
    /// A format version 1 file: it has no digest, so nothing could be checked.
    Unavailable,
}

impl Integrity {
    /// Short lowercase name, as `sempart info` prints it.
    pub fn name(self) -> &'static str {
        match self {
            Integrity::Verified => "verified",
            Integrity::NotChecked => "not checked",
            Integrity::Unavailable => "unavailable (format version 1 has no content digest)",
        }
    }
}

/// The sha256 (lowercase hex) of the concatenation of `parts`.
pub fn sha256_hex(parts: &[&[u8]]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// The sha256 (lowercase hex) of `bytes` with the `cut` range left out.
fn digest_without(bytes: &[u8], cut: Option<std::ops::Range<usize>>) -> String {
    match cut {
        Some(r) => sha256_hex(&[&bytes[..r.start], &bytes[r.end..]]),
        None => sha256_hex(&[bytes]),
    }
}

/// Writes a model file: adds (or replaces) the [`keys::CONTENT_SHA256`] entry, last in the
/// metadata, and encodes the model with [`builder::encode`].
pub fn seal(mut model: ModelProto) -> Vec<u8> {
    model.metadata_props.retain(|p| p.key != keys::CONTENT_SHA256);
    let digest = digest_without(&builder::encode(&model), None);
    model.metadata_props.push(StringStringEntryProto { key: keys::CONTENT_SHA256.into(), value: digest });
    builder::encode(&model)
}

/// Checks the content digest of a file whose header says it is of `format_version`. `path`
/// only serves the messages. A version 2 file without a digest, or one whose digest does not
/// match, gives [`Status::ModelIntegrity`].
pub fn verify_content(path: &str, bytes: &[u8], header: &OnnxHeader, format_version: u32) -> Result<Integrity> {
    let Some(range) = header.digest_field.clone() else {
        if format_version >= 2 {
            return Err(Error::new(
                Status::ModelIntegrity,
                format!("{path}: format version {format_version} model without its '{}' entry", keys::CONTENT_SHA256),
            ));
        }
        return Ok(Integrity::Unavailable);
    };
    let stated = &header.metadata[keys::CONTENT_SHA256];
    let actual = digest_without(bytes, Some(range));
    if stated.trim() != actual {
        return Err(Error::new(
            Status::ModelIntegrity,
            format!(
                "{path}: the file's content does not match its digest (stated {stated}, computed {actual}): \
                 it was altered or damaged after export; get a fresh copy"
            ),
        ));
    }
    Ok(Integrity::Verified)
}

/// Reads a model file and validates it: its ONNX header, its metadata and, when
/// `verify_integrity`, its content digest (otherwise a file without a digest is
/// [`Integrity::Unavailable`]). Returns the bytes (what a session is started on) with what the file
/// says about itself. The one place the SDK reads and verifies a model file:
/// [`crate::Segmenter::open`] starts its session on the result. A missing or unreadable file is
/// [`Status::ModelNotFound`].
pub fn read_model(path: &Path, verify_integrity: bool) -> Result<(Vec<u8>, ModelInfo)> {
    let shown = path.display().to_string();
    let bytes = std::fs::read(path)
        .map_err(|e| Error::new(Status::ModelNotFound, format!("cannot read model file {shown}: {e}")))?;
    let info = info_of(&shown, &bytes, verify_integrity)?;
    Ok((bytes, info))
}

/// Reads and validates a whole model file held in memory: its header, its metadata and its
/// content digest. `what` only serves the messages.
pub fn verified_info(what: &str, bytes: &[u8]) -> Result<ModelInfo> {
    info_of(what, bytes, true)
}

fn info_of(what: &str, bytes: &[u8], verify_integrity: bool) -> Result<ModelInfo> {
    let head = crate::model::onnx::header::parse_header(what, bytes)?;
    let mut info = ModelInfo::from_metadata(what, head.metadata.clone())?;
    if verify_integrity {
        info.integrity = verify_content(what, bytes, &head, info.format_version)?;
    } else if head.digest_field.is_none() {
        info.integrity = Integrity::Unavailable;
    }
    Ok(info)
}

/// Everything the file says about itself, validated.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelInfo {
    /// Format version of the file.
    pub format_version: u32,
    /// Input width in pixels.
    pub input_width_px: usize,
    /// Input height in pixels.
    pub input_height_px: usize,
    /// Backbone patch size in pixels.
    pub patch_size_px: usize,
    /// Coarse grid width (input width / patch).
    pub grid_width: usize,
    /// Coarse grid height (input height / patch).
    pub grid_height: usize,
    /// Normalisation mean (RGB).
    pub mean: [f32; 3],
    /// Normalisation standard deviation (RGB).
    pub std: [f32; 3],
    /// Backbone name.
    pub backbone_name: String,
    /// Backbone origin.
    pub backbone_origin: String,
    /// Training provenance (JSON text).
    pub training: String,
    /// Precision of the weights.
    pub precision: Precision,
    /// Every `sempart.*` and other metadata entry of the file, verbatim.
    pub metadata: BTreeMap<String, String>,
    /// Whether the content digest was checked ([`Integrity::NotChecked`] until the file is
    /// opened with the check on).
    pub integrity: Integrity,
}

impl ModelInfo {
    /// Validates the metadata map of a file. `path` only serves the messages.
    pub fn from_metadata(path: &str, metadata: BTreeMap<String, String>) -> Result<ModelInfo> {
        let Some(version) = metadata.get(keys::FORMAT_VERSION) else {
            return Err(Error::new(
                Status::ModelForeign,
                format!(
                    "{path}: valid ONNX file but not a Sempart model (no '{}' metadata entry)",
                    keys::FORMAT_VERSION
                ),
            ));
        };
        let format_version: u32 = version.trim().parse().map_err(|_| {
            Error::new(
                Status::ModelForeign,
                format!("{path}: '{}' is '{version}', not an integer", keys::FORMAT_VERSION),
            )
        })?;
        if !(OLDEST_FORMAT_VERSION..=FORMAT_VERSION).contains(&format_version) {
            return Err(Error::new(
                Status::ModelUnsupportedVersion,
                format!(
                    "{path}: Sempart model format version {format_version}; this SDK ({}) reads versions \
                     {OLDEST_FORMAT_VERSION} to {FORMAT_VERSION}",
                    env!("CARGO_PKG_VERSION")
                ),
            ));
        }
        for key in keys::REQUIRED {
            if !metadata.contains_key(key) {
                return Err(Error::new(
                    Status::ModelForeign,
                    format!("{path}: Sempart model lacks the metadata entry '{key}'"),
                ));
            }
        }
        let foreign = |msg: String| Error::new(Status::ModelForeign, format!("{path}: {msg}"));
        let positive = |key: &str| -> Result<usize> {
            let text = &metadata[key];
            match text.trim().parse::<usize>() {
                Ok(v) if v > 0 && v <= 8192 => Ok(v),
                _ => Err(foreign(format!("'{key}' is '{text}', expected an integer in 1..=8192"))),
            }
        };
        let triple = |key: &str| -> Result<[f32; 3]> {
            let text = &metadata[key];
            let parts: Vec<f32> = text
                .split(',')
                .map(|p| p.trim().parse::<f32>())
                .collect::<std::result::Result<_, _>>()
                .map_err(|_| foreign(format!("'{key}' is '{text}', expected three numbers")))?;
            <[f32; 3]>::try_from(parts).map_err(|_| foreign(format!("'{key}' is '{text}', expected three numbers")))
        };
        let input_width_px = positive(keys::INPUT_WIDTH)?;
        let input_height_px = positive(keys::INPUT_HEIGHT)?;
        let patch_size_px = positive(keys::PATCH_SIZE)?;
        let std = triple(keys::STD)?;
        if std.iter().any(|&s| s.is_nan() || s <= 0.0) {
            return Err(foreign(format!("'{}' must be positive", keys::STD)));
        }
        let precision = match metadata.get(keys::PRECISION) {
            None => Precision::Fp32,
            Some(text) => Precision::parse(text)
                .ok_or_else(|| foreign(format!("'{}' is '{text}', expected fp32 or int8", keys::PRECISION)))?,
        };
        Ok(ModelInfo {
            format_version,
            precision,
            input_width_px,
            input_height_px,
            patch_size_px,
            grid_width: input_width_px / patch_size_px,
            grid_height: input_height_px / patch_size_px,
            mean: triple(keys::MEAN)?,
            std,
            backbone_name: metadata[keys::BACKBONE_NAME].clone(),
            backbone_origin: metadata[keys::BACKBONE_ORIGIN].clone(),
            training: metadata[keys::TRAINING].clone(),
            metadata,
            integrity: Integrity::NotChecked,
        })
    }

    /// The input the model expects.
    pub fn input_spec(&self) -> InputSpec {
        InputSpec { width_px: self.input_width_px, height_px: self.input_height_px, mean: self.mean, std: self.std }
    }
}

/// Environment variable naming the model used when none is given.
pub const MODEL_ENV: &str = "SEMPART_MODEL";
/// File name of the default model (float32: GPU providers).
pub const DEFAULT_MODEL_FILE: &str = "sempart-default.onnx";
/// File name of the default model's int8 variant (the CPU provider's default).
pub const DEFAULT_INT8_MODEL_FILE: &str = "sempart-default-int8.onnx";

/// The default model of the given precision when the caller names none: `$SEMPART_MODEL` if
/// set (whatever its precision); else `../share/sempart/<file>` from the running program (an
/// installed SDK); else `models/<file>` of the source tree the SDK was built from (what
/// `scripts/setup.sh` composes), where `<file>` is [`DEFAULT_MODEL_FILE`] or
/// [`DEFAULT_INT8_MODEL_FILE`]. [`crate::Options::default_precision`] says which precision
/// suits the providers.
pub fn default_model_path(precision: Precision) -> std::path::PathBuf {
    if let Some(p) = std::env::var_os(MODEL_ENV) {
        return p.into();
    }
    let file = match precision {
        Precision::Fp32 => DEFAULT_MODEL_FILE,
        Precision::Int8 => DEFAULT_INT8_MODEL_FILE,
    };
    if let Some(installed) = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|d| d.join("../share/sempart").join(file)))
        .filter(|p| p.is_file())
    {
        return installed;
    }
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../models").join(file)
}
