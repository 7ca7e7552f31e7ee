//! Sempart: unsupervised salient-object segmentation (arXiv 2309.10972) as a library.
//!
//! A model is one self-describing ONNX file ([`model_format`]) holding the DINO backbone and
//! the Sempart heads. [`Segmenter`] runs it with ONNX Runtime on TensorRT, CUDA or the CPU and
//! returns the fine and coarse masks at the caller's resolution plus object boxes.
//!
//! Data flows one way: [`frame`] (caller memory) -> [`preprocess`] -> [`runtime`] session ->
//! [`postprocess`] (with [`refine`]) -> [`Segmentation`]. [`metrics`] holds the evaluation protocol, shared with
//! the trainer. The C ABI ([`capi`]) is a thin layer over this API.

pub mod capi;
pub mod compose;
pub mod error;
pub mod evaluate;
pub mod frame;
pub mod metrics;
pub mod model_format;
pub mod onnx;
pub mod parallel;
pub mod peer;
pub mod plane;
pub mod postprocess;
pub mod preprocess;
pub mod quantize;
pub mod reference;
pub mod refine;
pub mod resize;
pub mod result;
pub mod runtime;
pub mod segmenter;
pub mod simd;

pub use error::{Error, Result, Status};
pub use frame::{Frame, PixelFormat};
pub use model_format::ModelInfo;
pub use postprocess::Component;
pub use refine::GuidedFilter;
pub use runtime::{Options, Provider};
pub use segmenter::{Segmentation, Segmenter, Timing};

/// The SDK version (`major.minor.patch`).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
