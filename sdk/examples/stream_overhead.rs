//! What a stream adds to each frame, without a model: the temporal filter (block luma, the
//! gated average with hysteresis) and the components and object box of the changed mask, on a
//! synthetic clip (a disc moving over a textured background, with per-frame noise in the
//! probabilities). Prints the median over `--calls` frames. Not a test: docs/CAMERA.md quotes
//! it (the budget is 1 ms per 640x480 frame).
//!
//!   cargo run --release -p sempart --example stream_overhead -- [--width 640 --height 480] [--calls 101]

use sempart::postprocess::{mask_components, object_box};
use sempart::temporal::{StreamOptions, TemporalFilter};
use sempart::{Frame, PixelFormat};
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let number = |flag: &str, default: usize| -> usize {
        match args.iter().position(|a| a == flag).and_then(|i| args.get(i + 1)) {
            None => default,
            Some(v) => v.parse().ok().filter(|&n| n > 0).unwrap_or_else(|| {
                eprintln!("stream_overhead: {flag} must be a positive integer, not {v:?}");
                std::process::exit(2)
            }),
        }
    };
    let (w, h, calls) = (number("--width", 640), number("--height", 480), number("--calls", 101));
    let mut filter = TemporalFilter::new(StreamOptions::DEFAULT).expect("default options");
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut noise = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed >> 40) as f32 / (1u64 << 24) as f32
    };
    let (mut filter_ms, mut boxes_ms) = (Vec::new(), Vec::new());
    for t in 0..calls {
        let cx = w as f32 * 0.3 + t as f32 * 2.0;
        let inside = |x: usize, y: usize| {
            let (dx, dy) = (x as f32 - cx, y as f32 - h as f32 * 0.5);
            dx * dx + dy * dy < (h as f32 * 0.25).powi(2)
        };
        let rgb: Vec<u8> = (0..w * h)
            .flat_map(|i| {
                let (x, y) = (i % w, i / w);
                if inside(x, y) {
                    [230, 200, 40]
                } else {
                    [((x * 7 + y * 3) % 256) as u8, ((x ^ y) % 256) as u8, 90]
                }
            })
            .collect();
        let frame = Frame::new(&rgb, w as u32, h as u32, w * 3, PixelFormat::Rgb8).expect("valid frame");
        let mut p: Vec<f32> =
            (0..w * h).map(|i| if inside(i % w, i / w) { 0.8 } else { 0.2 } + 0.4 * (noise() - 0.5)).collect();
        let mut m: Vec<u8> = p.iter().map(|&v| if v > 0.5 { 255 } else { 0 }).collect();
        let start = Instant::now();
        filter.apply(&frame, t as i64 * 33_333_333, &mut p, &mut m).expect("sizes match");
        let mid = Instant::now();
        let comps = mask_components(&m, w, h);
        std::hint::black_box(object_box(&comps));
        filter_ms.push((mid - start).as_secs_f64() * 1e3);
        boxes_ms.push(mid.elapsed().as_secs_f64() * 1e3);
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (f, b) = (median(&mut filter_ms), median(&mut boxes_ms));
    println!(
        "stream overhead at {w}x{h}, median of {calls} frames: filter {f:.3} ms + components and object box {b:.3} ms = {:.3} ms",
        f + b
    );
}
