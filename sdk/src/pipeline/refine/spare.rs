//! Working planes kept between calls on a thread. The refinement needs about twenty planes of
//! the working size per frame; a fresh allocation of that size is new memory each time (its
//! page faults cost about 2 ms per 640x480 frame on the development machine), while a camera
//! pipeline calls from the same thread frame after frame. At most [`MAX_SPARE`] planes are kept
//! per thread (about 9 MiB at the 336x336 model input, 6 MiB at 280x280), and only planes of at
//! most [`MAX_SPARE_LEN`] values.

use std::cell::RefCell;

/// Planes kept per thread.
pub(super) const MAX_SPARE: usize = 20;
/// The longest plane kept (values): the working size is bounded by the model input, so this
/// only turns away planes of unusual sizes.
pub(super) const MAX_SPARE_LEN: usize = 512 * 512;

thread_local! {
    static SPARE: RefCell<Vec<Vec<f32>>> = const { RefCell::new(Vec::new()) };
}

/// A plane of `n` values for the caller to overwrite, every one of them: a kept plane when there
/// is one, with the values a previous call left in it (not zeroed again: some 20 planes, 3.5 MB
/// at the 280x280 input, per frame), else a new plane of zeros.
pub(super) fn plane(n: usize) -> Vec<f32> {
    let reused = SPARE.try_with(|s| s.borrow_mut().pop()).ok().flatten();
    match reused {
        Some(mut v) => {
            v.resize(n, 0.0);
            v
        }
        None => vec![0.0; n],
    }
}

/// Keeps `planes` for later calls on this thread (up to the limits), drops the rest.
pub(super) fn recycle(planes: impl IntoIterator<Item = Vec<f32>>) {
    let _ = SPARE.try_with(|s| {
        let mut s = s.borrow_mut();
        for p in planes {
            if s.len() < MAX_SPARE && p.capacity() <= MAX_SPARE_LEN {
                s.push(p);
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn planes_are_reused_without_zeroing_and_bounded() {
        let mut p = plane(1000);
        p.iter_mut().for_each(|v| *v = 7.0);
        let addr = p.as_ptr();
        recycle([p]);
        let q = plane(800);
        assert_eq!(q.as_ptr(), addr, "the kept plane is reused");
        assert!(q.len() == 800 && q.iter().all(|&v| v == 7.0), "not zeroed again");
        recycle([q]);
        let longer = plane(1200);
        assert_eq!(longer.len(), 1200);
        assert!(longer[..800].iter().all(|&v| v == 7.0) && longer[800..].iter().all(|&v| v == 0.0));
        recycle((0..MAX_SPARE + 5).map(|_| vec![0.0; 4]));
        assert_eq!(SPARE.with(|s| s.borrow().len()), MAX_SPARE);
        recycle([vec![0.0; MAX_SPARE_LEN + 1]]);
        assert_eq!(SPARE.with(|s| s.borrow().len()), MAX_SPARE);
    }
}
