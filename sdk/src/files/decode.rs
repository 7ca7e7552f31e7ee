//! The SDK's image decoder: encoded bytes (JPEG, PNG, BMP, TIFF, WebP, PNM; the format is
//! guessed from the content) to packed RGB8. Grayscale is replicated, alpha dropped, 16-bit and
//! float samples scaled to 8 bits. EXIF orientation is not applied: the pixels are returned as
//! stored (a camera's portrait JPEG comes out on its side, as OpenCV's `IMREAD_IGNORE_ORIENTATION`
//! and PIL without `ImageOps.exif_transpose` give it). Sides above
//! [`crate::pipeline::frame::MAX_SIDE_PX`] are refused from the header, before any pixel memory
//! is allocated.

use crate::error::{Error, Result, Status};
use crate::pipeline::frame::MAX_SIDE_PX;
use std::path::Path;

/// Decodes encoded image bytes to RGB8. An empty (0-pixel) image is an error.
pub fn decode_rgb(bytes: &[u8]) -> Result<image::RgbImage> {
    decode_labelled(bytes, "the image")
}

/// Reads and decodes an image file to RGB8 (as [`decode_rgb`]): how `sempart segment`,
/// `sempart eval` and the trainer read their inputs.
pub fn load_rgb(path: &Path) -> Result<image::RgbImage> {
    let bytes =
        std::fs::read(path).map_err(|e| Error::new(Status::Io, format!("cannot open {}: {e}", path.display())))?;
    decode_labelled(&bytes, &path.display().to_string())
}

fn decode_labelled(bytes: &[u8], what: &str) -> Result<image::RgbImage> {
    let io = |verb: &str, e: &dyn std::fmt::Display| {
        Error::new(Status::Io, format!("cannot {verb} {what}: {}", e.to_string().trim_end()))
    };
    let mut reader =
        image::ImageReader::new(std::io::Cursor::new(bytes)).with_guessed_format().map_err(|e| io("read", &e))?;
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_SIDE_PX);
    limits.max_image_height = Some(MAX_SIDE_PX);
    reader.limits(limits);
    let rgb = reader.decode().map_err(|e| io("decode", &e))?.to_rgb8();
    if rgb.width() == 0 || rgb.height() == 0 {
        return Err(Error::new(Status::Io, format!("{what} is empty ({}x{})", rgb.width(), rgb.height())));
    }
    Ok(rgb)
}
