//! Window means of `f32` planes: the guided filter's only costly step.

use crate::pipeline::parallel::threads_for;
use crate::pipeline::simd::transpose;

/// Replaces every plane by its window mean ([`BoxFilter::mean`], in the layouts `layout` says),
/// spreading the planes over up to [`crate::pipeline::parallel::MAX_THREADS`] threads. The filters'
/// scratch planes come from [`super::spare`] on the calling thread and go back to it.
pub(super) fn box_mean_all(planes: &mut [Vec<f32>], w: usize, h: usize, r: usize, layout: Layout) {
    let threads = threads_for(w * h * planes.len());
    let per_thread = planes.len().div_ceil(threads).max(1);
    let mut filters: Vec<BoxFilter> = (0..planes.len().div_ceil(per_thread)).map(|_| BoxFilter::new(w, h, r)).collect();
    if filters.len() == 1 {
        planes.iter_mut().for_each(|p| filters[0].mean(p, layout));
    } else {
        // The calling thread takes the first share itself.
        let mut shares = planes.chunks_mut(per_thread).zip(filters.iter_mut());
        let first = shares.next();
        std::thread::scope(|scope| {
            for (chunk, f) in shares {
                scope.spawn(move || chunk.iter_mut().for_each(|p| f.mean(p, layout)));
            }
            if let Some((chunk, f)) = first {
                chunk.iter_mut().for_each(|p| f.mean(p, layout));
            }
        });
    }
    filters.into_iter().for_each(BoxFilter::recycle);
}

/// Mean over the `(2r + 1) x (2r + 1)` window around each pixel, the window clipped to the
/// image and the sum divided by the number of pixels inside it. Separable, `O(w h)` whatever
/// the radius. Both passes are the same running column sum down the rows (the horizontal one
/// on the transposed plane), so every inner loop runs along a row over independent columns,
/// which the compiler vectorises; sums are kept in `f64`.
pub(super) struct BoxFilter {
    w: usize,
    h: usize,
    r: usize,
    /// 1 / (pixels of the clipped window) along each axis.
    inv_x: Vec<f64>,
    inv_y: Vec<f64>,
    column: Vec<f64>,
    vertical: Vec<f32>,
    transposed: Vec<f32>,
}

impl BoxFilter {
    pub(super) fn new(w: usize, h: usize, r: usize) -> Self {
        let inv = |n: usize| -> Vec<f64> {
            (0..n).map(|i| 1.0 / ((i + r).min(n - 1) - i.saturating_sub(r) + 1) as f64).collect()
        };
        BoxFilter {
            w,
            h,
            r,
            inv_x: inv(w),
            inv_y: inv(h),
            column: vec![0.0; w.max(h)],
            vertical: super::spare::plane(w * h),
            transposed: super::spare::plane(w * h),
        }
    }

    /// Hands the scratch planes back to [`super::spare`].
    fn recycle(self) {
        super::spare::recycle([self.vertical, self.transposed]);
    }

    /// Replaces `plane` by its window mean, entering and leaving in the layouts `layout` says.
    pub(super) fn mean(&mut self, plane: &mut [f32], layout: Layout) {
        let (w, h, r) = (self.w, self.h, self.r);
        assert_eq!(plane.len(), w * h, "box filter: plane size");
        let (column, vertical, transposed) = (&mut self.column, &mut self.vertical, &mut self.transposed);
        match layout {
            Layout::ToTransposed => {
                column_means(plane, w, h, r, &self.inv_y, column, vertical);
                transpose(vertical, w, h, transposed);
                column_means(transposed, h, w, r, &self.inv_x, column, plane);
            }
            Layout::FromTransposed => {
                // The horizontal pass first (rows of the transposed plane), then the vertical.
                column_means(plane, h, w, r, &self.inv_x, column, vertical);
                transpose(vertical, h, w, transposed);
                column_means(transposed, w, h, r, &self.inv_y, column, plane);
            }
        }
    }
}

/// The layouts a plane enters and leaves [`BoxFilter::mean`] in (a filter built for `w x h`
/// reads a transposed plane as `h x w`): one transpose per plane. The guided filter's per-pixel
/// solve reads its means in any layout, so its 13 means stay transposed and its 4 coefficient
/// planes come back: two transposes per plane instead of four.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Layout {
    /// Row-major `w x h` in, the mean transposed (`h x w`) out.
    ToTransposed,
    /// Transposed (`h x w`) in, the mean row-major `w x h` out.
    FromTransposed,
}

/// `dst` (`w x h`) = the mean of `src` over the clipped `2r + 1` rows around each row, `inv[y]`
/// being one over their count: a running sum per column, added to and taken from one row at
/// a time.
fn column_means(src: &[f32], w: usize, h: usize, r: usize, inv: &[f64], column: &mut [f64], dst: &mut [f32]) {
    crate::pipeline::simd::wide(
        #[inline(always)]
        || column_means_in(src, w, h, r, inv, column, dst),
    )
}

/// [`column_means`] for one instruction set ([`crate::pipeline::simd::wide`] inlines it).
#[inline(always)]
fn column_means_in(src: &[f32], w: usize, h: usize, r: usize, inv: &[f64], column: &mut [f64], dst: &mut [f32]) {
    let column = &mut column[..w];
    column.iter_mut().for_each(|c| *c = 0.0);
    let add = |column: &mut [f64], row: &[f32]| column.iter_mut().zip(row).for_each(|(c, &v)| *c += f64::from(v));
    let sub = |column: &mut [f64], row: &[f32]| column.iter_mut().zip(row).for_each(|(c, &v)| *c -= f64::from(v));
    for y in 0..=r.min(h - 1) {
        add(column, &src[y * w..(y + 1) * w]);
    }
    for y in 0..h {
        let k = inv[y];
        for (d, &c) in dst[y * w..(y + 1) * w].iter_mut().zip(column.iter()) {
            *d = (c * k) as f32;
        }
        if y + r + 1 < h {
            add(column, &src[(y + r + 1) * w..(y + r + 2) * w]);
        }
        if y >= r {
            sub(column, &src[(y - r) * w..(y - r + 1) * w]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn brute_box(src: &[f32], w: usize, h: usize, r: usize) -> Vec<f32> {
        let mut out = vec![0f32; w * h];
        for y in 0..h {
            for x in 0..w {
                let (mut s, mut n) = (0f64, 0f64);
                for yy in y.saturating_sub(r)..(y + r + 1).min(h) {
                    for xx in x.saturating_sub(r)..(x + r + 1).min(w) {
                        s += src[yy * w + xx] as f64;
                        n += 1.0;
                    }
                }
                out[y * w + x] = (s / n) as f32;
            }
        }
        out
    }

    /// Both layouts give the direct sums' means (transposed as they say).
    #[test]
    fn box_filter_matches_the_direct_sum() {
        for (w, h, r) in [(7, 5, 1), (7, 5, 3), (7, 5, 9), (1, 6, 2), (6, 1, 2), (13, 11, 4), (40, 23, 8)] {
            let src: Vec<f32> = (0..w * h).map(|i| ((i * 37 + 11) % 17) as f32 / 7.0).collect();
            let want = brute_box(&src, w, h, r);
            let mut to = src.clone();
            BoxFilter::new(w, h, r).mean(&mut to, Layout::ToTransposed);
            let mut got = vec![0f32; w * h];
            transpose(&to, h, w, &mut got);
            let mut from = vec![0f32; w * h];
            transpose(&src, w, h, &mut from);
            BoxFilter::new(w, h, r).mean(&mut from, Layout::FromTransposed);
            for ((g, f), e) in got.iter().zip(&from).zip(&want) {
                assert!((g - e).abs() < 1e-5, "{w}x{h} r{r}, to transposed: {g} vs {e}");
                assert!((f - e).abs() < 1e-5, "{w}x{h} r{r}, from transposed: {f} vs {e}");
            }
        }
    }
}
