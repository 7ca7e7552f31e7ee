//! The C ABI of encoded images: the SDK's own decoder ([`crate::files::decode`]) for hosts
//! that hold a file's bytes (a server's request, a job's input), so a file gives the same
//! pixels, and so the same mask, through every host. `sempart_image_decode` hands out the
//! decoded pixels; `sempart_segment_encoded` decodes and segments in one call.

use super::boundary::{boundary, guard, non_null, write_optional};
use super::{SempartModel, SempartResult};
use crate::error::{Error, Result, Status};
use crate::files::decode::decode_rgb;
use crate::pipeline::frame::{Frame, PixelFormat};

/// A decoded image (opaque): packed RGB8 rows. Release with [`sempart_image_free`].
pub struct SempartImage {
    inner: image::RgbImage,
}

/// The caller's `size_bytes` bytes at `data` (NULL with size 0 is an empty buffer).
fn bytes<'a>(data: *const u8, size_bytes: usize) -> Result<&'a [u8]> {
    if size_bytes == 0 {
        return Err(Error::invalid("the encoded image is empty (0 bytes)"));
    }
    if data.is_null() {
        return Err(Error::new(Status::NullArgument, "data is NULL"));
    }
    // SAFETY: the caller promises `size_bytes` readable bytes at `data`.
    Ok(unsafe { std::slice::from_raw_parts(data, size_bytes) })
}

/// Decodes an encoded image (JPEG, PNG, BMP, TIFF, WebP or PNM; the format is read from the
/// bytes) to RGB8 with the SDK's decoder: grayscale replicated, alpha dropped, 16-bit samples
/// scaled to 8 bits, EXIF orientation not applied (the pixels as stored, as `sempart segment`
/// reads files). Sides above 16384 pixels are refused before any pixel memory is allocated.
/// On success `*out_image` owns a new image. A corrupt or unsupported image gives
/// `SEMPART_STATUS_IO` with the decoder's message.
#[no_mangle]
pub extern "C" fn sempart_image_decode(
    data: *const u8,
    size_bytes: usize,
    out_image: *mut *mut SempartImage,
) -> Status {
    guard(|| {
        if out_image.is_null() {
            return Err(Error::new(Status::NullArgument, "out_image is NULL"));
        }
        let rgb = decode_rgb(bytes(data, size_bytes)?)?;
        // SAFETY: checked non-NULL above; the caller provides a writable slot.
        unsafe { *out_image = Box::into_raw(Box::new(SempartImage { inner: rgb })) };
        Ok(())
    })
}

/// The image's width and height in pixels; either pointer may be NULL.
#[no_mangle]
pub extern "C" fn sempart_image_size(
    image: *const SempartImage,
    out_width_px: *mut u32,
    out_height_px: *mut u32,
) -> Status {
    guard(|| {
        let image = &non_null(image, "image")?.inner;
        write_optional(&[(out_width_px, image.width()), (out_height_px, image.height())]);
        Ok(())
    })
}

/// The image's pixels: `height` rows of `width * 3` bytes (R, G, B), no padding; owned by the
/// image. NULL for a NULL image.
#[no_mangle]
pub extern "C" fn sempart_image_pixels(image: *const SempartImage) -> *const u8 {
    boundary(std::ptr::null(), || {
        // SAFETY: NULL or an image from sempart_image_decode.
        unsafe { image.as_ref() }.map_or(std::ptr::null(), |i| i.inner.as_raw().as_ptr())
    })
}

/// Releases an image. NULL is ignored.
#[no_mangle]
pub extern "C" fn sempart_image_free(image: *mut SempartImage) {
    if !image.is_null() {
        // SAFETY: the pointer came from sempart_image_decode and is released once.
        boundary((), || drop(unsafe { Box::from_raw(image) }));
    }
}

/// Decodes an encoded image as [`sempart_image_decode`] does and segments it as
/// [`super::sempart_segment`] does: the result `sempart segment` gives for the same file.
/// On success `*out_result` owns a new result.
#[no_mangle]
pub extern "C" fn sempart_segment_encoded(
    model: *const SempartModel,
    data: *const u8,
    size_bytes: usize,
    out_result: *mut *mut SempartResult,
) -> Status {
    guard(|| {
        let model = non_null(model, "model")?;
        if out_result.is_null() {
            return Err(Error::new(Status::NullArgument, "out_result is NULL"));
        }
        let rgb = decode_rgb(bytes(data, size_bytes)?)?;
        let (w, h) = (rgb.width(), rgb.height());
        let frame = Frame::new(rgb.as_raw(), w, h, w as usize * 3, PixelFormat::Rgb8)?;
        let seg = model.inner.segment(&frame)?;
        // SAFETY: checked non-NULL above; the caller provides a writable slot.
        unsafe { *out_result = Box::into_raw(Box::new(SempartResult { inner: seg, reset: None })) };
        Ok(())
    })
}
