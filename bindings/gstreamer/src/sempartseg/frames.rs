//! Pixels between GStreamer video frames and the SDK: which formats map to which, a mapped
//! frame as a [`sempart::Frame`], and the mask written out as GRAY8, as alpha in place, or
//! beside the frame's colours as RGBA.

use gst_video::prelude::*;
use gst_video::{VideoFormat, VideoFrameRef};
use sempart::{Frame, PixelFormat};

/// The raw formats the element takes, in the order its caps list them.
pub const FORMATS: [VideoFormat; 6] =
    [VideoFormat::Rgb, VideoFormat::Bgr, VideoFormat::Rgba, VideoFormat::Bgra, VideoFormat::Nv12, VideoFormat::Gray8];

/// The SDK's name for one of [`FORMATS`].
pub fn pixel_format(format: VideoFormat) -> Option<PixelFormat> {
    Some(match format {
        VideoFormat::Rgb => PixelFormat::Rgb8,
        VideoFormat::Bgr => PixelFormat::Bgr8,
        VideoFormat::Rgba => PixelFormat::Rgba8,
        VideoFormat::Bgra => PixelFormat::Bgra8,
        VideoFormat::Nv12 => PixelFormat::Nv12,
        VideoFormat::Gray8 => PixelFormat::Gray8,
        _ => return None,
    })
}

fn plane<'a>(frame: &'a VideoFrameRef<&gst::BufferRef>, index: u32) -> Result<(&'a [u8], usize), sempart::Error> {
    let data = frame
        .plane_data(index)
        .map_err(|e| sempart::Error::invalid(format!("cannot read plane {index} of the frame: {e}")))?;
    Ok((data, frame.plane_stride()[index as usize] as usize))
}

/// A mapped frame as an SDK frame. The packed formats are borrowed with GStreamer's row
/// stride; NV12 is copied into `scratch`, because GStreamer may place and pad its two planes
/// apart while the SDK wants the chroma rows right after the luma rows.
pub fn sdk_frame<'a>(
    frame: &'a VideoFrameRef<&gst::BufferRef>,
    scratch: &'a mut Vec<u8>,
) -> Result<Frame<'a>, sempart::Error> {
    let (width, height) = (frame.width(), frame.height());
    let format = pixel_format(frame.format())
        .ok_or_else(|| sempart::Error::invalid(format!("video format {:?} is not supported", frame.format())))?;
    if format != PixelFormat::Nv12 {
        let (data, stride) = plane(frame, 0)?;
        return Frame::new(data, width, height, stride, format);
    }
    if width % 2 != 0 || height % 2 != 0 {
        return Err(sempart::Error::invalid(format!(
            "NV12 frame size {width}x{height}: width and height must be even"
        )));
    }
    let w = width as usize;
    scratch.clear();
    for (index, rows) in [(0, height as usize), (1, height as usize / 2)] {
        let (data, stride) = plane(frame, index)?;
        for y in 0..rows {
            scratch.extend_from_slice(&data[y * stride..y * stride + w]);
        }
    }
    Frame::new(scratch, width, height, w, PixelFormat::Nv12)
}

fn rows_mut<'a>(
    frame: &'a mut VideoFrameRef<&mut gst::BufferRef>,
) -> Result<impl Iterator<Item = &'a mut [u8]>, gst::FlowError> {
    let stride = frame.plane_stride()[0] as usize;
    let data = frame.plane_data_mut(0).map_err(|_| gst::FlowError::Error)?;
    Ok(data.chunks_mut(stride))
}

/// Writes the mask into a GRAY8 frame.
pub fn write_gray(out: &mut VideoFrameRef<&mut gst::BufferRef>, mask: &[u8]) -> Result<(), gst::FlowError> {
    let w = out.width() as usize;
    for (row, m) in rows_mut(out)?.zip(mask.chunks_exact(w)) {
        row[..w].copy_from_slice(m);
    }
    Ok(())
}

/// Writes the mask into the alpha byte of an RGBA or BGRA frame, leaving the colours.
pub fn write_alpha(frame: &mut VideoFrameRef<&mut gst::BufferRef>, mask: &[u8]) -> Result<(), gst::FlowError> {
    let w = frame.width() as usize;
    for (row, m) in rows_mut(frame)?.zip(mask.chunks_exact(w)) {
        for (px, &a) in row[..4 * w].chunks_exact_mut(4).zip(m) {
            px[3] = a;
        }
    }
    Ok(())
}

/// Writes `frame`'s colours and the mask as alpha into an RGBA frame.
pub fn write_rgba(
    frame: &Frame<'_>,
    out: &mut VideoFrameRef<&mut gst::BufferRef>,
    mask: &[u8],
) -> Result<(), gst::FlowError> {
    let w = out.width() as usize;
    let mut rgb = vec![[0u8; 3]; w];
    for (y, (row, m)) in rows_mut(out)?.zip(mask.chunks_exact(w)).enumerate() {
        frame.row_rgb(y, &mut rgb);
        for ((px, c), &a) in row[..4 * w].chunks_exact_mut(4).zip(&rgb).zip(m) {
            px.copy_from_slice(&[c[0], c[1], c[2], a]);
        }
    }
    Ok(())
}
