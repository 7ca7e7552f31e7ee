//! Spreading the rows of an output image over a few threads: the one mechanism the frame's
//! resize ([`crate::pipeline::preprocess`]) and the refinement ([`crate::pipeline::refine`]) use. Each band of
//! rows is computed independently, so the result does not depend on the thread count.

/// The most threads one call uses.
pub const MAX_THREADS: usize = 4;

/// Threads for `work` pixel operations: one below about 64k (starting threads costs more than
/// it saves), else up to [`MAX_THREADS`] and the machine's cores.
pub fn threads_for(work: usize) -> usize {
    if work < 1 << 16 {
        return 1;
    }
    cores().clamp(1, MAX_THREADS)
}

/// The cores this process may use, asked once: `available_parallelism` reads the affinity mask
/// and the cgroup quota files on every call, which costs more than a small parallel step.
fn cores() -> usize {
    static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// Splits `out` (rows of `row_len` values) into at most `threads` bands of whole rows and calls
/// `band(first_row, rows)` for each: the first in the calling thread, the others on scoped
/// threads.
pub fn for_each_band<T: Send>(out: &mut [T], row_len: usize, threads: usize, band: impl Fn(usize, &mut [T]) + Sync) {
    // A second image of zero-sized values, one per row, costs nothing.
    let rows = out.len().checked_div(row_len).unwrap_or(0);
    for_each_band_pair(out, row_len, &mut vec![(); rows], 1, threads, |first, rows, _| band(first, rows));
}

/// [`for_each_band`] over two images of the same rows (`a` rows of `a_row` values, `b` rows of
/// `b_row` values): `band(first_row, a_rows, b_rows)` gets the same rows of both.
pub fn for_each_band_pair<A: Send, B: Send>(
    a: &mut [A],
    a_row: usize,
    b: &mut [B],
    b_row: usize,
    threads: usize,
    band: impl Fn(usize, &mut [A], &mut [B]) + Sync,
) {
    let rows = a.len().checked_div(a_row).unwrap_or(0);
    assert_eq!(rows, b.len().checked_div(b_row).unwrap_or(0), "for_each_band_pair: the two images differ in rows");
    if rows == 0 {
        return;
    }
    let per_band = rows.div_ceil(threads.max(1));
    if threads <= 1 || per_band >= rows {
        band(0, a, b);
        return;
    }
    let band = &band;
    // The calling thread takes the first band itself: one thread fewer to start and wake.
    let mut chunks = a.chunks_mut(per_band * a_row).zip(b.chunks_mut(per_band * b_row)).enumerate();
    let first = chunks.next();
    std::thread::scope(|scope| {
        for (i, (ca, cb)) in chunks {
            scope.spawn(move || band(i * per_band, ca, cb));
        }
        if let Some((_, (ca, cb))) = first {
            band(0, ca, cb);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_row_is_visited_once_with_its_index() {
        for threads in [1, 2, 3, 4, 7] {
            let mut out = vec![0usize; 10 * 3];
            for_each_band(&mut out, 3, threads, |first, rows| {
                for (j, row) in rows.chunks_exact_mut(3).enumerate() {
                    row.iter_mut().for_each(|v| *v += first + j + 1);
                }
            });
            let want: Vec<usize> = (0..10).flat_map(|y| [y + 1; 3]).collect();
            assert_eq!(out, want, "{threads} threads");
        }
        for_each_band(&mut [0u8; 0], 3, 2, |_, _| panic!("no rows"));
    }

    #[test]
    fn band_pairs_hold_the_same_rows() {
        for threads in [1, 2, 3, 4, 7] {
            let (mut a, mut b) = (vec![0usize; 10 * 3], vec![0u8; 10 * 2]);
            for_each_band_pair(&mut a, 3, &mut b, 2, threads, |first, ra, rb| {
                assert_eq!(ra.len() / 3, rb.len() / 2);
                ra.iter_mut().enumerate().for_each(|(i, v)| *v = first + i / 3);
                rb.iter_mut().enumerate().for_each(|(i, v)| *v = (first + i / 2) as u8);
            });
            assert_eq!(a, (0..10).flat_map(|y| [y; 3]).collect::<Vec<_>>(), "{threads} threads");
            assert_eq!(b, (0..10u8).flat_map(|y| [y; 2]).collect::<Vec<_>>(), "{threads} threads");
        }
    }
}
