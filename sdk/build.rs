//! Generates the C header from `src/capi/mod.rs` into `$OUT_DIR/sempart.h`, and gives the shared
//! library its soname. The checked-in `include/sempart.h` must equal the generated file; a test
//! (`tests/header.rs`) fails when they drift.

/// A program linked against `target/<profile>/libsempart.so` asks the loader for the soname
/// `libsempart.so.0`: this leaves that name beside the library (a link to it, made before the
/// library itself is linked), so such a program starts with `-Wl,-rpath` or `LD_LIBRARY_PATH`
/// pointing there. `OUT_DIR` is `target/<profile>/build/sempart-<hash>/out`.
fn soname_link(out_dir: &str) {
    let Some(profile_dir) = std::path::Path::new(out_dir).ancestors().nth(3) else { return };
    let link = profile_dir.join("libsempart.so.0");
    if std::fs::read_link(&link).is_err() {
        // A failure only costs the convenience link; the build goes on.
        let _ = std::os::unix::fs::symlink("libsempart.so", &link);
    }
}

fn main() {
    let crate_dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let out_dir = std::env::var("OUT_DIR").expect("cargo sets OUT_DIR");
    println!("cargo:rerun-if-changed=src");
    println!("cargo:rerun-if-changed=cbindgen.toml");
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libsempart.so.0");
    soname_link(&out_dir);

    let config = cbindgen::Config::from_file(format!("{crate_dir}/cbindgen.toml")).expect("read cbindgen.toml");
    match cbindgen::Builder::new().with_crate(&crate_dir).with_config(config).generate() {
        Ok(bindings) => {
            bindings.write_to_file(format!("{out_dir}/sempart.h"));
        }
        Err(e) => panic!("cbindgen could not generate the header: {e}"),
    }
}
