//! The C ABI (`include/sempart.h`, generated from this file by cbindgen).
//!
//! Conventions, the same for every function:
//! - fallible calls return a `sempart_status`; `SEMPART_STATUS_OK` (0) is success, and
//!   [`sempart_last_error_message`] then describes the most recent failure on the calling
//!   thread (a successful call does not clear it: read it only after a failure);
//! - output pointers are written only on success;
//! - every object created by `*_open`/`sempart_segment*` is released by its `*_free`, which
//!   accepts NULL;
//! - no Rust panic ever crosses this boundary, and none is printed: each body runs inside
//!   the `boundary` module's `boundary` (through `guard` for status-returning functions), which turns a panic into
//!   `SEMPART_STATUS_INTERNAL` (or the accessor's NULL / 0 / -1) with the panic's message as
//!   the last error;
//! - threads: a `sempart_model` may be used by any number of threads at once; a
//!   `sempart_result` belongs to one thread at a time; calls on one `sempart_stream` are
//!   serialised (a second waits for the first).

// These functions are called from C, where "unsafe" does not exist; each documents what it
// requires of its pointer arguments and checks every pointer for NULL, which is all Rust can
// check. Marking them `unsafe fn` would change nothing for their callers.
#![allow(clippy::not_unsafe_ptr_arg_deref)]

use crate::error::{Error, Result, Status};
use crate::pipeline::frame::{Frame, PixelFormat};
use crate::pipeline::refine::GuidedFilter;
use crate::pipeline::result::{Segmentation, Timing};
use crate::pipeline::runtime::{Options, Provider};
use crate::pipeline::segmenter::Segmenter;
use std::ffi::{c_char, CStr};

mod boundary;
pub mod boxes;
pub mod encoded;
pub mod stream;
use boundary::{boundary, c_path, guard, non_null, write_optional};

/// A loaded model (opaque). Create with [`sempart_model_open`], release with
/// [`sempart_model_free`]. Safe to share between threads.
pub struct SempartModel {
    inner: std::sync::Arc<Segmenter>,
}

/// The result of segmenting one frame (opaque). Release with [`sempart_result_free`]. A
/// result owns its data and may outlive the model that made it.
pub struct SempartResult {
    inner: Segmentation,
    reset: Option<crate::pipeline::temporal::Reset>,
}

/// Options for [`sempart_model_open`]. Initialise with [`sempart_options_init`], then change
/// fields.
#[repr(C)]
pub struct SempartOptions {
    /// Execution providers in order of preference (`sempart_provider` values); only the first
    /// `provider_count` entries are read.
    pub providers: [u32; 3],
    /// How many entries of `providers` are used (1..=3).
    pub provider_count: u32,
    /// Non-zero: when a provider cannot be used, try the next and finally the CPU. Zero: the
    /// first provider must work, else `SEMPART_STATUS_PROVIDER_UNAVAILABLE`.
    pub allow_fallback: u8,
    /// Threads for CPU inference; 0 lets ONNX Runtime choose.
    pub cpu_threads: u32,
    /// GPU index for CUDA and TensorRT.
    pub device_id: i32,
    /// Non-zero: TensorRT may build fp16 engines.
    pub tensorrt_fp16: u8,
    /// Folder for TensorRT's engine cache (UTF-8), or NULL for none. Copied during the call.
    pub tensorrt_engine_cache_dir: *const c_char,
    /// Path of `libonnxruntime.so.1.31.1` to load, or NULL to search (`$SEMPART_ORT_LIBRARY`,
    /// then next to `libsempart.so`). Copied during the call. ONNX Runtime is loaded once per
    /// process, by the first successful open: later opens with NULL use that library, and a
    /// later open naming another file fails with `SEMPART_STATUS_RUNTIME_UNAVAILABLE`.
    pub ort_library: *const c_char,
    /// Radius of the fine mask's edge-aware refinement (guided filter with the frame as the
    /// guide), in model-input pixels, 0..=256; 0 switches it off (plain bilinear resize).
    /// Default 8.
    pub refine_radius: f32,
    /// Regulariser of the refinement (colours in [0, 1]), > 0. Default 0.001.
    pub refine_eps: f32,
    /// Non-zero (the default): check the model file's content digest at open; a file altered
    /// after export gives `SEMPART_STATUS_MODEL_INTEGRITY`. Zero skips the check (about 0.3 s
    /// for the default model) for callers who verified the file elsewhere.
    pub verify_integrity: u8,
}

/// A frame in caller memory. The SDK reads it during the call only.
///
/// Buffer size: with `b` bytes per pixel (RGB8, BGR8: 3; RGBA8, BGRA8: 4; GRAY8, NV12: 1),
/// `data_size_bytes` must be at least `row_stride_bytes * (height_px - 1) + width_px * b`
/// (the last row needs no padding); for NV12 the interleaved U/V plane of `height_px / 2`
/// rows follows the Y plane at `row_stride_bytes * height_px`, so at least
/// `row_stride_bytes * (height_px + height_px / 2 - 1) + width_px`. A smaller buffer gives
/// `SEMPART_STATUS_INVALID_ARGUMENT` with both sizes in the message.
#[repr(C)]
pub struct SempartFrame {
    /// First byte of the first row.
    pub data: *const u8,
    /// Size of the buffer at `data`, in bytes.
    pub data_size_bytes: usize,
    /// Width in pixels (1..=16384).
    pub width_px: u32,
    /// Height in pixels (1..=16384).
    pub height_px: u32,
    /// Bytes from the start of one row to the next (at least width x bytes per pixel).
    pub row_stride_bytes: usize,
    /// A `sempart_pixel_format` value.
    pub pixel_format: u32,
}

/// A connected component of the fine mask: bounding box in frame pixels (`x1`, `y1`
/// exclusive) and pixel count.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct SempartBox {
    /// Left edge (inclusive).
    pub x0: u32,
    /// Top edge (inclusive).
    pub y0: u32,
    /// Right edge (exclusive).
    pub x1: u32,
    /// Bottom edge (exclusive).
    pub y1: u32,
    /// Number of foreground pixels in the component.
    pub pixel_count: u32,
}

fn options_from_c(opts: &SempartOptions) -> Result<Options> {
    if opts.provider_count == 0 || opts.provider_count > 3 {
        return Err(Error::invalid(format!("provider_count is {}, expected 1..=3", opts.provider_count)));
    }
    let providers = opts.providers[..opts.provider_count as usize]
        .iter()
        .map(|&p| Provider::from_raw(p).ok_or_else(|| Error::invalid(format!("unknown provider value {p}"))))
        .collect::<Result<Vec<_>>>()?;
    Ok(Options {
        providers,
        allow_fallback: opts.allow_fallback != 0,
        cpu_threads: opts.cpu_threads as usize,
        device_id: opts.device_id,
        tensorrt_fp16: opts.tensorrt_fp16 != 0,
        tensorrt_engine_cache_dir: c_path(opts.tensorrt_engine_cache_dir, "tensorrt_engine_cache_dir")?,
        ort_library: c_path(opts.ort_library, "ort_library")?,
        refine: GuidedFilter { radius: opts.refine_radius, eps: opts.refine_eps },
        profile: None,
        verify_integrity: opts.verify_integrity != 0,
        // Not in the C struct: changed with sempart_model_set_min_component_fraction.
        ..Options::default()
    })
}

fn frame_from_c(frame: &SempartFrame) -> Result<Frame<'_>> {
    let format = PixelFormat::from_raw(frame.pixel_format)
        .ok_or_else(|| Error::invalid(format!("unknown pixel format value {}", frame.pixel_format)))?;
    if frame.data.is_null() {
        return Err(Error::new(Status::NullArgument, "frame data is NULL"));
    }
    // SAFETY: the caller promises `data` points to `data_size_bytes` readable bytes that stay
    // valid during the call; Frame::new then checks that the size covers every row.
    let data = unsafe { std::slice::from_raw_parts(frame.data, frame.data_size_bytes) };
    Frame::new(data, frame.width_px, frame.height_px, frame.row_stride_bytes, format)
}

/// The SDK version as a static NUL-terminated string, e.g. `"0.1.0"`.
#[no_mangle]
pub extern "C" fn sempart_version() -> *const c_char {
    boundary(c"".as_ptr(), || concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast())
}

/// A static description of a `sempart_status` value (never NULL; unknown values give
/// "unknown status").
#[no_mangle]
pub extern "C" fn sempart_status_string(status: i32) -> *const c_char {
    boundary(c"unknown status".as_ptr(), || {
        Status::from_raw(status).map_or(c"unknown status".as_ptr(), |s| s.describe_c().as_ptr())
    })
}

/// The message of the last failed call on this thread (empty if none). Successful calls do
/// not clear it, so read it right after a call returned a status other than
/// `SEMPART_STATUS_OK`. Valid until the next failing call on the same thread; never NULL.
#[no_mangle]
pub extern "C" fn sempart_last_error_message() -> *const c_char {
    boundary(c"".as_ptr(), boundary::last_error_message)
}

/// Fills `out` with the defaults: CPU only, fallback allowed, ONNX Runtime picks the threads,
/// refinement on (radius 8, eps 0.001).
#[no_mangle]
pub extern "C" fn sempart_options_init(out: *mut SempartOptions) -> Status {
    guard(|| {
        // SAFETY: the caller promises `out` points to writable memory for one SempartOptions.
        let out = unsafe { out.as_mut() }.ok_or_else(|| Error::new(Status::NullArgument, "options is NULL"))?;
        *out = SempartOptions {
            providers: [Provider::Cpu as u32, Provider::Cpu as u32, Provider::Cpu as u32],
            provider_count: 1,
            allow_fallback: 1,
            cpu_threads: 0,
            device_id: 0,
            tensorrt_fp16: 0,
            tensorrt_engine_cache_dir: std::ptr::null(),
            ort_library: std::ptr::null(),
            refine_radius: GuidedFilter::DEFAULT.radius,
            refine_eps: GuidedFilter::DEFAULT.eps,
            verify_integrity: 1,
        };
        Ok(())
    })
}

/// Opens a model file. `options` may be NULL for the defaults. On success `*out_model` owns a
/// new model, to be released with [`sempart_model_free`].
#[no_mangle]
pub extern "C" fn sempart_model_open(
    path: *const c_char,
    options: *const SempartOptions,
    out_model: *mut *mut SempartModel,
) -> Status {
    guard(|| {
        if out_model.is_null() {
            return Err(Error::new(Status::NullArgument, "out_model is NULL"));
        }
        let path = c_path(path, "path")?.ok_or_else(|| Error::new(Status::NullArgument, "path is NULL"))?;
        let options = match unsafe { options.as_ref() } {
            Some(o) => options_from_c(o)?,
            None => Options::default(),
        };
        let inner = Segmenter::open(&path, &options)?;
        let model = Box::into_raw(Box::new(SempartModel { inner: std::sync::Arc::new(inner) }));
        // SAFETY: checked non-NULL above; the caller provides a writable pointer slot.
        unsafe { *out_model = model };
        Ok(())
    })
}

/// Releases a model. NULL is ignored. No call on this model may be running or follow.
/// Results already returned by it stay valid: they own their data and are released with
/// [`sempart_result_free`] before or after the model.
#[no_mangle]
pub extern "C" fn sempart_model_free(model: *mut SempartModel) {
    if !model.is_null() {
        // SAFETY: the pointer came from sempart_model_open and is released once.
        boundary((), || drop(unsafe { Box::from_raw(model) }));
    }
}

/// The execution provider the model runs on (a `sempart_provider` value) in `*out_provider`.
#[no_mangle]
pub extern "C" fn sempart_model_provider(model: *const SempartModel, out_provider: *mut Provider) -> Status {
    guard(|| {
        let model = non_null(model, "model")?;
        let out =
            unsafe { out_provider.as_mut() }.ok_or_else(|| Error::new(Status::NullArgument, "out_provider is NULL"))?;
        *out = model.inner.provider();
        Ok(())
    })
}

/// The model's input size and coarse grid size. Any output pointer may be NULL.
#[no_mangle]
pub extern "C" fn sempart_model_input_size(
    model: *const SempartModel,
    out_width_px: *mut u32,
    out_height_px: *mut u32,
    out_grid_width: *mut u32,
    out_grid_height: *mut u32,
) -> Status {
    guard(|| {
        let info = non_null(model, "model")?.inner.info();
        write_optional(&[
            (out_width_px, info.input_width_px as u32),
            (out_height_px, info.input_height_px as u32),
            (out_grid_width, info.grid_width as u32),
            (out_grid_height, info.grid_height as u32),
        ]);
        Ok(())
    })
}

/// Copies the metadata value of `key` (e.g. `"sempart.backbone.origin"`) as a NUL-terminated
/// string into `buffer` of `buffer_size` bytes and its length (without NUL) into
/// `*out_length`. A too small buffer gives `SEMPART_STATUS_INVALID_ARGUMENT` with
/// `*out_length` set, so the caller can retry; `buffer` may be NULL to ask the length only.
/// `out_length` may be NULL when the caller does not need the length (then a NULL `buffer`
/// only checks that the key exists).
#[no_mangle]
pub extern "C" fn sempart_model_metadata(
    model: *const SempartModel,
    key: *const c_char,
    buffer: *mut c_char,
    buffer_size: usize,
    out_length: *mut usize,
) -> Status {
    guard(|| {
        let info = non_null(model, "model")?.inner.info();
        if key.is_null() {
            return Err(Error::new(Status::NullArgument, "key is NULL"));
        }
        let key = unsafe { CStr::from_ptr(key) }.to_string_lossy();
        let value = info
            .metadata
            .get(key.as_ref())
            .ok_or_else(|| Error::invalid(format!("the model has no metadata entry '{key}'")))?;
        if let Some(len) = unsafe { out_length.as_mut() } {
            *len = value.len();
        }
        if buffer.is_null() {
            return Ok(());
        }
        if buffer_size < value.len() + 1 {
            return Err(Error::invalid(format!(
                "buffer of {buffer_size} bytes is too small for the value of '{key}' ({} bytes with NUL)",
                value.len() + 1
            )));
        }
        // SAFETY: the caller provides `buffer_size` writable bytes, checked to be enough.
        unsafe {
            std::ptr::copy_nonoverlapping(value.as_ptr(), buffer.cast::<u8>(), value.len());
            *buffer.add(value.len()) = 0;
        }
        Ok(())
    })
}

/// Segments one frame. On success `*out_result` owns a new result, to be released with
/// [`sempart_result_free`]. May be called from many threads at once on one model.
#[no_mangle]
pub extern "C" fn sempart_segment(
    model: *const SempartModel,
    frame: *const SempartFrame,
    out_result: *mut *mut SempartResult,
) -> Status {
    sempart_segment_batch(model, frame, 1, out_result)
}

/// Segments `count` frames in one inference run. `frames` points to `count` frames,
/// `out_results` to `count` pointer slots; on success each slot owns a new result. On failure
/// no slot is written.
#[no_mangle]
pub extern "C" fn sempart_segment_batch(
    model: *const SempartModel,
    frames: *const SempartFrame,
    count: usize,
    out_results: *mut *mut SempartResult,
) -> Status {
    guard(|| {
        let model = non_null(model, "model")?;
        if frames.is_null() {
            return Err(Error::new(Status::NullArgument, "frame is NULL"));
        }
        if out_results.is_null() {
            return Err(Error::new(Status::NullArgument, "out_result is NULL"));
        }
        if count == 0 || count > 1024 {
            return Err(Error::invalid(format!("batch of {count} frames, expected 1..=1024")));
        }
        // SAFETY: the caller promises `count` frames at `frames`.
        let c_frames = unsafe { std::slice::from_raw_parts(frames, count) };
        let frames = c_frames
            .iter()
            .enumerate()
            .map(|(i, f)| {
                frame_from_c(f).map_err(|e| {
                    if count == 1 {
                        e
                    } else {
                        Error::new(e.status(), format!("frame {i}: {}", e.message()))
                    }
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let results = model.inner.segment_batch(&frames)?;
        for (i, r) in results.into_iter().enumerate() {
            // SAFETY: the caller provides `count` writable pointer slots.
            unsafe { *out_results.add(i) = Box::into_raw(Box::new(SempartResult { inner: r, reset: None })) };
        }
        Ok(())
    })
}

/// Releases a result. NULL is ignored.
#[no_mangle]
pub extern "C" fn sempart_result_free(result: *mut SempartResult) {
    if !result.is_null() {
        // SAFETY: the pointer came from sempart_segment* and is released once.
        boundary((), || drop(unsafe { Box::from_raw(result) }));
    }
}

fn result_ref<'a>(result: *const SempartResult) -> Option<&'a Segmentation> {
    // SAFETY: the caller promises a valid result or NULL.
    unsafe { result.as_ref() }.map(|r| &r.inner)
}

/// Frame size of a result; any output pointer may be NULL. Returns
/// `SEMPART_STATUS_NULL_ARGUMENT` for a NULL result.
#[no_mangle]
pub extern "C" fn sempart_result_size(
    result: *const SempartResult,
    out_width_px: *mut u32,
    out_height_px: *mut u32,
    out_grid_width: *mut u32,
    out_grid_height: *mut u32,
) -> Status {
    guard(|| {
        let r = result_ref(result).ok_or_else(|| Error::new(Status::NullArgument, "result is NULL"))?;
        write_optional(&[
            (out_width_px, r.width_px),
            (out_height_px, r.height_px),
            (out_grid_width, r.grid_width),
            (out_grid_height, r.grid_height),
        ]);
        Ok(())
    })
}

/// The fine mask: width x height bytes, row-major, no padding, 255 = foreground, 0 =
/// background. Owned by the result; NULL for a NULL result.
#[no_mangle]
pub extern "C" fn sempart_result_fine_mask(result: *const SempartResult) -> *const u8 {
    boundary(std::ptr::null(), || result_ref(result).map_or(std::ptr::null(), |r| r.fine_mask.as_ptr()))
}

/// Foreground probability per frame pixel (width x height floats in 0..1). Owned by the result.
#[no_mangle]
pub extern "C" fn sempart_result_fine_probability(result: *const SempartResult) -> *const f32 {
    boundary(std::ptr::null(), || result_ref(result).map_or(std::ptr::null(), |r| r.fine_probability.as_ptr()))
}

/// The coarse mask on the model grid (grid_width x grid_height bytes, 255 = foreground).
#[no_mangle]
pub extern "C" fn sempart_result_coarse_mask(result: *const SempartResult) -> *const u8 {
    boundary(std::ptr::null(), || result_ref(result).map_or(std::ptr::null(), |r| r.coarse_mask.as_ptr()))
}

/// Foreground probability per grid cell (grid_width x grid_height floats).
#[no_mangle]
pub extern "C" fn sempart_result_coarse_probability(result: *const SempartResult) -> *const f32 {
    boundary(std::ptr::null(), || result_ref(result).map_or(std::ptr::null(), |r| r.coarse_probability.as_ptr()))
}

/// Number of connected components of the fine mask (0 for a NULL result).
#[no_mangle]
pub extern "C" fn sempart_result_box_count(result: *const SempartResult) -> usize {
    boundary(0, || result_ref(result).map_or(0, |r| r.components.len()))
}

/// Copies component `index` into `*out_box`.
#[no_mangle]
pub extern "C" fn sempart_result_box(result: *const SempartResult, index: usize, out_box: *mut SempartBox) -> Status {
    guard(|| {
        let r = result_ref(result).ok_or_else(|| Error::new(Status::NullArgument, "result is NULL"))?;
        let out = unsafe { out_box.as_mut() }.ok_or_else(|| Error::new(Status::NullArgument, "out_box is NULL"))?;
        let c = r
            .components
            .get(index)
            .ok_or_else(|| Error::invalid(format!("box index {index} out of range ({} boxes)", r.components.len())))?;
        *out = SempartBox { x0: c.x0, y0: c.y0, x1: c.x1, y1: c.y1, pixel_count: c.pixel_count };
        Ok(())
    })
}

/// Index of the object box (the component with the largest bounding box, the paper's rule), or
/// -1 when the mask is empty or the result is NULL.
#[no_mangle]
pub extern "C" fn sempart_result_object_index(result: *const SempartResult) -> i64 {
    boundary(-1, || result_ref(result).and_then(|r| r.object).map_or(-1, |i| i as i64))
}

/// Time spent per stage of the call that produced the result (zeros for a NULL result).
#[no_mangle]
pub extern "C" fn sempart_result_timing(result: *const SempartResult) -> Timing {
    boundary(Timing::default(), || result_ref(result).map_or(Timing::default(), |r| r.timing))
}

#[cfg(test)]
mod tests {
    /// Every exported function runs its body through the one boundary.
    #[test]
    fn every_extern_function_goes_through_the_boundary() {
        let source = include_str!("mod.rs");
        let source = &source[..source.find("#[cfg(test)]").expect("tests at the end")];
        let bodies: Vec<&str> = source.split("pub extern \"C\" fn ").skip(1).collect();
        assert!(bodies.len() >= 20, "{} exported functions", bodies.len());
        for body in bodies {
            let name = body.split('(').next().unwrap_or_default();
            let end = body.find("\n}\n").expect("function end");
            let code = &body[..end];
            // sempart_segment is sempart_segment_batch with one frame (which has the guard).
            let delegates = code.contains("sempart_segment_batch(model, frame, 1, out_result)");
            assert!(
                code.contains("boundary(") || code.contains("guard(") || delegates,
                "{name} bypasses the panic boundary"
            );
        }
    }
}
