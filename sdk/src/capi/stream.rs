//! The C ABI of streams (`sempart_stream_*`): the frames of one camera or video, in order, with
//! temporal stability. The same conventions as the rest of the C ABI (module `capi`).

use super::boundary::{boundary, guard, non_null};
use super::{frame_from_c, SempartFrame, SempartModel, SempartResult};
use crate::error::{Error, Status};
use crate::pipeline::stream::Stream;
use crate::pipeline::temporal::{Reset, StreamOptions};

/// A stream of frames on one model (opaque). Create with [`sempart_stream_open`], release with
/// [`sempart_stream_free`]. It keeps its model alive: the model may be freed before the
/// stream. Calls on one stream are serialised: a call made while another runs on the same
/// stream waits for it. Streams of one model are independent and may run on different threads.
pub struct SempartStream {
    inner: Stream,
}

/// Options for [`sempart_stream_open`]. Initialise with [`sempart_stream_options_init`], then
/// change fields. Later versions may add fields at the end; `struct_size` tells the library
/// which version the caller was built against.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct SempartStreamOptions {
    /// `sizeof(sempart_stream_options)`, set by [`sempart_stream_options_init`]; leave it.
    pub struct_size: u32,
    /// Weight of the past in the average of the fine probabilities where the frame did not
    /// change, 0 <= strength < 1. 0: every frame's masks are exactly `sempart_segment`'s.
    /// Default 0.6.
    pub strength: f32,
    /// Half-width of the mask's hysteresis around 0.5 where the frame did not change,
    /// 0 <= hysteresis < 0.5: a pixel in the mask leaves it below 0.5 - hysteresis, one outside
    /// enters above 0.5 + hysteresis. Default 0.12.
    pub hysteresis: f32,
    /// Change of an 8x8 block's mean luma (0..255) at and above which the block follows the
    /// new frame alone (> 0); below it the past's weight falls linearly with the change.
    /// Default 255.
    pub motion_threshold: f32,
    /// Mean luma change of the whole frame (0..255) at and above which the frame is a scene cut
    /// and the average starts again (> 0). Default 40.
    pub scene_cut_threshold: f32,
    /// A timestamp more than this many nanoseconds after the previous frame's starts the average
    /// again (> 0). Default 250 ms.
    pub max_gap_ns: i64,
}

/// Why a stream started its temporal average again at a result's frame.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResetReason {
    /// No reset: the frame continued the average (also every result of `sempart_segment`).
    None = 0,
    /// The stream's first frame.
    FirstFrame = 1,
    /// The frame's size or pixel format differs from the previous frame's.
    FrameChanged = 2,
    /// The timestamp is not after the previous frame's.
    TimestampBackwards = 3,
    /// The timestamp is more than `max_gap_ns` after the previous frame's.
    TimestampGap = 4,
    /// A scene cut (`scene_cut_threshold`).
    SceneCut = 5,
    /// [`sempart_stream_reset`] was called before this frame.
    Requested = 6,
}

impl From<Option<Reset>> for ResetReason {
    fn from(r: Option<Reset>) -> Self {
        match r {
            None => ResetReason::None,
            Some(Reset::FirstFrame) => ResetReason::FirstFrame,
            Some(Reset::FrameChanged) => ResetReason::FrameChanged,
            Some(Reset::TimestampBackwards) => ResetReason::TimestampBackwards,
            Some(Reset::TimestampGap) => ResetReason::TimestampGap,
            Some(Reset::SceneCut) => ResetReason::SceneCut,
            Some(Reset::Requested) => ResetReason::Requested,
        }
    }
}

fn options_to_c(o: &StreamOptions) -> SempartStreamOptions {
    SempartStreamOptions {
        struct_size: std::mem::size_of::<SempartStreamOptions>() as u32,
        strength: o.strength,
        hysteresis: o.hysteresis,
        motion_threshold: o.motion_threshold,
        scene_cut_threshold: o.scene_cut_threshold,
        max_gap_ns: o.max_gap_ns,
    }
}

fn options_from_c(o: &SempartStreamOptions) -> crate::Result<StreamOptions> {
    let expected = std::mem::size_of::<SempartStreamOptions>() as u32;
    if o.struct_size != expected {
        return Err(Error::invalid(format!(
            "sempart_stream_options.struct_size is {}, expected {expected}: initialise the options with \
             sempart_stream_options_init",
            o.struct_size
        )));
    }
    let options = StreamOptions {
        strength: o.strength,
        hysteresis: o.hysteresis,
        motion_threshold: o.motion_threshold,
        scene_cut_threshold: o.scene_cut_threshold,
        max_gap_ns: o.max_gap_ns,
    };
    // The ranges are checked once, by `Segmenter::stream`.
    Ok(options)
}

/// Writes the default stream options (stability on) into `*out`.
#[no_mangle]
pub extern "C" fn sempart_stream_options_init(out: *mut SempartStreamOptions) -> Status {
    guard(|| {
        if out.is_null() {
            return Err(Error::new(Status::NullArgument, "out is NULL"));
        }
        // SAFETY: checked non-NULL; the caller provides a writable struct.
        unsafe { *out = options_to_c(&StreamOptions::DEFAULT) };
        Ok(())
    })
}

/// Opens a stream on `model`. `options` may be NULL for the defaults (stability on). On success
/// `*out_stream` owns a new stream, to be released with [`sempart_stream_free`].
#[no_mangle]
pub extern "C" fn sempart_stream_open(
    model: *const SempartModel,
    options: *const SempartStreamOptions,
    out_stream: *mut *mut SempartStream,
) -> Status {
    guard(|| {
        let model = non_null(model, "model")?;
        if out_stream.is_null() {
            return Err(Error::new(Status::NullArgument, "out_stream is NULL"));
        }
        // SAFETY: NULL or a readable struct, as the caller promises.
        let options = match unsafe { options.as_ref() } {
            Some(o) => options_from_c(o)?,
            None => StreamOptions::DEFAULT,
        };
        let inner = model.inner.stream(options)?;
        // SAFETY: checked non-NULL above; the caller provides a writable pointer slot.
        unsafe { *out_stream = Box::into_raw(Box::new(SempartStream { inner })) };
        Ok(())
    })
}

/// Segments the stream's next frame, taken at `timestamp_ns` (nanoseconds on a clock that only
/// moves forward). On success `*out_result` owns a new result (as [`super::sempart_segment`]'s,
/// with the masks smoothed over time); [`sempart_result_reset_reason`] says whether the average
/// started again at this frame and why. A frame of another size or format than the previous,
/// a timestamp that is not after the previous one or jumps by more than `max_gap_ns`, and a
/// scene cut restart the average; they are not errors. On failure the stream is as it was.
#[no_mangle]
pub extern "C" fn sempart_stream_segment(
    stream: *const SempartStream,
    frame: *const SempartFrame,
    timestamp_ns: i64,
    out_result: *mut *mut SempartResult,
) -> Status {
    guard(|| {
        let stream = non_null(stream, "stream")?;
        let frame = frame_from_c(non_null(frame, "frame")?)?;
        if out_result.is_null() {
            return Err(Error::new(Status::NullArgument, "out_result is NULL"));
        }
        let r = stream.inner.segment(&frame, timestamp_ns)?;
        let result = SempartResult { inner: r.segmentation, reset: r.reset };
        // SAFETY: checked non-NULL above; the caller provides a writable pointer slot.
        unsafe { *out_result = Box::into_raw(Box::new(result)) };
        Ok(())
    })
}

/// Forgets the stream's past frames: the next frame starts the average again
/// (`SEMPART_RESET_REASON_REQUESTED`), e.g. after a seek.
#[no_mangle]
pub extern "C" fn sempart_stream_reset(stream: *const SempartStream) -> Status {
    guard(|| {
        non_null(stream, "stream")?.inner.reset();
        Ok(())
    })
}

/// Releases a stream. NULL is ignored. No call on this stream may be running or follow. The
/// model stays usable (and is released with its own [`super::sempart_model_free`]).
#[no_mangle]
pub extern "C" fn sempart_stream_free(stream: *mut SempartStream) {
    if !stream.is_null() {
        // SAFETY: the pointer came from sempart_stream_open and is released once.
        boundary((), || drop(unsafe { Box::from_raw(stream) }));
    }
}

/// Whether the stream started its temporal average again at this result's frame, and why, in
/// `*out_reason` (`SEMPART_RESET_REASON_NONE` for every result of `sempart_segment`).
#[no_mangle]
pub extern "C" fn sempart_result_reset_reason(result: *const SempartResult, out_reason: *mut ResetReason) -> Status {
    guard(|| {
        let r = non_null(result, "result")?;
        if out_reason.is_null() {
            return Err(Error::new(Status::NullArgument, "out_reason is NULL"));
        }
        // SAFETY: checked non-NULL; the caller provides a writable value.
        unsafe { *out_reason = r.reset.into() };
        Ok(())
    })
}
