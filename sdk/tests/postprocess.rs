//! Tests of `sempart::resize` (bilinear resize) and `sempart::postprocess`: binarisation,
//! foreground selection, connected components and the object box.

use sempart::postprocess::{
    binarize, binarize_into, box_list, component_labels, connected_components, corners_touched, foreground_is_a,
    mask_components, min_component_pixels, object_box, select_foreground, Component, THRESHOLD,
};
use sempart::resize::{resize_bilinear, resize_bilinear_into, resize_bilinear_rgb, BilinearResizer};

// ---------------------------------------------------------------------------------
// helpers
// ---------------------------------------------------------------------------------

/// Parses an ASCII mask: `#` is true, anything else false; rows separated by newlines,
/// surrounding whitespace trimmed.
fn mask(art: &str) -> (Vec<bool>, usize, usize) {
    let rows: Vec<&str> = art.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    let w = rows[0].len();
    assert!(rows.iter().all(|r| r.len() == w), "ragged mask");
    let m = rows.iter().flat_map(|r| r.chars().map(|c| c == '#')).collect();
    (m, w, rows.len())
}

fn comp(x0: u32, y0: u32, x1: u32, y1: u32, pixel_count: u32) -> Component {
    Component { x0, y0, x1, y1, pixel_count }
}

fn ccs(art: &str) -> Vec<Component> {
    let (m, w, h) = mask(art);
    connected_components(&m, w, h)
}

/// Naive reference: BFS flood fill with an explicit queue, components numbered in
/// raster order of their first pixel.
fn reference_components(m: &[bool], w: usize, h: usize) -> Vec<Component> {
    let mut seen = vec![false; m.len()];
    let mut out = Vec::new();
    for start in 0..m.len() {
        if !m[start] || seen[start] {
            continue;
        }
        seen[start] = true;
        let mut queue = std::collections::VecDeque::from([start]);
        let (mut x0, mut y0, mut x1, mut y1, mut n) = (usize::MAX, usize::MAX, 0, 0, 0);
        while let Some(i) = queue.pop_front() {
            let (x, y) = (i % w, i / w);
            x0 = x0.min(x);
            y0 = y0.min(y);
            x1 = x1.max(x + 1);
            y1 = y1.max(y + 1);
            n += 1;
            let mut push = |j: usize| {
                if m[j] && !seen[j] {
                    seen[j] = true;
                    queue.push_back(j);
                }
            };
            if x > 0 {
                push(i - 1);
            }
            if x + 1 < w {
                push(i + 1);
            }
            if y > 0 {
                push(i - w);
            }
            if y + 1 < h {
                push(i + w);
            }
        }
        out.push(comp(x0 as u32, y0 as u32, x1 as u32, y1 as u32, n));
    }
    out
}

/// Deterministic pseudo-random numbers (64-bit LCG).
struct Lcg(u64);
impl Lcg {
    fn next_f32(&mut self) -> f32 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (self.0 >> 40) as f32 / (1u64 << 24) as f32
    }
}

/// Straightforward per-pixel PyTorch bilinear (align_corners=False): source
/// coordinates in f32 as PyTorch computes them (`scale = in / out`, `scale * (d + 0.5)
/// - 0.5`), blending in f64.
fn reference_resize(src: &[f32], sw: usize, sh: usize, dw: usize, dh: usize) -> Vec<f32> {
    let tap = |d: usize, s: usize, dn: usize| {
        let scale = s as f32 / dn as f32;
        let c = (scale * (d as f32 + 0.5) - 0.5).max(0.0);
        let i0 = (c.floor() as usize).min(s - 1);
        let i1 = (i0 + 1).min(s - 1);
        (i0, i1, (c - i0 as f32) as f64)
    };
    let mut out = Vec::with_capacity(dw * dh);
    for y in 0..dh {
        let (y0, y1, wy) = tap(y, sh, dh);
        for x in 0..dw {
            let (x0, x1, wx) = tap(x, sw, dw);
            let v = |yy: usize, xx: usize| src[yy * sw + xx] as f64;
            let top = v(y0, x0) * (1.0 - wx) + v(y0, x1) * wx;
            let bot = v(y1, x0) * (1.0 - wx) + v(y1, x1) * wx;
            out.push((top * (1.0 - wy) + bot * wy) as f32);
        }
    }
    out
}

fn assert_close(a: &[f32], b: &[f32], tol: f32) {
    assert_eq!(a.len(), b.len());
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!((x - y).abs() <= tol, "index {i}: {x} vs {y}");
    }
}

// ---------------------------------------------------------------------------------
// resize_bilinear
// ---------------------------------------------------------------------------------

#[test]
fn resize_2x2_to_4x4_matches_pytorch() {
    // torch.arange(4.).view(1, 1, 2, 2) -> F.interpolate(size=(4, 4), mode="bilinear",
    // align_corners=False)
    let out = resize_bilinear(&[0.0, 1.0, 2.0, 3.0], 2, 2, 4, 4);
    #[rustfmt::skip]
    let expected = [
        0.0, 0.25, 0.75, 1.0,
        0.5, 0.75, 1.25, 1.5,
        1.5, 1.75, 2.25, 2.5,
        2.0, 2.25, 2.75, 3.0,
    ];
    assert_close(&out, &expected, 1e-6);
}

#[test]
fn resize_identity_when_sizes_match() {
    let mut rng = Lcg(7);
    let src: Vec<f32> = (0..37 * 23).map(|_| rng.next_f32()).collect();
    assert_eq!(resize_bilinear(&src, 37, 23, 37, 23), src);
}

#[test]
fn resize_downscale_without_antialias() {
    // 4x4 arange -> 2x2: source coords 0.5 and 2.5, each output is the mean of a 2x2
    // block.
    let src: Vec<f32> = (0..16).map(|v| v as f32).collect();
    assert_close(&resize_bilinear(&src, 4, 4, 2, 2), &[2.5, 4.5, 10.5, 12.5], 1e-6);
    // 8 -> 2 along x: coords 1.5 and 5.5, no antialias (only two taps).
    let src: Vec<f32> = (0..8).map(|v| v as f32).collect();
    assert_close(&resize_bilinear(&src, 8, 1, 2, 1), &[1.5, 5.5], 1e-6);
    // 3 -> 2: coords 0.25, 1.75.
    assert_close(&resize_bilinear(&[0.0, 10.0, 20.0], 3, 1, 2, 1), &[2.5, 17.5], 1e-5);
}

#[test]
fn resize_non_integer_upscale_and_border_clamp() {
    // 2 -> 3: coords -1/6 (clamped to 0), 0.5, 7/6 (both taps clamped to index 1).
    assert_close(&resize_bilinear(&[0.0, 10.0], 2, 1, 3, 1), &[0.0, 5.0, 10.0], 1e-5);
    // 1x1 -> 3x2: constant.
    assert_close(&resize_bilinear(&[0.7], 1, 1, 3, 2), &[0.7; 6], 0.0);
    // Vertical only: 1x2 -> 1x4.
    assert_close(&resize_bilinear(&[0.0, 1.0], 1, 2, 1, 4), &[0.0, 0.25, 0.75, 1.0], 1e-6);
}

#[test]
fn resize_matches_reference_on_random_maps() {
    let mut rng = Lcg(42);
    for &(sw, sh, dw, dh) in &[
        (40, 40, 320, 320),
        (40, 40, 854, 480),
        (320, 320, 481, 321),
        (320, 320, 100, 75),
        (7, 5, 3, 11),
        (5, 9, 13, 2),
        (1, 6, 4, 4),
    ] {
        let src: Vec<f32> = (0..sw * sh).map(|_| rng.next_f32()).collect();
        let out = resize_bilinear(&src, sw, sh, dw, dh);
        let reference = reference_resize(&src, sw, sh, dw, dh);
        assert_close(&out, &reference, 1e-6);
    }
}

/// The interleaved RGB resize gives each channel the bits of resizing it alone.
#[test]
fn rgb_resize_gives_each_channels_bits() {
    let mut rng = Lcg(11);
    for &(sw, sh, dw, dh) in &[(280, 280, 280, 158), (280, 280, 158, 280), (40, 30, 97, 61), (9, 4, 3, 7), (5, 5, 5, 5)]
    {
        let src: Vec<f32> = (0..3 * sw * sh).map(|_| rng.next_f32() * 255.0).collect();
        let out = resize_bilinear_rgb(&src, sw, sh, dw, dh);
        assert_eq!(out.len(), 3 * dw * dh);
        for c in 0..3 {
            let channel: Vec<f32> = src.iter().skip(c).step_by(3).copied().collect();
            let alone = resize_bilinear(&channel, sw, sh, dw, dh);
            let got: Vec<u32> = out.iter().skip(c).step_by(3).map(|v| v.to_bits()).collect();
            assert_eq!(
                got,
                alone.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                "{sw}x{sh} -> {dw}x{dh}, channel {c}"
            );
        }
    }
}

#[test]
fn resizer_is_reusable_and_into_matches() {
    let mut rng = Lcg(3);
    let mut resizer = BilinearResizer::new(40, 30, 97, 61);
    assert_eq!(resizer.src_size(), (40, 30));
    assert_eq!(resizer.dst_size(), (97, 61));
    let mut dst = vec![f32::NAN; 97 * 61];
    for _ in 0..3 {
        let src: Vec<f32> = (0..40 * 30).map(|_| rng.next_f32()).collect();
        resizer.resize_into(&src, &mut dst);
        assert_eq!(dst, resize_bilinear(&src, 40, 30, 97, 61));
        let mut dst2 = vec![0.0; 97 * 61];
        resize_bilinear_into(&src, 40, 30, &mut dst2, 97, 61);
        assert_eq!(dst, dst2);
    }
}

#[test]
fn resize_to_empty_is_empty() {
    assert!(resize_bilinear(&[1.0, 2.0], 2, 1, 0, 5).is_empty());
}

// ---------------------------------------------------------------------------------
// binarize
// ---------------------------------------------------------------------------------

#[test]
fn binarize_is_strict() {
    let p = [0.0, 0.5, 0.500_001, 1.0, f32::NAN, 0.49];
    let expected = [false, false, true, true, false, false];
    assert_eq!(binarize(&p, THRESHOLD), expected);
    let mut out = [true; 6];
    binarize_into(&p, 0.5, &mut out);
    assert_eq!(out, expected);
}

// ---------------------------------------------------------------------------------
// foreground selection
// ---------------------------------------------------------------------------------

#[test]
fn foreground_object_in_centre_is_kept() {
    let (m, w, h) = mask(
        "
        .....
        .###.
        .###.
        .....",
    );
    assert_eq!(corners_touched(&m, w, h), 0);
    assert!(foreground_is_a(&m, w, h));
    // The same partition with the labels swapped: the background is "A".
    let inv: Vec<bool> = m.iter().map(|b| !b).collect();
    assert!(!foreground_is_a(&inv, w, h));
    let mut sel = inv.clone();
    assert!(select_foreground(&mut sel, w, h));
    assert_eq!(sel, m);
    let mut sel = m.clone();
    assert!(!select_foreground(&mut sel, w, h));
    assert_eq!(sel, m);
}

#[test]
fn foreground_object_touching_one_corner() {
    // The object is large (more than half the grid) but touches only 1 corner: the
    // corner rule wins over size.
    let (m, w, h) = mask(
        "
        ####.
        ####.
        ###..
        .....",
    );
    assert_eq!(corners_touched(&m, w, h), 1);
    assert!(foreground_is_a(&m, w, h));
    let inv: Vec<bool> = m.iter().map(|b| !b).collect();
    assert!(!foreground_is_a(&inv, w, h));
}

#[test]
fn foreground_sky_ground_tie_picks_smaller_side() {
    // Horizontal split: each side touches 2 corners; the smaller side (A, 8 px vs 12)
    // is the foreground.
    let (m, w, h) = mask(
        "
        ####
        ####
        ....
        ....
        ....",
    );
    assert_eq!(corners_touched(&m, w, h), 2);
    assert!(foreground_is_a(&m, w, h));
    // A larger than B (12 vs 8): B is the foreground.
    let (m, w, h) = mask(
        "
        ####
        ####
        ####
        ....
        ....",
    );
    assert!(!foreground_is_a(&m, w, h));
    // Diagonal corners (TL and BR) with A smaller.
    let (m, w, h) = mask(
        "
        #...
        ....
        ...#",
    );
    assert_eq!(corners_touched(&m, w, h), 2);
    assert!(foreground_is_a(&m, w, h));
}

#[test]
fn foreground_full_tie_keeps_a() {
    let (m, w, h) = mask(
        "
        ####
        ####
        ....
        ....",
    );
    assert!(foreground_is_a(&m, w, h));
    let inv: Vec<bool> = m.iter().map(|b| !b).collect();
    assert!(foreground_is_a(&inv, w, h));
    let (m, w, h) = mask(
        "
        ##..
        ##..",
    );
    assert!(foreground_is_a(&m, w, h));
}

#[test]
fn foreground_uniform_masks_give_empty_foreground() {
    // All "A": A touches 4 corners, B (empty) none -> B.
    let m = vec![true; 12];
    assert!(!foreground_is_a(&m, 4, 3));
    let mut sel = m.clone();
    select_foreground(&mut sel, 4, 3);
    assert!(sel.iter().all(|b| !b));
    // All "B": A (empty) touches none -> A.
    assert!(foreground_is_a(&[false; 12], 4, 3));
    // 1x1 grids: the single pixel is all four corners.
    assert_eq!(corners_touched(&[true], 1, 1), 4);
    assert!(!foreground_is_a(&[true], 1, 1));
    assert!(foreground_is_a(&[false], 1, 1));
    // 1-pixel-wide grid: the ends are two corners each.
    assert_eq!(corners_touched(&[true, false, false], 1, 3), 2);
    assert!(foreground_is_a(&[true, false, false], 1, 3));
    // Empty grid.
    assert!(foreground_is_a(&[], 0, 5));
}

// ---------------------------------------------------------------------------------
// connected components
// ---------------------------------------------------------------------------------

#[test]
fn components_two_blobs() {
    let c = ccs("
        ##...
        ##...
        ....#
        ...##");
    assert_eq!(c, vec![comp(0, 0, 2, 2, 4), comp(3, 2, 5, 4, 3)]);
    assert_eq!(c[0].width(), 2);
    assert_eq!(c[1].height(), 2);
    assert_eq!(c[1].box_area(), 4);
    assert_eq!(c[1].xyxy(), [3.0, 2.0, 5.0, 4.0]);
    assert_eq!(c[1].xyxy_scaled(2.0, 0.5), [6.0, 1.0, 10.0, 2.0]);
}

#[test]
fn components_diagonal_touching_is_separate() {
    let c = ccs("
        #.
        .#");
    assert_eq!(c, vec![comp(0, 0, 1, 1, 1), comp(1, 1, 2, 2, 1)]);
    let c = ccs("
        .#
        #.");
    assert_eq!(c, vec![comp(1, 0, 2, 1, 1), comp(0, 1, 1, 2, 1)]);
}

#[test]
fn components_ring_with_hole() {
    let c = ccs("
        #####
        #...#
        #.#.#
        #...#
        #####");
    assert_eq!(c, vec![comp(0, 0, 5, 5, 16), comp(2, 2, 3, 3, 1)]);
    assert_eq!(object_box(&c), Some(0));
}

#[test]
fn components_u_shapes_merge() {
    let c = ccs("
        #...#
        #...#
        #####");
    assert_eq!(c, vec![comp(0, 0, 5, 3, 9)]);
    let c = ccs("
        #.#.#
        #.#.#
        #####");
    assert_eq!(c, vec![comp(0, 0, 5, 3, 11)]);
    // Merge where the later branch reaches further down first.
    let c = ccs("
        ....#.#
        #...#.#
        #...###
        #.....#
        #######");
    assert_eq!(c, vec![comp(0, 0, 7, 5, 18)]);
}

#[test]
fn components_are_ordered_by_first_pixel() {
    let c = ccs("
        ..#.
        #...
        ##.#");
    assert_eq!(c, vec![comp(2, 0, 3, 1, 1), comp(0, 1, 2, 3, 3), comp(3, 2, 4, 3, 1)]);
}

#[test]
fn components_full_and_empty() {
    assert_eq!(connected_components(&[true; 6], 3, 2), vec![comp(0, 0, 3, 2, 6)]);
    assert!(connected_components(&[false; 6], 3, 2).is_empty());
    assert!(connected_components(&[], 0, 0).is_empty());
    assert!(connected_components(&[], 4, 0).is_empty());
    assert_eq!(connected_components(&[true], 1, 1), vec![comp(0, 0, 1, 1, 1)]);
}

#[test]
fn components_single_pixels_at_borders() {
    let c = ccs("
        #.#.#
        .....
        #...#
        .....
        #.#.#");
    assert_eq!(
        c,
        vec![
            comp(0, 0, 1, 1, 1),
            comp(2, 0, 3, 1, 1),
            comp(4, 0, 5, 1, 1),
            comp(0, 2, 1, 3, 1),
            comp(4, 2, 5, 3, 1),
            comp(0, 4, 1, 5, 1),
            comp(2, 4, 3, 5, 1),
            comp(4, 4, 5, 5, 1),
        ]
    );
    // All boxes tie (area 1, 1 pixel): the first wins.
    assert_eq!(object_box(&c), Some(0));
}

#[test]
fn components_match_flood_fill_on_random_masks() {
    let mut rng = Lcg(11);
    for &(w, h, density) in &[
        (1, 1, 0.5),
        (1, 50, 0.5),
        (50, 1, 0.5),
        (64, 48, 0.3),
        (64, 48, 0.55),
        (64, 48, 0.7),
        (200, 130, 0.5),
        (333, 211, 0.6),
    ] {
        let m: Vec<bool> = (0..w * h).map(|_| rng.next_f32() < density).collect();
        assert_eq!(connected_components(&m, w, h), reference_components(&m, w, h), "{w}x{h} density {density}");
    }
}

#[test]
fn components_large_mask_without_recursion() {
    // 8K x 8K: one serpentine component through every other row would recurse
    // millions deep in a recursive flood fill; here it is just runs.
    let (w, h) = (8192usize, 8192usize);
    let mut m = vec![false; w * h];
    for y in 0..h {
        if y % 2 == 0 {
            m[y * w..(y + 1) * w].fill(true);
        } else if y % 4 == 1 {
            m[y * w + w - 1] = true;
        } else {
            m[y * w] = true;
        }
    }
    let c = connected_components(&m, w, h);
    let n = (h / 2 * w + h / 2) as u32;
    assert_eq!(c, vec![comp(0, 0, w as u32, h as u32, n)]);
}

// ---------------------------------------------------------------------------------
// object_box
// ---------------------------------------------------------------------------------

#[test]
fn object_box_prefers_box_area_over_pixel_count() {
    // A thin diagonal-ish staircase with a large box beats a dense small blob.
    let c = ccs("
        ###.......
        ###.......
        ###.......
        ..........
        ......#...
        ......##..
        .......##.
        ........##");
    assert_eq!(c.len(), 2);
    assert_eq!(c[0].pixel_count, 9);
    assert_eq!(c[1].pixel_count, 7);
    assert_eq!(c[1].box_area(), 16);
    assert_eq!(object_box(&c), Some(1));
}

#[test]
fn object_box_ties() {
    // Same box area: the larger pixel count wins.
    let c = vec![comp(0, 0, 2, 2, 3), comp(5, 5, 7, 7, 4), comp(9, 0, 13, 1, 4)];
    assert_eq!(object_box(&c), Some(1));
    // Same box area and pixel count: the first wins.
    let c = vec![comp(0, 0, 2, 2, 4), comp(5, 5, 7, 7, 4), comp(0, 9, 4, 10, 4)];
    assert_eq!(object_box(&c), Some(0));
    assert_eq!(object_box(&[]), None);
}

#[test]
fn mask_components_of_a_0_255_mask_equal_those_of_the_bool_mask() {
    let (w, h) = (37, 23);
    let bools: Vec<bool> = (0..w * h).map(|i| ((i * 2654435761usize) >> 9).is_multiple_of(3)).collect();
    let bytes: Vec<u8> = bools.iter().map(|&b| if b { 255 } else { 0 }).collect();
    let want = connected_components(&bools, w, h);
    assert!(want.len() > 5, "a mask with several components: {}", want.len());
    assert_eq!(mask_components(&bytes, w, h), want);
    // Any non-zero byte is set.
    let ones: Vec<u8> = bools.iter().map(|&b| u8::from(b)).collect();
    assert_eq!(mask_components(&ones, w, h), want);
    // Long runs (the byte rows are scanned eight at a time) of mixed non-zero values, runs
    // starting and ending at every offset within a word, widths with and without a tail.
    for (w, h) in [(8, 3), (64, 9), (203, 31), (1, 40)] {
        let bools: Vec<bool> = (0..w * h).map(|i| ((i % w) * 7 + (i / w) * 3) % 23 < 15).collect();
        let bytes: Vec<u8> = bools.iter().enumerate().map(|(i, &b)| if b { 1 + (i % 255) as u8 } else { 0 }).collect();
        assert_eq!(mask_components(&bytes, w, h), connected_components(&bools, w, h), "{w}x{h}");
    }
}

/// `component_labels` gives every set pixel the index of its component in the list it returns
/// (equal to `connected_components`), every unset pixel `u32::MAX`, and each label's pixels
/// are exactly that component's (count and bounding box), on random masks of many densities.
#[test]
fn component_labels_agree_with_the_components_pixel_by_pixel() {
    let mut rng = Lcg(99);
    for (w, h, density) in [(1, 1, 0.5), (13, 7, 0.3), (40, 25, 0.5), (31, 33, 0.7), (64, 3, 0.9), (5, 50, 0.1)] {
        let m: Vec<bool> = (0..w * h).map(|_| rng.next_f32() < density).collect();
        let (labels, comps) = component_labels(&m, w, h);
        assert_eq!(comps, connected_components(&m, w, h));
        assert_eq!(comps, reference_components(&m, w, h));
        for (k, c) in comps.iter().enumerate() {
            let mine: Vec<usize> = (0..w * h).filter(|&i| labels[i] == k as u32).collect();
            assert_eq!(mine.len(), c.pixel_count as usize, "{w}x{h}: component {k}");
            let (xs, ys): (Vec<u32>, Vec<u32>) = mine.iter().map(|&i| ((i % w) as u32, (i / w) as u32)).unzip();
            let got = (*xs.iter().min().unwrap(), *ys.iter().min().unwrap());
            assert_eq!(got, (c.x0, c.y0), "{w}x{h}: component {k}");
            assert_eq!((xs.iter().max().unwrap() + 1, ys.iter().max().unwrap() + 1), (c.x1, c.y1));
        }
        for i in 0..w * h {
            assert_eq!(m[i], labels[i] != u32::MAX, "{w}x{h}: pixel {i}");
        }
    }
}

// ---------------------------------------------------------------------------------
// the box list's minimum component size
// ---------------------------------------------------------------------------------

fn bytes(art: &str) -> (Vec<u8>, usize, usize) {
    let (m, w, h) = mask(art);
    (m.iter().map(|&b| if b { 255 } else { 0 }).collect(), w, h)
}

#[test]
fn the_box_list_drops_small_components_and_keeps_the_object() {
    // A diagonal of single pixels (4-connectivity: five components), two specks and a 2x2 block.
    let (m, w, h) = bytes(
        "
        #.......#.
        .#........
        ..#...##..
        ...#..##.#
        ",
    );
    let all = mask_components(&m, w, h);
    assert_eq!(all.len(), 7, "5 diagonal pixels, 2 specks, the block");
    let (listed, object) = box_list(&m, w, h, 0);
    assert_eq!((listed.clone(), object), (all.clone(), object_box(&all)));
    // At 4 pixels the block stays and the single pixels go; the object (the largest box, the
    // block) is listed.
    let (listed, object) = box_list(&m, w, h, 4);
    assert_eq!(listed, vec![comp(6, 2, 8, 4, 4)]);
    assert_eq!(object, Some(0));
    // Above every component's size only the object is left, still the same box.
    let (listed, object) = box_list(&m, w, h, 100);
    assert_eq!(listed, vec![all[object_box(&all).unwrap()]]);
    assert_eq!(object, Some(0));
    // An empty mask has no boxes and no object.
    assert_eq!(box_list(&[0; 6], 3, 2, 4), (vec![], None));
}

#[test]
fn the_object_is_listed_even_when_smaller_than_the_minimum() {
    // The object is the largest box: the 1x3 bar (3 pixels) beats the 2x1 bar (2 pixels).
    let (m, w, h) = bytes(
        "
        #..##
        #....
        #....
        ",
    );
    let (listed, object) = box_list(&m, w, h, 3);
    assert_eq!(listed, vec![comp(0, 0, 1, 3, 3)]);
    assert_eq!(object, Some(0));
    let (listed, object) = box_list(&m, w, h, 50);
    assert_eq!(listed, vec![comp(0, 0, 1, 3, 3)], "smaller than the minimum, still listed as the object");
    assert_eq!(object, Some(0));
}

#[test]
fn the_minimum_in_pixels_is_the_share_of_the_area_rounded_up() {
    assert_eq!(min_component_pixels(0.0, 640, 480), 0);
    assert_eq!(min_component_pixels(0.0005, 640, 480), 154);
    assert_eq!(min_component_pixels(0.0005, 1920, 1080), 1037);
    assert_eq!(min_component_pixels(1.0, 7, 3), 21);
}
