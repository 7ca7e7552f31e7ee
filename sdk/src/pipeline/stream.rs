//! Streams: the frames of one camera or video, in order, segmented with temporal stability
//! ([`crate::pipeline::temporal`]). A stream keeps its model alive (it holds an `Arc`), is causal
//! (a frame's result never waits for a later frame), and is independent of the model's other
//! streams, which may run on other threads.
//!
//! Calls on one stream are serialised: a second thread calling [`Stream::segment`] while a call
//! runs waits for it, so the stream sees its frames one at a time in the order the calls take
//! its lock. (Callers that need a given order call from one thread.)

use crate::error::Result;
use crate::pipeline::frame::Frame;
use crate::pipeline::postprocess::box_list;
use crate::pipeline::result::Segmentation;
use crate::pipeline::segmenter::Segmenter;
use crate::pipeline::temporal::TemporalFilter;
pub use crate::pipeline::temporal::{Reset, StreamOptions};
use std::sync::{Arc, Mutex};

/// One frame's result on a stream.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamResult {
    /// The frame's masks, probabilities and boxes, smoothed over time (the fine ones; the coarse
    /// mask is the frame's own).
    pub segmentation: Segmentation,
    /// Why the smoothing started again at this frame, if it did.
    pub reset: Option<Reset>,
}

/// A stream of frames on one model. `Send + Sync`.
#[derive(Debug)]
pub struct Stream {
    model: Arc<Segmenter>,
    filter: Mutex<TemporalFilter>,
}

impl Segmenter {
    /// Opens a stream on this model with `options` (checked). The stream holds the model.
    pub fn stream(self: &Arc<Self>, options: StreamOptions) -> Result<Stream> {
        Ok(Stream { model: Arc::clone(self), filter: Mutex::new(TemporalFilter::new(options)?) })
    }
}

impl Stream {
    /// The model the stream runs.
    pub fn model(&self) -> &Arc<Segmenter> {
        &self.model
    }

    /// The stream's options.
    pub fn options(&self) -> StreamOptions {
        *self.lock().options()
    }

    /// Segments the next frame, taken at `timestamp_ns` (nanoseconds on any clock that only
    /// moves forward). A frame whose size or format differs from the previous one, a timestamp
    /// that is not after the previous one or more than `max_gap_ns` after it, and a scene cut
    /// start the smoothing again; the result says so. On an error the stream is as it was.
    pub fn segment(&self, frame: &Frame<'_>, timestamp_ns: i64) -> Result<StreamResult> {
        let mut filter = self.lock();
        let mut seg = self.model.segment(frame)?;
        let t = std::time::Instant::now();
        let reset = filter.apply(frame, timestamp_ns, &mut seg.fine_probability, &mut seg.fine_mask)?;
        if reset.is_none() && filter.options().strength > 0.0 {
            // The filter smoothed this frame, so the mask may have changed: its components and
            // the object box follow it (on a reset frame the mask is the per-frame one).
            let min_pixels = self.model.min_component_pixels(seg.width_px, seg.height_px);
            (seg.components, seg.object) =
                box_list(&seg.fine_mask, seg.width_px as usize, seg.height_px as usize, min_pixels);
            seg.timing.postprocess_ms += t.elapsed().as_secs_f64() * 1e3;
        }
        Ok(StreamResult { segmentation: seg, reset })
    }

    /// Forgets the past frames: the next frame starts the smoothing again
    /// ([`Reset::Requested`]).
    pub fn reset(&self) {
        self.lock().reset();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, TemporalFilter> {
        // A panic inside a call cannot leave the filter half-updated in a way that matters
        // (the next frame resets or continues from a whole previous state), so a poisoned lock
        // is taken over.
        self.filter.lock().unwrap_or_else(|e| e.into_inner())
    }
}
