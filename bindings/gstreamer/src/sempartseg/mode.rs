//! The element's output modes (its `mode` property).

use gst::glib;

/// What the element sends downstream. Every mode attaches the boxes as
/// `GstVideoRegionOfInterestMeta`.
#[derive(Debug, Eq, PartialEq, Ord, PartialOrd, Hash, Clone, Copy, Default, glib::Enum)]
#[repr(u32)]
#[enum_type(name = "GstSempartSegMode")]
pub enum Mode {
    /// The frames as they came in, with the boxes as metadata.
    #[default]
    #[enum_value(name = "Frames with the boxes as region-of-interest metadata", nick = "roi")]
    Roi = 0,
    /// The fine mask, GRAY8: 255 on the object, 0 elsewhere.
    #[enum_value(name = "The mask as GRAY8", nick = "mask")]
    Mask = 1,
    /// The frame as RGBA with the mask as its alpha.
    #[enum_value(name = "The frame as RGBA with the mask as alpha", nick = "alpha")]
    Alpha = 2,
}
