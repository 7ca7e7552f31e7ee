//! The `sempartseg` element: [`element`] is the element itself, [`settings`] its properties,
//! [`mode`] its output modes, [`frames`] the pixel copies between GStreamer buffers and the SDK.

mod element;
mod frames;
mod mode;
mod settings;

pub use element::SempartSeg;
pub use mode::Mode;

use gst::glib;
use gst::prelude::*;

pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    gst::Element::register(Some(plugin), "sempartseg", gst::Rank::NONE, SempartSeg::static_type())
}
