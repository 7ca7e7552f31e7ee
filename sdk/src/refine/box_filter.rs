//! Window means of `f32` planes: the guided filter's only costly step.

use crate::parallel::threads_for;

/// Replaces every plane by its window mean ([`BoxFilter`]), spreading the planes over up to
/// [`crate::parallel::MAX_THREADS`] threads.
pub(super) fn box_mean_all(planes: &mut [Vec<f32>], w: usize, h: usize, r: usize) {
    let threads = threads_for(w * h * planes.len());
    let per_thread = planes.len().div_ceil(threads).max(1);
    if threads == 1 || planes.len() == 1 {
        let mut f = BoxFilter::new(w, h, r);
        planes.iter_mut().for_each(|p| f.mean_in_place(p));
        return;
    }
    std::thread::scope(|scope| {
        for chunk in planes.chunks_mut(per_thread) {
            scope.spawn(move || {
                let mut f = BoxFilter::new(w, h, r);
                chunk.iter_mut().for_each(|p| f.mean_in_place(p));
            });
        }
    });
}

/// Mean over the `(2r + 1) x (2r + 1)` window around each pixel, the window clipped to the
/// image and the sum divided by the number of pixels inside it. Separable, `O(w h)` whatever
/// the radius; sums are kept in `f64`.
struct BoxFilter {
    w: usize,
    h: usize,
    r: usize,
    /// 1 / (pixels of the clipped window) along each axis.
    inv_x: Vec<f64>,
    inv_y: Vec<f64>,
    prefix: Vec<f64>,
    column: Vec<f64>,
    horizontal: Vec<f32>,
}

impl BoxFilter {
    fn new(w: usize, h: usize, r: usize) -> Self {
        let inv = |n: usize| -> Vec<f64> {
            (0..n).map(|i| 1.0 / ((i + r).min(n - 1) - i.saturating_sub(r) + 1) as f64).collect()
        };
        BoxFilter {
            w,
            h,
            r,
            inv_x: inv(w),
            inv_y: inv(h),
            prefix: vec![0.0; w + 1],
            column: vec![0.0; w],
            horizontal: vec![0.0; w * h],
        }
    }

    /// Replaces `plane` (`w x h`) by its window mean.
    fn mean_in_place(&mut self, plane: &mut [f32]) {
        let (w, h, r) = (self.w, self.h, self.r);
        assert_eq!(plane.len(), w * h, "box filter: plane size");
        for y in 0..h {
            let row = &plane[y * w..(y + 1) * w];
            let mut sum = 0f64;
            for (x, &v) in row.iter().enumerate() {
                sum += v as f64;
                self.prefix[x + 1] = sum;
            }
            let out = &mut self.horizontal[y * w..(y + 1) * w];
            for (x, o) in out.iter_mut().enumerate() {
                let lo = x.saturating_sub(r);
                let hi = (x + r + 1).min(w);
                *o = ((self.prefix[hi] - self.prefix[lo]) * self.inv_x[x]) as f32;
            }
        }
        self.column.iter_mut().for_each(|c| *c = 0.0);
        let add = |column: &mut [f64], row: &[f32], sign: f64| {
            column.iter_mut().zip(row).for_each(|(c, &v)| *c += sign * v as f64);
        };
        for y in 0..=r.min(h - 1) {
            add(&mut self.column, &self.horizontal[y * w..(y + 1) * w], 1.0);
        }
        for y in 0..h {
            let inv = self.inv_y[y];
            for (d, &c) in plane[y * w..(y + 1) * w].iter_mut().zip(&self.column) {
                *d = (c * inv) as f32;
            }
            if y + r + 1 < h {
                add(&mut self.column, &self.horizontal[(y + r + 1) * w..(y + r + 2) * w], 1.0);
            }
            if y >= r {
                add(&mut self.column, &self.horizontal[(y - r) * w..(y - r + 1) * w], -1.0);
            }
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

    #[test]
    fn box_filter_matches_the_direct_sum() {
        for (w, h, r) in [(7, 5, 1), (7, 5, 3), (7, 5, 9), (1, 6, 2), (6, 1, 2), (13, 11, 4)] {
            let src: Vec<f32> = (0..w * h).map(|i| ((i * 37 + 11) % 17) as f32 / 7.0).collect();
            let mut got = src.clone();
            BoxFilter::new(w, h, r).mean_in_place(&mut got);
            let want = brute_box(&src, w, h, r);
            for (g, e) in got.iter().zip(&want) {
                assert!((g - e).abs() < 1e-5, "{w}x{h} r{r}: {g} vs {e}");
            }
        }
    }
}
