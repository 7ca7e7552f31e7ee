//! The pixel loops' instruction set, chosen at run time: [`wide`] runs a closure compiled for
//! AVX2 when the CPU reports it (x86-64 only), and for the target's baseline (SSE2 on
//! x86-64) otherwise. Nothing is assumed at build time, so one `libsempart.so` runs on every
//! CPU of its architecture and uses the wider vectors where they exist.
//!
//! Both versions compute the same operations in the same order: the compiler only widens the
//! vectors. Rust never contracts a multiply and an add into a fused multiply-add on its own,
//! and FMA is not enabled here, so every value is rounded exactly as in the baseline build and
//! the results are bit-identical whichever version runs (tests compare them on the CPU they
//! run on: `set_wide(false)`).
//!
//! The closure must hold the loop itself and be marked `#[inline(always)]`
//! (`wide(#[inline(always)] || ...)`): otherwise it stays a function of its own, compiled for
//! the baseline, and only the call goes through the AVX2 wrapper. A function the closure calls
//! is likewise compiled once, for the baseline, unless the compiler inlines it.

use std::sync::atomic::{AtomicU8, Ordering};

/// Unknown until the first call, then whether the wide version runs.
const UNKNOWN: u8 = 0;
const BASELINE: u8 = 1;
const WIDE: u8 = 2;
static CHOICE: AtomicU8 = AtomicU8::new(UNKNOWN);

/// Runs `f`, compiled for AVX2 when the CPU has it (see the module documentation).
#[inline]
pub fn wide<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    if uses_wide() {
        // SAFETY: `avx2` is only called after the CPU reported AVX2 (`uses_wide`).
        return unsafe { avx2(f) };
    }
    f()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn avx2<R>(f: impl FnOnce() -> R) -> R {
    f()
}

/// The environment variable that, set to `baseline` before the first call, keeps every loop on
/// the baseline version (to compare speeds, or to rule the wide version out).
pub const ENV: &str = "SEMPART_SIMD";

/// True when [`wide`] runs the AVX2 version: the CPU has AVX2, and neither [`ENV`] nor
/// [`set_wide`] turned it off.
pub fn uses_wide() -> bool {
    match CHOICE.load(Ordering::Relaxed) {
        UNKNOWN => {
            let wide = detected() && std::env::var(ENV).map_or(true, |v| v != "baseline");
            CHOICE.store(if wide { WIDE } else { BASELINE }, Ordering::Relaxed);
            wide
        }
        c => c == WIDE,
    }
}

/// Turns the wide version off (`false`: every loop runs the baseline version) or back on where
/// the CPU has it, for the whole process: for comparisons and benchmarks.
pub fn set_wide(on: bool) {
    CHOICE.store(if on && detected() { WIDE } else { BASELINE }, Ordering::Relaxed);
}

/// `dst` (`h x w`) = `src` (`w x h`) transposed: with AVX2, 8 x 8 blocks through registers
/// (eight row loads, three rounds of shuffles, eight row stores), the edges element by element;
/// otherwise element by element in cache-sized tiles. A copy, so both give the same values.
///
/// # Panics
/// When `src` or `dst` holds fewer than `w * h` values.
pub fn transpose(src: &[f32], w: usize, h: usize, dst: &mut [f32]) {
    assert!(src.len() >= w * h && dst.len() >= w * h, "transpose: planes smaller than {w} x {h}");
    #[cfg(target_arch = "x86_64")]
    if uses_wide() {
        // SAFETY: AVX2 was reported by the CPU (`uses_wide`), and the sizes were checked.
        unsafe { transpose_avx2(src, w, h, dst) };
        return;
    }
    transpose_tiles(src, w, h, dst, 0, 0);
}

/// The element-by-element transpose of the part of `src` at or right of column `x_from` or at
/// or below row `y_from` (the whole plane when both are 0), in 16 x 16 tiles.
fn transpose_tiles(src: &[f32], w: usize, h: usize, dst: &mut [f32], x_from: usize, y_from: usize) {
    const TILE: usize = 16;
    for y0 in (0..h).step_by(TILE) {
        for x0 in (0..w).step_by(TILE) {
            for y in y0..(y0 + TILE).min(h) {
                let x_start = if y < y_from { x0.max(x_from) } else { x0 };
                for x in x_start..(x0 + TILE).min(w) {
                    dst[x * h + y] = src[y * w + x];
                }
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn transpose_avx2(src: &[f32], w: usize, h: usize, dst: &mut [f32]) {
    use std::arch::x86_64::*;
    let (bw, bh) = (w / 8 * 8, h / 8 * 8);
    for y in (0..bh).step_by(8) {
        for x in (0..bw).step_by(8) {
            // SAFETY: rows y..y + 8 and columns x..x + 8 lie inside the w x h source, and rows
            // x..x + 8, columns y..y + 8 inside the h x w destination (both checked lengths).
            let s = src.as_ptr().add(y * w + x);
            let r: [__m256; 8] = std::array::from_fn(|i| _mm256_loadu_ps(s.add(i * w)));
            let t = [
                _mm256_unpacklo_ps(r[0], r[1]),
                _mm256_unpackhi_ps(r[0], r[1]),
                _mm256_unpacklo_ps(r[2], r[3]),
                _mm256_unpackhi_ps(r[2], r[3]),
                _mm256_unpacklo_ps(r[4], r[5]),
                _mm256_unpackhi_ps(r[4], r[5]),
                _mm256_unpacklo_ps(r[6], r[7]),
                _mm256_unpackhi_ps(r[6], r[7]),
            ];
            let u = [
                _mm256_shuffle_ps::<0x44>(t[0], t[2]),
                _mm256_shuffle_ps::<0xEE>(t[0], t[2]),
                _mm256_shuffle_ps::<0x44>(t[1], t[3]),
                _mm256_shuffle_ps::<0xEE>(t[1], t[3]),
                _mm256_shuffle_ps::<0x44>(t[4], t[6]),
                _mm256_shuffle_ps::<0xEE>(t[4], t[6]),
                _mm256_shuffle_ps::<0x44>(t[5], t[7]),
                _mm256_shuffle_ps::<0xEE>(t[5], t[7]),
            ];
            let d = dst.as_mut_ptr().add(x * h + y);
            for i in 0..4 {
                _mm256_storeu_ps(d.add(i * h), _mm256_permute2f128_ps::<0x20>(u[i], u[i + 4]));
                _mm256_storeu_ps(d.add((i + 4) * h), _mm256_permute2f128_ps::<0x31>(u[i], u[i + 4]));
            }
        }
    }
    // The right-hand columns and the bottom rows that do not fill a block.
    transpose_tiles(src, w, h, dst, bw, bh);
}

/// Splits `r.len()` interleaved RGB pixels (`bytes`, 3 per pixel) into three `f32` rows:
/// `r[x] = bytes[3x]`, `g[x] = bytes[3x + 1]`, `b[x] = bytes[3x + 2]`. With AVX2, 16 pixels at a
/// time through byte shuffles; the values are exact either way (bytes convert to `f32`
/// exactly).
///
/// # Panics
/// When `bytes` holds fewer than `3 * r.len()` values, or `g` or `b` fewer than `r.len()`.
pub fn split_rgb(bytes: &[u8], r: &mut [f32], g: &mut [f32], b: &mut [f32]) {
    let n = r.len();
    assert!(bytes.len() >= 3 * n && g.len() >= n && b.len() >= n, "split_rgb: rows shorter than {n} pixels");
    #[allow(unused_mut)]
    let mut done = 0;
    #[cfg(target_arch = "x86_64")]
    if uses_wide() {
        // SAFETY: AVX2 was reported by the CPU (`uses_wide`), and the lengths were checked.
        done = unsafe { split_rgb_avx2(bytes, r, g, b) };
    }
    for x in done..n {
        let p = &bytes[3 * x..3 * x + 3];
        (r[x], g[x], b[x]) = (f32::from(p[0]), f32::from(p[1]), f32::from(p[2]));
    }
}

/// One row enlarged by linear interpolation: `out[x] = a + (b - a) * w1[x]` with
/// `a = row[i0[x]]` and `b = row[i0[x] + 1]`, for the leading outputs whose two samples lie
/// inside `row`; returns how many it computed (the caller does the rest, and those at the
/// right border, where the second index is clamped). With AVX2, 8 outputs at a time: the
/// samples of an enlarging resize's 8 consecutive outputs lie within 9 consecutive values, so
/// two loads and two permutes fetch them. The same operations as the scalar formula, so the
/// same bits; without AVX2 it computes nothing.
///
/// `i0` must not decrease and grow by at most 1 per output (an enlarging resize's taps);
/// otherwise the AVX2 version stops at the first block where they do not.
pub fn enlarge_row(row: &[f32], i0: &[u32], w1: &[f32], out: &mut [f32]) -> usize {
    let n = out.len().min(i0.len()).min(w1.len());
    #[cfg(target_arch = "x86_64")]
    if uses_wide() {
        // SAFETY: AVX2 was reported by the CPU (`uses_wide`); the function checks its indices.
        return unsafe { enlarge_row_avx2(row, &i0[..n], &w1[..n], &mut out[..n]) };
    }
    let _ = (row, n);
    0
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn enlarge_row_avx2(row: &[f32], i0: &[u32], w1: &[f32], out: &mut [f32]) -> usize {
    use std::arch::x86_64::*;
    let mut x = 0;
    while x + 8 <= out.len() {
        let base = i0[x] as usize;
        // Both loads (row[base..base + 9]) inside the row, and the block's offsets within 0..8.
        if base + 9 > row.len() || i0[x + 7] as usize > base + 7 || i0[x + 7] < i0[x] {
            break;
        }
        // SAFETY: base + 9 <= row.len() (checked above), x + 8 <= out.len() = i0.len() = w1.len().
        let idx = _mm256_sub_epi32(_mm256_loadu_si256(i0.as_ptr().add(x).cast()), _mm256_set1_epi32(base as i32));
        let lo = _mm256_loadu_ps(row.as_ptr().add(base));
        let hi = _mm256_loadu_ps(row.as_ptr().add(base + 1));
        let a = _mm256_permutevar8x32_ps(lo, idx);
        let b = _mm256_permutevar8x32_ps(hi, idx);
        let w = _mm256_loadu_ps(w1.as_ptr().add(x));
        _mm256_storeu_ps(out.as_mut_ptr().add(x), _mm256_add_ps(a, _mm256_mul_ps(_mm256_sub_ps(b, a), w)));
        x += 8;
    }
    x
}

/// The byte shuffles of [`split_rgb_avx2`]: `SPLIT[c][k]` moves channel `c` of the 16 pixels
/// held in three 16-byte loads from load `k` into place (-1: a zero, filled from another load).
const SPLIT: [[[i8; 16]; 3]; 3] = {
    let mut m = [[[-1i8; 16]; 3]; 3];
    let mut c = 0;
    while c < 3 {
        let mut x = 0;
        while x < 16 {
            let byte = 3 * x + c;
            m[c][byte / 16][x] = (byte % 16) as i8;
            x += 1;
        }
        c += 1;
    }
    m
};

/// The whole blocks of 16 pixels of [`split_rgb`]; returns how many pixels it did.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn split_rgb_avx2(bytes: &[u8], r: &mut [f32], g: &mut [f32], b: &mut [f32]) -> usize {
    use std::arch::x86_64::*;
    let blocks = r.len() / 16;
    let masks: [[__m128i; 3]; 3] =
        std::array::from_fn(|c| std::array::from_fn(|k| _mm_loadu_si128(SPLIT[c][k].as_ptr().cast())));
    let out = [r.as_mut_ptr(), g.as_mut_ptr(), b.as_mut_ptr()];
    for i in 0..blocks {
        // SAFETY: block i reads bytes 48 i .. 48 i + 48 and writes values 16 i .. 16 i + 16 of
        // each row, inside the lengths `split_rgb` checked.
        let src = bytes.as_ptr().add(48 * i);
        let load =
            [_mm_loadu_si128(src.cast()), _mm_loadu_si128(src.add(16).cast()), _mm_loadu_si128(src.add(32).cast())];
        for c in 0..3 {
            let m = &masks[c];
            let v = _mm_or_si128(
                _mm_or_si128(_mm_shuffle_epi8(load[0], m[0]), _mm_shuffle_epi8(load[1], m[1])),
                _mm_shuffle_epi8(load[2], m[2]),
            );
            let low = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(v));
            let high = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128::<8>(v)));
            _mm256_storeu_ps(out[c].add(16 * i), low);
            _mm256_storeu_ps(out[c].add(16 * i + 8), high);
        }
    }
    16 * blocks
}

fn detected() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx2")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::frame::{Frame, PixelFormat};
    use crate::pipeline::preprocess::{frame_to_input, InputSpec, IMAGENET_MEAN, IMAGENET_STD};
    use crate::pipeline::refine::{refine_to_frame, GuidedFilter};

    /// The only test that flips the process-wide switch (others running meanwhile only see
    /// the baseline for a while, which gives the same values).
    #[test]
    fn the_wide_loops_give_the_baseline_bits() {
        // A frame larger than the model input (the refinement's full-resolution pass, and
        // several threads) with edges and noise, and a fine map with a soft blob.
        let (w, h) = (733usize, 517usize);
        let mut state = 12345u32;
        let mut noise = || {
            state = state.wrapping_mul(1664525).wrapping_add(1013904223);
            (state >> 24) as u8
        };
        let data: Vec<u8> = (0..w * h * 3)
            .map(|i| {
                let (x, y) = ((i / 3) % w, (i / 3) / w);
                let base = if (x as i64 - 360).pow(2) + (y as i64 - 250).pow(2) < 150 * 150 { 200 } else { 40 };
                base / 2 + noise() / 2
            })
            .collect();
        let frame = Frame::new(&data, w as u32, h as u32, 3 * w, PixelFormat::Rgb8).unwrap();
        let spec = InputSpec {
            width_px: 280,
            height_px: 280,
            mean: IMAGENET_MEAN.map(|v| v as f32),
            std: IMAGENET_STD.map(|v| v as f32),
        };
        let prob: Vec<f32> = (0..280 * 280)
            .map(|i| {
                let (x, y) = ((i % 280) as f32 - 140.0, (i / 280) as f32 - 140.0);
                1.0 / (1.0 + ((x * x + y * y).sqrt() / 8.0 - 7.0).exp())
            })
            .collect();
        let run = || {
            let mut input = vec![0f32; 3 * 280 * 280];
            frame_to_input(&frame, &spec, &mut input);
            let q = refine_to_frame(&frame, None, &prob, 280, 280, (280, 280), &GuidedFilter::DEFAULT);
            (input, q)
        };
        set_wide(false);
        assert!(!uses_wide());
        let baseline = run();
        set_wide(true);
        assert_eq!(uses_wide(), detected());
        let wide = run();
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&baseline.0), bits(&wide.0), "model input");
        assert_eq!(bits(&baseline.1), bits(&wide.1), "refined map");
        assert!(baseline.1.iter().any(|&p| p > 0.5) && baseline.1.iter().any(|&p| p < 0.5));
    }

    /// Every pixel's three bytes land in their rows, for lengths with and without whole
    /// blocks of 16, with the wide version and with the baseline.
    #[test]
    fn split_rgb_puts_every_channel_in_its_row() {
        for n in [0usize, 1, 15, 16, 17, 33, 640, 1921] {
            let bytes: Vec<u8> = (0..3 * n + 5).map(|i| (i * 7 + i / 3) as u8).collect();
            let (mut r, mut g, mut b) = (vec![-1f32; n], vec![-1f32; n], vec![-1f32; n]);
            split_rgb(&bytes, &mut r, &mut g, &mut b);
            for x in 0..n {
                let want = [bytes[3 * x], bytes[3 * x + 1], bytes[3 * x + 2]].map(f32::from);
                assert_eq!([r[x], g[x], b[x]], want, "pixel {x} of {n}");
            }
        }
    }

    /// The AVX2 interpolation gives the scalar formula's bits on a resize's taps, stops at the
    /// right border, and refuses taps that are not an enlargement's.
    #[test]
    fn enlarged_rows_have_the_scalar_bits() {
        let row: Vec<f32> = (0..280).map(|i| ((i * 37 % 101) as f32 - 50.0) / 7.0).collect();
        for dst in [281usize, 300, 1920, 4000] {
            let scale = 280.0f32 / dst as f32;
            let (i0, w1): (Vec<u32>, Vec<f32>) = (0..dst)
                .map(|d| {
                    let c = ((d as f32 + 0.5) * scale - 0.5).max(0.0);
                    let i = (c as usize).min(279);
                    (i as u32, c - i as f32)
                })
                .unzip();
            let mut out = vec![f32::NAN; dst];
            let done = enlarge_row(&row, &i0, &w1, &mut out);
            assert_eq!(done > 0, uses_wide(), "{dst}");
            assert!(done <= dst && (done == 0 || i0[done - 1] as usize + 1 < 280));
            for x in 0..done {
                let (a, b) = (row[i0[x] as usize], row[i0[x] as usize + 1]);
                assert_eq!(out[x].to_bits(), (a + (b - a) * w1[x]).to_bits(), "{dst}: {x}");
            }
            assert!(out[done..].iter().all(|v| v.is_nan()), "{dst}: nothing written past {done}");
        }
        // A shrinking resize's taps jump by more than 1: nothing is computed.
        let i0: Vec<u32> = (0..16).map(|x| 3 * x).collect();
        assert_eq!(enlarge_row(&row, &i0, &[0.5; 16], &mut [0.0; 16]), 0);
    }

    /// Every element lands where it should, for sizes with and without full 8 x 8 blocks
    /// (whichever version the CPU runs; the tiles alone are checked too).
    #[test]
    fn transposes_put_every_value_in_its_place() {
        for (w, h) in [(1, 1), (8, 8), (16, 24), (13, 7), (7, 13), (29, 43), (280, 158)] {
            let src: Vec<f32> = (0..w * h).map(|i| i as f32).collect();
            let expected: Vec<f32> = (0..w * h).map(|i| src[(i % h) * w + i / h]).collect();
            let mut dst = vec![-1f32; w * h];
            transpose(&src, w, h, &mut dst);
            assert_eq!(dst, expected, "{w} x {h}");
            let mut tiles = vec![-1f32; w * h];
            transpose_tiles(&src, w, h, &mut tiles, 0, 0);
            assert_eq!(tiles, expected, "{w} x {h}, tiles");
        }
    }
}
