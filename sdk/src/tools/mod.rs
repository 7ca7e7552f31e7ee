//! Offline tools over model files: [`compose`] (template + backbone -> model file, a byte copy),
//! [`quantize`] (the int8 CPU model) and [`reference`] (the reference-frame check both use).
//! They use the pipeline and the model floor; neither uses them. The C ABI does not expose them.

pub mod compose;
pub mod quantize;
pub mod reference;
