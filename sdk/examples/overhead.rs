//! The SDK's own work around the model, stage by stage, without a model: a synthetic frame
//! (a disc on a textured background) and synthetic model outputs (a soft disc) go through the
//! same functions `sempart_segment()` calls, and each stage's median over `--calls` calls is
//! printed. Not a test: docs/PERFORMANCE.md ("Where the time goes around the model") quotes it; `sempart
//! bench` gives the same totals next to inference.
//!
//!   cargo run --release -p sempart --example overhead -- [--width 1920 --height 1080]
//!       [--input 280] [--calls 41]

use sempart::model_format::{Integrity, ModelInfo, Precision};
use sempart::pipeline::runtime::DEFAULT_MIN_COMPONENT_FRACTION;
use sempart::postprocess::{min_component_pixels, segmentation};
use sempart::preprocess::{frame_to_input, InputSpec};
use sempart::refine::{guide_from_view, refine_to_frame, working_size, GuidedFilter};
use sempart::{Frame, PixelFormat};
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let number = |flag: &str, default: usize| -> usize {
        match args.iter().position(|a| a == flag).and_then(|i| args.get(i + 1)) {
            None => default,
            Some(v) => v.parse().ok().filter(|&n| n > 0).unwrap_or_else(|| {
                eprintln!("overhead: {flag} must be a positive integer, not {v:?}");
                std::process::exit(2)
            }),
        }
    };
    let (w, h) = (number("--width", 1920), number("--height", 1080));
    let (input, calls) = (number("--input", 280), number("--calls", 41));
    let patch = 14;
    let grid = input / patch;

    let data = synthetic_frame(w, h);
    let frame = Frame::new(&data, w as u32, h as u32, 3 * w, PixelFormat::Rgb8).expect("a valid frame");
    let info = model_info(input, patch);
    let spec = InputSpec { width_px: input, height_px: input, mean: info.mean, std: info.std };
    let disc = |n: usize, scale: f32| -> Vec<f32> {
        (0..n * n)
            .map(|i| {
                let (x, y) = ((i % n) as f32 - n as f32 / 2.0, (i / n) as f32 - n as f32 / 2.0);
                1.0 / (1.0 + (((x * x + y * y).sqrt() - 0.3 * n as f32) / scale).exp())
            })
            .collect()
    };
    let (fine, coarse) = (disc(input, 4.0), disc(grid, 0.3));
    let filter = GuidedFilter::DEFAULT;
    let (ww, wh) = working_size(w, h, (input, input));

    let mut model_input = vec![0f32; 3 * input * input];
    // The model's view of the frame, as `sempart_segment()` hands it from preprocessing to the
    // refinement.
    let view = frame_to_input(&frame, &spec, &mut model_input);
    let stages: Vec<Stage> = vec![
        ("preprocess (frame_to_input)", Box::new(|| drop(frame_to_input(&frame, &spec, &mut model_input)))),
        (
            "refinement's guide (guide_from_view to the working size)",
            Box::new(|| drop(std::hint::black_box(guide_from_view(&frame, Some(&view), (input, input), (ww, wh))))),
        ),
        (
            "refinement (refine_to_frame, guide included)",
            Box::new(|| {
                let q = refine_to_frame(&frame, Some(&view), &fine, input, input, (input, input), &filter);
                drop(std::hint::black_box(q))
            }),
        ),
        (
            "postprocess (segmentation: refinement, masks, components)",
            Box::new(|| {
                let min = min_component_pixels(
                    DEFAULT_MIN_COMPONENT_FRACTION,
                    frame.width_px() as usize,
                    frame.height_px() as usize,
                );
                drop(std::hint::black_box(segmentation(&info, &frame, Some(&view), &filter, min, &fine, &coarse)))
            }),
        ),
    ];
    println!(
        "{w}x{h} frame, model input {input}x{input}, refinement on a {ww}x{wh} copy, {} pixel loops, median of {calls} calls",
        if sempart::simd::uses_wide() { "AVX2" } else { "baseline" }
    );
    for (name, mut stage) in stages {
        stage(); // warm-up: the per-thread spare planes
        let mut ms: Vec<f64> = (0..calls)
            .map(|_| {
                let t = Instant::now();
                stage();
                t.elapsed().as_secs_f64() * 1e3
            })
            .collect();
        ms.sort_by(f64::total_cmp);
        println!("{:>8.2} ms  {name}", ms[ms.len() / 2]);
    }
}

/// One timed stage: its name and the work of one call.
type Stage<'a> = (&'static str, Box<dyn FnMut() + 'a>);

/// A bright disc on a darker, noisy background (deterministic).
fn synthetic_frame(w: usize, h: usize) -> Vec<u8> {
    let mut state = 2024u32;
    let (cx, cy, r2) = (w as i64 / 2, h as i64 / 2, (h as i64 / 3).pow(2));
    (0..w * h * 3)
        .map(|i| {
            state = state.wrapping_mul(1664525).wrapping_add(1013904223);
            let (x, y) = ((i / 3 % w) as i64, (i / 3 / w) as i64);
            let base: u32 = if (x - cx).pow(2) + (y - cy).pow(2) < r2 { 190 } else { 50 };
            (base + (state >> 27)) as u8
        })
        .collect()
}

fn model_info(input: usize, patch: usize) -> ModelInfo {
    ModelInfo {
        format_version: 2,
        input_width_px: input,
        input_height_px: input,
        patch_size_px: patch,
        grid_width: input / patch,
        grid_height: input / patch,
        mean: [0.485, 0.456, 0.406],
        std: [0.229, 0.224, 0.225],
        backbone_name: "synthetic".into(),
        backbone_origin: "none: examples/overhead.rs times the SDK's stages without a model".into(),
        training: "{}".into(),
        precision: Precision::Fp32,
        metadata: Default::default(),
        integrity: Integrity::Unavailable,
    }
}
