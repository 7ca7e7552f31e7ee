//! Caller-owned frames: pixel formats, sizes and row strides, validated once.

use crate::error::{Error, Result};

/// Largest accepted frame side, in pixels. Larger frames are refused with
/// [`crate::Status::InvalidArgument`] (they would be an error in the caller, not a photo).
pub const MAX_SIDE_PX: u32 = 16384;

/// Layout of the pixels of a frame. Values are part of the C ABI.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PixelFormat {
    /// 3 bytes per pixel: red, green, blue.
    Rgb8 = 0,
    /// 3 bytes per pixel: blue, green, red.
    Bgr8 = 1,
    /// 4 bytes per pixel: red, green, blue, alpha (alpha ignored).
    Rgba8 = 2,
    /// 4 bytes per pixel: blue, green, red, alpha (alpha ignored).
    Bgra8 = 3,
    /// 1 byte per pixel: luma, used as R = G = B.
    Gray8 = 4,
    /// YUV 4:2:0, a full-resolution Y plane followed by an interleaved U/V plane at half
    /// resolution, both with the same row stride (BT.601 limited range). Width and height must
    /// be even.
    Nv12 = 5,
}

impl PixelFormat {
    /// All formats, in ABI order.
    pub const ALL: [PixelFormat; 6] = [
        PixelFormat::Rgb8,
        PixelFormat::Bgr8,
        PixelFormat::Rgba8,
        PixelFormat::Bgra8,
        PixelFormat::Gray8,
        PixelFormat::Nv12,
    ];

    /// The format with the given ABI value, if any.
    pub fn from_raw(value: u32) -> Option<PixelFormat> {
        PixelFormat::ALL.get(value as usize).copied()
    }

    /// Bytes per pixel of the (first) plane.
    pub fn bytes_per_pixel(self) -> usize {
        match self {
            PixelFormat::Rgb8 | PixelFormat::Bgr8 => 3,
            PixelFormat::Rgba8 | PixelFormat::Bgra8 => 4,
            PixelFormat::Gray8 | PixelFormat::Nv12 => 1,
        }
    }
}

/// A borrowed frame: the SDK reads `data` during the call and keeps no reference to it.
#[derive(Debug, Clone, Copy)]
pub struct Frame<'a> {
    data: &'a [u8],
    width_px: u32,
    height_px: u32,
    row_stride_bytes: usize,
    format: PixelFormat,
}

impl<'a> Frame<'a> {
    /// Checks and wraps caller memory. `row_stride_bytes` is the distance between the starts of
    /// two rows; it must be at least `width_px * bytes_per_pixel`. `data` must hold every row
    /// (the last row need not be padded to the full stride).
    pub fn new(
        data: &'a [u8],
        width_px: u32,
        height_px: u32,
        row_stride_bytes: usize,
        format: PixelFormat,
    ) -> Result<Frame<'a>> {
        if width_px == 0 || height_px == 0 {
            return Err(Error::invalid(format!(
                "frame size {width_px}x{height_px}: width and height must be at least 1"
            )));
        }
        if width_px > MAX_SIDE_PX || height_px > MAX_SIDE_PX {
            return Err(Error::invalid(format!(
                "frame size {width_px}x{height_px} exceeds the limit of {MAX_SIDE_PX} pixels per side"
            )));
        }
        let row_bytes = width_px as usize * format.bytes_per_pixel();
        if row_stride_bytes < row_bytes {
            return Err(Error::invalid(format!(
                "row stride {row_stride_bytes} bytes is smaller than one row ({width_px} px x {} bytes = {row_bytes} bytes)",
                format.bytes_per_pixel()
            )));
        }
        let rows = match format {
            PixelFormat::Nv12 => {
                if !width_px.is_multiple_of(2) || !height_px.is_multiple_of(2) {
                    return Err(Error::invalid(format!(
                        "NV12 frame size {width_px}x{height_px}: width and height must be even"
                    )));
                }
                height_px as usize * 3 / 2
            }
            _ => height_px as usize,
        };
        let Some(needed) = (rows - 1).checked_mul(row_stride_bytes).and_then(|n| n.checked_add(row_bytes)) else {
            return Err(Error::invalid(format!(
                "row stride {row_stride_bytes} bytes is too large: a {width_px}x{height_px} frame would span more than {} bytes",
                usize::MAX
            )));
        };
        if data.len() < needed {
            return Err(Error::invalid(format!(
                "frame buffer holds {} bytes, a {width_px}x{height_px} {format:?} frame with row stride {row_stride_bytes} needs {needed}",
                data.len()
            )));
        }
        Ok(Frame { data, width_px, height_px, row_stride_bytes, format })
    }

    /// Width in pixels.
    pub fn width_px(&self) -> u32 {
        self.width_px
    }

    /// Height in pixels.
    pub fn height_px(&self) -> u32 {
        self.height_px
    }

    /// Pixel format.
    pub fn format(&self) -> PixelFormat {
        self.format
    }

    /// Row stride in bytes.
    pub fn row_stride_bytes(&self) -> usize {
        self.row_stride_bytes
    }

    /// Decodes row `y` into `out` (one RGB triple per pixel, `out.len()` = the width), as
    /// [`Frame::rgb_at`] would pixel by pixel; the packed formats are copied without a
    /// per-pixel format dispatch.
    ///
    /// # Panics
    /// When `y` is outside the frame or `out` is not one row long.
    pub fn row_rgb(&self, y: usize, out: &mut [[u8; 3]]) {
        let w = self.width_px as usize;
        assert!(y < self.height_px as usize && out.len() == w, "row_rgb: row {y} into {} pixels", out.len());
        let row = &self.data[y * self.row_stride_bytes..];
        match self.format {
            PixelFormat::Rgb8 => out.iter_mut().zip(row.chunks_exact(3)).for_each(|(o, p)| *o = [p[0], p[1], p[2]]),
            PixelFormat::Bgr8 => out.iter_mut().zip(row.chunks_exact(3)).for_each(|(o, p)| *o = [p[2], p[1], p[0]]),
            PixelFormat::Rgba8 => out.iter_mut().zip(row.chunks_exact(4)).for_each(|(o, p)| *o = [p[0], p[1], p[2]]),
            PixelFormat::Bgra8 => out.iter_mut().zip(row.chunks_exact(4)).for_each(|(o, p)| *o = [p[2], p[1], p[0]]),
            PixelFormat::Gray8 => out.iter_mut().zip(row).for_each(|(o, &v)| *o = [v, v, v]),
            PixelFormat::Nv12 => out.iter_mut().enumerate().for_each(|(x, o)| *o = self.rgb_at(x, y)),
        }
    }

    /// Row `y` as interleaved RGB bytes (`3 x width`): the frame's own bytes for
    /// [`PixelFormat::Rgb8`] (no copy), otherwise decoded into `scratch` by [`Frame::row_rgb`].
    /// The flat slice lets per-channel loops run over contiguous bytes.
    ///
    /// # Panics
    /// When `y` is outside the frame or `scratch` is not one row long.
    pub fn row_rgb_bytes<'s>(&'s self, y: usize, scratch: &'s mut [[u8; 3]]) -> &'s [u8] {
        let w = self.width_px as usize;
        assert!(
            y < self.height_px as usize && scratch.len() == w,
            "row_rgb_bytes: row {y} into {} pixels",
            scratch.len()
        );
        if self.format == PixelFormat::Rgb8 {
            let start = y * self.row_stride_bytes;
            return &self.data[start..start + 3 * w];
        }
        self.row_rgb(y, scratch);
        scratch.as_flattened()
    }

    /// The colour of pixel (x, y) as RGB bytes.
    #[inline]
    pub fn rgb_at(&self, x: usize, y: usize) -> [u8; 3] {
        let row = y * self.row_stride_bytes;
        match self.format {
            PixelFormat::Rgb8 => {
                let p = row + 3 * x;
                [self.data[p], self.data[p + 1], self.data[p + 2]]
            }
            PixelFormat::Bgr8 => {
                let p = row + 3 * x;
                [self.data[p + 2], self.data[p + 1], self.data[p]]
            }
            PixelFormat::Rgba8 => {
                let p = row + 4 * x;
                [self.data[p], self.data[p + 1], self.data[p + 2]]
            }
            PixelFormat::Bgra8 => {
                let p = row + 4 * x;
                [self.data[p + 2], self.data[p + 1], self.data[p]]
            }
            PixelFormat::Gray8 => {
                let v = self.data[row + x];
                [v, v, v]
            }
            PixelFormat::Nv12 => {
                let luma = self.data[row + x] as f32;
                let uv_row = (self.height_px as usize + y / 2) * self.row_stride_bytes;
                let uv = uv_row + (x & !1);
                let u = self.data[uv] as f32 - 128.0;
                let v = self.data[uv + 1] as f32 - 128.0;
                let c = 1.164_383 * (luma - 16.0);
                let clamp = |f: f32| f.round().clamp(0.0, 255.0) as u8;
                [clamp(c + 1.596_027 * v), clamp(c - 0.391_762 * u - 0.812_968 * v), clamp(c + 2.017_232 * u)]
            }
        }
    }
}
