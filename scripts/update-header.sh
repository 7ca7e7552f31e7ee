#!/usr/bin/env bash
# Regenerates include/sempart.h from sdk/src/capi/mod.rs (cbindgen runs in sdk/build.rs).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
cargo build --quiet -p sempart --lib
header=$(ls -t target/debug/build/sempart-*/out/sempart.h | head -n 1)
cp "$header" include/sempart.h
echo "include/sempart.h updated from $header"
