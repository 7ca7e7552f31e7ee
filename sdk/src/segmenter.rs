//! The Rust API: open a model, segment frames. Data flows one way:
//! frame -> [`crate::preprocess`] -> ONNX Runtime session -> [`crate::postprocess`] -> [`Segmentation`].

use crate::error::{Error, Result, Status};
use crate::frame::Frame;
use crate::model_format::{self, ModelInfo};
use crate::onnx::header;
use crate::postprocess::{self, Component};
use crate::preprocess;
use crate::refine::GuidedFilter;
use crate::runtime::{self, Options, Provider};
use ort::session::Session;
use ort::value::TensorRef;
use std::path::Path;
use std::sync::Mutex;
use std::time::Instant;

/// Wall-clock time spent in each stage of one call, in milliseconds.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct Timing {
    /// Resize and normalisation of the frame.
    pub preprocess_ms: f64,
    /// ONNX Runtime inference (for a batch: the whole batch's run).
    pub inference_ms: f64,
    /// Thresholding, foreground selection, resize to the frame, refinement and connected
    /// components.
    pub postprocess_ms: f64,
}

/// The result of segmenting one frame.
#[derive(Debug, Clone, PartialEq)]
pub struct Segmentation {
    /// Frame width in pixels.
    pub width_px: u32,
    /// Frame height in pixels.
    pub height_px: u32,
    /// Fine mask at the frame's resolution, row-major, 255 = foreground, 0 = background.
    pub fine_mask: Vec<u8>,
    /// Foreground probability of each frame pixel (fine branch, brought to the frame's size
    /// and refined as [`Options::refine`] says).
    pub fine_probability: Vec<f32>,
    /// Coarse grid width (model input width / patch size).
    pub grid_width: u32,
    /// Coarse grid height.
    pub grid_height: u32,
    /// Coarse mask on the model grid, 255 = foreground.
    pub coarse_mask: Vec<u8>,
    /// Foreground probability of each grid cell (coarse branch).
    pub coarse_probability: Vec<f32>,
    /// True when the foreground is the network's partition B (probability <= 0.5), as decided
    /// by the corner rule on the coarse mask.
    pub foreground_is_b: bool,
    /// Connected components (4-connectivity) of the fine mask, in raster order of their first
    /// pixel. Boxes are in frame pixels.
    pub components: Vec<Component>,
    /// Index into `components` of the object: the component with the largest bounding box.
    pub object: Option<usize>,
    /// Time spent per stage.
    pub timing: Timing,
}

/// A loaded model. `Segmenter` is `Send + Sync`: any number of threads may call
/// [`Segmenter::segment`] on one instance at once. Preprocessing and postprocessing run in
/// parallel; the ONNX Runtime run itself is serialised per instance (ONNX Runtime already
/// uses all CPU threads for one run), so results equal those of serial calls.
pub struct Segmenter {
    session: Mutex<Session>,
    info: ModelInfo,
    provider: Provider,
    refine: GuidedFilter,
}

impl std::fmt::Debug for Segmenter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Segmenter").field("info", &self.info).field("provider", &self.provider).finish()
    }
}

/// Builds the result for one frame from the two raw outputs (partition-A probabilities at the
/// model's resolution).
fn postprocess_frame(
    info: &ModelInfo,
    frame: &Frame<'_>,
    refine: &GuidedFilter,
    fine_model: &[f32],
    coarse_model: &[f32],
) -> Segmentation {
    let (gw, gh) = (info.grid_width, info.grid_height);
    let (width_px, height_px) = (frame.width_px(), frame.height_px());
    let (w, h) = (width_px as usize, height_px as usize);
    let (iw, ih) = (info.input_width_px, info.input_height_px);
    let maps = postprocess::foreground_maps(coarse_model, gw, gh, fine_model, iw, ih, w, h, Some((frame, refine)));
    let coarse_mask = maps.coarse.iter().map(|&p| if p > postprocess::THRESHOLD { 255 } else { 0 }).collect();
    let fine_fg = postprocess::binarize(&maps.fine, postprocess::THRESHOLD);
    let components = postprocess::connected_components(&fine_fg, w, h);
    let object = postprocess::object_box(&components);
    Segmentation {
        width_px,
        height_px,
        fine_mask: fine_fg.iter().map(|&f| if f { 255 } else { 0 }).collect(),
        fine_probability: maps.fine,
        grid_width: gw as u32,
        grid_height: gh as u32,
        coarse_mask,
        coarse_probability: maps.coarse,
        foreground_is_b: maps.foreground_is_b,
        components,
        object,
        timing: Timing::default(),
    }
}

impl Segmenter {
    /// Opens and validates a Sempart model file and starts an ONNX Runtime session on the
    /// provider `options` ask for.
    pub fn open(path: impl AsRef<Path>, options: &Options) -> Result<Segmenter> {
        let path = path.as_ref();
        options.validate()?;
        let shown = path.display().to_string();
        let (bytes, header) = header::read_model_file(path)?;
        let mut info = ModelInfo::from_metadata(&shown, header.metadata.clone())?;
        if options.verify_integrity {
            info.integrity = model_format::verify_content(&shown, &bytes, &header, info.format_version)?;
        } else if header.digest_field.is_none() {
            info.integrity = model_format::Integrity::Unavailable;
        }
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
        Ok(Segmenter { session: Mutex::new(session), info, provider, refine: options.refine })
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
        for (frame, chunk) in frames.iter().zip(input.chunks_mut(plane)) {
            let t = Instant::now();
            preprocess::frame_to_input(frame, &spec, chunk);
            preprocess_ms.push(ms(t));
        }

        let t = Instant::now();
        let shape = [frames.len(), 3, spec.height_px, spec.width_px];
        let (fine, coarse) = self.run(&shape, &input)?;
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
                let mut seg = postprocess_frame(
                    &self.info,
                    frame,
                    &self.refine,
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
        self.run(&[1, 3, spec.height_px, spec.width_px], &input)
    }

    /// Runs the graph on a prepared input; returns the flat `fine` and `coarse` outputs.
    fn run(&self, shape: &[usize; 4], input: &[f32]) -> Result<(Vec<f32>, Vec<f32>)> {
        let failed = |e: ort::Error| Error::new(Status::InferenceFailed, format!("inference failed: {e}"));
        let tensor = TensorRef::from_array_view((*shape, input)).map_err(failed)?;
        let mut session = self.session.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let outputs = session.run(ort::inputs![model_format::INPUT_NAME => tensor]).map_err(failed)?;
        let take = |name: &str| -> Result<Vec<f32>> {
            let value = outputs
                .get(name)
                .ok_or_else(|| Error::new(Status::InferenceFailed, format!("the model produced no '{name}' output")))?;
            let (_, data) = value.try_extract_tensor::<f32>().map_err(failed)?;
            Ok(data.to_vec())
        };
        Ok((take(model_format::FINE_OUTPUT)?, take(model_format::COARSE_OUTPUT)?))
    }
}

fn ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1000.0
}
