//! Post-processing of Sempart probability maps (spec section 3).
//!
//! This module is the single implementation of the steps that turn the network's
//! probability maps into masks and boxes. The trainer's evaluation and the SDK's
//! inference both call it, so that the numbers the trainer reports are the numbers
//! the SDK produces.
//!
//! The steps, in the order inference applies them:
//!
//! 1. [`binarize`] the coarse and fine probability maps at [`THRESHOLD`] (strict `>`);
//! 2. [`foreground_is_a`] decides which side of the binary partition is the object
//!    (the corner rule of spec 3.2), [`select_foreground`] applies that decision;
//! 3. [`crate::pipeline::resize::resize_bilinear`] (or a reusable [`crate::pipeline::resize::BilinearResizer`])
//!    brings the fine probability map to the original image size (PyTorch `F.interpolate`
//!    semantics), or [`crate::pipeline::refine`] does, refining it on the way;
//! 4. [`connected_components`] and [`object_box`] give the single-object box.
//!
//! Every function here is pure (no ONNX Runtime, no I/O). Grids are row-major
//! (`index = y * width + x`).
#![warn(missing_docs)]

use crate::model::format::ModelInfo;
use crate::pipeline::frame::Frame;
use crate::pipeline::plane::Plane;
use crate::pipeline::refine::{refine_to_frame_with_mask, GuidedFilter};
use crate::pipeline::resize::resize_bilinear;
use crate::pipeline::result::{Segmentation, Timing};

mod components;
pub use components::{
    box_list, clear_components_not_touching, component_labels, connected_components, mask_components,
    min_component_pixels, object_box, Component,
};

pub use crate::pipeline::mask::{mask_value, THRESHOLD};

// ---------------------------------------------------------------------------------
// Binarisation and foreground selection
// ---------------------------------------------------------------------------------

/// Binarises a probability map: `true` ("partition A") where `p > threshold` (strict),
/// `false` elsewhere, including NaN. The paper's threshold is [`THRESHOLD`] (0.5).
pub fn binarize(prob: &[f32], threshold: f32) -> Vec<bool> {
    prob.iter().map(|&p| p > threshold).collect()
}

/// [`binarize`] into a caller-provided buffer of the same length as `prob`.
///
/// # Panics
/// When the lengths differ.
pub fn binarize_into(prob: &[f32], threshold: f32, out: &mut [bool]) {
    assert_eq!(prob.len(), out.len(), "binarize_into: length mismatch");
    for (o, &p) in out.iter_mut().zip(prob) {
        *o = p > threshold;
    }
}

/// Number of the four image corners (top-left, top-right, bottom-left, bottom-right)
/// where `mask` is `true`.
///
/// On a 1-pixel-wide or 1-pixel-high grid some corners are the same pixel; each of the
/// four corner positions is still counted once (a 1x1 `true` grid touches 4 corners),
/// so the counts of the two partitions always add up to 4. An empty grid touches 0.
///
/// # Panics
/// When `mask.len() != w * h`.
pub fn corners_touched(mask: &[bool], w: usize, h: usize) -> u32 {
    assert_eq!(mask.len(), w * h, "corners_touched: mask length != w * h");
    if w == 0 || h == 0 {
        return 0;
    }
    let idx = [0, w - 1, (h - 1) * w, (h - 1) * w + w - 1];
    idx.iter().map(|&i| mask[i] as u32).sum()
}

/// Decides which side of a binary partition is the foreground (spec 3.2).
///
/// `mask` is the binarised map of a `w` x `h` grid: `true` is partition "A"
/// (probability > 0.5), `false` is partition "B". Returns `true` when A is the
/// foreground (keep the mask), `false` when B is (invert it).
///
/// The rule, in order:
/// 1. **Corners.** The background of a photo usually reaches the image border, so the
///    partition touching fewer of the four corners (see [`corners_touched`]) is the
///    foreground.
/// 2. **Size.** On a corner tie (2-2, e.g. a horizontal sky/ground split, or 0-4 never
///    ties) the smaller partition, by pixel count, is the foreground: salient objects
///    are usually smaller than their background.
/// 3. **Default.** If the pixel counts tie too, A is kept.
///
/// Edge cases follow from the rule: an all-`true` mask makes A touch 4 corners and B
/// none, so B (empty) is the foreground; an all-`false` mask keeps A (empty). A uniform
/// map therefore always yields an empty foreground. A 1x1 grid is uniform. An empty
/// grid keeps A.
///
/// # Panics
/// When `mask.len() != w * h`.
pub fn foreground_is_a(mask: &[bool], w: usize, h: usize) -> bool {
    let a_corners = corners_touched(mask, w, h);
    if w == 0 || h == 0 {
        return true;
    }
    let b_corners = 4 - a_corners;
    if a_corners != b_corners {
        return a_corners < b_corners;
    }
    let a_pixels = mask.iter().filter(|&&m| m).count();
    let b_pixels = mask.len() - a_pixels;
    a_pixels <= b_pixels
}

/// Applies [`foreground_is_a`] in place: inverts `mask` when partition B is the
/// foreground, so that afterwards `true` always means foreground. Returns `true` when
/// the mask was inverted.
///
/// # Panics
/// When `mask.len() != w * h`.
pub fn select_foreground(mask: &mut [bool], w: usize, h: usize) -> bool {
    if foreground_is_a(mask, w, h) {
        false
    } else {
        mask.iter_mut().for_each(|m| *m = !*m);
        true
    }
}

/// Foreground probabilities of one image, from the network's two raw outputs.
#[derive(Debug, Clone, PartialEq)]
pub struct ForegroundMaps {
    /// True when the foreground is partition B (probability <= 0.5 in the raw outputs).
    pub foreground_is_b: bool,
    /// Fine foreground probability, resized to the requested output size.
    pub fine: Vec<f32>,
    /// Its 0/255 mask at [`THRESHOLD`], when the refinement made it in the same pass
    /// ([`FineOutput::Refined`]); `None` for [`FineOutput::Resized`].
    pub fine_mask: Option<Vec<u8>>,
    /// Coarse foreground probability on the model grid.
    pub coarse: Vec<f32>,
}

/// How [`foreground_maps`] brings the fine map to the output.
#[derive(Debug, Clone, Copy)]
pub enum FineOutput<'a, 'f> {
    /// Bilinear resize ([`resize_bilinear`]) to `width x height`: the paper's post-processing.
    Resized {
        /// Output width.
        width: usize,
        /// Output height.
        height: usize,
    },
    /// [`crate::pipeline::refine::refine_to_frame`] with `frame` as the guide, at the frame's size (a
    /// filter that is off makes this the bilinear resize to the frame's size).
    Refined {
        /// The guide, and the output size.
        frame: &'a Frame<'f>,
        /// The frame as the model saw it, when the caller has it (see
        /// [`crate::pipeline::refine::refine_to_frame`]): the refinement's guide is made from it.
        view: Option<&'a [f32]>,
        /// The refinement's parameters.
        filter: &'a GuidedFilter,
    },
}

impl FineOutput<'_, '_> {
    /// The output size (width, height).
    pub fn size(&self) -> (usize, usize) {
        match self {
            Self::Resized { width, height } => (*width, *height),
            Self::Refined { frame, .. } => (frame.width_px() as usize, frame.height_px() as usize),
        }
    }
}

/// The inference post-processing of the spec (section 3) up to the probabilities, in one place
/// for the SDK and the trainer's evaluation: the foreground side is chosen by
/// [`foreground_is_a`] on the binarised coarse map (its grid) and applied to both outputs; the
/// fine map (at the model input's size) is brought to the output as `output` says.
pub fn foreground_maps(coarse_a: Plane<'_, f32>, fine_a: Plane<'_, f32>, output: FineOutput<'_, '_>) -> ForegroundMaps {
    let (grid_w, grid_h) = coarse_a.size();
    let (in_w, in_h) = fine_a.size();
    let partition_a = binarize(coarse_a.values(), THRESHOLD);
    let foreground_is_b = !foreground_is_a(&partition_a, grid_w, grid_h);
    let orient = |p: f32| if foreground_is_b { 1.0 - p } else { p };
    let (fine, fine_mask) = match output {
        FineOutput::Refined { frame, view, filter } => {
            let oriented: Vec<f32> = fine_a.values().iter().map(|&p| orient(p)).collect();
            let (fine, mask) = refine_to_frame_with_mask(frame, view, &oriented, (in_w, in_h), (in_w, in_h), filter);
            (fine, Some(mask))
        }
        FineOutput::Resized { width, height } => {
            let mut fine = resize_bilinear(fine_a.values(), in_w, in_h, width, height);
            fine.iter_mut().for_each(|p| *p = orient(*p));
            (fine, None)
        }
    };
    ForegroundMaps { foreground_is_b, fine, fine_mask, coarse: coarse_a.values().iter().map(|&p| orient(p)).collect() }
}

/// The 0/255 mask value of one probability: 255 where [`binarize`] sets the pixel (above
/// [`THRESHOLD`]), else 0r a few threads ([`crate::pipeline::parallel`]).
fn mask_bytes(prob: Plane<'_, f32>) -> Vec<u8> {
    let (w, values) = (prob.width(), prob.values());
    let mut mask = vec![0u8; values.len()];
    crate::pipeline::parallel::for_each_band(
        &mut mask,
        w,
        crate::pipeline::parallel::threads_for(values.len()),
        |first, out| {
            crate::pipeline::simd::wide(
                #[inline(always)]
                || {
                    for (m, &p) in out.iter_mut().zip(&values[first * w..]) {
                        *m = mask_value(p);
                    }
                },
            )
        },
    );
    mask
}

/// The result for one frame from the model's two raw outputs (partition-A probabilities at
/// its resolution): the maps oriented, brought to the frame (refined as `refine` says, the
/// guide made from `view`, the model's view of the frame that preprocessing returned, or from
/// the frame when `None`) and binarised, the fine mask's components of at least
/// `min_component_pixels` pixels and the object box ([`box_list`]). The timing is left at zero.
#[allow(clippy::too_many_arguments)]
pub fn segmentation(
    info: &ModelInfo,
    frame: &Frame<'_>,
    view: Option<&[f32]>,
    refine: &GuidedFilter,
    min_component_pixels: u32,
    fine_model: &[f32],
    coarse_model: &[f32],
) -> Segmentation {
    let (gw, gh) = (info.grid_width, info.grid_height);
    let (width_px, height_px) = (frame.width_px(), frame.height_px());
    let (w, h) = (width_px as usize, height_px as usize);
    let (iw, ih) = (info.input_width_px, info.input_height_px);
    let maps = foreground_maps(
        Plane::new(coarse_model, gw, gh),
        Plane::new(fine_model, iw, ih),
        FineOutput::Refined { frame, view, filter: refine },
    );
    let coarse_mask = mask_bytes(Plane::new(&maps.coarse, gw, gh));
    // The 0/255 mask comes from the refinement's pass over the frame; the components read it.
    let fine_mask = match maps.fine_mask {
        Some(mask) => mask,
        None => mask_bytes(Plane::new(&maps.fine, w, h)),
    };
    let (components, object) = box_list(&fine_mask, w, h, min_component_pixels);
    Segmentation {
        width_px,
        height_px,
        fine_mask,
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
