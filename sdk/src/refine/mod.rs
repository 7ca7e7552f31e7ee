//! Edge-aware refinement of the fine probability map (not in the paper): the colour guided
//! filter of He, Sun and Tang ("Guided Image Filtering", TPAMI 2013) with the frame as the
//! guide.
//!
//! The fine branch learns its boundaries from the smoothness loss, which lets it copy the
//! coarse map's soft, patch-sized transitions (spec section 2). The guided filter fits, in
//! every window, the probability as an affine function of the frame's colour, so a transition
//! that lies near a colour edge moves onto it; where the colour is flat it only smooths. It
//! reads no label and no training data, and it is linear in the probabilities, so it treats
//! the foreground and the background alike.
//!
//! The coefficients are computed at the frame's resolution, or, for frames larger than
//! [`WORKING_SCALE`] times the model input, on a copy reduced to that size, and then resized to
//! the frame, where `q = a . I + b` uses the full-resolution colours (the "fast guided filter"
//! of He and Sun, 2015): the fine map holds no detail beyond the model's input resolution, and
//! the frame's own edges still place the final boundary. Time and memory thus stay bounded for
//! large frames: about 20 `f32` planes of the working size plus the result at the frame size. The window means of independent planes run on up to 4
//! threads.
#![warn(missing_docs)]

use crate::error::{Error, Result};
use crate::frame::Frame;
use crate::parallel::{for_each_band, threads_for};
use crate::preprocess::resize_rgb;
use crate::resize::{resize_bilinear, BilinearResizer};

mod box_filter;
mod spare;
use box_filter::box_mean_all;

/// Frames whose longer side exceeds this many times the model input's longer side are filtered
/// on a copy reduced to that size. It was 2 up to SDK 0.4 (a 640x480 frame was filtered at full
/// size); at 1 the window means run on about a quarter of the pixels at 640x480 (postprocess
/// 34 -> 14 ms on 2 cores) and the masks agree with the full-size filter on more than 99 % of
/// the pixels (test below; dev-set scores in the README).
pub const WORKING_SCALE: usize = 1;

/// The largest radius accepted, in model-input pixels.
pub const MAX_RADIUS: f32 = 256.0;

/// Parameters of the refinement.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GuidedFilter {
    /// Window radius in model-input pixels (scaled to the frame, so a model sees the same
    /// neighbourhood whatever the frame size). 0 switches the refinement off: the fine map is
    /// then only resized bilinearly.
    pub radius: f32,
    /// Regulariser (colours in [0, 1]): larger values smooth more and follow the frame's edges
    /// less.
    pub eps: f32,
}

impl GuidedFilter {
    /// The SDK's default: radius 8 model-input pixels (a little more than half a 14-pixel
    /// patch), eps 1e-3. Chosen on the evaluation sets (README, "Refinement"); radii 8 to 12
    /// and eps 1e-2 to 1e-3 scored within .005 IoU of each other.
    pub const DEFAULT: GuidedFilter = GuidedFilter { radius: 8.0, eps: 1e-3 };

    /// No refinement: the fine map is resized bilinearly, as the paper does.
    pub const OFF: GuidedFilter = GuidedFilter { radius: 0.0, eps: 1e-3 };

    /// True when the refinement is switched off (radius 0).
    pub fn is_off(&self) -> bool {
        self.radius == 0.0
    }

    /// Checks the parameters: radius finite in `[0, MAX_RADIUS]`, eps finite and positive.
    pub fn validate(&self) -> Result<()> {
        if !(self.radius.is_finite() && (0.0..=MAX_RADIUS).contains(&self.radius)) {
            return Err(Error::invalid(format!(
                "refinement radius {} must be between 0 (off) and {MAX_RADIUS} model-input pixels",
                self.radius
            )));
        }
        if !(self.eps.is_finite() && self.eps > 0.0) {
            return Err(Error::invalid(format!("refinement eps {} must be a positive number", self.eps)));
        }
        Ok(())
    }
}

impl Default for GuidedFilter {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// The size the filter computes its coefficients at for a `w x h` frame and a model input of
/// `model_input` (width, height): the frame's own size, or the frame scaled down so that its
/// longer side is [`WORKING_SCALE`] times the model input's longer side.
pub fn working_size(w: usize, h: usize, model_input: (usize, usize)) -> (usize, usize) {
    working_size_at(w, h, model_input, WORKING_SCALE)
}

fn working_size_at(w: usize, h: usize, model_input: (usize, usize), scale: usize) -> (usize, usize) {
    let long = w.max(h);
    let cap = (scale * model_input.0.max(model_input.1)).max(1);
    if long <= cap {
        return (w, h);
    }
    let s = cap as f64 / long as f64;
    (((w as f64 * s).round() as usize).max(1), ((h as f64 * s).round() as usize).max(1))
}

/// The window radius in working pixels: `radius` model-input pixels scaled by the larger of the
/// two axis scales from the model input to the working size, rounded, at least 1 when the
/// refinement is on.
pub fn radius_px(radius: f32, input: (usize, usize), working: (usize, usize)) -> usize {
    if radius == 0.0 {
        return 0;
    }
    let scale = (working.0 as f64 / input.0.max(1) as f64).max(working.1 as f64 / input.1.max(1) as f64);
    ((radius as f64 * scale).round() as usize).max(1)
}

/// Brings a probability map (`src_w x src_h`) to the frame's resolution and refines it with the
/// frame as the guide. `model_input` (width, height) is the size `filter.radius` is measured
/// in. With the refinement off this is [`resize_bilinear`]. The result is clamped to [0, 1].
///
/// # Panics
/// When `prob.len() != src_w * src_h`.
pub fn refine_to_frame(
    frame: &Frame<'_>,
    prob: &[f32],
    src_w: usize,
    src_h: usize,
    model_input: (usize, usize),
    filter: &GuidedFilter,
) -> Vec<f32> {
    refine_at(frame, prob, (src_w, src_h), model_input, filter, WORKING_SCALE)
}

/// [`refine_to_frame`] with the coefficients computed at `working_scale` times the model
/// input (see [`WORKING_SCALE`]).
fn refine_at(
    frame: &Frame<'_>,
    prob: &[f32],
    (src_w, src_h): (usize, usize),
    model_input: (usize, usize),
    filter: &GuidedFilter,
    working_scale: usize,
) -> Vec<f32> {
    let (out_w, out_h) = (frame.width_px() as usize, frame.height_px() as usize);
    if filter.is_off() {
        return resize_bilinear(prob, src_w, src_h, out_w, out_h);
    }
    let (ww, wh) = working_size_at(out_w, out_h, model_input, working_scale);
    let mut guide = resize_rgb(frame, ww, wh);
    guide.iter_mut().for_each(|v| *v /= 255.0);
    let p = resize_bilinear(prob, src_w, src_h, ww, wh);
    let r = radius_px(filter.radius, model_input, (ww, wh));
    let (mut a, b) = coefficients(&guide, p, ww, wh, r, filter.eps);
    let mut q = vec![0f32; out_w * out_h];
    if (ww, wh) == (out_w, out_h) {
        for (i, q) in q.iter_mut().enumerate() {
            let g = &guide[3 * i..3 * i + 3];
            *q = clamp_unit(a[0][i] * g[0] + a[1][i] * g[1] + a[2][i] * g[2] + b[i]);
        }
    } else {
        // The coefficients resized to the frame one row at a time (never a full-size plane of
        // them), applied to the frame's own colours: q = b + sum_c a_c I_c. Bands of rows run
        // on up to parallel::MAX_THREADS threads, each with its own resizers.
        // The colours stay bytes: the 1/255 of the guide's scale goes into the (small) `a`
        // planes instead of into every full-resolution pixel.
        a.iter_mut().flatten().for_each(|v| *v /= 255.0);
        let resizer = BilinearResizer::new(ww, wh, out_w, out_h);
        let planes = [&a[0], &a[1], &a[2], &b];
        for_each_band(&mut q, out_w, threads_for(out_w * out_h), |first, rows| {
            let mut resizers = [resizer.clone(), resizer.clone(), resizer.clone(), resizer.clone()];
            let mut rgb = vec![[0u8; 3]; out_w];
            for (j, out) in rows.chunks_exact_mut(out_w).enumerate() {
                let y = first + j;
                let bytes = frame.row_rgb_bytes(y, &mut rgb);
                let [r0, r1, r2, r3] = &mut resizers;
                let (ar, ag, ab, bb) =
                    (r0.row(planes[0], y), r1.row(planes[1], y), r2.row(planes[2], y), r3.row(planes[3], y));
                let (ar, ag, ab, bb) = (&ar[..out_w], &ag[..out_w], &ab[..out_w], &bb[..out_w]);
                for (x, (o, p)) in out.iter_mut().zip(bytes.chunks_exact(3)).enumerate() {
                    let v = bb[x] + ar[x] * p[0] as f32 + ag[x] * p[1] as f32 + ab[x] * p[2] as f32;
                    *o = clamp_unit(v);
                }
            }
        });
    }
    spare::recycle(a.into_iter().chain([b]));
    q
}

/// `v` clamped to [0, 1], NaN to 0 (`f32::max` returns the other operand for a NaN).
#[inline]
#[allow(clippy::manual_clamp)] // clamp would keep the NaN
fn clamp_unit(v: f32) -> f32 {
    v.max(0.0).min(1.0)
}

/// The window-averaged coefficients of the colour guided filter: `q = a . I + b` per pixel.
/// `guide` is interleaved RGB in [0, 1], `p` one plane, both `w x h`. Returns the three `a`
/// planes and the `b` plane, each already averaged over the window.
fn coefficients(guide: &[f32], p: Vec<f32>, w: usize, h: usize, r: usize, eps: f32) -> ([Vec<f32>; 3], Vec<f32>) {
    let n = w * h;
    let filled = |f: &dyn Fn(usize) -> f32| -> Vec<f32> {
        let mut v = spare::plane(n);
        v.iter_mut().enumerate().for_each(|(i, x)| *x = f(i));
        v
    };
    let ich = [filled(&|i| guide[3 * i]), filled(&|i| guide[3 * i + 1]), filled(&|i| guide[3 * i + 2])];
    let product = |x: &[f32], y: &[f32]| -> Vec<f32> {
        let mut v = spare::plane(n);
        v.iter_mut().zip(x.iter().zip(y)).for_each(|(o, (a, b))| *o = a * b);
        v
    };
    // The 13 window means: I (3), p, I p (3), and the colour products rr, rg, rb, gg, gb, bb.
    let mut planes: Vec<Vec<f32>> = Vec::with_capacity(13);
    for c in &ich {
        planes.push(product(c, &p));
    }
    for (j, k) in [(0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (2, 2)] {
        planes.push(product(&ich[j], &ich[k]));
    }
    planes.extend(ich);
    planes.push(p);
    box_mean_all(&mut planes, w, h, r);
    let mean_p = planes.pop().expect("13 planes");
    let mean_i: Vec<Vec<f32>> = planes.drain(9..).collect();
    let mean_ii: Vec<Vec<f32>> = planes.drain(3..).collect();
    let mean_ip = planes;
    let mut a = [spare::plane(n), spare::plane(n), spare::plane(n)];
    let mut b = spare::plane(n);
    let eps = eps as f64;
    // Every plane re-sliced to exactly `n` values, so the per-pixel loop below has no bounds
    // checks and the compiler can vectorise it.
    let mi: [&[f32]; 3] = [&mean_i[0][..n], &mean_i[1][..n], &mean_i[2][..n]];
    let mip: [&[f32]; 3] = [&mean_ip[0][..n], &mean_ip[1][..n], &mean_ip[2][..n]];
    let mii: [&[f32]; 6] = std::array::from_fn(|k| &mean_ii[k][..n]);
    let mp = &mean_p[..n];
    let [a0, a1, a2] = &mut a;
    let (a0, a1, a2, bo) = (&mut a0[..n], &mut a1[..n], &mut a2[..n], &mut b[..n]);
    for i in 0..n {
        let m = [mi[0][i] as f64, mi[1][i] as f64, mi[2][i] as f64];
        let p = mp[i] as f64;
        let cov = [mip[0][i] as f64 - m[0] * p, mip[1][i] as f64 - m[1] * p, mip[2][i] as f64 - m[2] * p];
        let s = |k: usize, j: usize, l: usize| mii[k][i] as f64 - m[j] * m[l];
        let (s00, s01, s02) = (s(0, 0, 0) + eps, s(1, 0, 1), s(2, 0, 2));
        let (s11, s12, s22) = (s(3, 1, 1) + eps, s(4, 1, 2), s(5, 2, 2) + eps);
        // Inverse of the symmetric matrix by cofactors.
        let c00 = s11 * s22 - s12 * s12;
        let c01 = s02 * s12 - s01 * s22;
        let c02 = s01 * s12 - s02 * s11;
        let c11 = s00 * s22 - s02 * s02;
        let c12 = s01 * s02 - s00 * s12;
        let c22 = s00 * s11 - s01 * s01;
        let inv_det = 1.0 / (s00 * c00 + s01 * c01 + s02 * c02);
        let ai = [
            (c00 * cov[0] + c01 * cov[1] + c02 * cov[2]) * inv_det,
            (c01 * cov[0] + c11 * cov[1] + c12 * cov[2]) * inv_det,
            (c02 * cov[0] + c12 * cov[1] + c22 * cov[2]) * inv_det,
        ];
        a0[i] = ai[0] as f32;
        a1[i] = ai[1] as f32;
        a2[i] = ai[2] as f32;
        bo[i] = (p - ai[0] * m[0] - ai[1] * m[1] - ai[2] * m[2]) as f32;
    }
    spare::recycle(mean_i.into_iter().chain(mean_ii).chain(mean_ip).chain([mean_p]));
    let [ar, ag, ab] = a;
    let mut planes = vec![ar, ag, ab, b];
    box_mean_all(&mut planes, w, h, r);
    let b = planes.pop().expect("4 planes");
    let ab = planes.pop().expect("3 planes");
    let ag = planes.pop().expect("2 planes");
    let ar = planes.pop().expect("1 plane");
    ([ar, ag, ab], b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::PixelFormat;

    /// The textbook colour guided filter, written for clarity: window means by direct sums,
    /// the 3x3 system solved by Gaussian elimination, the averaged coefficients resized to the
    /// frame and applied to its colours.
    fn textbook_refine(
        frame: &Frame<'_>,
        prob: &[f32],
        src: (usize, usize),
        input: (usize, usize),
        r: f32,
        eps: f64,
    ) -> Vec<f32> {
        let (fw, fh) = (frame.width_px() as usize, frame.height_px() as usize);
        let (ww, wh) = working_size(fw, fh, input);
        let rad = radius_px(r, input, (ww, wh));
        let guide: Vec<f64> = resize_rgb(frame, ww, wh).iter().map(|&v| v as f64 / 255.0).collect();
        let p: Vec<f64> = resize_bilinear(prob, src.0, src.1, ww, wh).iter().map(|&v| v as f64).collect();
        let mean = |f: &dyn Fn(usize) -> f64| -> Vec<f64> {
            (0..ww * wh)
                .map(|i| {
                    let (x, y) = (i % ww, i / ww);
                    let (mut s, mut n) = (0.0, 0.0);
                    for yy in y.saturating_sub(rad)..(y + rad + 1).min(wh) {
                        for xx in x.saturating_sub(rad)..(x + rad + 1).min(ww) {
                            s += f(yy * ww + xx);
                            n += 1.0;
                        }
                    }
                    s / n
                })
                .collect()
        };
        let mi: Vec<Vec<f64>> = (0..3).map(|c| mean(&|i| guide[3 * i + c])).collect();
        let mp = mean(&|i| p[i]);
        let mip: Vec<Vec<f64>> = (0..3).map(|c| mean(&|i| guide[3 * i + c] * p[i])).collect();
        let mii: Vec<Vec<Vec<f64>>> =
            (0..3).map(|j| (0..3).map(|k| mean(&|i| guide[3 * i + j] * guide[3 * i + k])).collect()).collect();
        let mut coef: Vec<Vec<f64>> = vec![vec![0.0; ww * wh]; 4];
        for i in 0..ww * wh {
            let mut m = [[0.0f64; 4]; 3];
            for j in 0..3 {
                for k in 0..3 {
                    m[j][k] = mii[j][k][i] - mi[j][i] * mi[k][i] + if j == k { eps } else { 0.0 };
                }
                m[j][3] = mip[j][i] - mi[j][i] * mp[i];
            }
            for c in 0..3 {
                let pivot = m[c][c];
                m[c][c..].iter_mut().for_each(|v| *v /= pivot);
                let row_c = m[c];
                for (j, row) in m.iter_mut().enumerate() {
                    if j != c {
                        let f = row[c];
                        row[c..].iter_mut().zip(&row_c[c..]).for_each(|(v, &rc)| *v -= f * rc);
                    }
                }
            }
            for c in 0..3 {
                coef[c][i] = m[c][3];
            }
            coef[3][i] = mp[i] - (0..3).map(|c| m[c][3] * mi[c][i]).sum::<f64>();
        }
        let coef: Vec<Vec<f32>> = coef.iter().map(|c| mean(&|i| c[i]).iter().map(|&v| v as f32).collect()).collect();
        let full: Vec<Vec<f32>> = coef.iter().map(|c| resize_bilinear(c, ww, wh, fw, fh)).collect();
        (0..fw * fh)
            .map(|i| {
                let px = frame.rgb_at(i % fw, i / fw);
                let v = full[3][i] as f64 + (0..3).map(|c| full[c][i] as f64 * px[c] as f64 / 255.0).sum::<f64>();
                v.clamp(0.0, 1.0) as f32
            })
            .collect()
    }

    /// The optimised refinement (running sums, transposes, kept planes, the 1/255 folded into
    /// the coefficients, threads) computes the textbook filter: probabilities within 1e-4 and
    /// the 0.5 masks equal except where the textbook value is within 1e-4 of the threshold.
    #[test]
    fn the_fast_refinement_is_the_textbook_guided_filter() {
        for (fw, fh, src) in [(96usize, 64usize, (40usize, 40usize)), (30, 20, (40, 40)), (700, 300, (56, 56))] {
            let data: Vec<u8> = (0..fw * fh)
                .flat_map(|i| {
                    let (x, y) = (i % fw, i / fw);
                    let base = if (x as f32 - fw as f32 / 2.0).hypot(y as f32 - fh as f32 / 2.0) < fh as f32 / 3.0 {
                        200
                    } else {
                        40
                    };
                    let noise = ((i * 2654435761) >> 7) as u8 % 23;
                    [base + noise, (base / 2) + noise, 255 - base - noise]
                })
                .collect();
            let frame = Frame::new(&data, fw as u32, fh as u32, 3 * fw, PixelFormat::Rgb8).unwrap();
            let prob: Vec<f32> = (0..src.0 * src.1)
                .map(|i| {
                    let (x, y) = ((i % src.0) as f32 / src.0 as f32, (i / src.0) as f32 / src.1 as f32);
                    (1.0 - ((x - 0.5).hypot(y - 0.5) * 4.0 - 0.9)).clamp(0.0, 1.0)
                })
                .collect();
            let filter = GuidedFilter::DEFAULT;
            let got = refine_to_frame(&frame, &prob, src.0, src.1, src, &filter);
            let want = textbook_refine(&frame, &prob, src, src, filter.radius, filter.eps as f64);
            let worst = got.iter().zip(&want).map(|(g, w)| (g - w).abs()).fold(0.0f32, f32::max);
            assert!(worst < 1e-4, "{fw}x{fh}: largest difference {worst}");
            for (g, w) in got.iter().zip(&want) {
                assert!((g > &0.5) == (w > &0.5) || (w - 0.5).abs() < 1e-4);
            }
        }
    }

    /// A frame split into a dark left and a bright right half at `edge`.
    fn split_frame(w: usize, h: usize, edge: usize) -> Vec<u8> {
        (0..w * h).flat_map(|i| if i % w < edge { [20u8, 30, 40] } else { [220, 200, 180] }).collect()
    }

    #[test]
    fn a_soft_transition_moves_onto_the_colour_edge() {
        let (w, h, edge) = (64, 16, 32);
        let data = split_frame(w, h, edge);
        let frame = Frame::new(&data, w as u32, h as u32, 3 * w, PixelFormat::Rgb8).unwrap();
        // Foreground on the right, but the probability ramps from x = 27 to 43: the boundary
        // (p = 0.5) sits at x = 35, 3 pixels right of the colour edge.
        let prob: Vec<f32> = (0..w * h).map(|i| (((i % w) as f32 - 27.0) / 16.0).clamp(0.0, 1.0)).collect();
        let filter = GuidedFilter { radius: 10.0, eps: 1e-3 };
        let q = refine_to_frame(&frame, &prob, w, h, (w, h), &filter);
        let row = &q[8 * w..9 * w];
        for (x, &v) in row.iter().enumerate() {
            assert!((0.0..=1.0).contains(&v));
            if x < edge {
                assert!(v < 0.5, "x {x}: {v}");
            } else {
                assert!(v > 0.5, "x {x}: {v}");
            }
        }
        // The transition is now a step at the edge (the map's slope was 1/16 per pixel).
        assert!(row[edge] - row[edge - 1] > 0.4, "{} -> {}", row[edge - 1], row[edge]);
        // Off: the plain bilinear resize, the boundary stays where it was.
        let off = refine_to_frame(&frame, &prob, w, h, (w, h), &GuidedFilter::OFF);
        assert_eq!(off, prob);
    }

    #[test]
    fn constant_maps_stay_constant_and_the_filter_is_symmetric() {
        let (w, h) = (40, 30);
        let data: Vec<u8> = (0..w * h * 3).map(|i| ((i * 131) % 251) as u8).collect();
        let frame = Frame::new(&data, w as u32, h as u32, 3 * w, PixelFormat::Rgb8).unwrap();
        let f = GuidedFilter::DEFAULT;
        for c in [0.0f32, 1.0, 0.25] {
            let q = refine_to_frame(&frame, &vec![c; 20 * 15], 20, 15, (20, 15), &f);
            assert!(q.iter().all(|v| (v - c).abs() < 1e-4), "constant {c}");
        }
        // Linear in p: refining 1 - p gives 1 - refine(p) (before clamping; p in (0.2, 0.8)
        // keeps the results inside [0, 1]).
        let p: Vec<f32> = (0..20 * 15).map(|i| 0.2 + 0.6 * ((i * 7 % 13) as f32 / 12.0)).collect();
        let inv: Vec<f32> = p.iter().map(|v| 1.0 - v).collect();
        let q = refine_to_frame(&frame, &p, 20, 15, (20, 15), &f);
        let qi = refine_to_frame(&frame, &inv, 20, 15, (20, 15), &f);
        for (a, b) in q.iter().zip(&qi) {
            assert!((a + b - 1.0).abs() < 1e-3, "{a} + {b}");
        }
    }

    #[test]
    fn large_frames_work_on_a_reduced_copy_and_agree_with_the_full_size() {
        assert_eq!(working_size(640, 480, (336, 336)), (336, 252));
        assert_eq!(working_size(1920, 1080, (336, 336)), (336, 189));
        assert_eq!(working_size(300, 200, (336, 336)), (300, 200));
        assert_eq!(working_size(2048, 1024, (512, 256)), (512, 256));
        assert_eq!(working_size(1000, 3000, (512, 512)), (171, 512));
        // The scale of SDK 0.4.
        assert_eq!(working_size_at(640, 480, (336, 336), 2), (640, 480));
        assert_eq!(working_size_at(1920, 1080, (336, 336), 2), (672, 378));
        assert_eq!(radius_px(8.0, (336, 336), (640, 480)), 15);
        assert_eq!(radius_px(0.0, (336, 336), (640, 480)), 0);
        assert_eq!(radius_px(0.1, (336, 336), (100, 100)), 1);
        // The same scene at 2048 and at 1024 (both filtered at 64, the model input, the
        // colours applied at full size): the masks agree on nearly every pixel of
        // the larger frame.
        let big = split_frame(2048, 64, 1280);
        let small = split_frame(1024, 32, 640);
        let fb = Frame::new(&big, 2048, 64, 3 * 2048, PixelFormat::Rgb8).unwrap();
        let fs = Frame::new(&small, 1024, 32, 3 * 1024, PixelFormat::Rgb8).unwrap();
        let prob: Vec<f32> = (0..64 * 2).map(|i| if i % 64 >= 38 { 1.0 } else { 0.0 }).collect();
        let f = GuidedFilter::DEFAULT;
        let qb = refine_to_frame(&fb, &prob, 64, 2, (64, 64), &f);
        let qs = refine_to_frame(&fs, &prob, 64, 2, (64, 64), &f);
        assert_eq!(qb.len(), 2048 * 64);
        let mut differ = 0;
        for y in 0..64 {
            for x in 0..2048 {
                if (qb[y * 2048 + x] > 0.5) != (qs[(y / 2) * 1024 + x / 2] > 0.5) {
                    differ += 1;
                }
            }
        }
        assert!(differ <= 2 * 64, "{differ} pixels differ");
        // And the boundary moved onto the colour edge at x = 1280 (the map's was at 1216).
        assert!(qb[10 * 2048 + 1270] < 0.5 && qb[10 * 2048 + 1290] > 0.5);
    }

    /// The working scale of SDK 0.4 (2: a 640x480 frame filtered at full size) and today's (1)
    /// give the same mask on more than 99 % of the pixels of a photo (the example image, with
    /// a soft, patch-sized map like the model's), at 640x480 and at 1920x1080.
    #[test]
    fn the_reduced_working_size_keeps_the_masks() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/images/chelsea.png");
        let photo = image::open(path).expect("example image").to_rgb8();
        for (w, h) in [(640u32, 480u32), (1920, 1080)] {
            let rgb = image::imageops::resize(&photo, w, h, image::imageops::FilterType::Triangle);
            let frame = Frame::new(rgb.as_raw(), w, h, 3 * w as usize, PixelFormat::Rgb8).unwrap();
            // An ellipse on a 24 x 24 grid, resized to the 336-pixel input: soft edges about a
            // patch wide, as the fine branch gives them.
            let grid: Vec<f32> = (0..24 * 24)
                .map(|i| {
                    let (x, y) = ((i % 24) as f32 - 11.5, (i / 24) as f32 - 13.0);
                    (1.5 - ((x / 7.0).powi(2) + (y / 9.0).powi(2)).sqrt() * 1.2).clamp(0.0, 1.0)
                })
                .collect();
            let prob = resize_bilinear(&grid, 24, 24, 336, 336);
            let f = GuidedFilter::DEFAULT;
            let old = refine_at(&frame, &prob, (336, 336), (336, 336), &f, 2);
            let new = refine_at(&frame, &prob, (336, 336), (336, 336), &f, 1);
            let differ = old.iter().zip(&new).filter(|(a, b)| (**a > 0.5) != (**b > 0.5)).count();
            let foreground = old.iter().filter(|&&a| a > 0.5).count();
            let share = differ as f64 / old.len() as f64;
            assert!(foreground > old.len() / 10, "{w}x{h}: the test map has a real object ({foreground})");
            assert!(share < 0.01, "{w}x{h}: {differ} pixels ({:.2} %) differ", 100.0 * share);
            let mean: f64 = old.iter().zip(&new).map(|(a, b)| (a - b).abs() as f64).sum::<f64>() / old.len() as f64;
            assert!(mean < 0.02, "{w}x{h}: mean |difference| {mean}");
        }
    }

    #[test]
    fn bad_parameters_are_rejected() {
        for (radius, eps) in [(-1.0, 1e-3), (f32::NAN, 1e-3), (300.0, 1e-3), (8.0, 0.0), (8.0, f32::INFINITY)] {
            assert!(GuidedFilter { radius, eps }.validate().is_err(), "{radius} {eps}");
        }
        assert!(GuidedFilter::DEFAULT.validate().is_ok());
        assert!(GuidedFilter::OFF.validate().is_ok());
    }
}
