//! The box list's minimum component size, through the Rust API, streams and the C ABI, on the
//! tiny fixture model: small components leave the box list but not the mask, the object box
//! never changes, bad values are refused and leave the setting as it was.

use sempart::capi::boxes::{sempart_model_min_component_fraction, sempart_model_set_min_component_fraction};
use sempart::capi::{
    sempart_model_free, sempart_model_open, sempart_result_box_count, sempart_result_free, sempart_result_object_index,
    sempart_segment, SempartFrame, SempartModel, SempartResult,
};
use sempart::pipeline::runtime::DEFAULT_MIN_COMPONENT_FRACTION;
use sempart::{Frame, Options, PixelFormat, Segmentation, Segmenter, Status, StreamOptions};
use std::ffi::CString;
use std::path::PathBuf;
use std::ptr::{null, null_mut};
use std::sync::Arc;

fn tiny_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/tiny.onnx")
}

/// A frame whose mask on the tiny model has components of many sizes: a disc and scattered
/// bright dots over a gradient.
fn frame_pixels(t: usize, w: usize, h: usize) -> Vec<u8> {
    let mut rgb = vec![0u8; w * h * 3];
    for y in 0..h {
        for x in 0..w {
            let (dx, dy) = (x as f32 - (w as f32 * 0.35 + t as f32), y as f32 - h as f32 * 0.5);
            let disc = dx * dx + dy * dy < (h as f32 * 0.25).powi(2);
            let dot = (x * 7 + y * 13 + t).is_multiple_of(23);
            let px = if disc || dot { [230, 200, 40] } else { [(x * 2) as u8, (y * 3) as u8, 90] };
            rgb[3 * (y * w + x)..3 * (y * w + x) + 3].copy_from_slice(&px);
        }
    }
    rgb
}

const W: usize = 96;
const H: usize = 64;

fn segment(model: &Segmenter, t: usize) -> Segmentation {
    let rgb = frame_pixels(t, W, H);
    model.segment(&Frame::new(&rgb, W as u32, H as u32, W * 3, PixelFormat::Rgb8).unwrap()).unwrap()
}

/// Every listed component is at least `min` pixels or is the object.
fn check_listed(seg: &Segmentation, min: u32) {
    for (i, c) in seg.components.iter().enumerate() {
        assert!(c.pixel_count >= min || seg.object == Some(i), "component {c:?} under {min} pixels listed");
    }
}

#[test]
fn small_components_leave_the_box_list_but_not_the_mask_or_the_object() {
    let all = Segmenter::open(tiny_path(), &Options { min_component_fraction: 0.0, ..Options::default() }).unwrap();
    let model = Segmenter::open(tiny_path(), &Options::default()).unwrap();
    assert_eq!(model.min_component_fraction(), DEFAULT_MIN_COMPONENT_FRACTION);
    let min = model.min_component_pixels(W as u32, H as u32);
    let mut dropped = 0;
    for t in 0..4 {
        let (a, b) = (segment(&all, t), segment(&model, t));
        assert_eq!(a.fine_mask, b.fine_mask, "the mask keeps every component");
        assert_eq!(a.object.map(|i| a.components[i]), b.object.map(|i| b.components[i]), "the same object box");
        check_listed(&b, min);
        let kept: Vec<_> = a.components.iter().filter(|c| c.pixel_count >= min).collect();
        assert!(b.components.iter().all(|c| a.components.contains(c)));
        assert!(kept.iter().all(|c| b.components.contains(c)));
        dropped += a.components.len() - b.components.len();
    }
    assert!(dropped > 0, "the frames have components below {min} pixels, so the filter is exercised");
}

#[test]
fn the_setting_changes_later_results_and_streams_and_refuses_bad_values() {
    let model = Arc::new(Segmenter::open(tiny_path(), &Options::default()).unwrap());
    for bad in [-0.1, 1.5, f32::NAN] {
        let e = model.set_min_component_fraction(bad).unwrap_err();
        assert_eq!(e.status(), Status::InvalidArgument);
        assert_eq!(model.min_component_fraction(), DEFAULT_MIN_COMPONENT_FRACTION, "unchanged after {bad}");
        let e =
            Segmenter::open(tiny_path(), &Options { min_component_fraction: bad, ..Options::default() }).unwrap_err();
        assert_eq!(e.status(), Status::InvalidArgument);
    }
    model.set_min_component_fraction(0.05).unwrap();
    let min = model.min_component_pixels(W as u32, H as u32);
    assert_eq!(min, (0.05f64 * (W * H) as f64).ceil() as u32);
    check_listed(&segment(&model, 0), min);
    // A stream's smoothed frames recount their components with the model's setting.
    let stream = model.stream(StreamOptions::DEFAULT).unwrap();
    for t in 0..4 {
        let rgb = frame_pixels(t, W, H);
        let frame = Frame::new(&rgb, W as u32, H as u32, W * 3, PixelFormat::Rgb8).unwrap();
        check_listed(&stream.segment(&frame, t as i64 * 40_000_000).unwrap().segmentation, min);
    }
}

#[test]
fn the_c_abi_sets_and_reads_the_setting_and_reports_every_error() {
    let path = CString::new(tiny_path().to_str().unwrap()).unwrap();
    let mut model: *mut SempartModel = null_mut();
    assert_eq!(sempart_model_open(path.as_ptr(), null(), &mut model), Status::Ok);
    let mut fraction = -1.0f32;
    assert_eq!(sempart_model_min_component_fraction(model, &mut fraction), Status::Ok);
    assert_eq!(fraction, DEFAULT_MIN_COMPONENT_FRACTION);
    assert_eq!(sempart_model_min_component_fraction(null(), &mut fraction), Status::NullArgument);
    assert_eq!(sempart_model_min_component_fraction(model, null_mut()), Status::NullArgument);
    assert_eq!(sempart_model_set_min_component_fraction(null(), 0.1), Status::NullArgument);
    assert_eq!(sempart_model_set_min_component_fraction(model, 2.0), Status::InvalidArgument);
    assert_eq!(sempart_model_set_min_component_fraction(model, f32::NAN), Status::InvalidArgument);
    assert_eq!(sempart_model_min_component_fraction(model, &mut fraction), Status::Ok);
    assert_eq!(fraction, DEFAULT_MIN_COMPONENT_FRACTION, "refused values leave it as it was");

    let rgb = frame_pixels(0, W, H);
    let frame = SempartFrame {
        data: rgb.as_ptr(),
        data_size_bytes: rgb.len(),
        width_px: W as u32,
        height_px: H as u32,
        row_stride_bytes: W * 3,
        pixel_format: PixelFormat::Rgb8 as u32,
    };
    let boxes = |fraction: f32| {
        assert_eq!(sempart_model_set_min_component_fraction(model, fraction), Status::Ok);
        let mut result: *mut SempartResult = null_mut();
        assert_eq!(sempart_segment(model, &frame, &mut result), Status::Ok);
        let counted = (sempart_result_box_count(result), sempart_result_object_index(result));
        sempart_result_free(result);
        counted
    };
    let (every, object) = boxes(0.0);
    let (big, big_object) = boxes(1.0);
    assert!(every > 1 && object >= 0);
    assert_eq!((big, big_object), (1, 0), "at 1 only the object is listed");
    sempart_model_free(model);
}
