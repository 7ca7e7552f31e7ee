//! The `sempartseg` element: its type, caps, the stream it runs, events that reset it, and
//! the buffers it sends downstream ([`super::settings`] holds its properties).
//!
//! Settings are read when the element starts (READY to PAUSED); changing one while it runs
//! takes effect at the next start. Every error goes to the bus as a GStreamer error message.

use super::frames::{self, FORMATS};
use super::mode::Mode;
use super::settings::Settings;
use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::subclass::base_transform::BaseTransformMode;
use gst_base::subclass::prelude::*;
use gst_video::{VideoFrameRef, VideoInfo, VideoRegionOfInterestMeta};
use sempart::model_format::default_model_path;
use sempart::{Segmentation, Segmenter, Stream, StreamOptions};
use std::path::PathBuf;
use std::sync::{Arc, LazyLock, Mutex, MutexGuard};

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new("sempartseg", gst::DebugColorFlags::empty(), Some("Sempart salient-object segmentation"))
});

/// The region-of-interest type of every box the element attaches.
pub const ROI_TYPE: &str = "salient-object";

/// What the element holds between start and stop.
struct State {
    stream: Stream,
    mode: Mode,
    in_info: Option<VideoInfo>,
    out_info: Option<VideoInfo>,
    /// The last frame's timestamp (nanoseconds), for frames without one.
    last_ns: Option<i64>,
    /// A frame went through since the stream last started again.
    frames_since_reset: bool,
    /// NV12 frames are copied here (see [`frames::sdk_frame`]).
    scratch: Vec<u8>,
}

glib::wrapper! {
    /// The `sempartseg` element (a `GstBaseTransform`).
    pub struct SempartSeg(ObjectSubclass<SempartSegImp>) @extends gst_base::BaseTransform, gst::Element, gst::Object;
}

/// The element's instance data (GObject keeps it beside the [`SempartSeg`] object).
#[derive(Default)]
pub struct SempartSegImp {
    settings: Mutex<Settings>,
    state: Mutex<Option<State>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while the lock was held cannot leave these values half-written in a way that
    // matters more than stopping the pipeline would.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[glib::object_subclass]
impl ObjectSubclass for SempartSegImp {
    const NAME: &'static str = "GstSempartSeg";
    type Type = SempartSeg;
    type ParentType = gst_base::BaseTransform;
}

impl ObjectImpl for SempartSegImp {
    fn properties() -> &'static [glib::ParamSpec] {
        Settings::properties()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        lock(&self.settings).set(pspec.name(), value);
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        lock(&self.settings).get(pspec.name())
    }
}

impl GstObjectImpl for SempartSegImp {}

impl ElementImpl for SempartSegImp {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static METADATA: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "Sempart salient-object segmentation",
                "Filter/Analyzer/Video",
                "Finds the salient object of each frame: its boxes as region-of-interest metadata, its mask as GRAY8 or as the frame's alpha",
                "Sempart SDK",
            )
        });
        Some(&*METADATA)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static TEMPLATES: LazyLock<Vec<gst::PadTemplate>> = LazyLock::new(|| {
            let caps = gst_video::VideoCapsBuilder::new().format_list(FORMATS).build();
            vec![
                gst::PadTemplate::new("src", gst::PadDirection::Src, gst::PadPresence::Always, &caps)
                    .expect("valid template"),
                gst::PadTemplate::new("sink", gst::PadDirection::Sink, gst::PadPresence::Always, &caps)
                    .expect("valid template"),
            ]
        });
        TEMPLATES.as_ref()
    }
}

impl BaseTransformImpl for SempartSegImp {
    // Same caps in and out (roi mode, and mask or alpha mode on GRAY8 or RGBA input) work in
    // place; a format change (mask or alpha mode on other input) writes a new buffer.
    const MODE: BaseTransformMode = BaseTransformMode::Both;
    const PASSTHROUGH_ON_SAME_CAPS: bool = false;
    const TRANSFORM_IP_ON_PASSTHROUGH: bool = false;

    fn start(&self) -> Result<(), gst::ErrorMessage> {
        let settings = lock(&self.settings).clone();
        let options =
            settings.options().map_err(|why| gst::error_msg!(gst::LibraryError::Settings, ["sempartseg: {}", why]))?;
        let path = match &settings.model {
            Some(model) => PathBuf::from(model),
            None => default_model_path(options.default_precision()),
        };
        let model = Segmenter::open(&path, &options).map_err(|e| {
            gst::error_msg!(
                gst::ResourceError::OpenRead,
                ["sempartseg: cannot open the model {}: {}", path.display(), e]
            )
        })?;
        let stream_options = StreamOptions { strength: settings.stability, ..StreamOptions::DEFAULT };
        let stream = Arc::new(model)
            .stream(stream_options)
            .map_err(|e| gst::error_msg!(gst::LibraryError::Settings, ["sempartseg: {}", e]))?;
        gst::info!(CAT, imp = self, "opened {} on {}", path.display(), stream.model().provider().name());
        *lock(&self.state) = Some(State {
            stream,
            mode: settings.mode,
            in_info: None,
            out_info: None,
            last_ns: None,
            frames_since_reset: false,
            scratch: Vec::new(),
        });
        Ok(())
    }

    fn stop(&self) -> Result<(), gst::ErrorMessage> {
        *lock(&self.state) = None;
        Ok(())
    }

    fn transform_caps(
        &self,
        direction: gst::PadDirection,
        caps: &gst::Caps,
        filter: Option<&gst::Caps>,
    ) -> Option<gst::Caps> {
        let mode = lock(&self.settings).mode;
        let other = match mode {
            Mode::Roi => caps.clone(),
            Mode::Mask | Mode::Alpha => {
                let mut other = gst::Caps::new_empty();
                let other_mut = other.get_mut().expect("new caps are writable");
                for (structure, features) in caps.iter_with_features() {
                    let mut s = structure.to_owned();
                    s.remove_field("colorimetry");
                    s.remove_field("chroma-site");
                    if direction == gst::PadDirection::Sink {
                        s.set("format", if mode == Mode::Mask { "GRAY8" } else { "RGBA" });
                    } else {
                        s.set("format", gst::List::new(FORMATS.iter().map(|f| f.to_str())));
                    }
                    other_mut.append_structure_full(s, Some(features.to_owned()));
                }
                other
            }
        };
        Some(match filter {
            Some(filter) => filter.intersect_with_mode(&other, gst::CapsIntersectMode::First),
            None => other,
        })
    }

    fn unit_size(&self, caps: &gst::Caps) -> Option<usize> {
        VideoInfo::from_caps(caps).ok().map(|info| info.size())
    }

    fn set_caps(&self, incaps: &gst::Caps, outcaps: &gst::Caps) -> Result<(), gst::LoggableError> {
        let in_info = VideoInfo::from_caps(incaps).map_err(|_| gst::loggable_error!(CAT, "bad input caps {incaps}"))?;
        let out_info =
            VideoInfo::from_caps(outcaps).map_err(|_| gst::loggable_error!(CAT, "bad output caps {outcaps}"))?;
        // A new size or format resets the stream by itself at the next frame (the result says
        // frame_changed); the same size at another frame rate changes nothing.
        if let Some(state) = lock(&self.state).as_mut() {
            state.in_info = Some(in_info);
            state.out_info = Some(out_info);
        }
        Ok(())
    }

    fn sink_event(&self, event: gst::Event) -> bool {
        // A flush (seeks flush), a new segment and the end of the stream start the smoothing
        // again: the next frame need not follow the last one.
        if matches!(event.view(), gst::EventView::FlushStop(_) | gst::EventView::Segment(_) | gst::EventView::Eos(_)) {
            if let Some(state) = lock(&self.state).as_mut() {
                if state.frames_since_reset {
                    state.stream.reset();
                    state.frames_since_reset = false;
                }
                state.last_ns = None;
            }
        }
        self.parent_sink_event(event)
    }

    fn transform_ip(&self, buf: &mut gst::BufferRef) -> Result<gst::FlowSuccess, gst::FlowError> {
        let mut guard = lock(&self.state);
        let state = guard.as_mut().ok_or(gst::FlowError::NotNegotiated)?;
        let info = state.in_info.clone().ok_or(gst::FlowError::NotNegotiated)?;
        let seg = {
            let frame = self.map_readable(buf, &info)?;
            let sdk = frames::sdk_frame(&frame, &mut state.scratch).map_err(|e| self.fail(&e))?;
            self.segment(&state.stream, &mut state.last_ns, &sdk, buf.pts())?
        };
        state.frames_since_reset = true;
        if state.mode != Mode::Roi {
            let mut frame = self.map_writable(&mut *buf, &info)?;
            match state.mode {
                Mode::Mask => frames::write_gray(&mut frame, &seg.fine_mask)?,
                _ => frames::write_alpha(&mut frame, &seg.fine_mask)?,
            }
        }
        add_boxes(buf, &seg);
        Ok(gst::FlowSuccess::Ok)
    }

    fn transform(&self, inbuf: &gst::Buffer, outbuf: &mut gst::BufferRef) -> Result<gst::FlowSuccess, gst::FlowError> {
        let mut guard = lock(&self.state);
        let state = guard.as_mut().ok_or(gst::FlowError::NotNegotiated)?;
        let in_info = state.in_info.clone().ok_or(gst::FlowError::NotNegotiated)?;
        let out_info = state.out_info.clone().ok_or(gst::FlowError::NotNegotiated)?;
        let frame = self.map_readable(inbuf.as_ref(), &in_info)?;
        let sdk = frames::sdk_frame(&frame, &mut state.scratch).map_err(|e| self.fail(&e))?;
        let seg = self.segment(&state.stream, &mut state.last_ns, &sdk, inbuf.pts())?;
        state.frames_since_reset = true;
        {
            let mut out = self.map_writable(&mut *outbuf, &out_info)?;
            match state.mode {
                Mode::Mask => frames::write_gray(&mut out, &seg.fine_mask)?,
                Mode::Alpha => frames::write_rgba(&sdk, &mut out, &seg.fine_mask)?,
                Mode::Roi => frame.copy(&mut out).map_err(|_| gst::FlowError::Error)?,
            }
        }
        add_boxes(outbuf, &seg);
        Ok(gst::FlowSuccess::Ok)
    }
}

impl SempartSegImp {
    fn map_readable<'a>(
        &self,
        buf: &'a gst::BufferRef,
        info: &VideoInfo,
    ) -> Result<VideoFrameRef<&'a gst::BufferRef>, gst::FlowError> {
        VideoFrameRef::from_buffer_ref_readable(buf, info).map_err(|_| {
            gst::element_imp_error!(
                self,
                gst::StreamError::Format,
                [
                    "sempartseg: the buffer does not hold a {}x{} {} frame",
                    info.width(),
                    info.height(),
                    info.format().to_str()
                ]
            );
            gst::FlowError::Error
        })
    }

    fn map_writable<'a>(
        &self,
        buf: &'a mut gst::BufferRef,
        info: &VideoInfo,
    ) -> Result<VideoFrameRef<&'a mut gst::BufferRef>, gst::FlowError> {
        VideoFrameRef::from_buffer_ref_writable(buf, info).map_err(|_| {
            gst::element_imp_error!(self, gst::StreamError::Failed, ["sempartseg: cannot write the output frame"]);
            gst::FlowError::Error
        })
    }

    /// Posts an SDK error as the element's error and stops the flow.
    fn fail(&self, e: &sempart::Error) -> gst::FlowError {
        gst::element_imp_error!(self, gst::StreamError::Failed, ["sempartseg: {}", e]);
        gst::FlowError::Error
    }

    /// Runs one frame through the stream. The timestamp is the buffer's; a buffer without
    /// one counts as 1 ns after the last, so it never breaks the smoothing. A reset is posted
    /// to the bus as an element message `sempart-reset` (fields `reason`, `timestamp`).
    fn segment(
        &self,
        stream: &Stream,
        last_ns: &mut Option<i64>,
        frame: &sempart::Frame<'_>,
        pts: Option<gst::ClockTime>,
    ) -> Result<Segmentation, gst::FlowError> {
        let ns = match pts {
            Some(t) => i64::try_from(t.nseconds()).unwrap_or(i64::MAX),
            None => last_ns.map_or(0, |t| t.saturating_add(1)),
        };
        let result = stream.segment(frame, ns).map_err(|e| self.fail(&e))?;
        *last_ns = Some(ns);
        if let Some(reset) = result.reset {
            gst::debug!(CAT, imp = self, "stream reset at {ns} ns: {}", reset.name());
            let s =
                gst::Structure::builder("sempart-reset").field("reason", reset.name()).field("timestamp", ns).build();
            let _ = self.obj().post_message(gst::message::Element::builder(s).src(&*self.obj()).build());
        }
        Ok(result.segmentation)
    }
}

/// Attaches one region-of-interest meta per box, type [`ROI_TYPE`], with a `sempart`
/// parameter structure: `pixels` (the component's size) and `object` (true for the object box).
fn add_boxes(buf: &mut gst::BufferRef, seg: &Segmentation) {
    for (i, c) in seg.components.iter().enumerate() {
        let mut meta = VideoRegionOfInterestMeta::add(buf, ROI_TYPE, (c.x0, c.y0, c.width(), c.height()));
        meta.add_param(
            gst::Structure::builder("sempart")
                .field("pixels", c.pixel_count)
                .field("object", seg.object == Some(i))
                .build(),
        );
    }
}
