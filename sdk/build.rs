//! Generates the C header from `src/capi.rs` into `$OUT_DIR/sempart.h`, and gives the shared
//! library its soname. The checked-in `include/sempart.h` must equal the generated file; a test
//! (`tests/header.rs`) fails when they drift.

fn main() {
    let crate_dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let out_dir = std::env::var("OUT_DIR").expect("cargo sets OUT_DIR");
    println!("cargo:rerun-if-changed=src");
    println!("cargo:rerun-if-changed=cbindgen.toml");
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libsempart.so.0");

    let config = cbindgen::Config::from_file(format!("{crate_dir}/cbindgen.toml")).expect("read cbindgen.toml");
    match cbindgen::Builder::new().with_crate(&crate_dir).with_config(config).generate() {
        Ok(bindings) => {
            bindings.write_to_file(format!("{out_dir}/sempart.h"));
        }
        Err(e) => panic!("cbindgen could not generate the header: {e}"),
    }
}
