//! Resizing, both kernels: [`antialiased`] brings a frame (any pixel format, read in place) to
//! the model input ([`resize_rgb`]); [`bilinear`] resizes float maps with PyTorch's
//! `F.interpolate(mode="bilinear", align_corners=False)` semantics (post-processing, the
//! refinement, the metrics and the trainer). Each kernel keeps its own taps: they differ in
//! their filter (widened when shrinking, or not), centre convention and edge rule.

pub mod antialiased;
pub mod bilinear;

pub use antialiased::resize_rgb;
pub use bilinear::{resize_bilinear, resize_bilinear_into, resize_bilinear_rgb, BilinearResizer};
