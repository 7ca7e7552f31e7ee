//! Connected components (4-connectivity) of a binary mask and the object box: the last step
//! of post-processing (spec section 3.5). Masks are `bool` or the 0/255 bytes of a
//! [`crate::Segmentation`]; runs of set pixels are found eight bytes at a time in the latter.

/// A mask value that is set or not: `bool` itself, `u8` when non-zero (the 0/255 masks of a
/// [`crate::Segmentation`]).
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

/// A 4-connected component of a binary mask, with its bounding box.
///
/// Box convention: `xyxy` with **exclusive** right/bottom edges, the same as image
/// boxes in continuous pixel coordinates: the component covers columns `x0..x1` and
/// rows `y0..y1`, its box is `width() = x1 - x0` by `height() = y1 - y0` pixels, and
/// `[x0, y0, x1, y1]` as floats is directly the box CorLoc scores (see
/// [`crate::eval::metrics::box_iou`], whose continuous-area convention reproduces the LOST
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
/// [`crate::Segmentation`]'s `fine_mask`.
///
/// # Panics
/// As [`connected_components`].
pub fn mask_components(mask: &[u8], w: usize, h: usize) -> Vec<Component> {
    components(mask, w, h)
}

/// The 4-connected components of `mask` (as [`connected_components`]) and the component of each
/// pixel: `labels[i]` is the index into the returned components of pixel `i`'s component, or
/// `u32::MAX` for an unset pixel. The trainer's TokenCut component rules use it.
///
/// # Panics
/// As [`connected_components`].
pub fn component_labels(mask: &[bool], w: usize, h: usize) -> (Vec<u32>, Vec<Component>) {
    let (runs, mut parent) = merged_runs(mask, w, h);
    let (comps, comp_of_run) = boxes_of_runs(&runs, &mut parent);
    let mut labels = vec![u32::MAX; mask.len()];
    for (run, &c) in runs.iter().zip(&comp_of_run) {
        let row = run.y as usize * w;
        labels[row + run.x0 as usize..row + run.x1 as usize].fill(c);
    }
    (labels, comps)
}

/// Clears (sets to 0) every 4-connected component of the 0/255 `mask` none of whose runs
/// `touches`: it is called as `touches(y, x0, x1)` for the run of row `y`, columns `x0..x1`,
/// until one run of the component says yes. Works on runs, without a per-pixel label image.
///
/// # Panics
/// As [`connected_components`].
pub fn clear_components_not_touching(
    mask: &mut [u8],
    w: usize,
    h: usize,
    touches: impl Fn(usize, usize, usize) -> bool,
) {
    let (runs, mut parent) = merged_runs(&*mask, w, h);
    let (comps, comp_of_run) = boxes_of_runs(&runs, &mut parent);
    let mut seen = vec![false; comps.len()];
    for (run, &c) in runs.iter().zip(&comp_of_run) {
        if !seen[c as usize] && touches(run.y as usize, run.x0 as usize, run.x1 as usize) {
            seen[c as usize] = true;
        }
    }
    for (run, &c) in runs.iter().zip(&comp_of_run) {
        if !seen[c as usize] {
            let row = run.y as usize * w;
            mask[row + run.x0 as usize..row + run.x1 as usize].fill(0);
        }
    }
}

fn components<M: MaskValue>(mask: &[M], w: usize, h: usize) -> Vec<Component> {
    let (runs, mut parent) = merged_runs(mask, w, h);
    boxes_of_runs(&runs, &mut parent).0
}

/// The mask's horizontal runs and their union-find forest: runs overlapping on consecutive rows
/// share a root, the earliest run of their component.
fn merged_runs<M: MaskValue>(mask: &[M], w: usize, h: usize) -> (Vec<Run>, Vec<u32>) {
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
    (runs, parent)
}

/// The box and pixel count of each component of [`merged_runs`], in raster order of first pixel,
/// and the index of each run's component in that list.
fn boxes_of_runs(runs: &[Run], parent: &mut [u32]) -> (Vec<Component>, Vec<u32>) {
    // Roots are the earliest run of their component, so numbering roots in run order
    // numbers components by first pixel in raster order; a root comes before its other runs.
    let mut comp_of_run: Vec<u32> = Vec::with_capacity(runs.len());
    let mut comps: Vec<Component> = Vec::new();
    for (k, run) in runs.iter().enumerate() {
        let r = find(parent, k as u32) as usize;
        let len = run.x1 - run.x0;
        if r == k {
            comp_of_run.push(comps.len() as u32);
            comps.push(Component { x0: run.x0, y0: run.y, x1: run.x1, y1: run.y + 1, pixel_count: len });
        } else {
            let c = comp_of_run[r];
            comp_of_run.push(c);
            let c = &mut comps[c as usize];
            c.x0 = c.x0.min(run.x0);
            c.x1 = c.x1.max(run.x1);
            c.y1 = c.y1.max(run.y + 1);
            c.pixel_count += len;
        }
    }
    (comps, comp_of_run)
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

/// The smallest component, in pixels, a `w x h` frame's box list keeps at `min_fraction` of
/// its area (rounded up; 0 keeps every component).
pub fn min_component_pixels(min_fraction: f32, w: usize, h: usize) -> u32 {
    (f64::from(min_fraction) * (w * h) as f64).ceil().min(u32::MAX as f64) as u32
}

/// The box list of a 0/255 mask: its components of at least `min_pixels` pixels, in raster
/// order, and the index among them of the object box. The object is chosen among **all**
/// components first ([`object_box`]) and always listed, so it, and CorLoc, do not depend on
/// `min_pixels`; the mask itself keeps every component.
pub fn box_list(mask: &[u8], w: usize, h: usize, min_pixels: u32) -> (Vec<Component>, Option<usize>) {
    let all = mask_components(mask, w, h);
    let object = object_box(&all);
    if min_pixels <= 1 {
        return (all, object);
    }
    let mut listed_object = None;
    let mut listed = Vec::with_capacity(all.len());
    for (i, c) in all.into_iter().enumerate() {
        if Some(i) == object {
            listed_object = Some(listed.len());
            listed.push(c);
        } else if c.pixel_count >= min_pixels {
            listed.push(c);
        }
    }
    (listed, listed_object)
}
