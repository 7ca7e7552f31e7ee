//! The C ABI as C and C++ programs see it: builds the programs of `tests/c/` and `examples/`
//! with gcc/g++ (`-Wall -Wextra -Werror`) against the `libsempart.so` this cargo build made,
//! runs them, and checks the library's exported symbols and the install tree of
//! `scripts/install.sh`.
//!
//! The model is the tiny random-weight fixture `tests/fixtures/tiny.onnx`. The valgrind run of
//! `tests/c/test_api.c` takes about a minute (most of it ONNX Runtime starting under memcheck);
//! it is skipped, with a message, where valgrind is not installed.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("sdk/ has a parent").to_path_buf()
}

/// `target/<profile>/`: the test executable lives in `target/<profile>/deps/`.
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("path of the test executable");
    exe.parent().and_then(Path::parent).expect("target/<profile>/deps/<test>").to_path_buf()
}

/// The folder of the shared library cargo built for this test: `target/<profile>/deps/`.
/// (`cargo test` does not refresh the copy in `target/<profile>/`; only `cargo build` does.)
fn library_dir() -> PathBuf {
    profile_dir().join("deps")
}

/// The shared library cargo built alongside this test.
fn library() -> PathBuf {
    let lib = library_dir().join("libsempart.so");
    assert!(lib.is_file(), "{} is missing: cargo builds it with the sempart lib target", lib.display());
    lib
}

fn fixtures() -> PathBuf {
    workspace().join("tests/fixtures")
}

/// The tiny test model; its absence is a failure (the trainer's exporter writes it:
/// `cargo run -p trainer -- fixtures`).
fn tiny_model() -> PathBuf {
    let path = fixtures().join("tiny.onnx");
    assert!(
        path.is_file(),
        "{} is missing: regenerate the fixtures with `cargo run -p trainer -- fixtures`",
        path.display()
    );
    path
}

fn have(tool: &str) -> bool {
    Command::new(tool).arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok_and(|s| s.success())
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs a command to completion, echoing its output (visible with `--nocapture`).
fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    print!("{}", text(&out.stdout));
    eprint!("{}", text(&out.stderr));
    out
}

fn run_ok(cmd: &mut Command) -> Output {
    let shown = format!("{cmd:?}");
    let out = run(cmd);
    assert!(out.status.success(), "{shown} failed with {}:\n{}{}", out.status, text(&out.stdout), text(&out.stderr));
    out
}

/// A scratch folder with `lib/` holding the soname links to the library under test
/// (cargo writes only `libsempart.so`; programs linked with it need `libsempart.so.0`).
struct Scratch {
    dir: tempfile::TempDir,
}

impl Scratch {
    fn new() -> Scratch {
        let dir = tempfile::tempdir().expect("temporary folder");
        let lib = dir.path().join("lib");
        std::fs::create_dir(&lib).expect("create lib/");
        for name in ["libsempart.so", "libsempart.so.0"] {
            std::os::unix::fs::symlink(library(), lib.join(name)).expect("symlink the library");
        }
        Scratch { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn lib(&self) -> PathBuf {
        self.path().join("lib")
    }

    /// Compiles and links `sources` (C or C++, by the first one's extension) into `name`.
    fn build(&self, name: &str, sources: &[&str]) -> PathBuf {
        self.build_with(name, sources, &[])
    }

    /// [`Scratch::build`] with extra compiler flags (sanitizers).
    fn build_with(&self, name: &str, sources: &[&str], flags: &[&str]) -> PathBuf {
        let ws = workspace();
        let out = self.path().join(name);
        let cpp = sources[0].ends_with(".cpp");
        let mut cmd = Command::new(if cpp { "g++" } else { "gcc" });
        if cpp {
            cmd.arg("-std=c++17");
        } else {
            cmd.arg("-std=c11");
        }
        cmd.args(["-Wall", "-Wextra", "-Werror", "-pedantic", "-g", "-O1"])
            .args(flags)
            .arg("-I")
            .arg(ws.join("include"))
            .arg("-I")
            .arg(ws.join("bindings/cpp"))
            .args(sources.iter().map(|s| ws.join(s)))
            .arg("-o")
            .arg(&out)
            .arg(format!("-L{}", self.lib().display()))
            .arg("-lsempart")
            .arg("-lpthread")
            .arg("-lm")
            .arg(format!("-Wl,-rpath,{}", self.lib().display()));
        run_ok(&mut cmd);
        out
    }
}

fn failed_lines(out: &Output) -> String {
    text(&out.stdout).lines().filter(|l| l.starts_with("FAIL")).collect::<Vec<_>>().join("\n")
}

#[test]
fn c_test_program_passes() {
    let model = tiny_model();
    let s = Scratch::new();
    let exe = s.build("test_api", &["tests/c/test_api.c"]);
    let tmp = s.path().join("work");
    std::fs::create_dir(&tmp).unwrap();
    let out = run(Command::new(&exe).arg(model.parent().unwrap()).arg(&tmp));
    assert!(out.status.success(), "tests/c/test_api.c failed ({}):\n{}", out.status, failed_lines(&out));
    let stdout = text(&out.stdout);
    assert!(stdout.contains(", 0 failed"), "no summary line:\n{stdout}");
}

/// `--ort-missing`: the first open of a process names a missing ONNX Runtime library.
fn run_ort_missing() -> Output {
    let model = tiny_model();
    let s = Scratch::new();
    let exe = s.build("test_api", &["tests/c/test_api.c"]);
    run(Command::new(&exe).arg("--ort-missing").arg(model.parent().unwrap()).arg(s.path()))
}

#[test]
fn missing_onnx_runtime_is_runtime_unavailable() {
    let out = run_ort_missing();
    let first = text(&out.stdout).lines().next().unwrap_or_default().to_string();
    assert!(first.starts_with("ok ") && first.contains("RUNTIME_UNAVAILABLE"), "{}", text(&out.stdout));
}

/// A failed load must not poison the process: a later open with a good library works.
#[test]
fn failed_onnx_runtime_load_is_not_permanent() {
    let out = run_ort_missing();
    assert!(out.status.success(), "{}", failed_lines(&out));
}

/// The same program (`--quick`: fewer calls) under valgrind's memcheck: no invalid access, no
/// use of uninitialised memory, no definite leak. `tests/c/valgrind.supp` silences two reports
/// inside ld.so and ONNX Runtime.
#[test]
fn c_test_program_is_clean_under_valgrind() {
    if !have("valgrind") {
        println!("skipped: valgrind is not installed");
        return;
    }
    let model = tiny_model();
    let s = Scratch::new();
    let exe = s.build("test_api", &["tests/c/test_api.c"]);
    let tmp = s.path().join("work");
    std::fs::create_dir(&tmp).unwrap();
    let out = run(Command::new("valgrind")
        .args([
            "--tool=memcheck",
            "--error-exitcode=1",
            "--leak-check=full",
            "--show-leak-kinds=definite",
            "--errors-for-leak-kinds=definite",
            "--num-callers=30",
        ])
        .arg(format!("--suppressions={}", workspace().join("tests/c/valgrind.supp").display()))
        .arg(&exe)
        .arg("--quick")
        .arg(model.parent().unwrap())
        .arg(&tmp));
    assert!(
        out.status.success(),
        "test_api under valgrind failed ({}):\n{}\n{}",
        out.status,
        failed_lines(&out),
        text(&out.stderr)
    );
}

/// The C test program built with AddressSanitizer and UndefinedBehaviorSanitizer (any report
/// fails it: out-of-bounds or use-after-free in the program or, through ASan's allocator, in
/// the library's heap, leaks of what the program owns, undefined behaviour in the C code).
/// The tiny model keeps it fast. `tests/c/lsan.supp` silences ONNX Runtime's process-lifetime
/// allocations.
#[test]
fn c_test_program_is_clean_under_asan_and_ubsan() {
    let model = tiny_model();
    let s = Scratch::new();
    let flags = ["-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-fno-omit-frame-pointer"];
    let exe = s.build_with("test_api_asan", &["tests/c/test_api.c"], &flags);
    let tmp = s.path().join("work");
    std::fs::create_dir(&tmp).unwrap();
    let supp = workspace().join("tests/c/lsan.supp");
    let out = run(Command::new(&exe)
        .arg(model.parent().unwrap())
        .arg(&tmp)
        .env("ASAN_OPTIONS", "detect_leaks=1:halt_on_error=1:exitcode=23")
        .env("LSAN_OPTIONS", format!("suppressions={}:print_suppressions=0", supp.display()))
        .env("UBSAN_OPTIONS", "halt_on_error=1:print_stacktrace=1"));
    let stderr = text(&out.stderr);
    assert!(
        out.status.success() && !stderr.contains("ERROR: AddressSanitizer") && !stderr.contains("runtime error:"),
        "test_api under ASan + UBSan failed ({}):\n{}\n{}",
        out.status,
        failed_lines(&out),
        stderr
    );
    assert!(text(&out.stdout).contains(", 0 failed"), "no summary line:\n{}", text(&out.stdout));
}

#[test]
fn headers_are_self_contained() {
    let ws = workspace();
    let header = ws.join("include/sempart.h");
    for std in ["-std=c99", "-std=c11"] {
        run_ok(
            Command::new("gcc")
                .args([std, "-Wall", "-Wextra", "-Werror", "-pedantic", "-fsyntax-only", "-x", "c"])
                .arg(&header),
        );
    }
    if !have("g++") {
        println!("skipped the C++ checks: g++ is not installed");
        return;
    }
    run_ok(
        Command::new("g++")
            .args(["-std=c++11", "-Wall", "-Wextra", "-Werror", "-pedantic", "-fsyntax-only", "-x", "c++"])
            .arg(&header),
    );
    for std in ["-std=c++17", "-std=c++20"] {
        run_ok(
            Command::new("g++")
                .args([std, "-Wall", "-Wextra", "-Werror", "-pedantic", "-Wshadow", "-Wconversion", "-fsyntax-only"])
                .args(["-x", "c++", "-I"])
                .arg(ws.join("include"))
                .arg(ws.join("bindings/cpp/sempart.hpp")),
        );
    }
    // C++14 is refused with a clear message, not a cascade of errors.
    let out = run(Command::new("g++")
        .args(["-std=c++14", "-fsyntax-only", "-x", "c++", "-I"])
        .arg(ws.join("include"))
        .arg(ws.join("bindings/cpp/sempart.hpp")));
    assert!(!out.status.success() && text(&out.stderr).contains("needs C++17"), "C++14 is not refused clearly");
}

/// Two translation units include sempart.hpp and link into one program (ODR safety), which
/// then checks the wrapper against the C API.
#[test]
fn cpp_wrapper_links_from_two_units_and_works() {
    if !have("g++") {
        println!("skipped: g++ is not installed");
        return;
    }
    let model = tiny_model();
    let s = Scratch::new();
    let exe = s.build("test_cpp", &["tests/c/test_cpp_a.cpp", "tests/c/test_cpp_b.cpp"]);
    let out = run(Command::new(&exe).arg(&model));
    assert!(out.status.success(), "tests/c/test_cpp_a.cpp failed ({}):\n{}", out.status, failed_lines(&out));
}

/// A test picture: a bright disc on a dim gradient, as RGB bytes.
fn picture(w: usize, h: usize, cx: usize, cy: usize) -> Vec<u8> {
    let mut rgb = Vec::with_capacity(w * h * 3);
    for y in 0..h {
        for x in 0..w {
            let (dx, dy) = (x as i64 - cx as i64, y as i64 - cy as i64);
            if dx * dx + dy * dy < (h as i64 / 4).pow(2) {
                rgb.extend_from_slice(&[235, 150, 30]);
            } else {
                rgb.extend_from_slice(&[(30 + x / 4) as u8, (40 + y / 4) as u8, 70]);
            }
        }
    }
    rgb
}

/// Parses `P5\n<w> <h>\n255\n<bytes>`.
fn read_pgm(path: &Path) -> (usize, usize, Vec<u8>) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut fields = Vec::new();
    let mut pos = 0;
    while fields.len() < 4 {
        while bytes[pos].is_ascii_whitespace() {
            pos += 1;
        }
        let start = pos;
        while !bytes[pos].is_ascii_whitespace() {
            pos += 1;
        }
        fields.push(String::from_utf8_lossy(&bytes[start..pos]).into_owned());
    }
    assert_eq!(fields[0], "P5");
    assert_eq!(fields[3], "255");
    let (w, h) = (fields[1].parse().unwrap(), fields[2].parse().unwrap());
    (w, h, bytes[pos + 1..].to_vec())
}

#[test]
fn example_segment_image() {
    let model = tiny_model();
    let s = Scratch::new();
    let exe = s.build("segment_image", &["examples/segment_image.c"]);
    let (w, h) = (96, 64);

    let ppm = s.path().join("in.ppm");
    let mut file = format!("P6\n# a comment\n{w} {h}\n255\n").into_bytes();
    file.extend(picture(w, h, 60, 30));
    std::fs::write(&ppm, &file).unwrap();
    let mask = s.path().join("mask.pgm");
    let out = run_ok(Command::new(&exe).arg("--model").arg(&model).arg("--out").arg(&mask).arg(&ppm));
    let stdout = text(&out.stdout);
    let count: usize = stdout
        .lines()
        .find_map(|l| l.strip_prefix("boxes: "))
        .unwrap_or_else(|| panic!("no 'boxes:' line:\n{stdout}"))
        .parse()
        .unwrap();
    assert_eq!(stdout.lines().filter(|l| l.starts_with("box ")).count(), count, "{stdout}");
    assert!(stdout.contains("\nobject: "), "{stdout}");
    assert!(stdout.contains("\ntiming: preprocess "), "{stdout}");
    let (mw, mh, pixels) = read_pgm(&mask);
    assert_eq!((mw, mh, pixels.len()), (w, h, w * h));
    assert!(pixels.iter().all(|&p| p == 0 || p == 255), "the mask is not binary");
    assert_eq!(count == 0, pixels.iter().all(|&p| p == 0), "boxes and mask disagree");

    // PGM input, the model from $SEMPART_MODEL, the default output name in the working folder.
    let gray: Vec<u8> = picture(w, h, 30, 30).chunks(3).map(|p| p[1]).collect();
    let pgm = s.path().join("in.pgm");
    let mut file = format!("P5 {w} {h} 255\n").into_bytes();
    file.extend(gray);
    std::fs::write(&pgm, &file).unwrap();
    run_ok(Command::new(&exe).arg(&pgm).env("SEMPART_MODEL", &model).current_dir(s.path()));
    assert_eq!(read_pgm(&s.path().join("mask.pgm")).0, w);

    // Errors: a missing model, a file that is not PNM, a truncated PNM, no arguments.
    let out = run(Command::new(&exe).arg("--model").arg(s.path().join("none.onnx")).arg(&ppm));
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("model file not found"), "{}", text(&out.stderr));
    let out = run(Command::new(&exe).arg("--model").arg(&model).arg(&model));
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("not a binary PPM"), "{}", text(&out.stderr));
    std::fs::write(&ppm, &file[..file.len() / 2]).unwrap();
    let out = run(Command::new(&exe).arg("--model").arg(&model).arg(&ppm));
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(run(&mut Command::new(&exe)).status.code(), Some(2));
}

/// Feeds raw frames on stdin as `ffmpeg -f rawvideo -pix_fmt <fmt> -` would.
/// The model is given with `--model`, or with `$SEMPART_MODEL` when `via_env`.
fn camera(exe: &Path, args: &[&str], model: &Path, via_env: bool, input: &[u8]) -> Output {
    let mut cmd = Command::new(exe);
    cmd.args(args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    if via_env {
        cmd.env("SEMPART_MODEL", model);
    } else {
        cmd.arg("--model").arg(model);
    }
    let mut child = cmd.spawn().expect("start camera_pipeline");
    let mut stdin = child.stdin.take().unwrap();
    let data = input.to_vec();
    let writer = std::thread::spawn(move || {
        // The program may stop reading early (--max-frames): a broken pipe is fine.
        let _ = stdin.write_all(&data);
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    print!("{}", text(&out.stdout));
    eprint!("{}", text(&out.stderr));
    out
}

#[test]
fn example_camera_pipeline() {
    if !have("g++") {
        println!("skipped: g++ is not installed");
        return;
    }
    let model = tiny_model();
    let s = Scratch::new();
    let exe = s.build("camera_pipeline", &["examples/camera_pipeline.cpp"]);
    let (w, h, n) = (80, 48, 5);

    // bgr24: five frames of a moving disc.
    let mut stream = Vec::new();
    for i in 0..n {
        let rgb = picture(w, h, 15 + 12 * i, 24);
        stream.extend(rgb.chunks(3).flat_map(|p| [p[2], p[1], p[0]]));
    }
    let out = camera(&exe, &["--size", "80x48", "--format", "bgr24"], &model, false, &stream);
    assert!(out.status.success());
    let stdout = text(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), n, "one line per frame:\n{stdout}");
    for (i, line) in lines.iter().enumerate() {
        let rest = line.strip_prefix(&format!("frame {i}: ")).unwrap_or_else(|| panic!("bad line {line:?}"));
        let count: usize = rest.split(' ').next().unwrap().parse().unwrap();
        assert_eq!(rest.split(' ').skip(2).count(), count, "{line}");
        assert_eq!(rest.matches('*').count(), usize::from(count > 0), "one object box: {line}");
    }
    assert!(text(&out.stderr).contains(&format!("{n} frames: mean preprocess")), "{}", text(&out.stderr));

    // nv12 (grey: Y = 128, U = V = 128), model from $SEMPART_MODEL, a trailing partial frame,
    // and the same stream cut short by --max-frames.
    let frame = w * h * 3 / 2;
    let mut nv12 = vec![128u8; 3 * frame];
    nv12.extend(vec![0u8; frame / 2]);
    let out = camera(&exe, &["--size", "80x48", "--format", "nv12"], &model, true, &nv12);
    assert!(out.status.success());
    assert_eq!(text(&out.stdout).lines().count(), 3);
    assert!(text(&out.stderr).contains("partial frame"), "{}", text(&out.stderr));
    let out = camera(&exe, &["--size", "80x48", "--format", "nv12", "--max-frames", "2"], &model, false, &nv12);
    assert!(out.status.success());
    assert_eq!(text(&out.stdout).lines().count(), 2);

    // Errors: odd NV12 size (the SDK refuses the frame), unknown format, no size.
    let out = camera(&exe, &["--size", "81x48", "--format", "nv12"], &model, false, &[0u8; 81 * 72]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("even"), "{}", text(&out.stderr));
    let out = camera(&exe, &["--size", "80x48", "--format", "yuyv422"], &model, false, &[]);
    assert_eq!(out.status.code(), Some(2));
    let out = camera(&exe, &[], &model, false, &[]);
    assert_eq!(out.status.code(), Some(2));
}

/// Symbols of the dynamic symbol table that every shared object has.
const STANDARD_SYMBOLS: [&str; 5] = ["_init", "_fini", "__bss_start", "_edata", "_end"];

#[test]
fn library_exports_only_sempart_symbols() {
    let lib = library();
    let out = run_ok(Command::new("nm").args(["-D", "--defined-only"]).arg(&lib));
    let names: Vec<String> =
        text(&out.stdout).lines().filter_map(|l| l.split_whitespace().nth(2)).map(String::from).collect();
    let foreign: Vec<&String> =
        names.iter().filter(|n| !n.starts_with("sempart_") && !STANDARD_SYMBOLS.contains(&n.as_str())).collect();
    assert!(foreign.is_empty(), "libsempart.so exports symbols outside the sempart_ namespace: {foreign:?}");

    // ... and every function the header declares.
    let header = std::fs::read_to_string(workspace().join("include/sempart.h")).unwrap();
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let declared: Vec<&str> = header
        .match_indices("sempart_")
        .filter(|&(at, _)| !header[..at].ends_with(ident))
        .filter_map(|(at, _)| {
            let name = &header[at..at + header[at..].find(|c: char| !ident(c)).unwrap_or(header.len() - at)];
            header[at + name.len()..].starts_with('(').then_some(name)
        })
        .collect();
    assert!(declared.len() > 20, "found only {} functions in sempart.h", declared.len());
    let missing: Vec<&&str> = declared.iter().filter(|d| !names.iter().any(|n| n == *d)).collect();
    assert!(missing.is_empty(), "declared in sempart.h but not exported: {missing:?}");

    let dynamic = text(&run_ok(Command::new("readelf").args(["-d"]).arg(&lib)).stdout);
    assert!(dynamic.contains("Library soname: [libsempart.so.0]"), "soname:\n{dynamic}");
}

/// scripts/install.sh into a scratch prefix (with the library of this build), then an
/// application built with nothing but `pkg-config --cflags --libs sempart` (and CMake's
/// find_package when cmake is installed) runs and loads the installed ONNX Runtime.
#[test]
fn install_tree_builds_applications() {
    let model = tiny_model();
    let ws = workspace();
    let s = Scratch::new();
    let prefix = s.path().join("prefix");
    run_ok(Command::new(ws.join("scripts/install.sh")).arg("--lib-dir").arg(library_dir()).arg(&prefix));

    let lib = prefix.join("lib");
    for file in [
        "lib/libsempart.so.0.1.0",
        "lib/libonnxruntime.so.1.31.1",
        "include/sempart.h",
        "include/sempart.hpp",
        "lib/pkgconfig/sempart.pc",
        "lib/cmake/Sempart/SempartConfig.cmake",
        "lib/cmake/Sempart/SempartConfigVersion.cmake",
    ] {
        assert!(prefix.join(file).is_file(), "{file} is not installed");
    }
    assert_eq!(std::fs::read_link(lib.join("libsempart.so.0")).unwrap(), Path::new("libsempart.so.0.1.0"));
    assert_eq!(std::fs::read_link(lib.join("libsempart.so")).unwrap(), Path::new("libsempart.so.0"));

    // The default model and its int8 variant (made by setup, which the test command runs
    // first) are installed, and an installed `sempart` finds them, and ONNX Runtime, without
    // --model or variables: the int8 one on the CPU, the float one when a GPU provider comes
    // first (here it falls back to the CPU, but the file is the float one).
    for name in ["sempart-default.onnx", "sempart-default-int8.onnx"] {
        assert!(prefix.join("share/sempart").join(name).is_file(), "{name} is not installed");
    }
    std::fs::create_dir_all(prefix.join("bin")).unwrap();
    // The command is the `sempart-cli` package's binary; `cargo test --workspace` (the test
    // command) builds it into the same profile folder as this test.
    let command = profile_dir().join("sempart");
    assert!(command.is_file(), "{} is missing: build it with `cargo build -p sempart-cli`", command.display());
    std::fs::copy(&command, prefix.join("bin/sempart")).unwrap();
    let info =
        run_ok(Command::new(prefix.join("bin/sempart")).arg("info").env_remove("SEMPART_MODEL").current_dir(s.path()));
    let info = text(&info.stdout);
    let shown = format!("model file       {}", prefix.join("bin/../share/sempart/sempart-default-int8.onnx").display());
    assert!(info.contains(&shown), "the installed command uses the installed int8 model on the CPU:\n{info}");
    assert!(info.contains("precision        int8"), "{info}");
    assert!(info.contains("integrity        verified"), "{info}");
    let info = run_ok(
        Command::new(prefix.join("bin/sempart"))
            .args(["info", "--provider", "cuda,cpu"])
            .env_remove("SEMPART_MODEL")
            .current_dir(s.path()),
    );
    let info = text(&info.stdout);
    let shown = format!("model file       {}", prefix.join("bin/../share/sempart/sempart-default.onnx").display());
    assert!(info.contains(&shown), "with a GPU provider first the float model is used:\n{info}");
    assert!(info.contains("precision        fp32"), "{info}");

    if !have("pkg-config") {
        println!("skipped the pkg-config build: pkg-config is not installed");
        return;
    }
    let flags = run_ok(
        Command::new("pkg-config")
            .args(["--cflags", "--libs", "sempart"])
            .env("PKG_CONFIG_PATH", lib.join("pkgconfig")),
    );
    let flags: Vec<String> = text(&flags.stdout).split_whitespace().map(String::from).collect();
    let app = s.path().join("app");
    run_ok(
        Command::new("cc")
            .args(["-Wall", "-Wextra", "-Werror"])
            .arg(ws.join("examples/segment_image.c"))
            .args(&flags)
            .arg("-o")
            .arg(&app),
    );
    let ppm = s.path().join("in.ppm");
    let mut file = b"P6\n64 48\n255\n".to_vec();
    file.extend(picture(64, 48, 30, 20));
    std::fs::write(&ppm, file).unwrap();
    // LD_DEBUG=files shows which files the loader maps: the installed library and the ONNX
    // Runtime installed next to it (the trace is long: it is not echoed).
    let out = Command::new(&app)
        .arg("--model")
        .arg(&model)
        .arg("--out")
        .arg(s.path().join("mask.pgm"))
        .arg(&ppm)
        .env("LD_DEBUG", "files")
        .env_remove("SEMPART_ORT_LIBRARY")
        .env_remove("LD_LIBRARY_PATH")
        .output()
        .expect("run the application");
    print!("{}", text(&out.stdout));
    let trace = text(&out.stderr);
    assert!(out.status.success(), "the pkg-config application failed:\n{trace}");
    let sdk = lib.join("libsempart.so.0");
    let ort = lib.join("libonnxruntime.so.1.31.1");
    assert!(trace.contains(&format!("needed by {}", sdk.display())), "the application did not load {}", sdk.display());
    assert!(
        trace.contains(&format!("file={} [0];  dynamically loaded by {}", ort.display(), sdk.display())),
        "libsempart did not load the ONNX Runtime of the install tree ({})",
        ort.display()
    );

    if have("g++") {
        run_ok(
            Command::new("c++")
                .args(["-std=c++17", "-Wall", "-Wextra", "-Werror"])
                .arg(ws.join("examples/camera_pipeline.cpp"))
                .args(&flags)
                .arg("-o")
                .arg(s.path().join("camera")),
        );
    }

    if !have("cmake") {
        println!("skipped the CMake build: cmake is not installed");
        return;
    }
    let build = s.path().join("cmake-build");
    run_ok(
        Command::new("cmake")
            .arg("-S")
            .arg(ws.join("examples"))
            .arg("-B")
            .arg(&build)
            .arg(format!("-DCMAKE_PREFIX_PATH={}", prefix.display()))
            .arg("-DCMAKE_BUILD_TYPE=Release"),
    );
    run_ok(Command::new("cmake").arg("--build").arg(&build).args(["--parallel", "2"]));
    run_ok(
        Command::new(build.join("segment_image"))
            .arg("--model")
            .arg(&model)
            .arg("--out")
            .arg(s.path().join("mask2.pgm"))
            .arg(&ppm),
    );
}
