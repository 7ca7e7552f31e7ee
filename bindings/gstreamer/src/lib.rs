//! The GStreamer plugin `sempart`, holding one element, `sempartseg`: raw video in, the same
//! frames out with each salient object's box as region-of-interest metadata, or the mask
//! itself (GRAY8), or the frame with the mask as its alpha (RGBA). It runs a
//! [`sempart::Stream`], so the masks are smoothed over time as on any stream of the SDK.
//!
//! Built as `libgstsempart.so`: put its folder on `GST_PLUGIN_PATH` (see docs/CAMERA.md).
//! Rust programs can register it without the file: [`plugin_register_static`].

mod sempartseg;

gst::plugin_define!(
    sempart,
    env!("CARGO_PKG_DESCRIPTION"),
    plugin_init,
    env!("CARGO_PKG_VERSION"),
    "MIT/X11",
    "sempart",
    "sempart",
    "https://github.com/sempart/sempart"
);

fn plugin_init(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    sempartseg::register(plugin)
}

/// Re-exported so applications can name the element's types.
pub use sempartseg::{Mode, SempartSeg};

use gst::glib;
