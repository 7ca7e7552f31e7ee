//! The C ABI of the box list's minimum component size (`sempart_model_*_min_component_fraction`).
//! `sempart_options` has no room for new fields (no size field), so the setting is changed on
//! an open model; it applies to the model's results and streams from then on.

use super::boundary::{guard, non_null};
use super::SempartModel;
use crate::error::{Error, Status};

/// Sets the smallest component the box lists of `model`'s results keep, as a share of the
/// frame's area, 0..=1 (0 lists every component; the default is 0.0005, 1/2000 of the frame).
/// Smaller components stay in the mask but get no box; the object box is always listed, so it
/// does not depend on this. Applies to every later `sempart_segment`, `sempart_segment_batch`
/// and stream call on the model (a call already running may use either value).
#[no_mangle]
pub extern "C" fn sempart_model_set_min_component_fraction(model: *const SempartModel, fraction: f32) -> Status {
    guard(|| non_null(model, "model")?.inner.set_min_component_fraction(fraction))
}

/// The model's minimum component size for box lists (a share of the frame's area) in
/// `*out_fraction`.
#[no_mangle]
pub extern "C" fn sempart_model_min_component_fraction(model: *const SempartModel, out_fraction: *mut f32) -> Status {
    guard(|| {
        let model = non_null(model, "model")?;
        let out =
            unsafe { out_fraction.as_mut() }.ok_or_else(|| Error::new(Status::NullArgument, "out_fraction is NULL"))?;
        *out = model.inner.min_component_fraction();
        Ok(())
    })
}
