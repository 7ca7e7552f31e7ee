//! Streams, through the Rust API and the C ABI, on the tiny fixture model: order and resets,
//! strength 0 equal to per-frame segmentation bit for bit, threads, the model kept alive, and
//! every error path of `sempart_stream_*`.

use sempart::capi::stream::{
    sempart_result_reset_reason, sempart_stream_free, sempart_stream_open, sempart_stream_options_init,
    sempart_stream_reset, sempart_stream_segment, ResetReason, SempartStream, SempartStreamOptions,
};
use sempart::capi::{
    sempart_last_error_message, sempart_model_free, sempart_model_open, sempart_result_fine_mask, sempart_result_free,
    sempart_segment, SempartFrame, SempartModel, SempartResult,
};
use sempart::{Frame, Options, PixelFormat, Reset, Segmenter, Status, StreamOptions};
use std::ffi::{CStr, CString};
use std::path::PathBuf;
use std::ptr::{null, null_mut};
use std::sync::Arc;

fn tiny_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/tiny.onnx")
}

fn tiny() -> Arc<Segmenter> {
    Arc::new(Segmenter::open(tiny_path(), &Options::default()).expect("tiny fixture opens"))
}

/// Frame `t` of a synthetic clip: a bright disc moving right over a gradient, `w x h` RGB.
fn clip_frame(t: usize, w: usize, h: usize) -> Vec<u8> {
    let mut rgb = vec![0u8; w * h * 3];
    for y in 0..h {
        for x in 0..w {
            let (dx, dy) = (x as f32 - (w as f32 * 0.3 + 2.0 * t as f32), y as f32 - h as f32 * 0.5);
            let inside = dx * dx + dy * dy < (h as f32 * 0.25).powi(2);
            let px = if inside { [230, 200, 40] } else { [(x * 2) as u8, (y * 3) as u8, 90] };
            rgb[3 * (y * w + x)..3 * (y * w + x) + 3].copy_from_slice(&px);
        }
    }
    rgb
}

const NS: i64 = 33_333_333;

#[test]
fn strength_zero_gives_the_per_frame_results_bit_for_bit() {
    let model = tiny();
    let stream = model.stream(StreamOptions::OFF).unwrap();
    for t in 0..5 {
        let rgb = clip_frame(t, 64, 40);
        let frame = Frame::new(&rgb, 64, 40, 64 * 3, PixelFormat::Rgb8).unwrap();
        let want = model.segment(&frame).unwrap();
        let got = stream.segment(&frame, t as i64 * NS).unwrap();
        assert_eq!(got.reset, (t == 0).then_some(Reset::FirstFrame));
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&got.segmentation.fine_probability), bits(&want.fine_probability));
        assert_eq!(got.segmentation.fine_mask, want.fine_mask);
        assert_eq!(got.segmentation.components, want.components);
        assert_eq!(got.segmentation.object, want.object);
        assert_eq!(got.segmentation.coarse_probability, want.coarse_probability);
    }
}

#[test]
fn resets_follow_the_frames_and_the_timestamps() {
    let model = tiny();
    let stream = model.stream(StreamOptions::DEFAULT).unwrap();
    let (a, b) = (clip_frame(0, 64, 40), clip_frame(0, 48, 40));
    let fa = Frame::new(&a, 64, 40, 64 * 3, PixelFormat::Rgb8).unwrap();
    let fb = Frame::new(&b, 48, 40, 48 * 3, PixelFormat::Rgb8).unwrap();
    let gray = vec![128u8; 64 * 40];
    let fg = Frame::new(&gray, 64, 40, 64, PixelFormat::Gray8).unwrap();
    let reset = |f: &Frame<'_>, t: i64| stream.segment(f, t).unwrap().reset;
    assert_eq!(reset(&fa, 0), Some(Reset::FirstFrame));
    assert_eq!(reset(&fa, NS), None);
    assert_eq!(reset(&fa, NS / 2), Some(Reset::TimestampBackwards));
    assert_eq!(reset(&fa, NS), None);
    assert_eq!(reset(&fa, NS + 1_000_000_000), Some(Reset::TimestampGap));
    assert_eq!(reset(&fb, 2_000_000_000), Some(Reset::FrameChanged));
    assert_eq!(reset(&fa, 2_000_000_000 + NS), Some(Reset::FrameChanged));
    assert_eq!(reset(&fg, 2_000_000_000 + 2 * NS), Some(Reset::FrameChanged), "same size, another format");
    stream.reset();
    assert_eq!(reset(&fg, 2_000_000_000 + 3 * NS), Some(Reset::Requested));
}

#[test]
fn streams_are_independent_across_threads_and_one_stream_serialises_its_callers() {
    let model = tiny();
    let frames: Vec<Vec<u8>> = (0..6).map(|t| clip_frame(t, 64, 40)).collect();
    let serial: Vec<Vec<u8>> = {
        let s = model.stream(StreamOptions::DEFAULT).unwrap();
        frames
            .iter()
            .enumerate()
            .map(|(t, rgb)| {
                let f = Frame::new(rgb, 64, 40, 64 * 3, PixelFormat::Rgb8).unwrap();
                s.segment(&f, t as i64 * NS).unwrap().segmentation.fine_mask
            })
            .collect()
    };
    std::thread::scope(|scope| {
        for _ in 0..3 {
            scope.spawn(|| {
                let s = model.stream(StreamOptions::DEFAULT).unwrap();
                for (t, rgb) in frames.iter().enumerate() {
                    let f = Frame::new(rgb, 64, 40, 64 * 3, PixelFormat::Rgb8).unwrap();
                    assert_eq!(s.segment(&f, t as i64 * NS).unwrap().segmentation.fine_mask, serial[t]);
                }
            });
        }
    });
    // Two threads on one stream: every call completes (serialised), one is the first frame.
    let shared = model.stream(StreamOptions::DEFAULT).unwrap();
    let firsts = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for k in 0..2 {
            let (shared, frames, firsts) = (&shared, &frames, &firsts);
            scope.spawn(move || {
                for (t, rgb) in frames.iter().take(3).enumerate() {
                    let f = Frame::new(rgb, 64, 40, 64 * 3, PixelFormat::Rgb8).unwrap();
                    let r = shared.segment(&f, ((2 * t + k) as i64 + 1) * NS).unwrap();
                    if r.reset == Some(Reset::FirstFrame) {
                        firsts.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    }
                }
            });
        }
    });
    assert_eq!(firsts.into_inner(), 1);
}

#[test]
fn a_stream_keeps_its_model_alive_and_bad_options_are_refused() {
    let model = tiny();
    let stream = model.stream(StreamOptions::DEFAULT).unwrap();
    drop(model);
    let rgb = clip_frame(0, 32, 20);
    let f = Frame::new(&rgb, 32, 20, 32 * 3, PixelFormat::Rgb8).unwrap();
    assert!(stream.segment(&f, 0).is_ok());
    let e = tiny().stream(StreamOptions { strength: 1.5, ..StreamOptions::DEFAULT }).unwrap_err();
    assert_eq!(e.status(), Status::InvalidArgument);
    assert!(e.message().contains("strength"), "{}", e.message());
}

fn last_error() -> String {
    unsafe { CStr::from_ptr(sempart_last_error_message()) }.to_string_lossy().into_owned()
}

fn c_frame(rgb: &[u8], w: u32, h: u32) -> SempartFrame {
    SempartFrame {
        data: rgb.as_ptr(),
        data_size_bytes: rgb.len(),
        width_px: w,
        height_px: h,
        row_stride_bytes: w as usize * 3,
        pixel_format: PixelFormat::Rgb8 as u32,
    }
}

#[test]
fn the_c_abi_of_streams_reports_every_error_and_keeps_the_model_alive() {
    let path = CString::new(tiny_path().to_str().unwrap()).unwrap();
    let mut model: *mut SempartModel = null_mut();
    assert_eq!(sempart_model_open(path.as_ptr(), null(), &mut model), Status::Ok);
    let mut opts: SempartStreamOptions = unsafe { std::mem::zeroed() };
    assert_eq!(sempart_stream_options_init(null_mut()), Status::NullArgument);
    assert_eq!(sempart_stream_options_init(&mut opts), Status::Ok);
    assert_eq!(opts.strength, StreamOptions::DEFAULT.strength);
    let mut stream: *mut SempartStream = null_mut();
    assert_eq!(sempart_stream_open(null(), &opts, &mut stream), Status::NullArgument);
    assert_eq!(sempart_stream_open(model, &opts, null_mut()), Status::NullArgument);
    let mut zeroed: SempartStreamOptions = unsafe { std::mem::zeroed() };
    zeroed.strength = 0.5;
    assert_eq!(sempart_stream_open(model, &zeroed, &mut stream), Status::InvalidArgument);
    assert!(last_error().contains("sempart_stream_options_init"), "{}", last_error());
    let mut wrong = opts;
    wrong.max_gap_ns = -1;
    assert_eq!(sempart_stream_open(model, &wrong, &mut stream), Status::InvalidArgument);
    assert!(last_error().contains("max_gap_ns"), "{}", last_error());
    assert!(stream.is_null(), "no output on failure");
    assert_eq!(sempart_stream_open(model, null(), &mut stream), Status::Ok, "NULL options: defaults");
    sempart_stream_free(stream);
    let mut off = opts;
    off.strength = 0.0;
    assert_eq!(sempart_stream_open(model, &off, &mut stream), Status::Ok);

    let rgb = clip_frame(1, 40, 24);
    let frame = c_frame(&rgb, 40, 24);
    let mut result: *mut SempartResult = null_mut();
    assert_eq!(sempart_stream_segment(null(), &frame, 0, &mut result), Status::NullArgument);
    assert_eq!(sempart_stream_segment(stream, null(), 0, &mut result), Status::NullArgument);
    assert_eq!(sempart_stream_segment(stream, &frame, 0, null_mut()), Status::NullArgument);
    let short = SempartFrame { data_size_bytes: 10, ..frame };
    assert_eq!(sempart_stream_segment(stream, &short, 0, &mut result), Status::InvalidArgument);
    assert!(result.is_null());

    // The per-frame result of the same frame, to compare with strength 0 after the model is freed.
    let mut single: *mut SempartResult = null_mut();
    assert_eq!(sempart_segment(model, &frame, &mut single), Status::Ok);
    let mut reason = ResetReason::Requested;
    assert_eq!(sempart_result_reset_reason(single, &mut reason), Status::Ok);
    assert_eq!(reason, ResetReason::None);
    sempart_model_free(model);

    assert_eq!(sempart_stream_segment(stream, &frame, 5, &mut result), Status::Ok, "{}", last_error());
    assert_eq!(sempart_result_reset_reason(result, &mut reason), Status::Ok);
    assert_eq!(reason, ResetReason::FirstFrame);
    let n = 40 * 24;
    let (a, b) = unsafe {
        (
            std::slice::from_raw_parts(sempart_result_fine_mask(result), n),
            std::slice::from_raw_parts(sempart_result_fine_mask(single), n),
        )
    };
    assert_eq!(a, b, "strength 0: the per-frame mask");
    assert_eq!(sempart_result_reset_reason(null(), &mut reason), Status::NullArgument);
    assert_eq!(sempart_result_reset_reason(result, null_mut()), Status::NullArgument);
    sempart_result_free(result);
    sempart_result_free(single);

    assert_eq!(sempart_stream_reset(null()), Status::NullArgument);
    assert_eq!(sempart_stream_reset(stream), Status::Ok);
    assert_eq!(sempart_stream_segment(stream, &frame, 6, &mut result), Status::Ok);
    assert_eq!(sempart_result_reset_reason(result, &mut reason), Status::Ok);
    assert_eq!(reason, ResetReason::Requested);
    sempart_result_free(result);
    sempart_stream_free(stream);
    sempart_stream_free(null_mut());
}
