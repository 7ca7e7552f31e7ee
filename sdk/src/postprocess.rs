//! Post-processing of Sempart probability maps (spec section 3).
//!
//! This module is the single implementation of the steps that turn the network's
//! probability maps into masks and boxes. The trainer's evaluation and the SDK's
//! inference both call it, so that the numbers the trainer reports are the numbers
//! the SDK produces.
//!
//! The steps, in the order inference applies them:
//!
//! 1. [`binarize`] the coarse and fine probability maps at [`THRESHOLD`] (strict `>`);
//! 2. [`foreground_is_a`] decides which side of the binary partition is the object
//!    (the corner rule of spec 3.2), [`select_foreground`] applies that decision;
//! 3. [`crate::resize::resize_bilinear`] (or a reusable [`crate::resize::BilinearResizer`])
//!    brings the fine probability map to the original image size (PyTorch `F.interpolate`
//!    semantics), or [`crate::refine`] does, refining it on the way;
//! 4. [`connected_components`] and [`object_box`] give the single-object box.
//!
//! Every function here is pure (no ONNX Runtime, no I/O). Grids are row-major
//! (`index = y * width + x`).
#![warn(missing_docs)]

use crate::frame::Frame;
use crate::model_format::ModelInfo;
use crate::plane::Plane;
use crate::refine::{refine_to_frame_with_mask, GuidedFilter};
use crate::resize::resize_bilinear;
use crate::result::{Segmentation, Timing};

/// The binarisation threshold of the paper: a pixel belongs to partition "A" when its
/// probability is strictly greater than this value.
pub const THRESHOLD: f32 = 0.5;

// ---------------------------------------------------------------------------------
// Binarisation and foreground selection
// ---------------------------------------------------------------------------------

/// A mask value that is set or not: `bool` itself, `u8` when non-zero (the 0/255 masks of a
/// [`Segmentation`]).
trait MaskValue: Copy {
    /// Whether the pixel is set.
    fn is_set(self) -> bool;

    /// Index of the first set pixel of `row`.
    fn first_set(row: &[Self]) -> Option<usize> {
        row.iter().position(|&b| b.is_set())
    }

    /// Index of the first pixel of `row` that is not set.
    fn first_unset(row: &[Self]) -> Option<usize> {
        row.iter().position(|&b| !b.is_set())
    }
}

impl MaskValue for bool {
    #[inline]
    fn is_set(self) -> bool {
        self
    }
}

impl MaskValue for u8 {
    #[inline]
    fn is_set(self) -> bool {
        self != 0
    }

    /// Eight pixels at a time: the first non-zero byte of a little-endian word is its lowest.
    fn first_set(row: &[u8]) -> Option<usize> {
        first_byte_where(row, |v| v, |b| b != 0)
    }

    /// Eight pixels at a time: `(v - 0x01..01) & !v & 0x80..80` flags every zero byte of `v`
    /// and, above the first zero, possibly others, so its lowest flag is the first zero.
    fn first_unset(row: &[u8]) -> Option<usize> {
        first_byte_where(row, |v| v.wrapping_sub(0x0101_0101_0101_0101) & !v & 0x8080_8080_8080_8080, |b| b == 0)
    }
}

/// The first byte of `row` that `flags` marks (a word whose lowest non-zero byte is that of the
/// first wanted byte of the eight, zero when none is) or, in the last few bytes, that `wanted`
/// accepts.
#[inline]
fn first_byte_where(row: &[u8], flags: impl Fn(u64) -> u64, wanted: impl Fn(u8) -> bool) -> Option<usize> {
    let mut words = row.chunks_exact(8);
    for (i, word) in (&mut words).enumerate() {
        let f = flags(u64::from_le_bytes(word.try_into().expect("8 bytes")));
        if f != 0 {
            return Some(8 * i + f.trailing_zeros() as usize / 8);
        }
    }
    let tail = row.len() - words.remainder().len();
    words.remainder().iter().position(|&b| wanted(b)).map(|i| tail + i)
}

/// Binarises a probability map: `true` ("partition A") where `p > threshold` (strict),
/// `false` elsewhere, including NaN. The paper's threshold is [`THRESHOLD`] (0.5).
pub fn binarize(prob: &[f32], threshold: f32) -> Vec<bool> {
    prob.iter().map(|&p| p > threshold).collect()
}

/// [`binarize`] into a caller-provided buffer of the same length as `prob`.
///
/// # Panics
/// When the lengths differ.
pub fn binarize_into(prob: &[f32], threshold: f32, out: &mut [bool]) {
    assert_eq!(prob.len(), out.len(), "binarize_into: length mismatch");
    for (o, &p) in out.iter_mut().zip(prob) {
        *o = p > threshold;
    }
}

/// Number of the four image corners (top-left, top-right, bottom-left, bottom-right)
/// where `mask` is `true`.
///
/// On a 1-pixel-wide or 1-pixel-high grid some corners are the same pixel; each of the
/// four corner positions is still counted once (a 1x1 `true` grid touches 4 corners),
/// so the counts of the two partitions always add up to 4. An empty grid touches 0.
///
/// # Panics
/// When `mask.len() != w * h`.
pub fn corners_touched(mask: &[bool], w: usize, h: usize) -> u32 {
    assert_eq!(mask.len(), w * h, "corners_touched: mask length != w * h");
    if w == 0 || h == 0 {
        return 0;
    }
    let idx = [0, w - 1, (h - 1) * w, (h - 1) * w + w - 1];
    idx.iter().map(|&i| mask[i] as u32).sum()
}

/// Decides which side of a binary partition is the foreground (spec 3.2).
///
/// `mask` is the binarised map of a `w` x `h` grid: `true` is partition "A"
/// (probability > 0.5), `false` is partition "B". Returns `true` when A is the
/// foreground (keep the mask), `false` when B is (invert it).
///
/// The rule, in order:
/// 1. **Corners.** The background of a photo usually reaches the image border, so the
///    partition touching fewer of the four corners (see [`corners_touched`]) is the
///    foreground.
/// 2. **Size.** On a corner tie (2-2, e.g. a horizontal sky/ground split, or 0-4 never
///    ties) the smaller partition, by pixel count, is the foreground: salient objects
///    are usually smaller than their background.
/// 3. **Default.** If the pixel counts tie too, A is kept.
///
/// Edge cases follow from the rule: an all-`true` mask makes A touch 4 corners and B
/// none, so B (empty) is the foreground; an all-`false` mask keeps A (empty). A uniform
/// map therefore always yields an empty foreground. A 1x1 grid is uniform. An empty
/// grid keeps A.
///
/// # Panics
/// When `mask.len() != w * h`.
pub fn foreground_is_a(mask: &[bool], w: usize, h: usize) -> bool {
    let a_corners = corners_touched(mask, w, h);
    if w == 0 || h == 0 {
        return true;
    }
    let b_corners = 4 - a_corners;
    if a_corners != b_corners {
        return a_corners < b_corners;
    }
    let a_pixels = mask.iter().filter(|&&m| m).count();
    let b_pixels = mask.len() - a_pixels;
    a_pixels <= b_pixels
}

/// Applies [`foreground_is_a`] in place: inverts `mask` when partition B is the
/// foreground, so that afterwards `true` always means foreground. Returns `true` when
/// the mask was inverted.
///
/// # Panics
/// When `mask.len() != w * h`.
pub fn select_foreground(mask: &mut [bool], w: usize, h: usize) -> bool {
    if foreground_is_a(mask, w, h) {
        false
    } else {
        mask.iter_mut().for_each(|m| *m = !*m);
        true
    }
}

// ---------------------------------------------------------------------------------
// Connected components and the object box
// ---------------------------------------------------------------------------------

/// A 4-connected component of a binary mask, with its bounding box.
///
/// Box convention: `xyxy` with **exclusive** right/bottom edges, the same as image
/// boxes in continuous pixel coordinates: the component covers columns `x0..x1` and
/// rows `y0..y1`, its box is `width() = x1 - x0` by `height() = y1 - y0` pixels, and
/// `[x0, y0, x1, y1]` as floats is directly the box CorLoc scores (see
/// [`crate::metrics::box_iou`], whose continuous-area convention reproduces the LOST
/// CorLoc of 61.90 on VOC07). A single pixel at `(x, y)` has the box
/// `(x, y, x + 1, y + 1)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Component {
    /// Leftmost column of the component (inclusive).
    pub x0: u32,
    /// Topmost row of the component (inclusive).
    pub y0: u32,
    /// One past the rightmost column (exclusive).
    pub x1: u32,
    /// One past the bottom row (exclusive).
    pub y1: u32,
    /// Number of pixels in the component.
    pub pixel_count: u32,
}

impl Component {
    /// Bounding-box width in pixels (`x1 - x0`).
    pub fn width(&self) -> u32 {
        self.x1 - self.x0
    }

    /// Bounding-box height in pixels (`y1 - y0`).
    pub fn height(&self) -> u32 {
        self.y1 - self.y0
    }

    /// Bounding-box area in pixels (`width * height`), the quantity [`object_box`]
    /// maximises.
    pub fn box_area(&self) -> u64 {
        self.width() as u64 * self.height() as u64
    }

    /// The bounding box as `[x0, y0, x1, y1]` floats (exclusive right/bottom edges).
    pub fn xyxy(&self) -> [f32; 4] {
        [self.x0 as f32, self.y0 as f32, self.x1 as f32, self.y1 as f32]
    }

    /// The bounding box scaled to another resolution: `x` coordinates times `sx`, `y`
    /// coordinates times `sy` (e.g. `sx = image_width / mask_width` for a box found on
    /// a mask smaller than the image).
    pub fn xyxy_scaled(&self, sx: f32, sy: f32) -> [f32; 4] {
        [self.x0 as f32 * sx, self.y0 as f32 * sy, self.x1 as f32 * sx, self.y1 as f32 * sy]
    }
}

/// A horizontal run of `true` pixels: row `y`, columns `x0..x1`.
#[derive(Clone, Copy)]
struct Run {
    y: u32,
    x0: u32,
    x1: u32,
}

/// Union-find root with path halving.
fn find(parent: &mut [u32], mut x: u32) -> u32 {
    while parent[x as usize] != x {
        let grand = parent[parent[x as usize] as usize];
        parent[x as usize] = grand;
        x = grand;
    }
    x
}

/// Connected components of `mask` (`true` = object pixel) on a `w` x `h` grid, with
/// **4-connectivity** (pixels touching only diagonally are separate), the default of
/// `scipy.ndimage.label` that LOST and TokenCut use.
///
/// Components are ordered by their first pixel in raster order (top to bottom, left to
/// right), as `scipy.ndimage.label` numbers them. See [`Component`] for the box
/// convention.
///
/// The algorithm is iterative and linear-time (no recursion, safe on 8K x 8K masks):
/// the mask is split into horizontal runs, runs overlapping on consecutive rows are
/// merged with union-find (the root is always the earliest run, which gives the order),
/// and a last pass over the runs accumulates the boxes and pixel counts. Memory is
/// proportional to the number of runs, not to the number of pixels.
///
/// # Panics
/// When `mask.len() != w * h`, or a dimension does not fit in `u32`.
pub fn connected_components(mask: &[bool], w: usize, h: usize) -> Vec<Component> {
    components(mask, w, h)
}

/// [`connected_components`] of a 0/255 mask (any non-zero value is set), such as a
/// [`Segmentation`]'s `fine_mask`.
///
/// # Panics
/// As [`connected_components`].
pub fn mask_components(mask: &[u8], w: usize, h: usize) -> Vec<Component> {
    components(mask, w, h)
}

fn components<M: MaskValue>(mask: &[M], w: usize, h: usize) -> Vec<Component> {
    assert_eq!(mask.len(), w * h, "connected_components: mask length != w * h");
    assert!(u32::try_from(w).is_ok() && u32::try_from(h).is_ok(), "connected_components: grid too large");
    let mut runs: Vec<Run> = Vec::new();
    let mut parent: Vec<u32> = Vec::new();
    let mut prev = 0..0;
    for y in 0..h {
        let row = &mask[y * w..(y + 1) * w];
        let start = runs.len();
        let mut x = 0;
        while x < w {
            match M::first_set(&row[x..]) {
                Some(off) => x += off,
                None => break,
            }
            let x0 = x;
            x += M::first_unset(&row[x..]).unwrap_or(w - x);
            let idx = u32::try_from(runs.len()).expect("connected_components: too many runs");
            runs.push(Run { y: y as u32, x0: x0 as u32, x1: x as u32 });
            parent.push(idx);
        }
        // Merge with the overlapping runs of the previous row (two-pointer sweep; runs
        // of one row are sorted and disjoint).
        let cur = start..runs.len();
        let (mut i, mut j) = (prev.start, cur.start);
        while i < prev.end && j < cur.end {
            let (a, b) = (runs[i], runs[j]);
            if a.x0 < b.x1 && b.x0 < a.x1 {
                let ra = find(&mut parent, i as u32);
                let rb = find(&mut parent, j as u32);
                if ra != rb {
                    let (lo, hi) = if ra < rb { (ra, rb) } else { (rb, ra) };
                    parent[hi as usize] = lo;
                }
            }
            if a.x1 <= b.x1 {
                i += 1;
            } else {
                j += 1;
            }
        }
        prev = cur;
    }

    // Roots are the earliest run of their component, so numbering roots in run order
    // numbers components by first pixel in raster order.
    let mut comp_of_root: Vec<u32> = vec![u32::MAX; runs.len()];
    let mut comps: Vec<Component> = Vec::new();
    for (k, run) in runs.iter().enumerate() {
        let r = find(&mut parent, k as u32) as usize;
        let len = run.x1 - run.x0;
        if r == k {
            comp_of_root[k] = comps.len() as u32;
            comps.push(Component { x0: run.x0, y0: run.y, x1: run.x1, y1: run.y + 1, pixel_count: len });
        } else {
            let c = &mut comps[comp_of_root[r] as usize];
            c.x0 = c.x0.min(run.x0);
            c.x1 = c.x1.max(run.x1);
            c.y1 = c.y1.max(run.y + 1);
            c.pixel_count += len;
        }
    }
    comps
}

/// Index of the component whose bounding box has the largest **area** (the paper's
/// rule for single-object localisation, spec 3.5), or `None` when there is none.
///
/// Ties on box area go to the larger pixel count, then to the first component (the
/// earliest in raster order when `components` comes from [`connected_components`]).
pub fn object_box(components: &[Component]) -> Option<usize> {
    let mut best: Option<usize> = None;
    for (i, c) in components.iter().enumerate() {
        let better = match best {
            None => true,
            Some(b) => {
                let bc = &components[b];
                (c.box_area(), c.pixel_count) > (bc.box_area(), bc.pixel_count)
            }
        };
        if better {
            best = Some(i);
        }
    }
    best
}

/// Foreground probabilities of one image, from the network's two raw outputs.
#[derive(Debug, Clone, PartialEq)]
pub struct ForegroundMaps {
    /// True when the foreground is partition B (probability <= 0.5 in the raw outputs).
    pub foreground_is_b: bool,
    /// Fine foreground probability, resized to the requested output size.
    pub fine: Vec<f32>,
    /// Its 0/255 mask at [`THRESHOLD`], when the refinement made it in the same pass
    /// ([`FineOutput::Refined`]); `None` for [`FineOutput::Resized`].
    pub fine_mask: Option<Vec<u8>>,
    /// Coarse foreground probability on the model grid.
    pub coarse: Vec<f32>,
}

/// How [`foreground_maps`] brings the fine map to the output.
#[derive(Debug, Clone, Copy)]
pub enum FineOutput<'a, 'f> {
    /// Bilinear resize ([`resize_bilinear`]) to `width x height`: the paper's post-processing.
    Resized {
        /// Output width.
        width: usize,
        /// Output height.
        height: usize,
    },
    /// [`crate::refine::refine_to_frame`] with `frame` as the guide, at the frame's size (a
    /// filter that is off makes this the bilinear resize to the frame's size).
    Refined {
        /// The guide, and the output size.
        frame: &'a Frame<'f>,
        /// The frame as the model saw it, when the caller has it (see
        /// [`crate::refine::refine_to_frame`]): the refinement's guide is made from it.
        view: Option<&'a [f32]>,
        /// The refinement's parameters.
        filter: &'a GuidedFilter,
    },
}

impl FineOutput<'_, '_> {
    /// The output size (width, height).
    pub fn size(&self) -> (usize, usize) {
        match self {
            Self::Resized { width, height } => (*width, *height),
            Self::Refined { frame, .. } => (frame.width_px() as usize, frame.height_px() as usize),
        }
    }
}

/// The inference post-processing of the spec (section 3) up to the probabilities, in one place
/// for the SDK and the trainer's evaluation: the foreground side is chosen by
/// [`foreground_is_a`] on the binarised coarse map (its grid) and applied to both outputs; the
/// fine map (at the model input's size) is brought to the output as `output` says.
pub fn foreground_maps(coarse_a: Plane<'_, f32>, fine_a: Plane<'_, f32>, output: FineOutput<'_, '_>) -> ForegroundMaps {
    let (grid_w, grid_h) = coarse_a.size();
    let (in_w, in_h) = fine_a.size();
    let partition_a = binarize(coarse_a.values(), THRESHOLD);
    let foreground_is_b = !foreground_is_a(&partition_a, grid_w, grid_h);
    let orient = |p: f32| if foreground_is_b { 1.0 - p } else { p };
    let (fine, fine_mask) = match output {
        FineOutput::Refined { frame, view, filter } => {
            let oriented: Vec<f32> = fine_a.values().iter().map(|&p| orient(p)).collect();
            let (fine, mask) = refine_to_frame_with_mask(frame, view, &oriented, (in_w, in_h), (in_w, in_h), filter);
            (fine, Some(mask))
        }
        FineOutput::Resized { width, height } => {
            let mut fine = resize_bilinear(fine_a.values(), in_w, in_h, width, height);
            fine.iter_mut().for_each(|p| *p = orient(*p));
            (fine, None)
        }
    };
    ForegroundMaps { foreground_is_b, fine, fine_mask, coarse: coarse_a.values().iter().map(|&p| orient(p)).collect() }
}

/// The 0/255 mask of a probability map: 255 where [`binarize`] sets the pixel.
/// Rows of large maps are split over a few threads ([`crate::parallel`]).
fn mask_bytes(prob: Plane<'_, f32>) -> Vec<u8> {
    let (w, values) = (prob.width(), prob.values());
    let mut mask = vec![0u8; values.len()];
    crate::parallel::for_each_band(&mut mask, w, crate::parallel::threads_for(values.len()), |first, out| {
        crate::simd::wide(
            #[inline(always)]
            || {
                for (m, &p) in out.iter_mut().zip(&values[first * w..]) {
                    *m = if p > THRESHOLD { 255 } else { 0 };
                }
            },
        )
    });
    mask
}

/// The result for one frame from the model's two raw outputs (partition-A probabilities at
/// its resolution): the maps oriented, brought to the frame (refined as `refine` says, the
/// guide made from `view`, the model's view of the frame that preprocessing returned, or from
/// the frame when `None`) and binarised, the fine mask's components and the object box. The
/// timing is left at zero.
pub fn segmentation(
    info: &ModelInfo,
    frame: &Frame<'_>,
    view: Option<&[f32]>,
    refine: &GuidedFilter,
    fine_model: &[f32],
    coarse_model: &[f32],
) -> Segmentation {
    let (gw, gh) = (info.grid_width, info.grid_height);
    let (width_px, height_px) = (frame.width_px(), frame.height_px());
    let (w, h) = (width_px as usize, height_px as usize);
    let (iw, ih) = (info.input_width_px, info.input_height_px);
    let maps = foreground_maps(
        Plane::new(coarse_model, gw, gh),
        Plane::new(fine_model, iw, ih),
        FineOutput::Refined { frame, view, filter: refine },
    );
    let coarse_mask = mask_bytes(Plane::new(&maps.coarse, gw, gh));
    // The 0/255 mask comes from the refinement's pass over the frame; the components read it.
    let fine_mask = match maps.fine_mask {
        Some(mask) => mask,
        None => mask_bytes(Plane::new(&maps.fine, w, h)),
    };
    let components = mask_components(&fine_mask, w, h);
    let object = object_box(&components);
    Segmentation {
        width_px,
        height_px,
        fine_mask,
        fine_probability: maps.fine,
        grid_width: gw as u32,
        grid_height: gh as u32,
        coarse_mask,
        coarse_probability: maps.coarse,
        foreground_is_b: maps.foreground_is_b,
        components,
        object,
        timing: Timing::default(),
    }
}
