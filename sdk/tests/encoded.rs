//! The C ABI of encoded images: `sempart_image_decode` gives the SDK decoder's pixels,
//! `sempart_segment_encoded` the result of segmenting them; bad bytes and bad arguments get a
//! status and a message, oversized headers are refused before allocation.

use sempart::capi::encoded::{
    sempart_image_decode, sempart_image_free, sempart_image_pixels, sempart_image_size, sempart_segment_encoded,
    SempartImage,
};
use sempart::capi::{
    sempart_last_error_message, sempart_model_free, sempart_model_open, sempart_result_fine_mask, sempart_result_free,
    SempartModel, SempartResult,
};
use sempart::files::decode::decode_rgb;
use sempart::{Frame, Options, PixelFormat, Segmenter, Status};
use std::ffi::{CStr, CString};
use std::path::PathBuf;
use std::ptr::{null, null_mut};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn last_error() -> String {
    unsafe { CStr::from_ptr(sempart_last_error_message()) }.to_string_lossy().into_owned()
}

/// A PNG whose header declares `w x h` RGB pixels (its data is far too short).
fn png_header(w: u32, h: u32) -> Vec<u8> {
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&w.to_be_bytes());
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    out.extend_from_slice(&13u32.to_be_bytes());
    out.extend_from_slice(b"IHDR");
    out.extend_from_slice(&ihdr);
    let crc = crc32(&[b"IHDR".as_slice(), &ihdr].concat());
    out.extend_from_slice(&crc.to_be_bytes());
    out
}

/// CRC-32 (IEEE), bit by bit.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

#[test]
fn decoding_gives_the_sdk_decoders_pixels() {
    let bytes = std::fs::read(root().join("examples/images/rocket.jpg")).unwrap();
    let expected = decode_rgb(&bytes).unwrap();
    let mut image: *mut SempartImage = null_mut();
    assert_eq!(sempart_image_decode(bytes.as_ptr(), bytes.len(), &mut image), Status::Ok);
    let (mut w, mut h) = (0u32, 0u32);
    assert_eq!(sempart_image_size(image, &mut w, &mut h), Status::Ok);
    assert_eq!((w, h), expected.dimensions());
    let pixels = unsafe { std::slice::from_raw_parts(sempart_image_pixels(image), (w * h * 3) as usize) };
    assert_eq!(pixels, expected.as_raw().as_slice());
    assert_eq!(sempart_image_size(image, null_mut(), null_mut()), Status::Ok, "NULL outputs are skipped");
    sempart_image_free(image);
    sempart_image_free(null_mut());
    assert!(sempart_image_pixels(null()).is_null());
}

#[test]
fn bad_bytes_and_arguments_get_a_status_and_a_message() {
    let mut image: *mut SempartImage = null_mut();
    let cases: [(&[u8], Status, &str); 4] = [
        (b"", Status::InvalidArgument, "empty"),
        (b"not an image at all", Status::Io, "cannot decode"),
        (&png_header(100_000, 100_000), Status::Io, "limit"),
        (&png_header(0, 0), Status::Io, "cannot decode"),
    ];
    for (bytes, status, words) in cases {
        assert_eq!(sempart_image_decode(bytes.as_ptr(), bytes.len(), &mut image), status, "{words}");
        assert!(last_error().contains(words), "{}", last_error());
        assert!(image.is_null(), "nothing written on failure");
    }
    assert_eq!(sempart_image_decode(null(), 10, &mut image), Status::NullArgument);
    assert_eq!(sempart_image_decode(b"x".as_ptr(), 1, null_mut()), Status::NullArgument);
    assert_eq!(sempart_image_size(null(), null_mut(), null_mut()), Status::NullArgument);
}

#[test]
fn segmenting_encoded_bytes_equals_segmenting_the_decoded_frame() {
    let path = root().join("tests/fixtures/tiny.onnx");
    let c_path = CString::new(path.to_str().unwrap()).unwrap();
    let mut model: *mut SempartModel = null_mut();
    assert_eq!(sempart_model_open(c_path.as_ptr(), null(), &mut model), Status::Ok);
    let bytes = std::fs::read(root().join("examples/images/coffee.png")).unwrap();
    let mut result: *mut SempartResult = null_mut();
    assert_eq!(sempart_segment_encoded(model, bytes.as_ptr(), bytes.len(), &mut result), Status::Ok);
    let rgb = decode_rgb(&bytes).unwrap();
    let (w, h) = rgb.dimensions();
    let seg = Segmenter::open(&path, &Options::default())
        .unwrap()
        .segment(&Frame::new(rgb.as_raw(), w, h, w as usize * 3, PixelFormat::Rgb8).unwrap())
        .unwrap();
    let mask = unsafe { std::slice::from_raw_parts(sempart_result_fine_mask(result), (w * h) as usize) };
    assert_eq!(mask, seg.fine_mask.as_slice());
    sempart_result_free(result);
    let corrupt = &bytes[..bytes.len() / 2];
    let mut result: *mut SempartResult = null_mut();
    assert_eq!(sempart_segment_encoded(model, corrupt.as_ptr(), corrupt.len(), &mut result), Status::Io);
    assert!(result.is_null());
    assert_eq!(sempart_segment_encoded(null(), bytes.as_ptr(), bytes.len(), &mut result), Status::NullArgument);
    assert_eq!(sempart_segment_encoded(model, bytes.as_ptr(), bytes.len(), null_mut()), Status::NullArgument);
    sempart_model_free(model);
}
