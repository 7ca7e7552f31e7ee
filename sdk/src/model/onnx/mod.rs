//! ONNX files without ONNX Runtime: the protobuf types ([`proto`]), a graph builder and the
//! file encoding ([`builder`], used by the trainer's export), and a quick top-level reader that
//! skips the weights ([`header`], used when a model is opened), and rewrites into ONNX
//! Runtime's fused kernels for the CPU model ([`fuse`]).

pub mod builder;
pub mod fuse;
pub mod header;
pub mod proto;
mod wire;
