//! The frame path, in the order data flows: [`frame`] (caller memory, pixel formats, strides)
//! -> [`preprocess`] (antialiased resize, normalisation) -> [`runtime`] (the ONNX Runtime
//! session) -> [`postprocess`] (foreground, components) with [`refine`] (guided filter of the fine
//! map) -> [`result`]; [`segmenter`] strings them together as the Rust API. [`resize`], [`plane`],
//! [`simd`] and [`parallel`] are the kernels they share. [`stream`] runs a segmenter over the
//! frames of one video with [`temporal`] stability. It reads model files through
//! [`crate::model`] and never uses the tools or the evaluation.

pub mod frame;
pub mod mask;
pub mod parallel;
pub mod plane;
pub mod postprocess;
pub mod preprocess;
pub mod refine;
pub mod resize;
pub mod result;
pub mod runtime;
pub mod segmenter;
pub mod simd;
pub mod stream;
pub mod temporal;
