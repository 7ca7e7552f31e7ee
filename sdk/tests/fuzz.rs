//! A time-bounded fuzzer on stable Rust (no extra dependency): random and mutated inputs for
//! the model-file reader, `Frame::new` and the C ABI's argument space. Each target runs for
//! `$SEMPART_FUZZ_SECONDS` seconds (default 5; the test command gives 20 to each, a minute in
//! all; `scripts/fuzz.sh SECONDS` runs as long as wanted) from `$SEMPART_FUZZ_SEED` (default
//! 1; the seed and the execution count are printed). A panic, or a C call that breaks its
//! contract, fails the test with the seed and the iteration, and the input is written to
//! `target/fuzz-findings/` to become a regression test.
//!
//! What must hold for every input: no panic, no crash; the reader refuses with a status, and
//! the C ABI returns a status (never OK for an invalid argument) and writes no output then.

use sempart::capi::*;
use sempart::model_format::{self, ModelInfo};
use sempart::onnx::header;
use sempart::{Frame, PixelFormat, Provider, Status};
use std::ffi::{c_char, CString};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// xorshift64*: small, fast and reproducible from its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next() % n
        }
    }
    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }
    fn chance(&mut self, one_in: u64) -> bool {
        self.below(one_in) == 0
    }
}

fn budget() -> Duration {
    let secs = std::env::var("SEMPART_FUZZ_SECONDS").ok().and_then(|s| s.parse::<f64>().ok()).unwrap_or(5.0);
    Duration::from_secs_f64(secs.max(0.0))
}

fn seed(target: u64) -> u64 {
    let base = std::env::var("SEMPART_FUZZ_SEED").ok().and_then(|s| s.parse::<u64>().ok()).unwrap_or(1);
    (base.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ (target << 40)) | 1
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("sdk/ has a parent").to_path_buf()
}

/// Runs `one` on fresh inputs until the time is up; a panic fails with what reproduces it.
fn run(name: &str, target: u64, mut one: impl FnMut(&mut Rng, &mut Vec<u8>)) {
    let seed = seed(target);
    let mut rng = Rng(seed);
    let start = Instant::now();
    let mut execs = 0u64;
    let mut input = Vec::new();
    while start.elapsed() < budget() || execs == 0 {
        let state = rng.0;
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| one(&mut rng, &mut input)));
        if let Err(panic) = outcome {
            let dir = workspace().join("target/fuzz-findings");
            let _ = std::fs::create_dir_all(&dir);
            let file = dir.join(format!("{name}-{seed}-{execs}.bin"));
            let _ = std::fs::write(&file, &input);
            let why =
                panic.downcast_ref::<String>().cloned().or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()));
            panic!(
                "fuzz {name}: seed {seed}, execution {execs} (generator state {state:#x}) failed: {}; input in {}",
                why.unwrap_or_default(),
                file.display()
            );
        }
        execs += 1;
    }
    println!("fuzz {name}: {execs} executions in {:.1} s from seed {seed}, no finding", start.elapsed().as_secs_f64());
}

/// A mutation of `base`: bit flips, byte runs overwritten, cut, spliced or grown, or pure noise.
fn mutate(rng: &mut Rng, base: &[u8], out: &mut Vec<u8>) {
    out.clear();
    match rng.below(6) {
        0 => (0..rng.below(512)).for_each(|_| out.push(rng.next() as u8)),
        1 => out.extend_from_slice(&base[..rng.below(base.len() as u64 + 1) as usize]),
        _ => out.extend_from_slice(base),
    }
    for _ in 0..rng.below(8) + 1 {
        if out.is_empty() {
            break;
        }
        // Mostly near the start, where the metadata and the graph's structure are.
        let span = if rng.chance(2) { out.len().min(4096) } else { out.len() };
        let at = rng.below(span as u64) as usize;
        match rng.below(5) {
            0 | 1 => out[at] ^= 1 << rng.below(8),
            2 => {
                let n = (rng.below(16) as usize).min(out.len() - at);
                for i in 0..n {
                    let noise = rng.next() as u8;
                    out[at + i] = rng.pick(&[0u8, 0xff, 0x7f, 0x80, 0x0a, noise]);
                }
            }
            3 => out.truncate(at),
            _ => {
                let n = rng.below(32) as usize;
                let bytes: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
                out.splice(at..at, bytes);
            }
        }
    }
}

/// The model-file reader: header, metadata validation and the content digest, plus (one input
/// in 64) a full open with ONNX Runtime. Every outcome is a value or a status.
#[test]
fn fuzz_model_file_reader() {
    let base = std::fs::read(workspace().join("tests/fixtures/tiny.onnx")).expect("tiny fixture");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fuzzed.onnx");
    let mut opened = 0u64;
    run("model_reader", 1, |rng, input| {
        mutate(rng, &base, input);
        if let Ok(head) = header::parse_header("fuzzed", input) {
            if let Ok(info) = ModelInfo::from_metadata("fuzzed", head.metadata.clone()) {
                let _ = model_format::verify_content("fuzzed", input, &head, info.format_version);
            }
        }
        let _ = sempart::quantize::quantize_int8(input, 0);
        if rng.chance(64) {
            std::fs::write(&path, &*input).unwrap();
            match sempart::Segmenter::open(&path, &sempart::Options { cpu_threads: 1, ..Default::default() }) {
                Ok(_) => opened += 1,
                Err(e) => assert_ne!(e.status(), Status::Ok),
            }
        }
    });
    println!(
        "  (full opens that succeeded: {opened}, i.e. mutations the digest does not cover or that were the original)"
    );
}

const FORMATS: [u32; 8] = [0, 1, 2, 3, 4, 5, 6, u32::MAX];

fn bytes_per_pixel(format: u32) -> usize {
    match format {
        0 | 1 => 3,
        2 | 3 => 4,
        _ => 1,
    }
}

/// `Frame::new` over sizes, strides, buffer lengths and formats, valid or not; an accepted
/// frame must be readable everywhere it claims to be.
#[test]
fn fuzz_frame_new() {
    let buffer = vec![0x5au8; 1 << 22];
    run("frame_new", 2, |rng, input| {
        let (rw, rh) = (rng.below(300) as u32, rng.below(300) as u32);
        let w = rng.pick(&[0u32, 1, 2, 3, 7, 640, 16384, 16385, u32::MAX, rw]);
        let h = rng.pick(&[0u32, 1, 2, 3, 5, 480, 16384, 16385, u32::MAX, rh]);
        let raw_format = rng.pick(&FORMATS);
        let row = w as usize * bytes_per_pixel(raw_format);
        let stride = {
            let pad = 1 + rng.below(64) as usize;
            rng.pick(&[0usize, row.saturating_sub(1), row, row + pad, usize::MAX, 1 << 30])
        };
        let len = (rng.below(buffer.len() as u64 + 1) as usize).min(buffer.len());
        input.clear();
        input.extend_from_slice(&[w.to_le_bytes(), h.to_le_bytes(), raw_format.to_le_bytes()].concat());
        input.extend_from_slice(&stride.to_le_bytes());
        input.extend_from_slice(&len.to_le_bytes());
        let Some(format) = PixelFormat::from_raw(raw_format) else { return };
        if let Ok(frame) = Frame::new(&buffer[..len], w, h, stride, format) {
            let (fw, fh) = (frame.width_px() as usize, frame.height_px() as usize);
            for (x, y) in [(0, 0), (fw - 1, 0), (0, fh - 1), (fw - 1, fh - 1)] {
                let _ = frame.rgb_at(x, y);
            }
            let mut row = vec![[0u8; 3]; fw];
            frame.row_rgb(fh - 1, &mut row);
            if fw * fh <= 1 << 16 {
                let _ = sempart::preprocess::resize_rgb(&frame, 1 + rng.below(40) as usize, 1 + rng.below(40) as usize);
            }
        }
    });
}

/// The C ABI with random arguments: NULLs, unknown enum values, lying sizes (within the real
/// buffer, as the contract asks), random indices and options. Each call must return a status,
/// and leave its outputs untouched on failure.
#[test]
fn fuzz_c_abi_arguments() {
    let model_path = CString::new(workspace().join("tests/fixtures/tiny.onnx").display().to_string()).unwrap();
    let defaults = || {
        let mut opts = std::mem::MaybeUninit::<SempartOptions>::uninit();
        assert_eq!(sempart_options_init(opts.as_mut_ptr()), Status::Ok);
        let mut o = unsafe { opts.assume_init() };
        o.cpu_threads = 1;
        o
    };
    let mut model: *mut SempartModel = std::ptr::null_mut();
    assert_eq!(sempart_model_open(model_path.as_ptr(), &defaults(), &mut model), Status::Ok);
    let pixels: Vec<u8> = (0..200_000u32).map(|i| (i * 31 % 251) as u8).collect();
    let keys: Vec<CString> = ["sempart.format_version", "sempart.backbone.origin", "nope", ""]
        .iter()
        .map(|k| CString::new(*k).unwrap())
        .collect();
    let sentinel = 0xdead_beef_usize as *mut SempartResult;
    run("c_abi", 3, |rng, input| {
        input.clear();
        input.extend_from_slice(&rng.0.to_le_bytes());
        let m: *const SempartModel = if rng.chance(8) { std::ptr::null() } else { model };
        match rng.below(6) {
            0..=2 => {
                let frames: Vec<SempartFrame> = (0..1 + rng.below(3))
                    .map(|_| {
                        let (rw, rh) = (rng.below(120) as u32, rng.below(120) as u32);
                        let w = rng.pick(&[0u32, 1, 2, 5, 16, 33, 64, 16385, rw]);
                        let h = rng.pick(&[0u32, 1, 2, 4, 16, 31, 64, 16385, rh]);
                        let format = rng.pick(&FORMATS);
                        let row = w as usize * bytes_per_pixel(format);
                        SempartFrame {
                            data: if rng.chance(16) { std::ptr::null() } else { pixels.as_ptr() },
                            data_size_bytes: rng.below(pixels.len() as u64 + 1) as usize,
                            width_px: w,
                            height_px: h,
                            row_stride_bytes: rng.pick(&[0, row, row + 3, row.saturating_sub(1), usize::MAX]),
                            pixel_format: format,
                        }
                    })
                    .collect();
                let mut outs = vec![sentinel; frames.len()];
                let status = if frames.len() == 1 && rng.chance(2) {
                    let out = if rng.chance(16) { std::ptr::null_mut() } else { outs.as_mut_ptr() };
                    let f = if rng.chance(16) { std::ptr::null() } else { frames.as_ptr() };
                    sempart_segment(m, f, out)
                } else {
                    let count = if rng.chance(8) { 0 } else { frames.len() };
                    sempart_segment_batch(m, frames.as_ptr(), count, outs.as_mut_ptr())
                };
                if status == Status::Ok {
                    for &r in &outs {
                        assert!(r != sentinel && !r.is_null(), "OK without a result");
                        let n = sempart_result_box_count(r);
                        let mut b = SempartBox::default();
                        assert_eq!(sempart_result_box(r, n, &mut b), Status::InvalidArgument, "box index past the end");
                        if n > 0 {
                            assert_eq!(sempart_result_box(r, rng.below(n as u64) as usize, &mut b), Status::Ok);
                            assert!(b.x0 < b.x1 && b.y0 < b.y1);
                        }
                        assert!(!sempart_result_fine_mask(r).is_null());
                        sempart_result_free(r);
                    }
                } else {
                    assert!(outs.iter().all(|&r| r == sentinel), "{status:?} but a result was written");
                    assert!(!sempart_last_error_message().is_null());
                }
            }
            3 => {
                let key: *const c_char =
                    if rng.chance(8) { std::ptr::null() } else { keys[rng.pick(&[0usize, 1, 2, 3])].as_ptr() };
                let mut buf = vec![0 as c_char; 64];
                let size = rng.below(65) as usize;
                let b = if rng.chance(4) { std::ptr::null_mut() } else { buf.as_mut_ptr() };
                let mut len = usize::MAX;
                let l = if rng.chance(4) { std::ptr::null_mut() } else { &mut len as *mut usize };
                let status = sempart_model_metadata(m, key, b, if b.is_null() { 0 } else { size }, l);
                if status == Status::Ok && !b.is_null() && size > 0 && !l.is_null() {
                    assert!(len < size && buf[len] == 0, "NUL-terminated within the buffer");
                }
            }
            4 => {
                let _ = sempart_status_string(rng.next() as i32);
                let mut o = defaults();
                // Random options, opened only when they fail fast or are plausible: a random
                // thread count up to u32::MAX must be refused before any pool is built.
                let any = rng.next() as u32;
                o.cpu_threads = rng.pick(&[0, 1, 2, 257, 5000, u32::MAX, any]);
                o.provider_count = rng.pick(&[0, 1, 2, 3, 4, u32::MAX]);
                o.providers = [rng.below(5) as u32, rng.below(5) as u32, rng.below(5) as u32];
                o.device_id = rng.pick(&[0, -1, 255, 256, i32::MIN, i32::MAX]);
                o.refine_radius = rng.pick(&[0.0, 8.0, -1.0, f32::NAN, f32::INFINITY, 300.0]);
                o.refine_eps = rng.pick(&[1e-3, 0.0, -1.0, f32::NAN]);
                o.allow_fallback = rng.below(3) as u8;
                let valid = o.cpu_threads <= 256
                    && (1..=3).contains(&o.provider_count)
                    && (0..=255).contains(&o.device_id)
                    && (0.0..=256.0).contains(&o.refine_radius)
                    && o.refine_eps > 0.0
                    && o.refine_eps.is_finite();
                if !valid || rng.chance(32) {
                    let mut out: *mut SempartModel = std::ptr::null_mut();
                    let t = Instant::now();
                    let status = sempart_model_open(model_path.as_ptr(), &o, &mut out);
                    if !valid {
                        assert_eq!(status, Status::InvalidArgument, "invalid options opened");
                        assert!(out.is_null());
                        assert!(t.elapsed() < Duration::from_secs(2), "refusing took {:?}", t.elapsed());
                    }
                    sempart_model_free(out);
                }
            }
            _ => {
                let mut p = Provider::Cpu;
                let mut v = [0u32; 4];
                let ptr = |rng: &mut Rng, x: *mut u32| if rng.chance(4) { std::ptr::null_mut() } else { x };
                let [a, b, c, d] = &mut v;
                let _ = sempart_model_input_size(m, ptr(rng, a), ptr(rng, b), ptr(rng, c), ptr(rng, d));
                let _ = sempart_model_provider(m, if rng.chance(4) { std::ptr::null_mut() } else { &mut p });
                sempart_result_free(std::ptr::null_mut());
                assert!(sempart_result_fine_mask(std::ptr::null()).is_null());
                assert_eq!(sempart_result_object_index(std::ptr::null()), -1);
            }
        }
    });
    sempart_model_free(model);
}
