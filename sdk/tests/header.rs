//! The checked-in C header `include/sempart.h` must be exactly what cbindgen generates from
//! `src/capi/mod.rs` (sdk/build.rs writes it to `$OUT_DIR/sempart.h`).

use std::path::Path;

/// The header the build script generated for this very build.
const GENERATED: &str = include_str!(concat!(env!("OUT_DIR"), "/sempart.h"));

#[test]
fn checked_in_header_is_up_to_date() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../include/sempart.h");
    let checked_in = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    if checked_in != GENERATED {
        let line = checked_in
            .lines()
            .zip(GENERATED.lines())
            .position(|(a, b)| a != b)
            .map_or_else(|| checked_in.lines().count().min(GENERATED.lines().count()) + 1, |i| i + 1);
        panic!(
            "include/sempart.h is out of date: run scripts/update-header.sh \
             (first difference at line {line})"
        );
    }
}

#[test]
fn header_declares_every_exported_function() {
    // Every `#[no_mangle] pub extern "C" fn` of capi/mod.rs appears in the header.
    let capi = include_str!("../src/capi/mod.rs");
    let mut missing = Vec::new();
    let mut count = 0;
    for line in capi.lines() {
        if let Some(rest) = line.trim_start().strip_prefix("pub extern \"C\" fn ") {
            let name = rest.split('(').next().unwrap_or_default();
            count += 1;
            if !GENERATED.contains(&format!("{name}(")) {
                missing.push(name.to_string());
            }
        }
    }
    assert!(count > 20, "found only {count} exported functions in capi/mod.rs");
    assert!(missing.is_empty(), "functions missing from the header: {missing:?}");
}
