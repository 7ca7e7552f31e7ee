//! Temporal stability for streams: a recursive average of the fine probabilities over frames,
//! gated per pixel by how much its probability changed and per block of pixels by how much the
//! frame changed there, a mask with hysteresis, new specks held back for one frame, and resets
//! on a size or format change, a timestamp that goes backwards or jumps, and a scene cut.
//!
//! For each frame `t` and pixel `i` in block `b` (blocks of [`BLOCK`] x [`BLOCK`] pixels):
//!
//! - `d_b` = |mean luma of `b` in frame `t` - the same in frame `t - 1`| (0..255, BT.601 luma);
//!   `g_b` = `max(0, 1 - d_b / motion_threshold)`: where the frame changed by
//!   `motion_threshold` or more the new frame wins alone;
//! - `c_i` = `max(0, 1 - |p_t(i) - P_{t-1}(i)| / CHANGE_SCALE)`: a probability that moved a lot
//!   (an object arriving or leaving) is followed at once, one that wobbles (noise around the
//!   threshold) is averaged, so the average holds still regions without making moving ones lag;
//! - `a` = `strength * g_b * c_i` and `P_t(i) = a * P_{t-1}(i) + (1 - a) * p_t(i)`, `p_t` being
//!   the frame's own (refined) fine probability;
//! - the mask has hysteresis of half-width `h_b = hysteresis * g_b` around the threshold 0.5 (the
//!   one mask rule, [`crate::pipeline::mask`]): a pixel in the previous mask stays in while
//!   `P_t > 0.5 - h_b`, a pixel outside enters when `P_t > 0.5 + h_b`;
//! - a component of that mask that touches neither the previous frame's mask nor the previous
//!   frame's own (per-frame) mask is a speck that appeared for this frame only: it is left out
//!   (its probabilities are kept, so it enters at the next frame if it is still there).
//!
//! The average starts again (`P_t = p_t`) at the first frame and whenever [`Reset`] says why.
//! With `strength = 0` the filter is not run at all: the output is the per-frame result, bit
//! for bit. Pure: no ONNX Runtime, no I/O.

use crate::error::{Error, Result};
use crate::pipeline::frame::{Frame, PixelFormat};
use crate::pipeline::mask::mask_value;
use crate::pipeline::postprocess::clear_components_not_touching;

/// Side of the square blocks the frame change is measured on, in pixels.
pub const BLOCK: usize = 8;

/// The change of a pixel's probability from the running average at and above which the pixel
/// follows the new frame alone (`c_i` above). Chosen on the DAVIS sequences with the
/// defaults (docs/CAMERA.md): 0.3 and 0.4 left more flicker at the same J, 0.7 cost more J.
pub const CHANGE_SCALE: f32 = 0.5;

/// How a stream smooths its masks over time. [`StreamOptions::default`] is the documented
/// default: stability on.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StreamOptions {
    /// Weight of the past in the average where the frame did not change, `0..1` (1 excluded).
    /// 0 switches the stability off: each frame's masks are exactly the per-frame ones.
    pub strength: f32,
    /// Half-width of the mask's hysteresis around 0.5 where the frame did not change, `0..0.5`:
    /// a pixel in the mask leaves it below `0.5 - hysteresis`, a pixel outside enters above
    /// `0.5 + hysteresis` (narrowing to none as the block's change nears `motion_threshold`).
    pub hysteresis: f32,
    /// Change of a block's mean luma (0..255) at and above which the block follows the new frame
    /// alone; below it the past's weight falls linearly with the change. `> 0`.
    pub motion_threshold: f32,
    /// Mean luma change over the whole frame (0..255) at and above which the frame is a scene
    /// cut and the average starts again. `> 0`.
    pub scene_cut_threshold: f32,
    /// A timestamp more than this many nanoseconds after the previous frame's starts the average
    /// again (frames were dropped or the stream paused). `> 0`.
    pub max_gap_ns: i64,
}

impl StreamOptions {
    /// The defaults, chosen on the 20 DAVIS-2016 validation sequences (docs/CAMERA.md): strength
    /// 0.6, hysteresis 0.12, motion threshold 255 (the past's weight falls with the block's change
    /// but never to zero below a full-scale change), scene cut at a mean change of 40, gaps above
    /// 250 ms.
    pub const DEFAULT: StreamOptions = StreamOptions {
        strength: 0.6,
        hysteresis: 0.12,
        motion_threshold: 255.0,
        scene_cut_threshold: 40.0,
        max_gap_ns: 250_000_000,
    };

    /// Per-frame masks, no smoothing (strength 0).
    pub const OFF: StreamOptions = StreamOptions { strength: 0.0, ..StreamOptions::DEFAULT };

    /// Checks the ranges, naming the field that is out of range.
    pub fn validate(&self) -> Result<()> {
        if !(self.strength >= 0.0 && self.strength < 1.0) {
            return Err(Error::invalid(format!("stream strength {} is outside 0..1 (1 excluded)", self.strength)));
        }
        if !(self.hysteresis >= 0.0 && self.hysteresis < 0.5) {
            return Err(Error::invalid(format!(
                "stream hysteresis {} is outside 0..0.5 (0.5 excluded)",
                self.hysteresis
            )));
        }
        if !(self.motion_threshold > 0.0 && self.motion_threshold.is_finite()) {
            return Err(Error::invalid(format!("stream motion_threshold {} must be > 0", self.motion_threshold)));
        }
        if !(self.scene_cut_threshold > 0.0 && self.scene_cut_threshold.is_finite()) {
            return Err(Error::invalid(format!("stream scene_cut_threshold {} must be > 0", self.scene_cut_threshold)));
        }
        if self.max_gap_ns <= 0 {
            return Err(Error::invalid(format!("stream max_gap_ns {} must be > 0", self.max_gap_ns)));
        }
        Ok(())
    }
}

impl Default for StreamOptions {
    fn default() -> Self {
        StreamOptions::DEFAULT
    }
}

/// Why a stream started its average again at a frame (reported with that frame's result).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reset {
    /// The stream's first frame (or the first after [`Reset::Requested`]).
    FirstFrame = 1,
    /// The frame's size or pixel format differs from the previous frame's.
    FrameChanged = 2,
    /// The timestamp is not after the previous frame's.
    TimestampBackwards = 3,
    /// The timestamp is more than `max_gap_ns` after the previous frame's.
    TimestampGap = 4,
    /// The frame's mean luma change is at least `scene_cut_threshold`.
    SceneCut = 5,
    /// The caller reset the stream before this frame.
    Requested = 6,
}

impl Reset {
    /// A short name (`first_frame`, `frame_changed`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Reset::FirstFrame => "first_frame",
            Reset::FrameChanged => "frame_changed",
            Reset::TimestampBackwards => "timestamp_backwards",
            Reset::TimestampGap => "timestamp_gap",
            Reset::SceneCut => "scene_cut",
            Reset::Requested => "requested",
        }
    }
}

/// What the filter keeps from the previous frame.
#[derive(Debug, Clone)]
struct Previous {
    width: u32,
    height: u32,
    format: PixelFormat,
    timestamp_ns: i64,
    luma: Vec<f32>,
    probability: Vec<f32>,
    mask: Vec<u8>,
    /// The frame's own mask, before smoothing.
    frame_mask: Vec<u8>,
}

/// The filter of one stream: feed it each frame with its per-frame fine probability.
#[derive(Debug, Clone)]
pub struct TemporalFilter {
    options: StreamOptions,
    previous: Option<Previous>,
    requested: bool,
}

impl TemporalFilter {
    /// A filter with checked options.
    pub fn new(options: StreamOptions) -> Result<TemporalFilter> {
        options.validate()?;
        Ok(TemporalFilter { options, previous: None, requested: false })
    }

    /// The options.
    pub fn options(&self) -> &StreamOptions {
        &self.options
    }

    /// Forgets the past: the next frame starts the average again ([`Reset::Requested`]).
    pub fn reset(&mut self) {
        if self.previous.take().is_some() {
            self.requested = true;
        }
    }

    /// Why `frame` at `timestamp_ns` cannot continue the average, if it cannot (before its
    /// luma is compared).
    fn reset_before(&self, frame: &Frame<'_>, timestamp_ns: i64) -> Option<Reset> {
        let Some(p) = &self.previous else {
            return Some(if self.requested { Reset::Requested } else { Reset::FirstFrame });
        };
        if (p.width, p.height, p.format) != (frame.width_px(), frame.height_px(), frame.format()) {
            Some(Reset::FrameChanged)
        } else if timestamp_ns <= p.timestamp_ns {
            Some(Reset::TimestampBackwards)
        } else if timestamp_ns.saturating_sub(p.timestamp_ns) > self.options.max_gap_ns {
            Some(Reset::TimestampGap)
        } else {
            None
        }
    }

    /// Smooths `probability` (the frame's own fine probability, `width * height`, row-major)
    /// in place with the past, and writes the 0/255 mask of the result into `mask`. Returns why
    /// the average started again at this frame, if it did. With strength 0 both are left as
    /// they are (the caller's per-frame values) and only resets are reported.
    pub fn apply(
        &mut self,
        frame: &Frame<'_>,
        timestamp_ns: i64,
        probability: &mut [f32],
        mask: &mut [u8],
    ) -> Result<Option<Reset>> {
        let (w, h) = (frame.width_px() as usize, frame.height_px() as usize);
        if probability.len() != w * h || mask.len() != w * h {
            return Err(Error::invalid(format!(
                "temporal filter: {} probabilities and {} mask bytes for a {w}x{h} frame",
                probability.len(),
                mask.len()
            )));
        }
        let luma = block_luma(frame);
        let mut reset = self.reset_before(frame, timestamp_ns);
        if reset.is_none() {
            let previous = &self.previous.as_ref().expect("checked by reset_before").luma;
            let mean_change = luma.iter().zip(previous).map(|(a, b)| (a - b).abs()).sum::<f32>() / luma.len() as f32;
            if mean_change >= self.options.scene_cut_threshold {
                reset = Some(Reset::SceneCut);
            }
        }
        let strength = self.options.strength;
        // This frame's own mask, kept for the next frame's speck rule.
        let mut frame_mask = Vec::new();
        if reset.is_none() && strength > 0.0 {
            let past = self.previous.as_ref().expect("checked by reset_before");
            let bw = w.div_ceil(BLOCK);
            let inv = 1.0 / self.options.motion_threshold;
            let gate: Vec<f32> =
                luma.iter().zip(&past.luma).map(|(a, b)| (1.0 - (a - b).abs() * inv).max(0.0)).collect();
            let hysteresis = self.options.hysteresis;
            frame_mask.extend_from_slice(mask);
            let inv_scale = 1.0 / CHANGE_SCALE;
            let (probability, mask) = (&mut *probability, &mut *mask);
            crate::pipeline::simd::wide(
                #[inline(always)]
                || {
                    for y in 0..h {
                        let rows = y * w..(y + 1) * w;
                        let gates = &gate[(y / BLOCK) * bw..(y / BLOCK + 1) * bw];
                        let now = probability[rows.clone()].chunks_mut(BLOCK);
                        let before = past.probability[rows.clone()].chunks(BLOCK);
                        let was_in = past.mask[rows.clone()].chunks(BLOCK);
                        let out = mask[rows].chunks_mut(BLOCK);
                        for ((((now, before), was_in), out), &g) in now.zip(before).zip(was_in).zip(out).zip(gates) {
                            // Per block: the past's weight and the hysteresis, scaled by the gate.
                            let (sg, hg) = (strength * g, hysteresis * g);
                            for (((p, &past_p), &was), m) in now.iter_mut().zip(before).zip(was_in).zip(out) {
                                let a = sg * (1.0 - (*p - past_p).abs() * inv_scale).max(0.0);
                                let q = a * past_p + (1.0 - a) * *p;
                                *p = q;
                                let margin = if was != 0 { -hg } else { hg };
                                *m = mask_value(q - margin);
                            }
                        }
                    }
                },
            );
            drop_new_specks(mask, w, h, &past.mask, &past.frame_mask);
        } else if strength > 0.0 {
            frame_mask.extend_from_slice(mask);
        }
        self.requested = false;
        // The previous frame's buffers are reused when they have the right size.
        let (mut keep, mut keep_mask) = match self.previous.take() {
            Some(p) => (p.probability, p.mask),
            None => (Vec::new(), Vec::new()),
        };
        keep.clear();
        keep_mask.clear();
        if strength > 0.0 {
            keep.extend_from_slice(probability);
            keep_mask.extend_from_slice(mask);
        }
        self.previous = Some(Previous {
            width: frame.width_px(),
            height: frame.height_px(),
            format: frame.format(),
            timestamp_ns,
            luma,
            probability: keep,
            mask: keep_mask,
            frame_mask,
        });
        Ok(reset)
    }
}

/// Clears the components of `mask` that share no pixel with `previous_mask` or
/// `previous_frame_mask` (the speck rule of the module's description).
fn drop_new_specks(mask: &mut [u8], w: usize, h: usize, previous_mask: &[u8], previous_frame_mask: &[u8]) {
    clear_components_not_touching(mask, w, h, |y, x0, x1| {
        let span = y * w + x0..y * w + x1;
        previous_mask[span.clone()].iter().zip(&previous_frame_mask[span]).any(|(&a, &b)| (a | b) != 0)
    });
}

/// The mean BT.601 luma (0..255) of each [`BLOCK`] x [`BLOCK`] block of the frame, row-major
/// over the blocks (the last row and column of blocks may be partial), from every second pixel
/// of every second row (a quarter of the pixels: enough to see a block change, and cheap).
pub fn block_luma(frame: &Frame<'_>) -> Vec<f32> {
    let (w, h) = (frame.width_px() as usize, frame.height_px() as usize);
    let (bw, bh) = (w.div_ceil(BLOCK), h.div_ceil(BLOCK));
    let mut sums = vec![0u32; bw * bh];
    let mut counts = vec![0u32; bw * bh];
    let mut scratch = vec![[0u8; 3]; w];
    for y in (0..h).step_by(2) {
        let row = frame.row_rgb_bytes(y, &mut scratch);
        let base = (y / BLOCK) * bw;
        for (x, px) in row.chunks_exact(6).map(|p| &p[..3]).enumerate().map(|(k, p)| (2 * k, p)) {
            // BT.601 in 8-bit fixed point: 77 + 150 + 29 = 256.
            sums[base + x / BLOCK] += 77 * u32::from(px[0]) + 150 * u32::from(px[1]) + 29 * u32::from(px[2]);
            counts[base + x / BLOCK] += 1;
        }
        if w % 2 == 1 {
            let px = &row[3 * (w - 1)..];
            sums[base + (w - 1) / BLOCK] += 77 * u32::from(px[0]) + 150 * u32::from(px[1]) + 29 * u32::from(px[2]);
            counts[base + (w - 1) / BLOCK] += 1;
        }
    }
    sums.iter().zip(&counts).map(|(&s, &n)| s as f32 / (256.0 * n.max(1) as f32)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gray(w: u32, h: u32, v: impl Fn(u32, u32) -> u8) -> Vec<u8> {
        (0..h).flat_map(|y| (0..w).map(move |x| (x, y))).map(|(x, y)| v(x, y)).collect()
    }

    fn frame(data: &[u8], w: u32, h: u32) -> Frame<'_> {
        Frame::new(data, w, h, w as usize, PixelFormat::Gray8).unwrap()
    }

    const FRAME_NS: i64 = 40_000_000;

    #[test]
    fn strength_zero_leaves_the_per_frame_values_bit_for_bit() {
        let mut f = TemporalFilter::new(StreamOptions::OFF).unwrap();
        let data = gray(20, 10, |x, _| x as u8);
        for t in 0..4 {
            let mut p: Vec<f32> = (0..200).map(|i| ((i * 37 + t * 11) % 100) as f32 / 99.0).collect();
            let mut m: Vec<u8> = p.iter().map(|&v| mask_value(v)).collect();
            let (p0, m0) = (p.clone(), m.clone());
            let reset = f.apply(&frame(&data, 20, 10), t as i64 * FRAME_NS, &mut p, &mut m).unwrap();
            assert_eq!(reset, (t == 0).then_some(Reset::FirstFrame));
            assert_eq!(
                p.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                p0.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
            );
            assert_eq!(m, m0);
        }
    }

    #[test]
    fn a_still_scene_holds_a_flickering_pixel_and_a_changed_block_follows_at_once() {
        let options = StreamOptions { strength: 0.7, motion_threshold: 16.0, ..StreamOptions::DEFAULT };
        let mut f = TemporalFilter::new(options).unwrap();
        let still = gray(32, 8, |_, _| 100);
        // Every pixel flickers 0.45 / 0.55 frame to frame on a still frame: the average hovers
        // around 0.5, and the hysteresis keeps the mask from following every flip.
        let mut flips = 0;
        let mut last = None;
        for t in 0..12 {
            let v = if t % 2 == 0 { 0.45 } else { 0.55 };
            let mut p = vec![v; 256];
            let mut m: Vec<u8> = p.iter().map(|&q| mask_value(q)).collect();
            f.apply(&frame(&still, 32, 8), t * FRAME_NS, &mut p, &mut m).unwrap();
            if last.is_some_and(|l| l != m[3]) {
                flips += 1;
            }
            last = Some(m[3]);
        }
        assert!(flips <= 1, "the mask flipped {flips} times on a still frame");
        // The last block (x >= 24) brightens by more than the motion threshold: it takes the new
        // probability alone; the other blocks keep averaging (a quarter of the frame changed:
        // no scene cut).
        // The probabilities move by less than CHANGE_SCALE, so the still blocks average.
        let moved = gray(32, 8, |x, _| if x >= 24 { 200 } else { 100 });
        let mut p = vec![0.7; 256];
        let mut m = vec![255u8; 256];
        assert_eq!(f.apply(&frame(&moved, 32, 8), 12 * FRAME_NS, &mut p, &mut m).unwrap(), None);
        assert_eq!(p[24], 0.7);
        assert!(p[0] < 0.7);
    }

    #[test]
    fn a_probability_that_jumps_is_followed_at_once_on_a_still_frame() {
        let mut f = TemporalFilter::new(StreamOptions { strength: 0.9, ..StreamOptions::DEFAULT }).unwrap();
        let still = gray(16, 8, |_, _| 100);
        let n = 128;
        f.apply(&frame(&still, 16, 8), 0, &mut vec![0.1; n], &mut vec![0; n]).unwrap();
        // An object arrives: 0.1 -> 0.9 is more than CHANGE_SCALE, so the probability does not
        // lag; the mask, new everywhere, waits one frame (the speck rule) and then follows.
        let (mut p, mut m) = (vec![0.9; n], vec![255; n]);
        f.apply(&frame(&still, 16, 8), FRAME_NS, &mut p, &mut m).unwrap();
        assert_eq!(p, vec![0.9; n]);
        assert_eq!(m, vec![0; n]);
        let (mut p, mut m) = (vec![0.9; n], vec![255; n]);
        f.apply(&frame(&still, 16, 8), 2 * FRAME_NS, &mut p, &mut m).unwrap();
        assert_eq!((p, m), (vec![0.9; n], vec![255; n]));
        // A wobble of 0.2 is averaged with the past.
        let (mut p, mut m) = (vec![0.7; n], vec![255; n]);
        f.apply(&frame(&still, 16, 8), 3 * FRAME_NS, &mut p, &mut m).unwrap();
        assert!(p[0] > 0.7 && p[0] < 0.9, "{}", p[0]);
    }

    #[test]
    fn a_speck_that_appears_for_one_frame_is_held_back_and_one_that_stays_enters() {
        let mut f = TemporalFilter::new(StreamOptions::DEFAULT).unwrap();
        let still = gray(16, 8, |_, _| 100);
        let n = 128;
        // Frame 0: an object on the left (columns 0..4).
        let object = |i: usize| i % 16 < 4;
        let probs = |speck: bool| -> Vec<f32> {
            (0..n).map(|i| if object(i) || (speck && i == 8 * 16 - 3) { 0.95 } else { 0.05 }).collect()
        };
        let masks = |p: &[f32]| -> Vec<u8> { p.iter().map(|&v| mask_value(v)).collect() };
        let mut p = probs(false);
        let mut m = masks(&p);
        f.apply(&frame(&still, 16, 8), 0, &mut p, &mut m).unwrap();
        // Frame 1: a speck appears far from the object; it is left out of the mask, the object stays.
        let mut p = probs(true);
        let mut m = masks(&p);
        f.apply(&frame(&still, 16, 8), FRAME_NS, &mut p, &mut m).unwrap();
        assert_eq!(m[8 * 16 - 3], 0, "a new speck waits a frame");
        assert!((0..n).filter(|&i| object(i)).all(|i| m[i] == 255));
        // Frame 2: still there, so it enters.
        let mut p = probs(true);
        let mut m = masks(&p);
        f.apply(&frame(&still, 16, 8), 2 * FRAME_NS, &mut p, &mut m).unwrap();
        assert_eq!(m[8 * 16 - 3], 255, "a speck seen two frames running enters");
    }

    #[test]
    fn resets_are_reported_with_their_reason() {
        let mut f = TemporalFilter::new(StreamOptions::DEFAULT).unwrap();
        let a = gray(16, 8, |_, _| 10);
        let b = gray(16, 8, |_, _| 250);
        let small = gray(8, 8, |_, _| 10);
        let mut run = |data: &[u8], w: u32, t: i64| {
            let n = (w * 8) as usize;
            f.apply(&frame(data, w, 8), t, &mut vec![0.5; n], &mut vec![0; n]).unwrap()
        };
        assert_eq!(run(&a, 16, 0), Some(Reset::FirstFrame));
        assert_eq!(run(&a, 16, FRAME_NS), None);
        assert_eq!(run(&a, 16, FRAME_NS), Some(Reset::TimestampBackwards));
        assert_eq!(run(&a, 16, FRAME_NS + 300_000_000), Some(Reset::TimestampGap));
        assert_eq!(run(&small, 8, FRAME_NS * 20), Some(Reset::FrameChanged));
        assert_eq!(run(&a, 16, FRAME_NS * 21), Some(Reset::FrameChanged));
        assert_eq!(run(&b, 16, FRAME_NS * 22), Some(Reset::SceneCut));
        assert_eq!(run(&b, 16, FRAME_NS * 23), None);
        f.reset();
        let n = 128;
        assert_eq!(
            f.apply(&frame(&b, 16, 8), FRAME_NS * 24, &mut vec![0.5; n], &mut vec![0; n]).unwrap(),
            Some(Reset::Requested)
        );
    }

    #[test]
    fn options_out_of_range_are_refused_by_name() {
        for (o, word) in [
            (StreamOptions { strength: 1.0, ..StreamOptions::DEFAULT }, "strength"),
            (StreamOptions { strength: f32::NAN, ..StreamOptions::DEFAULT }, "strength"),
            (StreamOptions { motion_threshold: 0.0, ..StreamOptions::DEFAULT }, "motion_threshold"),
            (StreamOptions { hysteresis: 0.5, ..StreamOptions::DEFAULT }, "hysteresis"),
            (StreamOptions { scene_cut_threshold: -1.0, ..StreamOptions::DEFAULT }, "scene_cut_threshold"),
            (StreamOptions { max_gap_ns: 0, ..StreamOptions::DEFAULT }, "max_gap_ns"),
        ] {
            let e = TemporalFilter::new(o).unwrap_err();
            assert!(e.message().contains(word), "{}", e.message());
        }
    }
}
