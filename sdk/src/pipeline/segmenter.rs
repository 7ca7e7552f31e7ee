//! The Rust API: open a model, segment frames. Data flows one way, each stage in its module:
//! [`crate::pipeline::frame`] -> [`crate::pipeline::preprocess`] -> [`crate::pipeline::runtime`] (the ONNX Runtime run) ->
//! [`crate::pipeline::postprocess`] -> [`crate::pipeline::result`] ([`Segmentation`]).

use crate::error::{Error, Result, Status};
use crate::model::format::{self as model_format, ModelInfo};
use crate::pipeline::frame::Frame;
use crate::pipeline::postprocess;
use crate::pipeline::preprocess;
use crate::pipeline::refine::GuidedFilter;
pub use crate::pipeline::result::{Segmentation, Timing};
use crate::pipeline::runtime::{self, Options, Provider};
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Instant;

/// A loaded model. `Segmenter` is `Send + Sync`: any number of threads may call
/// [`Segmenter::segment`] on one instance at once. Preprocessing and postprocessing run in
/// parallel; the ONNX Runtime run itself is serialised per instance (ONNX Runtime already
/// uses all CPU threads for one run), so results equal those of serial calls.
pub struct Segmenter {
    session: runtime::ModelSession,
    info: ModelInfo,
    provider: Provider,
    refine: GuidedFilter,
    /// [`Options::min_component_fraction`], as `f32` bits: changeable after opening (the C
    /// ABI's options struct has no room for it) and read once per frame.
    min_component_fraction: AtomicU32,
}

impl std::fmt::Debug for Segmenter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Segmenter").field("info", &self.info).field("provider", &self.provider).finish()
    }
}

impl Segmenter {
    /// Opens and validates a Sempart model file and starts an ONNX Runtime session on the
    /// provider `options` ask for.
    pub fn open(path: impl AsRef<Path>, options: &Options) -> Result<Segmenter> {
        let path = path.as_ref();
        options.validate()?;
        let shown = path.display().to_string();
        let (bytes, info) = model_format::read_model(path, options.verify_integrity)?;
        let (session, provider) = runtime::open_session(&bytes, options)?;
        let has_input = session.inputs().iter().any(|i| i.name() == model_format::INPUT_NAME);
        for name in [model_format::FINE_OUTPUT, model_format::COARSE_OUTPUT] {
            if !session.outputs().iter().any(|o| o.name() == name) {
                return Err(Error::new(Status::ModelForeign, format!("{shown}: the graph has no output '{name}'")));
            }
        }
        if !has_input {
            return Err(Error::new(
                Status::ModelForeign,
                format!("{shown}: the graph has no input '{}'", model_format::INPUT_NAME),
            ));
        }
        Ok(Segmenter {
            session: runtime::ModelSession::new(session),
            info,
            provider,
            refine: options.refine,
            min_component_fraction: AtomicU32::new(options.min_component_fraction.to_bits()),
        })
    }

    /// The smallest component the box lists keep, as a share of the frame's area
    /// ([`Options::min_component_fraction`]).
    pub fn min_component_fraction(&self) -> f32 {
        f32::from_bits(self.min_component_fraction.load(Ordering::Relaxed))
    }

    /// Changes [`Segmenter::min_component_fraction`] for the frames segmented from now on
    /// (a call already running may use either value). Errors: a value outside `0..=1`.
    pub fn set_min_component_fraction(&self, fraction: f32) -> Result<()> {
        runtime::check_min_component_fraction(fraction)?;
        self.min_component_fraction.store(fraction.to_bits(), Ordering::Relaxed);
        Ok(())
    }

    /// The smallest component, in pixels, a `width x height` frame's box list keeps.
    pub fn min_component_pixels(&self, width_px: u32, height_px: u32) -> u32 {
        postprocess::min_component_pixels(self.min_component_fraction(), width_px as usize, height_px as usize)
    }

    /// What the model file says about itself.
    pub fn info(&self) -> &ModelInfo {
        &self.info
    }

    /// The refinement applied to the fine map ([`Options::refine`]).
    pub fn refine(&self) -> GuidedFilter {
        self.refine
    }

    /// The execution provider the session runs on.
    pub fn provider(&self) -> Provider {
        self.provider
    }

    /// Segments one frame.
    pub fn segment(&self, frame: &Frame<'_>) -> Result<Segmentation> {
        let mut out = self.segment_batch(std::slice::from_ref(frame))?;
        Ok(out.pop().expect("one result per frame"))
    }

    /// Segments several frames in one inference run (frames may differ in size and format).
    pub fn segment_batch(&self, frames: &[Frame<'_>]) -> Result<Vec<Segmentation>> {
        if frames.is_empty() {
            return Err(Error::invalid("empty batch: at least one frame is needed"));
        }
        let spec = self.info.input_spec();
        let plane = 3 * spec.width_px * spec.height_px;
        let mut input = vec![0f32; plane * frames.len()];
        let mut preprocess_ms = Vec::with_capacity(frames.len());
        let mut views = Vec::with_capacity(frames.len());
        for (frame, chunk) in frames.iter().zip(input.chunks_mut(plane)) {
            let t = Instant::now();
            views.push(preprocess::frame_to_input(frame, &spec, chunk));
            preprocess_ms.push(ms(t));
        }

        let t = Instant::now();
        let shape = [frames.len(), 3, spec.height_px, spec.width_px];
        let (fine, coarse) = self.session.run(&shape, &input)?;
        let inference_ms = ms(t);

        let fine_plane = spec.width_px * spec.height_px;
        let coarse_plane = self.info.grid_width * self.info.grid_height;
        if fine.len() != fine_plane * frames.len() || coarse.len() != coarse_plane * frames.len() {
            return Err(Error::new(
                Status::InferenceFailed,
                format!(
                    "model outputs have {} and {} values, expected {} and {} for {} frame(s)",
                    fine.len(),
                    coarse.len(),
                    fine_plane * frames.len(),
                    coarse_plane * frames.len(),
                    frames.len()
                ),
            ));
        }
        Ok(frames
            .iter()
            .enumerate()
            .map(|(i, frame)| {
                let t = Instant::now();
                let mut seg = postprocess::segmentation(
                    &self.info,
                    frame,
                    Some(&views[i]),
                    &self.refine,
                    self.min_component_pixels(frame.width_px(), frame.height_px()),
                    &fine[i * fine_plane..(i + 1) * fine_plane],
                    &coarse[i * coarse_plane..(i + 1) * coarse_plane],
                );
                seg.timing = Timing { preprocess_ms: preprocess_ms[i], inference_ms, postprocess_ms: ms(t) };
                seg
            })
            .collect())
    }

    /// The model's raw outputs for one frame, `fine` then `coarse`: partition-A probabilities
    /// at the model's resolution, before orientation, resizing and refinement.
    pub fn raw_outputs(&self, frame: &Frame<'_>) -> Result<(Vec<f32>, Vec<f32>)> {
        let spec = self.info.input_spec();
        let mut input = vec![0f32; 3 * spec.width_px * spec.height_px];
        preprocess::frame_to_input(frame, &spec, &mut input);
        self.session.run(&[1, 3, spec.height_px, spec.width_px], &input)
    }
}

/// Milliseconds since `since`.
pub(crate) fn ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1000.0
}
