//! Lets the trainer's binaries and tests find libtorch at run time without LD_LIBRARY_PATH:
//! an rpath to the libtorch that scripts/setup.sh installs (or `$LIBTORCH`).

fn main() {
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    let lib = match std::env::var("LIBTORCH") {
        Ok(dir) => std::path::PathBuf::from(dir).join("lib"),
        Err(_) => std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../.deps/libtorch/lib"),
    };
    let lib = std::fs::canonicalize(&lib).unwrap_or(lib);
    println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());
}
