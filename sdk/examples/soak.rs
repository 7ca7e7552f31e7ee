//! Soak run: segments the same frame many times on one model through the C ABI (the path a
//! camera pipeline takes) and prints the process's resident memory every `--every` calls, so
//! that growth shows. Not a test: `scripts/soak.sh` runs it and docs/TESTING.md quotes it.
//!
//!   cargo run --release -p sempart --example soak -- [--model M] [--calls 10000] [--every 1000]
//!       [--width 640 --height 480]

use sempart::capi::*;
use sempart::Status;
use std::ffi::CString;

fn rss_mib() -> f64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: f64 = statm.split_whitespace().nth(1).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    pages * 4096.0 / (1024.0 * 1024.0)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let value = |flag: &str, default: &str| -> String {
        args.iter().position(|a| a == flag).and_then(|i| args.get(i + 1)).cloned().unwrap_or_else(|| default.into())
    };
    let default_model = sempart::model_format::default_model_path(sempart::Options::default().default_precision());
    let model_path = value("--model", &default_model.display().to_string());
    let number = |flag: &str, default: &str| -> usize {
        value(flag, default).parse().unwrap_or_else(|_| {
            eprintln!("soak: {flag} must be a positive integer");
            std::process::exit(2)
        })
    };
    let (calls, every) = (number("--calls", "10000"), number("--every", "1000").max(1));
    let (w, h) = (number("--width", "640"), number("--height", "480"));
    let path = CString::new(model_path.clone()).expect("path without NUL");
    let mut model = std::ptr::null_mut();
    if sempart_model_open(path.as_ptr(), std::ptr::null(), &mut model) != Status::Ok {
        let msg = unsafe { std::ffi::CStr::from_ptr(sempart_last_error_message()) };
        eprintln!("soak: cannot open {model_path}: {}", msg.to_string_lossy());
        std::process::exit(1);
    }
    let pixels: Vec<u8> = (0..w * h * 3).map(|i| ((i / 3 % w) * 255 / w) as u8 ^ ((i / (3 * w)) as u8)).collect();
    let frame = SempartFrame {
        data: pixels.as_ptr(),
        data_size_bytes: pixels.len(),
        width_px: w as u32,
        height_px: h as u32,
        row_stride_bytes: w * 3,
        pixel_format: 0,
    };
    println!("soak: {calls} calls of sempart_segment on {model_path}, {w}x{h} RGB8");
    println!("{:>8} {:>10} {:>12}", "calls", "RSS MiB", "ms/call");
    println!("{:>8} {:>10.1} {:>12}", 0, rss_mib(), "-");
    let mut t = std::time::Instant::now();
    for i in 1..=calls {
        let mut result = std::ptr::null_mut();
        if sempart_segment(model, &frame, &mut result) != Status::Ok {
            let msg = unsafe { std::ffi::CStr::from_ptr(sempart_last_error_message()) };
            eprintln!("soak: call {i} failed: {}", msg.to_string_lossy());
            std::process::exit(1);
        }
        sempart_result_free(result);
        if i % every == 0 || i == calls {
            let n = if i % every == 0 { every } else { i % every };
            println!("{i:>8} {:>10.1} {:>12.1}", rss_mib(), t.elapsed().as_secs_f64() * 1000.0 / n as f64);
            t = std::time::Instant::now();
        }
    }
    sempart_model_free(model);
}
