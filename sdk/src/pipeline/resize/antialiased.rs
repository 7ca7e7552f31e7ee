//! The antialiased resize of a frame to the model input: a triangle filter that widens by the
//! shrink factor (as PIL's bilinear resize does), so every source pixel contributes and a large
//! frame does not alias; plain half-pixel bilinear when enlarging. It reads the caller's pixels
//! in place (any pixel format) and returns interleaved RGB on the 0..255 scale.

use crate::pipeline::frame::Frame;

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

/// The horizontal taps of every output pixel, pixel-major: tap `k` of pixel `x` reads the
/// interleaved row at `index[x * taps + k]` with `weight[x * taps + k]`. Pixels with fewer taps
/// than the most are padded with weight 0 on their last tap's value, which adds `+0` and leaves
/// the sum's bits as they were (the values summed are never negative).
struct TapTable {
    taps: usize,
    dst_w: usize,
    index: Vec<u32>,
    weight: Vec<f32>,
    /// The largest offset.
    last: usize,
}

impl TapTable {
    fn new(xt: &[Taps], dst_w: usize) -> TapTable {
        let taps = xt.iter().map(|t| t.weights.len()).max().unwrap_or(0);
        let (mut index, mut weight) = (vec![0u32; taps * dst_w], vec![0f32; taps * dst_w]);
        for (x, t) in xt.iter().enumerate() {
            for k in 0..taps {
                let source = t.first + k.min(t.weights.len() - 1);
                index[x * taps + k] = u32::try_from(3 * source).expect("frame widths fit in u32");
                weight[x * taps + k] = t.weights.get(k).copied().unwrap_or(0.0);
            }
        }
        let last = index.iter().max().map_or(0, |&i| i as usize);
        TapTable { taps, dst_w, index, weight, last }
    }

    /// Pixel `x`'s taps: offsets into the interleaved row, and weights.
    fn pixel(&self, x: usize) -> (&[u32], &[f32]) {
        let range = x * self.taps..(x + 1) * self.taps;
        (&self.index[range.clone()], &self.weight[range])
    }

    /// The horizontal pass of one row: `column` is the interleaved row with one value of
    /// padding, `dst` the interleaved output row.
    #[inline(always)]
    fn apply(&self, column: &[f32], dst: &mut [f32]) {
        #[cfg(target_arch = "x86_64")]
        self.apply_sse(column, dst);
        #[cfg(not(target_arch = "x86_64"))]
        self.apply_scalar(column, dst);
    }

    /// The horizontal pass pixel by pixel, each pixel's sums tap by tap from zero: the portable
    /// version of [`TapTable::apply_sse`].
    #[cfg_attr(target_arch = "x86_64", allow(dead_code))]
    fn apply_scalar(&self, column: &[f32], dst: &mut [f32]) {
        for (x, d) in dst.chunks_exact_mut(3).take(self.dst_w).enumerate() {
            let mut acc = [0f32; 3];
            let (index, weight) = self.pixel(x);
            for (&i, &w) in index.iter().zip(weight) {
                let p = &column[i as usize..i as usize + 3];
                (0..3).for_each(|c| acc[c] += w * p[c]);
            }
            d.copy_from_slice(&acc);
        }
    }

    /// The horizontal pass of one row on x86-64: each output pixel's red, green and blue sums
    /// in the lanes of one SSE register (a 4-value load at the pixel's offset, the fourth lane
    /// unused), tap by tap from zero: the same operations in the same order as the portable
    /// loop ([`TapTable::apply_scalar`]), a third of the instructions. `column` is the
    /// interleaved row with one value of padding; `dst` the interleaved output row.
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    fn apply_sse(&self, column: &[f32], dst: &mut [f32]) {
        use std::arch::x86_64::*;
        let (dst_w, taps) = (self.dst_w, self.taps);
        assert!(dst.len() >= 3 * dst_w, "resize: output row shorter than {dst_w} pixels");
        assert!(self.last + 4 <= column.len(), "resize: the row needs one value of padding");
        let mut lanes = [0f32; 4];
        let base = column.as_ptr();
        // Four pixels at a time: four independent chains of additions keep the adder busy.
        let quads = if taps == 0 { 0 } else { dst_w / 4 };
        for q in 0..quads {
            let x = 4 * q;
            let idx: [&[u32]; 4] = std::array::from_fn(|j| self.pixel(x + j).0);
            let wt: [&[f32]; 4] = std::array::from_fn(|j| self.pixel(x + j).1);
            // SAFETY: SSE is part of the x86-64 baseline; every load reads column[i..i + 4] with
            // i + 4 <= last + 4 <= column.len() (checked above), each store the 4 values of
            // `lanes`.
            unsafe {
                let mut acc = [_mm_setzero_ps(); 4];
                for k in 0..taps {
                    for j in 0..4 {
                        let p = _mm_loadu_ps(base.add(idx[j][k] as usize));
                        acc[j] = _mm_add_ps(acc[j], _mm_mul_ps(_mm_set1_ps(wt[j][k]), p));
                    }
                }
                for (j, a) in acc.iter().enumerate() {
                    _mm_storeu_ps(lanes.as_mut_ptr(), *a);
                    dst[3 * (x + j)..3 * (x + j) + 3].copy_from_slice(&lanes[..3]);
                }
            }
        }
        for x in 4 * quads..dst_w {
            let (idx, wt) = self.pixel(x);
            // SAFETY: as above.
            unsafe {
                let mut acc = _mm_setzero_ps();
                for (&i, &w) in idx.iter().zip(wt) {
                    acc = _mm_add_ps(acc, _mm_mul_ps(_mm_set1_ps(w), _mm_loadu_ps(base.add(i as usize))));
                }
                _mm_storeu_ps(lanes.as_mut_ptr(), acc);
            }
            dst[3 * x..3 * x + 3].copy_from_slice(&lanes[..3]);
        }
    }
}

/// Resizes a frame to `dst_w` x `dst_h`, returning interleaved RGB on the 0..255 scale.
pub fn resize_rgb(frame: &Frame<'_>, dst_w: usize, dst_h: usize) -> Vec<f32> {
    let src_w = frame.width_px() as usize;
    let src_h = frame.height_px() as usize;
    let table = TapTable::new(&axis_taps(src_w, dst_w), dst_w);
    let yt = axis_taps(src_h, dst_h);
    let mut out = vec![0f32; dst_w * dst_h * 3];
    if dst_w == 0 || dst_h == 0 {
        return out;
    }
    // Vertical pass first, one output row at a time (contiguous multiply-adds over whole source
    // rows), then the horizontal taps on that one row: when shrinking, the gathering
    // horizontal pass runs on the few output rows instead of every source row. Bands of
    // output rows run on several threads for large frames.
    let threads = crate::pipeline::parallel::threads_for(src_w * src_h / 4);
    crate::pipeline::parallel::for_each_band(&mut out, dst_w * 3, threads, |first, rows| {
        crate::pipeline::simd::wide(
            #[inline(always)]
            || {
                let mut rgb = vec![[0u8; 3]; src_w];
                // One value of padding: the horizontal pass reads 4 values at each pixel's index.
                let mut column = vec![0f32; src_w * 3 + 1];
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
                    table.apply(&column, dst_row);
                }
            },
        )
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::frame::PixelFormat;

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

    /// The SSE horizontal pass gives the portable loop's bits.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn the_sse_horizontal_pass_gives_the_tap_major_bits() {
        for (src, dst) in [(1920usize, 280usize), (733, 280), (100, 300), (7, 7), (5000, 3)] {
            let table = TapTable::new(&axis_taps(src, dst), dst);
            let column: Vec<f32> =
                (0..3 * src + 1).map(|i| ((i * 2654435761usize) >> 11) as f32 % 977.0 / 3.0).collect();
            let (mut sse, mut scalar) = (vec![0f32; 3 * dst], vec![0f32; 3 * dst]);
            table.apply_sse(&column, &mut sse);
            table.apply_scalar(&column, &mut scalar);
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&sse), bits(&scalar), "{src} -> {dst}");
        }
    }

    /// The resize as a plain double loop (each output value the tap-by-tap sum, vertical then
    /// horizontal, from zero): the fast passes must give its bits, shrinking and enlarging.
    #[test]
    fn the_fast_passes_give_the_plain_sums_bits() {
        let (w, h) = (733usize, 517usize);
        let data: Vec<u8> = (0..w * h * 3).map(|i| ((i * 2654435761usize) >> 13) as u8).collect();
        let frame = Frame::new(&data, w as u32, h as u32, 3 * w, PixelFormat::Rgb8).unwrap();
        for (dw, dh) in [(280, 280), (280, 197), (1000, 600), (61, 900)] {
            let (xt, yt) = (axis_taps(w, dw), axis_taps(h, dh));
            let mut want = Vec::with_capacity(dw * dh * 3);
            for ty in &yt {
                let mut column = vec![0f32; 3 * w];
                for (k, &wy) in ty.weights.iter().enumerate() {
                    let row = &data[(ty.first + k) * 3 * w..(ty.first + k + 1) * 3 * w];
                    column.iter_mut().zip(row).for_each(|(c, &p)| *c += wy * f32::from(p));
                }
                for tx in &xt {
                    let mut acc = [0f32; 3];
                    for (k, &wx) in tx.weights.iter().enumerate() {
                        (0..3).for_each(|c| acc[c] += wx * column[3 * (tx.first + k) + c]);
                    }
                    want.extend(acc);
                }
            }
            let got = resize_rgb(&frame, dw, dh);
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert!(bits(&got) == bits(&want), "{w}x{h} -> {dw}x{dh}");
        }
    }
}
