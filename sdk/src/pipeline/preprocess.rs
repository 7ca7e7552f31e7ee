//! Frame -> model input: the antialiased resize ([`crate::pipeline::resize::resize_rgb`], which
//! reads the caller's pixels in place) followed by the model's normalisation, written as planar
//! (CHW) f32.
//!
//! The trainer prepares its training images with this same code, so what a model sees in
//! training and in deployment is the same function of the pixels.

use crate::pipeline::frame::Frame;

/// ImageNet's per-channel mean (RGB, 0..1 scale): the normalisation of the DINO family.
pub const IMAGENET_MEAN: [f64; 3] = [0.485, 0.456, 0.406];
/// ImageNet's per-channel standard deviation (RGB, 0..1 scale).
pub const IMAGENET_STD: [f64; 3] = [0.229, 0.224, 0.225];

pub use crate::model::format::InputSpec;

pub use crate::pipeline::resize::resize_rgb;

/// Writes the model input for one frame into `out` (length `3 * width * height`, planar RGB,
/// normalised as `spec` says), and returns the model's view of the frame it normalised: the
/// resized RGB, interleaved, on the 0..255 scale ([`resize_rgb`]). The refinement takes its
/// guide from that view ([`crate::pipeline::refine::refine_to_frame`]) instead of reading the frame again.
pub fn frame_to_input(frame: &Frame<'_>, spec: &InputSpec, out: &mut [f32]) -> Vec<f32> {
    let (w, h) = (spec.width_px, spec.height_px);
    assert_eq!(out.len(), 3 * w * h, "output buffer must hold 3 x {w} x {h} floats");
    let rgb = resize_rgb(frame, w, h);
    let plane = w * h;
    let scale: [f32; 3] = std::array::from_fn(|c| 1.0 / (255.0 * spec.std[c]));
    let shift: [f32; 3] = std::array::from_fn(|c| spec.mean[c] / spec.std[c]);
    // One pass over the interleaved pixels, writing the three planes.
    let (r, rest) = out.split_at_mut(plane);
    let (g, b) = rest.split_at_mut(plane);
    for (((px, r), g), b) in rgb.chunks_exact(3).zip(r.iter_mut()).zip(g.iter_mut()).zip(b.iter_mut()) {
        *r = px[0] * scale[0] - shift[0];
        *g = px[1] * scale[1] - shift[1];
        *b = px[2] * scale[2] - shift[2];
    }
    rgb
}
