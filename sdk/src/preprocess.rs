//! Frame -> model input: an antialiased resize that reads the caller's pixels in place,
//! followed by the model's normalisation, written as planar (CHW) f32.
//!
//! The trainer prepares its training images with this same code, so what a model sees in
//! training and in deployment is the same function of the pixels.

use crate::frame::Frame;

/// ImageNet's per-channel mean (RGB, 0..1 scale): the normalisation of the DINO family.
pub const IMAGENET_MEAN: [f64; 3] = [0.485, 0.456, 0.406];
/// ImageNet's per-channel standard deviation (RGB, 0..1 scale).
pub const IMAGENET_STD: [f64; 3] = [0.229, 0.224, 0.225];

/// How the model wants its input: size and per-channel normalisation
/// `(value / 255 - mean) / std`, channels in RGB order.
#[derive(Debug, Clone, PartialEq)]
pub struct InputSpec {
    /// Input width in pixels.
    pub width_px: usize,
    /// Input height in pixels.
    pub height_px: usize,
    /// Per-channel mean (RGB), on the 0..1 scale.
    pub mean: [f32; 3],
    /// Per-channel standard deviation (RGB), on the 0..1 scale.
    pub std: [f32; 3],
}

/// Filter taps of one output coordinate along one axis.
struct Taps {
    first: usize,
    weights: Vec<f32>,
}

/// Triangle-filter taps for resampling `src` samples to `dst` samples. When shrinking, the
/// filter widens by the shrink factor (as PIL's bilinear resize does), so every source pixel
/// contributes and a large frame does not alias; when enlarging it is plain bilinear
/// interpolation with half-pixel centres.
fn axis_taps(src: usize, dst: usize) -> Vec<Taps> {
    let scale = src as f64 / dst as f64;
    let widen = scale.max(1.0);
    let support = widen;
    (0..dst)
        .map(|i| {
            let centre = (i as f64 + 0.5) * scale;
            let lo = ((centre - support).floor().max(0.0)) as usize;
            let hi = ((centre + support).ceil() as usize).min(src);
            let mut weights: Vec<f32> = Vec::with_capacity(hi - lo);
            let mut total = 0.0f64;
            let mut raw = Vec::with_capacity(hi - lo);
            for j in lo..hi {
                let d = ((j as f64 + 0.5 - centre) / widen).abs();
                let w = (1.0 - d).max(0.0);
                raw.push(w);
                total += w;
            }
            // Trim zero-weight taps at both ends.
            let start = raw.iter().position(|&w| w > 0.0).unwrap_or(0);
            let end = raw.iter().rposition(|&w| w > 0.0).map_or(start + 1, |e| e + 1);
            for &w in &raw[start..end] {
                weights.push((w / total) as f32);
            }
            Taps { first: lo + start, weights }
        })
        .collect()
}

/// Resizes a frame to `dst_w` x `dst_h`, returning interleaved RGB on the 0..255 scale.
pub fn resize_rgb(frame: &Frame<'_>, dst_w: usize, dst_h: usize) -> Vec<f32> {
    let src_w = frame.width_px() as usize;
    let src_h = frame.height_px() as usize;
    let xt = axis_taps(src_w, dst_w);
    let yt = axis_taps(src_h, dst_h);
    let mut out = vec![0f32; dst_w * dst_h * 3];
    if dst_w == 0 || dst_h == 0 {
        return out;
    }
    // Vertical pass first, one output row at a time (contiguous multiply-adds over whole source
    // rows), then the horizontal taps on that one row: when shrinking, the gathering
    // horizontal pass runs on the few output rows instead of every source row. Bands of
    // output rows run on several threads for large frames.
    let threads = crate::parallel::threads_for(src_w * src_h / 4);
    crate::parallel::for_each_band(&mut out, dst_w * 3, threads, |first, rows| {
        crate::simd::wide(
            #[inline(always)]
            || {
                let mut rgb = vec![[0u8; 3]; src_w];
                let mut column = vec![0f32; src_w * 3];
                for (j, dst_row) in rows.chunks_exact_mut(dst_w * 3).enumerate() {
                    let taps = &yt[first + j];
                    // The first tap sets the column (the same value as 0 + w p: weights and bytes
                    // are never negative), the others add to it.
                    for (k, &w) in taps.weights.iter().enumerate() {
                        let bytes = frame.row_rgb_bytes(taps.first + k, &mut rgb);
                        if k == 0 {
                            column.iter_mut().zip(bytes).for_each(|(c, &p)| *c = w * f32::from(p));
                        } else {
                            column.iter_mut().zip(bytes).for_each(|(c, &p)| *c += w * f32::from(p));
                        }
                    }
                    for (x, taps) in xt.iter().enumerate() {
                        let mut acc = [0f32; 3];
                        for (k, &w) in taps.weights.iter().enumerate() {
                            let p = &column[3 * (taps.first + k)..3 * (taps.first + k) + 3];
                            acc[0] += w * p[0];
                            acc[1] += w * p[1];
                            acc[2] += w * p[2];
                        }
                        dst_row[3 * x..3 * x + 3].copy_from_slice(&acc);
                    }
                }
            },
        )
    });
    out
}

/// Writes the model input for one frame into `out` (length `3 * width * height`, planar RGB,
/// normalised as `spec` says).
pub fn frame_to_input(frame: &Frame<'_>, spec: &InputSpec, out: &mut [f32]) {
    let (w, h) = (spec.width_px, spec.height_px);
    assert_eq!(out.len(), 3 * w * h, "output buffer must hold 3 x {w} x {h} floats");
    let rgb = resize_rgb(frame, w, h);
    let plane = w * h;
    for c in 0..3 {
        let scale = 1.0 / (255.0 * spec.std[c]);
        let shift = spec.mean[c] / spec.std[c];
        let dst = &mut out[c * plane..(c + 1) * plane];
        for (i, d) in dst.iter_mut().enumerate() {
            *d = rgb[3 * i + c] * scale - shift;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::PixelFormat;

    #[test]
    fn taps_sum_to_one_and_identity_is_exact() {
        for (src, dst) in [(640, 448), (480, 448), (100, 300), (7, 7), (1, 5), (5000, 3)] {
            for t in axis_taps(src, dst) {
                let s: f32 = t.weights.iter().sum();
                assert!((s - 1.0).abs() < 1e-5, "{src}->{dst}: sum {s}");
                assert!(t.first + t.weights.len() <= src);
            }
        }
        let data: Vec<u8> = (0..4 * 3 * 3).map(|v| (v * 7 % 256) as u8).collect();
        let frame = Frame::new(&data, 4, 3, 12, PixelFormat::Rgb8).unwrap();
        let out = resize_rgb(&frame, 4, 3);
        for (a, b) in out.iter().zip(&data) {
            assert_eq!(*a, *b as f32);
        }
    }

    #[test]
    fn enlarging_interpolates_between_neighbours() {
        // Two pixels 0 and 200 enlarged to four: half-pixel bilinear gives 0, 50, 150, 200.
        let data = [0u8, 200];
        let frame = Frame::new(&data, 2, 1, 2, PixelFormat::Gray8).unwrap();
        let out = resize_rgb(&frame, 4, 1);
        let red: Vec<f32> = out.chunks(3).map(|p| p[0]).collect();
        assert_eq!(red, vec![0.0, 50.0, 150.0, 200.0]);
    }

    #[test]
    fn shrinking_by_two_averages_pairs() {
        let data = [10u8, 30, 50, 70];
        let frame = Frame::new(&data, 4, 1, 4, PixelFormat::Gray8).unwrap();
        let red: Vec<f32> = resize_rgb(&frame, 2, 1).chunks(3).map(|p| p[0]).collect();
        // Triangle of radius 2 centred on the pair; the border clips it: weights 3/7, 3/7, 1/7.
        assert!((red[0] - (10.0 * 3.0 + 30.0 * 3.0 + 50.0) / 7.0).abs() < 1e-4, "{red:?}");
    }
}
