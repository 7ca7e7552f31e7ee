//! Bilinear resizing of probability maps with PyTorch's `F.interpolate(mode="bilinear",
//! align_corners=False)` semantics: the one resizer of float maps that post-processing,
//! the refinement, the metrics and the trainer share (the frame's own antialiased resize to
//! the model input is [`super::antialiased::resize_rgb`]).
#![warn(missing_docs)]

/// Source taps of one output coordinate along one axis: the two source indices and the
/// weight of the second one (the first one's weight is `1 - w1`).
#[derive(Clone, Copy, Debug, PartialEq)]
struct Tap {
    i0: usize,
    i1: usize,
    w1: f32,
}

/// Computes the taps of every output coordinate along one axis, exactly as PyTorch's
/// `upsample_bilinear2d` with `align_corners=False` does on the CPU: the scale is
/// `src / dst` (in `f32`), the source coordinate is `(dst + 0.5) * scale - 0.5`,
/// clamped below at 0; `i0 = floor(coord)`, `i1 = min(i0 + 1, src - 1)`,
/// `w1 = coord - i0`.
fn axis_taps(src: usize, dst: usize, taps: &mut Vec<Tap>) {
    taps.clear();
    taps.reserve(dst);
    if src == dst {
        // Same size: coord = d exactly, so the result is the identity. Computed
        // directly to avoid any float rounding on very large sizes.
        taps.extend((0..dst).map(|d| Tap { i0: d, i1: d, w1: 0.0 }));
        return;
    }
    let scale = src as f32 / dst as f32;
    for d in 0..dst {
        let coord = ((d as f32 + 0.5) * scale - 0.5).max(0.0);
        let i0 = (coord as usize).min(src - 1);
        let i1 = if i0 + 1 < src { i0 + 1 } else { i0 };
        let w1 = coord - i0 as f32;
        taps.push(Tap { i0, i1, w1 });
    }
}

/// The first source index and the second one's weight of every output column, as two flat
/// tables (the second index is the first plus one, or the last column at the border).
#[derive(Clone, Debug)]
struct FlatTaps {
    i0: Vec<u32>,
    w1: Vec<f32>,
}

/// A bilinear resizer for a fixed pair of sizes, reusable without allocation.
///
/// It precomputes the source indices and weights of every output column and row once
/// (see [`resize_bilinear`] for the exact semantics) and keeps two scratch rows, so
/// [`BilinearResizer::resize_into`] allocates nothing. Use one per video stream: the
/// sizes do not change from frame to frame.
///
/// The implementation is separable: each needed source row is interpolated
/// horizontally once into a scratch row (cached while consecutive output rows share
/// it), then output rows are blended vertically. The result matches PyTorch up to
/// `f32` rounding (a few ULP).
#[derive(Clone, Debug)]
pub struct BilinearResizer {
    src_w: usize,
    src_h: usize,
    dst_w: usize,
    dst_h: usize,
    cols: Vec<Tap>,
    /// The columns' taps again as flat tables, when the width grows (for
    /// [`crate::pipeline::simd::enlarge_row`]).
    upscale: Option<FlatTaps>,
    rows: Vec<Tap>,
    /// Horizontally resized source rows: `row_a` holds source row `row_a_idx`, and
    /// `row_b` holds `row_b_idx`.
    row_a: Vec<f32>,
    row_b: Vec<f32>,
    /// Source rows held in `row_a` / `row_b` (`usize::MAX`: none).
    a_idx: usize,
    b_idx: usize,
    /// The output row being emitted.
    row_out: Vec<f32>,
}

impl BilinearResizer {
    /// Prepares a resizer from a `src_w` x `src_h` grid to a `dst_w` x `dst_h` grid.
    ///
    /// # Panics
    /// When the destination is not empty but the source is (nothing to sample).
    pub fn new(src_w: usize, src_h: usize, dst_w: usize, dst_h: usize) -> Self {
        assert!(
            dst_w == 0 || dst_h == 0 || (src_w > 0 && src_h > 0),
            "resize_bilinear: cannot resize an empty {src_w}x{src_h} grid to {dst_w}x{dst_h}"
        );
        let mut cols = Vec::new();
        let mut rows = Vec::new();
        if dst_w > 0 && dst_h > 0 {
            axis_taps(src_w, dst_w, &mut cols);
            axis_taps(src_h, dst_h, &mut rows);
        }
        Self {
            src_w,
            src_h,
            dst_w,
            dst_h,
            upscale: (src_w < dst_w).then(|| FlatTaps {
                i0: cols.iter().map(|t| u32::try_from(t.i0).expect("widths fit in u32")).collect(),
                w1: cols.iter().map(|t| t.w1).collect(),
            }),
            cols,
            rows,
            row_a: vec![0.0; dst_w],
            row_b: vec![0.0; dst_w],
            a_idx: usize::MAX,
            b_idx: usize::MAX,
            row_out: vec![0.0; dst_w],
        }
    }

    /// The source size `(width, height)` this resizer was built for.
    pub fn src_size(&self) -> (usize, usize) {
        (self.src_w, self.src_h)
    }

    /// The destination size `(width, height)` this resizer was built for.
    pub fn dst_size(&self) -> (usize, usize) {
        (self.dst_w, self.dst_h)
    }

    /// Resizes `src` (row-major, `src_w * src_h` values) into `dst` (row-major,
    /// `dst_w * dst_h` values), overwriting all of `dst`. Allocates nothing.
    ///
    /// # Panics
    /// When the slice lengths do not match the sizes given to [`BilinearResizer::new`].
    pub fn resize_into(&mut self, src: &[f32], dst: &mut [f32]) {
        assert_eq!(
            dst.len(),
            self.dst_w * self.dst_h,
            "resize_bilinear: destination length does not match {}x{}",
            self.dst_w,
            self.dst_h
        );
        let dw = self.dst_w;
        self.restart();
        self.for_each_row(src, |y, row| dst[y * dw..(y + 1) * dw].copy_from_slice(row));
    }

    /// Resizes `src` (row-major, `src_w * src_h` values) one output row at a time: calls
    /// `emit(y, row)` for every output row `y` in order, `row` holding its `dst_w` values, so
    /// that a caller can consume a large output without storing it. Allocates nothing.
    ///
    /// # Panics
    /// When `src.len()` does not match the source size given to [`BilinearResizer::new`].
    pub fn for_each_row(&mut self, src: &[f32], mut emit: impl FnMut(usize, &[f32])) {
        self.check_source(src);
        self.restart();
        for y in 0..self.rows.len() {
            emit(y, self.row(src, y));
        }
    }

    fn check_source(&self, src: &[f32]) {
        assert_eq!(
            src.len(),
            self.src_w * self.src_h,
            "resize_bilinear: source length does not match {}x{}",
            self.src_w,
            self.src_h
        );
    }

    /// Output row `y` of `src` resized (`dst_w` values). The two horizontally resized source
    /// rows it blends are kept, so walking `y` upwards computes each source row once (any
    /// order works; the same `src` must be passed until the walk ends, and a new walk over
    /// another `src` starts with [`BilinearResizer::restart`]).
    ///
    /// # Panics
    /// When `src.len()` does not match the source size or `y` is not below the output height.
    pub fn row(&mut self, src: &[f32], y: usize) -> &[f32] {
        self.source_rows(src, y);
        let w1 = self.rows[y].w1;
        let w0 = 1.0 - w1;
        for ((o, &a), &b) in self.row_out.iter_mut().zip(&self.row_a).zip(&self.row_b) {
            *o = a * w0 + b * w1;
        }
        &self.row_out
    }

    /// The two horizontally resized source rows that output row `y` blends, and the weight
    /// `w1` of the second: the row is `upper * (1 - w1) + lower * w1`, computed in that order,
    /// as [`BilinearResizer::row`] does. For callers that fuse the blend into their own
    /// per-pixel loop; the caching is that of [`BilinearResizer::row`].
    ///
    /// # Panics
    /// As [`BilinearResizer::row`].
    #[inline]
    pub fn source_rows(&mut self, src: &[f32], y: usize) -> (&[f32], &[f32], f32) {
        self.check_source(src);
        let t = self.rows[y];
        let sw = self.src_w;
        let (cols, upscale) = (&self.cols, &self.upscale);
        let horizontal = |src_row: &[f32], out: &mut [f32]| {
            // Enlarging: whole blocks of 8 outputs in vector registers (the same operations).
            let done = upscale.as_ref().map_or(0, |u| crate::pipeline::simd::enlarge_row(src_row, &u.i0, &u.w1, out));
            for (o, t) in out[done..].iter_mut().zip(&cols[done..]) {
                let a = src_row[t.i0];
                let b = src_row[t.i1];
                *o = a + (b - a) * t.w1;
            }
        };
        if self.a_idx != t.i0 {
            if self.b_idx == t.i0 {
                // Moving down by one source row: reuse the lower row.
                std::mem::swap(&mut self.row_a, &mut self.row_b);
                std::mem::swap(&mut self.a_idx, &mut self.b_idx);
            } else {
                horizontal(&src[t.i0 * sw..(t.i0 + 1) * sw], &mut self.row_a);
                self.a_idx = t.i0;
            }
        }
        if self.b_idx != t.i1 {
            if t.i1 == self.a_idx {
                self.row_b.copy_from_slice(&self.row_a);
            } else {
                horizontal(&src[t.i1 * sw..(t.i1 + 1) * sw], &mut self.row_b);
            }
            self.b_idx = t.i1;
        }
        (&self.row_a, &self.row_b, t.w1)
    }

    /// Forgets the cached source rows, before [`BilinearResizer::row`] walks another source.
    pub fn restart(&mut self) {
        self.a_idx = usize::MAX;
        self.b_idx = usize::MAX;
    }
}

/// Resizes a row-major `src_w` x `src_h` map to `dst_w` x `dst_h` by bilinear
/// interpolation with half-pixel centres.
///
/// These are exactly the semantics of PyTorch
/// `F.interpolate(x, size=(dst_h, dst_w), mode="bilinear", align_corners=False,
/// antialias=False)`: along each axis the source coordinate of output index `d` is
/// `(d + 0.5) * src / dst - 0.5`, clamped below at 0; the two neighbours are
/// `floor(coord)` and the next index, clamped to the last one at the border. When
/// downscaling there is no antialiasing (only the two nearest source samples count).
/// Equal sizes give the input back unchanged.
///
/// Allocates the result; for repeated calls (video) use [`resize_bilinear_into`] or
/// keep a [`BilinearResizer`].
///
/// # Panics
/// When `src.len() != src_w * src_h`, or the source is empty and the destination not.
pub fn resize_bilinear(src: &[f32], src_w: usize, src_h: usize, dst_w: usize, dst_h: usize) -> Vec<f32> {
    let mut dst = vec![0.0; dst_w * dst_h];
    resize_bilinear_into(src, src_w, src_h, &mut dst, dst_w, dst_h);
    dst
}

/// [`resize_bilinear`] of an interleaved RGB map (`3 * src_w * src_h` values): each channel
/// gets exactly the values (the same operations in the same order) that [`resize_bilinear`]
/// gives it alone, without splitting the channels apart.
///
/// # Panics
/// When `src.len() != 3 * src_w * src_h`, or the source is empty and the destination not.
pub fn resize_bilinear_rgb(src: &[f32], src_w: usize, src_h: usize, dst_w: usize, dst_h: usize) -> Vec<f32> {
    assert_eq!(src.len(), 3 * src_w * src_h, "resize_bilinear_rgb: source length does not match 3 x {src_w}x{src_h}");
    let r = BilinearResizer::new(src_w, src_h, dst_w, dst_h);
    let mut dst = vec![0f32; 3 * dst_w * dst_h];
    if dst.is_empty() {
        return dst;
    }
    // One source row resized horizontally, as `BilinearResizer::source_rows` does per channel.
    let horizontal = |row: &[f32], out: &mut [f32]| {
        if src_w == dst_w {
            // The identity taps (i0 = i1 = x, w1 = 0): the same formula, b being a, over
            // contiguous values (kept as written: it is not `a` for -0.0 and infinities).
            #[allow(clippy::eq_op)]
            out.iter_mut().zip(row).for_each(|(o, &a)| *o = a + (a - a) * 0.0);
            return;
        }
        for (o, t) in out.chunks_exact_mut(3).zip(&r.cols) {
            let (a, b) = (&row[3 * t.i0..3 * t.i0 + 3], &row[3 * t.i1..3 * t.i1 + 3]);
            for c in 0..3 {
                o[c] = a[c] + (b[c] - a[c]) * t.w1;
            }
        }
    };
    let (mut upper, mut lower) = (vec![0f32; 3 * dst_w], vec![0f32; 3 * dst_w]);
    for (t, out) in r.rows.iter().zip(dst.chunks_exact_mut(3 * dst_w)) {
        horizontal(&src[3 * t.i0 * src_w..3 * (t.i0 + 1) * src_w], &mut upper);
        horizontal(&src[3 * t.i1 * src_w..3 * (t.i1 + 1) * src_w], &mut lower);
        let (w0, w1) = (1.0 - t.w1, t.w1);
        for ((o, &a), &b) in out.iter_mut().zip(&upper).zip(&lower) {
            *o = a * w0 + b * w1;
        }
    }
    dst
}

/// [`resize_bilinear`] writing into a caller-provided buffer of `dst_w * dst_h` values.
///
/// The output buffer is not allocated, but the small per-axis index tables are
/// (`O(dst_w + dst_h)`); a [`BilinearResizer`] kept across calls avoids even that.
///
/// # Panics
/// When `src.len() != src_w * src_h`, `dst.len() != dst_w * dst_h`, or the source is
/// empty and the destination not.
pub fn resize_bilinear_into(src: &[f32], src_w: usize, src_h: usize, dst: &mut [f32], dst_w: usize, dst_h: usize) {
    BilinearResizer::new(src_w, src_h, dst_w, dst_h).resize_into(src, dst);
}
