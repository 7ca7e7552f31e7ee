//! Tests of the refinement, including the comparison with the textbook guided filter.

use super::*;
use crate::pipeline::frame::PixelFormat;

/// The textbook colour guided filter, written for clarity: window means by direct sums,
/// the 3x3 system solved by Gaussian elimination, the averaged coefficients resized to the
/// frame and applied to its colours.
fn textbook_refine(
    frame: &Frame<'_>,
    prob: &[f32],
    src: (usize, usize),
    input: (usize, usize),
    r: f32,
    eps: f64,
) -> Vec<f32> {
    let (fw, fh) = (frame.width_px() as usize, frame.height_px() as usize);
    let (ww, wh) = working_size(fw, fh, input);
    let rad = radius_px(r, input, (ww, wh));
    // The guide: the frame itself when it is the working size, else the model's view of it
    // brought to the working size (`guide_from_view`).
    let guide =
        if (ww, wh) == (fw, fh) { resize_rgb(frame, ww, wh) } else { guide_from_view(frame, None, input, (ww, wh)) };
    let guide: Vec<f64> = guide.iter().map(|&v| v as f64 / 255.0).collect();
    let p: Vec<f64> = resize_bilinear(prob, src.0, src.1, ww, wh).iter().map(|&v| v as f64).collect();
    let mean = |f: &dyn Fn(usize) -> f64| -> Vec<f64> {
        (0..ww * wh)
            .map(|i| {
                let (x, y) = (i % ww, i / ww);
                let (mut s, mut n) = (0.0, 0.0);
                for yy in y.saturating_sub(rad)..(y + rad + 1).min(wh) {
                    for xx in x.saturating_sub(rad)..(x + rad + 1).min(ww) {
                        s += f(yy * ww + xx);
                        n += 1.0;
                    }
                }
                s / n
            })
            .collect()
    };
    let mi: Vec<Vec<f64>> = (0..3).map(|c| mean(&|i| guide[3 * i + c])).collect();
    let mp = mean(&|i| p[i]);
    let mip: Vec<Vec<f64>> = (0..3).map(|c| mean(&|i| guide[3 * i + c] * p[i])).collect();
    let mii: Vec<Vec<Vec<f64>>> =
        (0..3).map(|j| (0..3).map(|k| mean(&|i| guide[3 * i + j] * guide[3 * i + k])).collect()).collect();
    let mut coef: Vec<Vec<f64>> = vec![vec![0.0; ww * wh]; 4];
    for i in 0..ww * wh {
        let mut m = [[0.0f64; 4]; 3];
        for j in 0..3 {
            for k in 0..3 {
                m[j][k] = mii[j][k][i] - mi[j][i] * mi[k][i] + if j == k { eps } else { 0.0 };
            }
            m[j][3] = mip[j][i] - mi[j][i] * mp[i];
        }
        for c in 0..3 {
            let pivot = m[c][c];
            m[c][c..].iter_mut().for_each(|v| *v /= pivot);
            let row_c = m[c];
            for (j, row) in m.iter_mut().enumerate() {
                if j != c {
                    let f = row[c];
                    row[c..].iter_mut().zip(&row_c[c..]).for_each(|(v, &rc)| *v -= f * rc);
                }
            }
        }
        for c in 0..3 {
            coef[c][i] = m[c][3];
        }
        coef[3][i] = mp[i] - (0..3).map(|c| m[c][3] * mi[c][i]).sum::<f64>();
    }
    let coef: Vec<Vec<f32>> = coef.iter().map(|c| mean(&|i| c[i]).iter().map(|&v| v as f32).collect()).collect();
    let full: Vec<Vec<f32>> = coef.iter().map(|c| resize_bilinear(c, ww, wh, fw, fh)).collect();
    (0..fw * fh)
        .map(|i| {
            let px = frame.rgb_at(i % fw, i / fw);
            let v = full[3][i] as f64 + (0..3).map(|c| full[c][i] as f64 * px[c] as f64 / 255.0).sum::<f64>();
            v.clamp(0.0, 1.0) as f32
        })
        .collect()
}

/// The optimised refinement (running sums, transposes, kept planes, the 1/255 folded into
/// the coefficients, threads) computes the textbook filter: probabilities within 1e-4 and
/// the 0.5 masks equal except where the textbook value is within 1e-4 of the threshold.
#[test]
fn the_fast_refinement_is_the_textbook_guided_filter() {
    for (fw, fh, src) in [(96usize, 64usize, (40usize, 40usize)), (30, 20, (40, 40)), (700, 300, (56, 56))] {
        let data: Vec<u8> = (0..fw * fh)
            .flat_map(|i| {
                let (x, y) = (i % fw, i / fw);
                let base = if (x as f32 - fw as f32 / 2.0).hypot(y as f32 - fh as f32 / 2.0) < fh as f32 / 3.0 {
                    200
                } else {
                    40
                };
                let noise = ((i * 2654435761) >> 7) as u8 % 23;
                [base + noise, (base / 2) + noise, 255 - base - noise]
            })
            .collect();
        let frame = Frame::new(&data, fw as u32, fh as u32, 3 * fw, PixelFormat::Rgb8).unwrap();
        let prob: Vec<f32> = (0..src.0 * src.1)
            .map(|i| {
                let (x, y) = ((i % src.0) as f32 / src.0 as f32, (i / src.0) as f32 / src.1 as f32);
                (1.0 - ((x - 0.5).hypot(y - 0.5) * 4.0 - 0.9)).clamp(0.0, 1.0)
            })
            .collect();
        let filter = GuidedFilter::DEFAULT;
        let got = refine_to_frame(&frame, None, &prob, src.0, src.1, src, &filter);
        let want = textbook_refine(&frame, &prob, src, src, filter.radius, filter.eps as f64);
        let worst = got.iter().zip(&want).map(|(g, w)| (g - w).abs()).fold(0.0f32, f32::max);
        assert!(worst < 1e-4, "{fw}x{fh}: largest difference {worst}");
        for (g, w) in got.iter().zip(&want) {
            assert!((g > &0.5) == (w > &0.5) || (w - 0.5).abs() < 1e-4);
        }
    }
}

/// A frame split into a dark left and a bright right half at `edge`.
fn split_frame(w: usize, h: usize, edge: usize) -> Vec<u8> {
    (0..w * h).flat_map(|i| if i % w < edge { [20u8, 30, 40] } else { [220, 200, 180] }).collect()
}

#[test]
fn a_soft_transition_moves_onto_the_colour_edge() {
    let (w, h, edge) = (64, 16, 32);
    let data = split_frame(w, h, edge);
    let frame = Frame::new(&data, w as u32, h as u32, 3 * w, PixelFormat::Rgb8).unwrap();
    // Foreground on the right, but the probability ramps from x = 27 to 43: the boundary
    // (p = 0.5) sits at x = 35, 3 pixels right of the colour edge.
    let prob: Vec<f32> = (0..w * h).map(|i| (((i % w) as f32 - 27.0) / 16.0).clamp(0.0, 1.0)).collect();
    let filter = GuidedFilter { radius: 10.0, eps: 1e-3 };
    let q = refine_to_frame(&frame, None, &prob, w, h, (w, h), &filter);
    let row = &q[8 * w..9 * w];
    for (x, &v) in row.iter().enumerate() {
        assert!((0.0..=1.0).contains(&v));
        if x < edge {
            assert!(v < 0.5, "x {x}: {v}");
        } else {
            assert!(v > 0.5, "x {x}: {v}");
        }
    }
    // The transition is now a step at the edge (the map's slope was 1/16 per pixel).
    assert!(row[edge] - row[edge - 1] > 0.4, "{} -> {}", row[edge - 1], row[edge]);
    // Off: the plain bilinear resize, the boundary stays where it was.
    let off = refine_to_frame(&frame, None, &prob, w, h, (w, h), &GuidedFilter::OFF);
    assert_eq!(off, prob);
}

#[test]
fn constant_maps_stay_constant_and_the_filter_is_symmetric() {
    let (w, h) = (40, 30);
    let data: Vec<u8> = (0..w * h * 3).map(|i| ((i * 131) % 251) as u8).collect();
    let frame = Frame::new(&data, w as u32, h as u32, 3 * w, PixelFormat::Rgb8).unwrap();
    let f = GuidedFilter::DEFAULT;
    for c in [0.0f32, 1.0, 0.25] {
        let q = refine_to_frame(&frame, None, &vec![c; 20 * 15], 20, 15, (20, 15), &f);
        assert!(q.iter().all(|v| (v - c).abs() < 1e-4), "constant {c}");
    }
    // Linear in p: refining 1 - p gives 1 - refine(p) (before clamping; p in (0.2, 0.8)
    // keeps the results inside [0, 1]).
    let p: Vec<f32> = (0..20 * 15).map(|i| 0.2 + 0.6 * ((i * 7 % 13) as f32 / 12.0)).collect();
    let inv: Vec<f32> = p.iter().map(|v| 1.0 - v).collect();
    let q = refine_to_frame(&frame, None, &p, 20, 15, (20, 15), &f);
    let qi = refine_to_frame(&frame, None, &inv, 20, 15, (20, 15), &f);
    for (a, b) in q.iter().zip(&qi) {
        assert!((a + b - 1.0).abs() < 1e-3, "{a} + {b}");
    }
}

#[test]
fn large_frames_work_on_a_reduced_copy_and_agree_with_the_full_size() {
    assert_eq!(working_size(640, 480, (336, 336)), (168, 126));
    assert_eq!(working_size(1920, 1080, (336, 336)), (168, 95));
    assert_eq!(working_size(300, 200, (336, 336)), (168, 112));
    assert_eq!(working_size(160, 100, (336, 336)), (160, 100));
    assert_eq!(working_size(2048, 1024, (512, 256)), (256, 128));
    assert_eq!(working_size(1000, 3000, (512, 512)), (85, 256));
    assert_eq!(working_size(1920, 1080, (280, 280)), (140, 79));
    // The scales of SDK 0.4 and of SDK 0.5 to 2026-12-05.
    assert_eq!(working_size_at(640, 480, (336, 336), 2.0), (640, 480));
    assert_eq!(working_size_at(1920, 1080, (336, 336), 2.0), (672, 378));
    assert_eq!(working_size_at(1920, 1080, (336, 336), 1.0), (336, 189));
    assert_eq!(radius_px(8.0, (336, 336), (640, 480)), 15);
    assert_eq!(radius_px(0.0, (336, 336), (640, 480)), 0);
    assert_eq!(radius_px(0.1, (336, 336), (100, 100)), 1);
    // The same scene at 2048 and at 1024 (both filtered at 32, half the 64-pixel model input, the
    // colours applied at full size): the masks agree on nearly every pixel of
    // the larger frame.
    let big = split_frame(2048, 64, 1280);
    let small = split_frame(1024, 32, 640);
    let fb = Frame::new(&big, 2048, 64, 3 * 2048, PixelFormat::Rgb8).unwrap();
    let fs = Frame::new(&small, 1024, 32, 3 * 1024, PixelFormat::Rgb8).unwrap();
    let prob: Vec<f32> = (0..64 * 2).map(|i| if i % 64 >= 38 { 1.0 } else { 0.0 }).collect();
    let f = GuidedFilter::DEFAULT;
    let qb = refine_to_frame(&fb, None, &prob, 64, 2, (64, 64), &f);
    let qs = refine_to_frame(&fs, None, &prob, 64, 2, (64, 64), &f);
    assert_eq!(qb.len(), 2048 * 64);
    let mut differ = 0;
    for y in 0..64 {
        for x in 0..2048 {
            if (qb[y * 2048 + x] > 0.5) != (qs[(y / 2) * 1024 + x / 2] > 0.5) {
                differ += 1;
            }
        }
    }
    assert!(differ <= 2 * 64, "{differ} pixels differ");
    // And the boundary moved onto the colour edge at x = 1280 (the map's was at 1216).
    assert!(qb[10 * 2048 + 1270] < 0.5 && qb[10 * 2048 + 1290] > 0.5);
}

/// The example photo resized to `w x h` (RGB bytes).
fn photo(w: u32, h: u32) -> image::RgbImage {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/images/chelsea.png");
    let photo = image::open(path).expect("example image").to_rgb8();
    image::imageops::resize(&photo, w, h, image::imageops::FilterType::Triangle)
}

/// A soft ellipse on an `n x n` grid resized to the `input x input` model input: edges about a
/// patch wide, as the fine branch gives them.
fn soft_ellipse(n: usize, input: usize) -> Vec<f32> {
    let c = n as f32 / 2.0;
    let grid: Vec<f32> = (0..n * n)
        .map(|i| {
            let (x, y) = ((i % n) as f32 - c + 0.5, (i / n) as f32 - c - 1.0);
            let (rx, ry) = (n as f32 / 4.0 + 1.0, 0.375 * n as f32);
            (1.5 - ((x / rx).powi(2) + (y / ry).powi(2)).sqrt() * 1.2).clamp(0.0, 1.0)
        })
        .collect();
    resize_bilinear(&grid, n, n, input, input)
}

/// Asserts that `new` gives the mask of `old` but on less than `share` of the pixels, with a
/// mean absolute difference below `mean`, and that the map has a real object.
fn assert_same_masks(old: &[f32], new: &[f32], share: f64, mean: f64, what: &str) {
    let differ = old.iter().zip(new).filter(|(a, b)| (**a > 0.5) != (**b > 0.5)).count();
    let foreground = old.iter().filter(|&&a| a > 0.5).count();
    assert!(foreground > old.len() / 10, "{what}: the test map has a real object ({foreground})");
    let got = differ as f64 / old.len() as f64;
    assert!(got < share, "{what}: {differ} pixels ({:.3} %) differ", 100.0 * got);
    let got_mean: f64 = old.iter().zip(new).map(|(a, b)| (a - b).abs() as f64).sum::<f64>() / old.len() as f64;
    assert!(got_mean < mean, "{what}: mean |difference| {got_mean}");
    eprintln!("{what}: {differ} pixels ({:.3} %) differ, mean |difference| {got_mean:.5}", 100.0 * got);
}

/// The working scale of SDK 0.4 (2: a 640x480 frame filtered at full size), the next one (1, to
/// 2026-12-05) and today's ([`WORKING_SCALE`], 0.5) give, one step to the next, the same mask on
/// more than 99 % of the pixels of a photo (the example image, with a soft, patch-sized map like
/// the model's), at 640x480 and at 1920x1080.
#[test]
fn the_reduced_working_size_keeps_the_masks() {
    for (w, h) in [(640u32, 480u32), (1920, 1080)] {
        let rgb = photo(w, h);
        let frame = Frame::new(rgb.as_raw(), w, h, 3 * w as usize, PixelFormat::Rgb8).unwrap();
        let prob = soft_ellipse(24, 336);
        let f = GuidedFilter::DEFAULT;
        let scale_2 = refine_at(&frame, None, &prob, (336, 336), (336, 336), &f, 2.0).0;
        let scale_1 = refine_at(&frame, None, &prob, (336, 336), (336, 336), &f, 1.0).0;
        let today = refine_at(&frame, None, &prob, (336, 336), (336, 336), &f, WORKING_SCALE).0;
        assert_same_masks(&scale_2, &scale_1, 0.01, 0.02, &format!("{w}x{h}, working scale 2 and 1"));
        assert_same_masks(&scale_1, &today, 0.01, 0.02, &format!("{w}x{h}, working scale 1 and {WORKING_SCALE}"));
    }
}

/// The guide made from the model's view of the frame (today) and the guide resized from the
/// frame itself (until 2026-12-05, one more read of the frame) give the same mask on more than 99.9 %
/// of the pixels of a photo, with a soft, patch-sized map like the model's, at 640x480 and
/// 1920x1080; and passing the view gives the bits of computing it here.
#[test]
fn the_guide_from_the_models_view_keeps_the_masks() {
    for (w, h) in [(640u32, 480u32), (1920, 1080)] {
        let rgb = photo(w, h);
        let frame = Frame::new(rgb.as_raw(), w, h, 3 * w as usize, PixelFormat::Rgb8).unwrap();
        let prob = soft_ellipse(20, 280);
        let f = GuidedFilter::DEFAULT;
        let (ww, wh) = working_size(w as usize, h as usize, (280, 280));
        let old = refine_with_guide(&frame, resize_rgb(&frame, ww, wh), (ww, wh), &prob, (280, 280), (280, 280), &f).0;
        let new = refine_to_frame(&frame, None, &prob, 280, 280, (280, 280), &f);
        let view = resize_rgb(&frame, 280, 280);
        let given = refine_to_frame(&frame, Some(&view), &prob, 280, 280, (280, 280), &f);
        assert!(new.iter().zip(&given).all(|(a, b)| a.to_bits() == b.to_bits()), "{w}x{h}: view given or computed");
        assert_same_masks(&old, &new, 0.001, 0.001, &format!("{w}x{h}, guide from the frame and from the view"));
    }
}

/// The mask made in the refinement's pass is the threshold of its probabilities, on all three
/// paths (off, a frame of the working size, a reduced copy), and the probabilities are those of
/// `refine_to_frame`.
#[test]
fn the_mask_made_in_the_same_pass_is_the_thresholded_map() {
    for (w, h, filter) in
        [(700usize, 300usize, GuidedFilter::DEFAULT), (50, 40, GuidedFilter::DEFAULT), (700, 300, GuidedFilter::OFF)]
    {
        let data: Vec<u8> = (0..w * h * 3)
            .map(|i| ((i * 2654435761usize) >> 9) as u8 / 2 + if i % (3 * w) > 3 * w / 2 { 120 } else { 0 })
            .collect();
        let frame = Frame::new(&data, w as u32, h as u32, 3 * w, PixelFormat::Rgb8).unwrap();
        let prob: Vec<f32> = (0..56 * 56).map(|i| ((i % 56) as f32 / 40.0).min(1.0)).collect();
        let (q, mask) = refine_to_frame_with_mask(&frame, None, &prob, (56, 56), (56, 56), &filter);
        let alone = refine_to_frame(&frame, None, &prob, 56, 56, (56, 56), &filter);
        assert!(q.iter().zip(&alone).all(|(a, b)| a.to_bits() == b.to_bits()), "{w}x{h}");
        let want: Vec<u8> =
            q.iter().map(|&p| if p > crate::pipeline::postprocess::THRESHOLD { 255 } else { 0 }).collect();
        assert_eq!(mask, want, "{w}x{h} {filter:?}");
        assert!(mask.contains(&255) && mask.contains(&0), "{w}x{h}: both sides present");
    }
}

#[test]
fn bad_parameters_are_rejected() {
    for (radius, eps) in [(-1.0, 1e-3), (f32::NAN, 1e-3), (300.0, 1e-3), (8.0, 0.0), (8.0, f32::INFINITY)] {
        assert!(GuidedFilter { radius, eps }.validate().is_err(), "{radius} {eps}");
    }
    assert!(GuidedFilter::DEFAULT.validate().is_ok());
    assert!(GuidedFilter::OFF.validate().is_ok());
}
