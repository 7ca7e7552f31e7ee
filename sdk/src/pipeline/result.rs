//! The result of segmenting one frame: masks, probabilities, boxes and the time each stage
//! took. [`crate::pipeline::postprocess::segmentation`] builds it; [`crate::Segmenter`] adds the timing.

use crate::pipeline::postprocess::Component;

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
    /// and refined as [`crate::Options::refine`] says).
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
