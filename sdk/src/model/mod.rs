//! The model floor: the model file's format ([`format`]: metadata keys, validation, precision,
//! content digest) and the ONNX types, builder and reader it is written in ([`onnx`]). It uses
//! nothing above it; the pipeline, the tools and the trainer's exporter use it.

pub mod format;
pub mod keys;
pub mod onnx;
