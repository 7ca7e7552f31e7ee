//! The one rule that turns a probability into a mask value: the paper's threshold and the
//! 0/255 value. Post-processing and the refinement's pass both apply it.

/// The binarisation threshold of the paper: a pixel belongs to partition "A" when its
/// probability is strictly greater than this value.
pub const THRESHOLD: f32 = 0.5;

/// The 0/255 mask value of one probability: 255 where [`crate::pipeline::postprocess::binarize`] sets the pixel (above
/// [`THRESHOLD`]), else 0 (NaN too). The one thresholding of the 0/255 masks: [`crate::pipeline::postprocess::mask_bytes`] and
/// the refinement's pass ([`crate::pipeline::refine::refine_to_frame_with_mask`]) use it.
#[inline(always)]
pub fn mask_value(p: f32) -> u8 {
    if p > THRESHOLD {
        255
    } else {
        0
    }
}
