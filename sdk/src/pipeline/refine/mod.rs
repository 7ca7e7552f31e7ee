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
//! of He and Sun, 2015): the coefficients are window means over about a patch (the default
//! radius is 8 model-input pixels, 4 working pixels), so they vary slowly and survive the
//! reduction, and the frame's own edges still place the final boundary. Time and memory thus
//! stay bounded for large frames: about 20 `f32` planes of the working size plus the result at
//! the frame size. The window means of independent planes run on up to 4 threads.
#![warn(missing_docs)]

use crate::error::{Error, Result};
use crate::pipeline::frame::Frame;
use crate::pipeline::mask::mask_value;
use crate::pipeline::parallel::{for_each_band_pair, threads_for};
use crate::pipeline::resize::resize_rgb;
use crate::pipeline::resize::{resize_bilinear, resize_bilinear_rgb, BilinearResizer};
use std::mem::MaybeUninit;

mod box_filter;
mod spare;
use box_filter::{box_mean_all, Layout};

/// Frames whose longer side exceeds this many times the model input's longer side are filtered
/// on a copy reduced to that size. It was 2 up to SDK 0.4 (a 640x480 frame was filtered at full
/// size); at 1 the window means ran on about a quarter of the pixels at 640x480 (postprocess
/// 34 -> 14 ms on 2 cores), and since 2026-12-05 at 0.5 on a quarter again (the coefficients'
/// cost about 1.1 -> 0.3 ms at 1920x1080). Each step kept the masks on more than 99 % of the
/// pixels (tests below) and the dev-set scores (docs/RESULTS.md, section "The refinement").
pub const WORKING_SCALE: f64 = 0.5;

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
    /// patch), eps 1e-3. Chosen on the evaluation sets (docs/RESULTS.md, "The refinement"); radii 8 to 12
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

fn working_size_at(w: usize, h: usize, model_input: (usize, usize), scale: f64) -> (usize, usize) {
    let long = w.max(h);
    let cap = ((scale * model_input.0.max(model_input.1) as f64).round() as usize).max(1);
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
/// `view` is the frame as the model saw it: [`crate::pipeline::preprocess::frame_to_input`]'s resized
/// RGB (interleaved, 0..255, `model_input` in size). For a frame larger than the working size
/// the coefficients' guide is this view brought to the working size ([`guide_from_view`]), so
/// the frame is not read a third time; `None` computes the view here, with the same values.
///
/// # Panics
/// When `prob.len() != src_w * src_h`, or `view` is not `3 * model_input` values.
pub fn refine_to_frame(
    frame: &Frame<'_>,
    view: Option<&[f32]>,
    prob: &[f32],
    src_w: usize,
    src_h: usize,
    model_input: (usize, usize),
    filter: &GuidedFilter,
) -> Vec<f32> {
    refine_at(frame, view, prob, (src_w, src_h), model_input, filter, WORKING_SCALE).0
}

/// [`refine_to_frame`] and the 0/255 mask of its result (255 where the probability is above
/// [`crate::pipeline::mask::THRESHOLD`]), made in the same pass over the frame: the result of the
/// refinement is not read a second time (8 MB at 1920x1080).
///
/// # Panics
/// As [`refine_to_frame`].
pub fn refine_to_frame_with_mask(
    frame: &Frame<'_>,
    view: Option<&[f32]>,
    prob: &[f32],
    src: (usize, usize),
    model_input: (usize, usize),
    filter: &GuidedFilter,
) -> (Vec<f32>, Vec<u8>) {
    refine_at(frame, view, prob, src, model_input, filter, WORKING_SCALE)
}

/// [`refine_to_frame`] with the coefficients computed at `working_scale` times the model
/// input (see [`WORKING_SCALE`]).
fn refine_at(
    frame: &Frame<'_>,
    view: Option<&[f32]>,
    prob: &[f32],
    (src_w, src_h): (usize, usize),
    model_input: (usize, usize),
    filter: &GuidedFilter,
    working_scale: f64,
) -> (Vec<f32>, Vec<u8>) {
    let (out_w, out_h) = (frame.width_px() as usize, frame.height_px() as usize);
    if filter.is_off() {
        let q = resize_bilinear(prob, src_w, src_h, out_w, out_h);
        let mask = q.iter().map(|&p| mask_value(p)).collect();
        return (q, mask);
    }
    let (ww, wh) = working_size_at(out_w, out_h, model_input, working_scale);
    let guide = if (ww, wh) == (out_w, out_h) {
        resize_rgb(frame, ww, wh)
    } else {
        guide_from_view(frame, view, model_input, (ww, wh))
    };
    refine_with_guide(frame, guide, (ww, wh), prob, (src_w, src_h), model_input, filter)
}

/// The refinement once the guide (`ww x wh`, interleaved RGB, 0..255) is made: the refined map
/// and its mask.
fn refine_with_guide(
    frame: &Frame<'_>,
    mut guide: Vec<f32>,
    (ww, wh): (usize, usize),
    prob: &[f32],
    (src_w, src_h): (usize, usize),
    model_input: (usize, usize),
    filter: &GuidedFilter,
) -> (Vec<f32>, Vec<u8>) {
    let (out_w, out_h) = (frame.width_px() as usize, frame.height_px() as usize);
    guide.iter_mut().for_each(|v| *v /= 255.0);
    let p = resize_bilinear(prob, src_w, src_h, ww, wh);
    let r = radius_px(filter.radius, model_input, (ww, wh));
    let (mut a, b) = coefficients(&guide, p, ww, wh, r, filter.eps);
    let n = out_w * out_h;
    let refined = if (ww, wh) == (out_w, out_h) {
        let q: Vec<f32> = (0..n)
            .map(|i| {
                let g = &guide[3 * i..3 * i + 3];
                clamp_unit(a[0][i] * g[0] + a[1][i] * g[1] + a[2][i] * g[2] + b[i])
            })
            .collect();
        let mask = q.iter().map(|&p| mask_value(p)).collect();
        (q, mask)
    } else {
        // The coefficients resized to the frame one row at a time (never a full-size plane of
        // them), applied to the frame's own colours: q = b + sum_c a_c I_c. Bands of rows run
        // on up to parallel::MAX_THREADS threads, each with its own resizers.
        // The colours stay bytes: the 1/255 of the guide's scale goes into the (small) `a`
        // planes instead of into every full-resolution pixel.
        a.iter_mut().flatten().for_each(|v| *v /= 255.0);
        let resizer = BilinearResizer::new(ww, wh, out_w, out_h);
        let planes = [&a[0], &a[1], &a[2], &b];
        // The result is written once, value by value, without zeroing it first (8 MB at
        // 1920x1080, about 0.4 ms).
        let (mut q, mut mask): (Vec<f32>, Vec<u8>) = (Vec::with_capacity(n), Vec::with_capacity(n));
        let (q_slots, mask_slots) = (&mut q.spare_capacity_mut()[..n], &mut mask.spare_capacity_mut()[..n]);
        for_each_band_pair(q_slots, out_w, mask_slots, out_w, threads_for(n), |first, rows, mask_rows| {
            crate::pipeline::simd::wide(
                #[inline(always)]
                || {
                    let mut resizers = [resizer.clone(), resizer.clone(), resizer.clone(), resizer.clone()];
                    let mut rgb = vec![[0u8; 3]; out_w];
                    let mut colour = [vec![0f32; out_w], vec![0f32; out_w], vec![0f32; out_w]];
                    for (j, (out, mask_out)) in
                        rows.chunks_exact_mut(out_w).zip(mask_rows.chunks_exact_mut(out_w)).enumerate()
                    {
                        let y = first + j;
                        // The row's colours as three planar rows, so that the per-pixel sum below runs
                        // over contiguous values (vectorised) instead of 3-byte pixels.
                        let bytes = frame.row_rgb_bytes(y, &mut rgb);
                        let [cr, cg, cb] = &mut colour;
                        crate::pipeline::simd::split_rgb(bytes, cr, cg, cb);
                        // The four coefficient planes' vertical blends fused into the sum (the
                        // same operations, in the same order, as `BilinearResizer::row`).
                        let [r0, r1, r2, r3] = &mut resizers;
                        let n = out.len();
                        let ((ar0, ar1, wr), (ag0, ag1, wg), (ab0, ab1, wb), (bb0, bb1, wbb)) = (
                            r0.source_rows(planes[0], y),
                            r1.source_rows(planes[1], y),
                            r2.source_rows(planes[2], y),
                            r3.source_rows(planes[3], y),
                        );
                        let (ar0, ar1, ag0, ag1) = (&ar0[..n], &ar1[..n], &ag0[..n], &ag1[..n]);
                        let (ab0, ab1, bb0, bb1) = (&ab0[..n], &ab1[..n], &bb0[..n], &bb1[..n]);
                        let (cr, cg, cb) = (&cr[..n], &cg[..n], &cb[..n]);
                        let blend = |a: f32, b: f32, w1: f32| a * (1.0 - w1) + b * w1;
                        for x in 0..n {
                            let (ar, ag) = (blend(ar0[x], ar1[x], wr), blend(ag0[x], ag1[x], wg));
                            let (ab, bb) = (blend(ab0[x], ab1[x], wb), blend(bb0[x], bb1[x], wbb));
                            let v = clamp_unit(bb + ar * cr[x] + ag * cg[x] + ab * cb[x]);
                            out[x] = MaybeUninit::new(v);
                            mask_out[x] = MaybeUninit::new(mask_value(v));
                        }
                    }
                },
            )
        });
        // SAFETY: the bands cover the n values of both row by row, and every row's loop above
        // wrote each of its `out_w` values and mask bytes (a panic in a band propagates out of
        // `for_each_band_pair` before this line).
        unsafe {
            q.set_len(n);
            mask.set_len(n);
        }
        (q, mask)
    };
    spare::recycle(a.into_iter().chain([b]));
    refined
}

/// The guide at the working size `(ww, wh)` for a frame larger than that: the model's view of
/// the frame (see [`refine_to_frame`]; computed from the frame when not given) brought to the
/// working size by the same bilinear resize as the probability map, so guide and map are
/// aligned sample for sample. Until 2026-12-05 the guide was a fresh antialiased resize of the
/// frame, one more read of every frame pixel (about 2 ms at 1920x1080); the masks agree with
/// it on more than 99.9 % of the pixels (test) and the dev-set scores did not move (docs/RESULTS.md).
/// Interleaved RGB, 0..255.
pub fn guide_from_view(
    frame: &Frame<'_>,
    view: Option<&[f32]>,
    (mw, mh): (usize, usize),
    (ww, wh): (usize, usize),
) -> Vec<f32> {
    let computed;
    let view = match view {
        Some(v) => {
            assert_eq!(v.len(), 3 * mw * mh, "refinement: the model's view must be 3 x {mw} x {mh} values");
            v
        }
        None => {
            computed = resize_rgb(frame, mw, mh);
            &computed[..]
        }
    };
    resize_bilinear_rgb(view, mw, mh, ww, wh)
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
    let mut ich = [spare::plane(n), spare::plane(n), spare::plane(n)];
    {
        let [r, g, b] = &mut ich;
        for (((px, r), g), b) in guide[..3 * n].chunks_exact(3).zip(r.iter_mut()).zip(g.iter_mut()).zip(b.iter_mut()) {
            (*r, *g, *b) = (px[0], px[1], px[2]);
        }
    }
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
    // The means stay transposed: the solve below reads them pixel by pixel in any layout.
    box_mean_all(&mut planes, w, h, r, Layout::ToTransposed);
    let mean_p = planes.pop().expect("13 planes");
    let mean_i: Vec<Vec<f32>> = planes.drain(9..).collect();
    let mean_ii: Vec<Vec<f32>> = planes.drain(3..).collect();
    let mean_ip = planes;
    let mut a = [spare::plane(n), spare::plane(n), spare::plane(n)];
    let mut b = spare::plane(n);
    let means = Means {
        i: [&mean_i[0], &mean_i[1], &mean_i[2]],
        ip: [&mean_ip[0], &mean_ip[1], &mean_ip[2]],
        ii: std::array::from_fn(|k| &mean_ii[k][..]),
        p: &mean_p,
    };
    {
        // Two halves of the pixels on two threads where the plane is large enough.
        let [a0, a1, a2] = &mut a;
        let half = if threads_for(16 * n) > 1 { n / 2 } else { n };
        let (a0, a0_rest) = a0.split_at_mut(half);
        let (a1, a1_rest) = a1.split_at_mut(half);
        let (a2, a2_rest) = a2.split_at_mut(half);
        let (b0, b_rest) = b.split_at_mut(half);
        std::thread::scope(|scope| {
            if half < n {
                let means = &means;
                scope.spawn(move || means.solve(half, eps as f64, [a0_rest, a1_rest, a2_rest, b_rest]));
            }
            means.solve(0, eps as f64, [a0, a1, a2, b0]);
        });
    }
    spare::recycle(mean_i.into_iter().chain(mean_ii).chain(mean_ip).chain([mean_p]));
    let [ar, ag, ab] = a;
    let mut planes = vec![ar, ag, ab, b];
    // Transposed in (as the solve wrote them), row-major out.
    box_mean_all(&mut planes, w, h, r, Layout::FromTransposed);
    let b = planes.pop().expect("4 planes");
    let ab = planes.pop().expect("3 planes");
    let ag = planes.pop().expect("2 planes");
    let ar = planes.pop().expect("1 plane");
    ([ar, ag, ab], b)
}

/// The window means the per-pixel solve reads: colours `i` (3), colour times probability `ip`
/// (3), colour products `ii` (rr, rg, rb, gg, gb, bb) and probability `p`.
struct Means<'a> {
    i: [&'a [f32]; 3],
    ip: [&'a [f32]; 3],
    ii: [&'a [f32]; 6],
    p: &'a [f32],
}

impl<'a> Means<'a> {
    /// The coefficients `a` (3) and `b` of the pixels `first..first + out[0].len()`: the 3x3
    /// system `(Sigma + eps) a = cov(I, p)` solved in `f64` by cofactors, `b = p - a . I`.
    fn solve(&self, first: usize, eps: f64, out: [&mut [f32]; 4]) {
        let [a0, a1, a2, bo] = out;
        let n = a0.len();
        let (a1, a2, bo) = (&mut a1[..n], &mut a2[..n], &mut bo[..n]);
        // Every plane re-sliced to exactly `n` values, so the loop has no bounds checks and the
        // compiler can vectorise it.
        let at = |v: &'a [f32]| -> &'a [f32] { &v[first..first + n] };
        let (m0, m1, m2, mp) = (at(self.i[0]), at(self.i[1]), at(self.i[2]), at(self.p));
        let (ip0, ip1, ip2) = (at(self.ip[0]), at(self.ip[1]), at(self.ip[2]));
        let (ii00, ii01, ii02) = (at(self.ii[0]), at(self.ii[1]), at(self.ii[2]));
        let (ii11, ii12, ii22) = (at(self.ii[3]), at(self.ii[4]), at(self.ii[5]));
        crate::pipeline::simd::wide(
            #[inline(always)]
            || {
                for i in 0..n {
                    let (m0v, m1v, m2v, p) = (m0[i] as f64, m1[i] as f64, m2[i] as f64, mp[i] as f64);
                    let cov0 = ip0[i] as f64 - m0v * p;
                    let cov1 = ip1[i] as f64 - m1v * p;
                    let cov2 = ip2[i] as f64 - m2v * p;
                    let s00 = ii00[i] as f64 - m0v * m0v + eps;
                    let s01 = ii01[i] as f64 - m0v * m1v;
                    let s02 = ii02[i] as f64 - m0v * m2v;
                    let s11 = ii11[i] as f64 - m1v * m1v + eps;
                    let s12 = ii12[i] as f64 - m1v * m2v;
                    let s22 = ii22[i] as f64 - m2v * m2v + eps;
                    // Inverse of the symmetric matrix by cofactors.
                    let c00 = s11 * s22 - s12 * s12;
                    let c01 = s02 * s12 - s01 * s22;
                    let c02 = s01 * s12 - s02 * s11;
                    let c11 = s00 * s22 - s02 * s02;
                    let c12 = s01 * s02 - s00 * s12;
                    let c22 = s00 * s11 - s01 * s01;
                    let inv_det = 1.0 / (s00 * c00 + s01 * c01 + s02 * c02);
                    let x0 = (c00 * cov0 + c01 * cov1 + c02 * cov2) * inv_det;
                    let x1 = (c01 * cov0 + c11 * cov1 + c12 * cov2) * inv_det;
                    let x2 = (c02 * cov0 + c12 * cov1 + c22 * cov2) * inv_det;
                    a0[i] = x0 as f32;
                    a1[i] = x1 as f32;
                    a2[i] = x2 as f32;
                    bo[i] = (p - x0 * m0v - x1 * m1v - x2 * m2v) as f32;
                }
            },
        );
    }
}

#[cfg(test)]
mod tests;
