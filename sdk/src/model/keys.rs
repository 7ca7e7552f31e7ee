//! The model file's metadata keys (ONNX `metadata_props`): the names both the format's
//! validation ([`crate::model::format`]) and the header reader ([`crate::model::onnx::header`]) use.

/// Format version, a decimal integer ([`crate::model::format::FORMAT_VERSION`]).
pub const FORMAT_VERSION: &str = "sempart.format_version";
/// Input width in pixels.
pub const INPUT_WIDTH: &str = "sempart.input_width";
/// Input height in pixels.
pub const INPUT_HEIGHT: &str = "sempart.input_height";
/// Backbone patch size in pixels.
pub const PATCH_SIZE: &str = "sempart.patch_size";
/// Normalisation mean, three comma-separated floats (RGB).
pub const MEAN: &str = "sempart.mean";
/// Normalisation standard deviation, three comma-separated floats (RGB).
pub const STD: &str = "sempart.std";
/// Backbone name, e.g. `dinov2-small`.
pub const BACKBONE_NAME: &str = "sempart.backbone.name";
/// Where the backbone weights come from (package, file, licence, fine-tuning).
pub const BACKBONE_ORIGIN: &str = "sempart.backbone.origin";
/// Training provenance: a JSON object (data, steps, config, seed, commit, date).
pub const TRAINING: &str = "sempart.training";
/// JSON of the backbone's architecture, as the trainer exported it (informational).
pub const BACKBONE_CONFIG: &str = "sempart.backbone.config";
/// JSON of the heads' configuration, as the trainer exported it (informational).
pub const HEADS_CONFIG: &str = "sempart.heads.config";
/// Content digest (format version 2): 64 lowercase hex digits, see the module docs.
pub const CONTENT_SHA256: &str = "sempart.content_sha256";
/// Numeric precision of the weights: `fp32` (also when absent) or `int8` (weight products
/// quantised by [`crate::tools::quantize`]).
pub const PRECISION: &str = "sempart.precision";
/// Keys every model must have.
pub const REQUIRED: [&str; 9] =
    [FORMAT_VERSION, INPUT_WIDTH, INPUT_HEIGHT, PATCH_SIZE, MEAN, STD, BACKBONE_NAME, BACKBONE_ORIGIN, TRAINING];
