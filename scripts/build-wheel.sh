#!/usr/bin/env bash
# Builds the Python wheel of the SDK: the `sempart` package (bindings/python) with libsempart.so
# and ONNX Runtime (libonnxruntime.so.1.31.1, MIT, with its licence) inside it, so `pip install`
# is all an engine's environment (Triton's Python backend, a Ray worker) needs besides a model
# file. The model is not bundled (88 MB float, 24 MB int8): pass its path, or set SEMPART_MODEL.
#
#   scripts/build-wheel.sh [OUT]        (default: target/wheels)
#
# The wheel is tagged py3-none-linux_x86_64: any CPython 3.9+ (the package is pure Python over
# ctypes) on x86-64 Linux. libsempart.so built on Debian 12 needs glibc 2.34 or newer (ONNX
# Runtime's library 2.28). It is not a manylinux wheel: not built in a manylinux container
# nor checked with auditwheel.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out=$(mkdir -p "${1:-$root/target/wheels}" && cd "${1:-$root/target/wheels}" && pwd)
ort="$root/.deps/onnxruntime/libonnxruntime.so.1.31.1"
[ -f "$ort" ] || { echo "build-wheel: $ort is missing (run scripts/setup.sh)" >&2; exit 1; }
cd "$root"
cargo build --quiet --release -p sempart
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
cp -r bindings/python/pyproject.toml bindings/python/README.md bindings/python/sempart "$stage/"
rm -rf "$stage/sempart/__pycache__"
mkdir -p "$stage/sempart/_lib"
cp target/release/libsempart.so "$stage/sempart/_lib/"
# The release profile keeps line tables for profiling; the wheel does not need them (30 -> 9 MB).
strip --strip-debug "$stage/sempart/_lib/libsempart.so" 2>/dev/null || true
cp "$ort" "$stage/sempart/_lib/"
ort_licence=$(find .deps/wheels -maxdepth 1 -name 'onnxruntime-1.31.1-*.whl' | head -n 1)
if [ -n "$ort_licence" ]; then
  unzip -p "$ort_licence" '*/LICENSE' > "$stage/sempart/_lib/LICENSE.onnxruntime" 2>/dev/null || true
fi
cat >> "$stage/pyproject.toml" <<'TOML'

[tool.setuptools.package-data]
sempart = ["_lib/*"]
TOML
printf '[bdist_wheel]\nplat_name = linux_x86_64\n' > "$stage/setup.cfg"
python3 -m pip wheel --quiet --no-deps --no-build-isolation -w "$out" "$stage" 2>/dev/null \
  || python3 -m pip wheel --quiet --no-deps -w "$out" "$stage"
wheel=$(ls -t "$out"/sempart-*-py3-none-linux_x86_64.whl | head -n 1)
echo "build-wheel: $wheel ($(du -h "$wheel" | cut -f1))"
