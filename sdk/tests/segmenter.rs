//! The Rust API on the tiny fixture model (made by the trainer's exporter:
//! `cargo run -p trainer -- fixtures`).

use sempart::refine::refine_to_frame;
use sempart::{Frame, GuidedFilter, Options, PixelFormat, Provider, Segmenter, Status};
use std::path::PathBuf;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures").join(name)
}

fn open_tiny() -> Segmenter {
    Segmenter::open(fixture("tiny.onnx"), &Options::default()).expect("tiny fixture opens")
}

/// A deterministic 97x61 RGB picture: a bright disc on a gradient.
fn picture(w: usize, h: usize) -> Vec<u8> {
    let mut rgb = vec![0u8; w * h * 3];
    for y in 0..h {
        for x in 0..w {
            let (dx, dy) = (x as f32 - w as f32 * 0.55, y as f32 - h as f32 * 0.45);
            let inside = dx * dx + dy * dy < (h as f32 * 0.3).powi(2);
            let p = &mut rgb[3 * (y * w + x)..3 * (y * w + x) + 3];
            if inside {
                p.copy_from_slice(&[230, 200, 40]);
            } else {
                p.copy_from_slice(&[(x * 2) as u8, (y * 3) as u8, 90]);
            }
        }
    }
    rgb
}

#[test]
fn segments_a_frame_with_consistent_outputs() {
    let model = open_tiny();
    assert_eq!(model.provider(), Provider::Cpu);
    let info = model.info();
    assert_eq!((info.input_width_px, info.input_height_px, info.patch_size_px), (64, 64, 8));
    assert_eq!((info.grid_width, info.grid_height), (8, 8));

    let (w, h) = (97usize, 61usize);
    let rgb = picture(w, h);
    let frame = Frame::new(&rgb, w as u32, h as u32, w * 3, PixelFormat::Rgb8).unwrap();
    let seg = model.segment(&frame).unwrap();
    assert_eq!(seg.fine_mask.len(), w * h);
    assert_eq!(seg.fine_probability.len(), w * h);
    assert_eq!(seg.coarse_mask.len(), 64);
    for (m, p) in seg.fine_mask.iter().zip(&seg.fine_probability) {
        assert!(*m == 0 || *m == 255);
        assert!((0.0..=1.0).contains(p));
        // The mask is the thresholded foreground probability (ties at exactly 0.5 aside).
        if (*p - 0.5).abs() > 1e-6 {
            assert_eq!(*m == 255, *p > 0.5);
        }
    }
    // Components cover exactly the foreground pixels.
    let fg = seg.fine_mask.iter().filter(|&&m| m == 255).count() as u32;
    assert_eq!(seg.components.iter().map(|c| c.pixel_count).sum::<u32>(), fg);
    assert!(seg.timing.inference_ms > 0.0);
}

#[test]
fn the_fine_map_is_refined_as_the_options_say() {
    // A frame at the model's input size: without refinement the fine map is the raw output.
    let rgb = picture(64, 64);
    let frame = Frame::new(&rgb, 64, 64, 64 * 3, PixelFormat::Rgb8).unwrap();
    let off = Segmenter::open(fixture("tiny.onnx"), &Options { refine: GuidedFilter::OFF, ..Options::default() })
        .unwrap()
        .segment(&frame)
        .unwrap();
    let model = open_tiny();
    assert_eq!(model.refine(), GuidedFilter::DEFAULT);
    let on = model.segment(&frame).unwrap();
    let want = refine_to_frame(&frame, None, &off.fine_probability, 64, 64, (64, 64), &GuidedFilter::DEFAULT);
    assert_eq!(on.fine_probability, want);
    assert_ne!(on.fine_probability, off.fine_probability);
    assert_eq!(on.coarse_probability, off.coarse_probability);
    let mask: Vec<u8> = want.iter().map(|&p| if p > 0.5 { 255 } else { 0 }).collect();
    assert_eq!(on.fine_mask, mask);

    for refine in [GuidedFilter { radius: -1.0, eps: 1e-3 }, GuidedFilter { radius: 8.0, eps: 0.0 }] {
        let err = Segmenter::open(fixture("tiny.onnx"), &Options { refine, ..Options::default() }).unwrap_err();
        assert_eq!(err.status(), Status::InvalidArgument, "{refine:?}");
        assert!(err.message().contains("refinement"), "{}", err.message());
    }
}

#[test]
fn batch_equals_single_calls() {
    let model = open_tiny();
    let a = picture(64, 64);
    let b = picture(120, 80);
    let fa = Frame::new(&a, 64, 64, 64 * 3, PixelFormat::Rgb8).unwrap();
    let fb = Frame::new(&b, 120, 80, 120 * 3, PixelFormat::Rgb8).unwrap();
    let batch = model.segment_batch(&[fa, fb]).unwrap();
    let single = [model.segment(&fa).unwrap(), model.segment(&fb).unwrap()];
    for (x, y) in batch.iter().zip(&single) {
        assert_eq!(x.fine_mask, y.fine_mask);
        assert_eq!(x.coarse_mask, y.coarse_mask);
        for (p, q) in x.fine_probability.iter().zip(&y.fine_probability) {
            assert!((p - q).abs() < 1e-5);
        }
    }
}

#[test]
fn refuses_bad_model_files_precisely() {
    let err = Segmenter::open(fixture("does-not-exist.onnx"), &Options::default()).unwrap_err();
    assert_eq!(err.status(), Status::ModelNotFound);
    let err = Segmenter::open(fixture("foreign.onnx"), &Options::default()).unwrap_err();
    assert_eq!(err.status(), Status::ModelForeign, "{err}");
    let err = Segmenter::open(fixture("future-version.onnx"), &Options::default()).unwrap_err();
    assert_eq!(err.status(), Status::ModelUnsupportedVersion, "{err}");
    assert!(err.message().contains("999"), "{err}");

    let dir = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(fixture("tiny.onnx")).unwrap();
    for cut in [1, 100, bytes.len() / 2, bytes.len() - 1] {
        let p = dir.path().join("cut.onnx");
        std::fs::write(&p, &bytes[..cut]).unwrap();
        let err = Segmenter::open(&p, &Options::default()).unwrap_err();
        assert_eq!(err.status(), Status::ModelCorrupt, "cut at {cut}: {err}");
    }
    let p = dir.path().join("noise.onnx");
    let noise: Vec<u8> = (0..5000u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
    std::fs::write(&p, noise).unwrap();
    let err = Segmenter::open(&p, &Options::default()).unwrap_err();
    assert_eq!(err.status(), Status::ModelCorrupt, "{err}");
}

#[test]
fn unavailable_provider_without_fallback_is_an_error() {
    let options = Options { providers: vec![Provider::Cuda], allow_fallback: false, ..Options::default() };
    match Segmenter::open(fixture("tiny.onnx"), &options) {
        Err(e) => assert_eq!(e.status(), Status::ProviderUnavailable, "{e}"),
        Ok(m) => assert_eq!(m.provider(), Provider::Cuda, "a GPU machine must really run CUDA"),
    }
    let options =
        Options { providers: vec![Provider::TensorRt, Provider::Cuda], allow_fallback: true, ..Options::default() };
    let m = Segmenter::open(fixture("tiny.onnx"), &options).unwrap();
    assert!(matches!(m.provider(), Provider::Cpu | Provider::Cuda | Provider::TensorRt));
}
