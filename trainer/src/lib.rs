//! The Sempart trainer: a frozen DINO backbone ([`backbone`]), the Sempart heads ([`heads`]),
//! their self-supervised losses, the training loop, and the export of the whole graph to the
//! ONNX file the SDK runs ([`export`]).

pub mod affinity;
pub mod backbone;
pub mod config;
pub mod data;
pub mod export;
pub mod feature_cache;
pub mod fixtures;
pub mod heads;
pub mod losses;
pub mod progress;
pub mod tokencut;
pub mod train;
