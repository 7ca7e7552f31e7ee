//! Sempart: unsupervised salient-object segmentation (arXiv 2309.10972) as a library.
//!
//! A model is one self-describing ONNX file ([`model_format`]) holding the DINO backbone and
//! the Sempart heads. [`Segmenter`] runs it with ONNX Runtime on TensorRT, CUDA or the CPU and
//! returns the fine and coarse masks at the caller's resolution plus object boxes.
//!
//! The crate is laid out by floor, each using only the floors below it:
//! [`model`] (the file format and ONNX) <- [`pipeline`] (data flows one way: [`frame`] (caller
//! memory) -> [`preprocess`] -> [`runtime`] session -> [`postprocess`] (with [`refine`]) ->
//! [`Segmentation`]) <- [`tools`] (compose, quantize, reference) and [`eval`] (metrics, shared
//! with the trainer; evaluation; peer timing). The C ABI ([`capi`]) is a thin layer over the
//! pipeline's API.

pub mod capi;
pub mod error;
pub mod eval;
pub mod files;
pub mod model;
pub mod pipeline;
pub mod tools;

// The modules' paths before the floors (`sempart::frame`, `sempart::onnx`, ...) stay valid.
pub use eval::{evaluate, metrics, peer};
pub use model::format as model_format;
pub use model::onnx;
pub use pipeline::{
    frame, parallel, plane, postprocess, preprocess, refine, resize, result, runtime, segmenter, simd, stream, temporal,
};
pub use tools::{compose, quantize, reference};

pub use error::{Error, Result, Status};
pub use frame::{Frame, PixelFormat};
pub use model_format::ModelInfo;
pub use postprocess::Component;
pub use refine::GuidedFilter;
pub use runtime::{Options, Provider};
pub use segmenter::{Segmentation, Segmenter, Timing};
pub use stream::{Reset, Stream, StreamOptions, StreamResult};

/// The SDK version (`major.minor.patch`).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
