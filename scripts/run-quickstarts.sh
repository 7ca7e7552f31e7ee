#!/usr/bin/env bash
# Builds and runs the README's quick starts (examples/quickstart/) on a model, so that they stay
# true: the C and C++ programs against the library cargo built, the Rust one as a cargo example,
# the Python one with the given interpreter. Each must print its two lines, the same in every
# host, and exit 0.
#
#   scripts/run-quickstarts.sh [MODEL.onnx] [PYTHON]   (defaults: tests/fixtures/tiny.onnx, .deps/python/bin/python)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
model=${1:-tests/fixtures/tiny.onnx}
python=${2:-.deps/python/bin/python}
lib=target/debug
# `cargo test` leaves the shared library only under target/debug/deps: build it where the
# examples link it (quick when the tests were built).
cargo build --quiet -p sempart
[ -f "$lib/libsempart.so" ] || { echo "run-quickstarts: $lib/libsempart.so is missing after cargo build -p sempart" >&2; exit 1; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT

check() { # NAME OUTPUT: the two lines every quick start prints
  grep -q '^foreground pixels: [0-9]* of 3072$' <<<"$2" && grep -q '^object box: ' <<<"$2" \
    || { echo "run-quickstarts: $1 printed something else:"; echo "$2"; exit 1; }
  # Every host runs the same SDK on the same frame: the same two lines.
  if [ -z "${first:-}" ]; then first=$2; elif [ "$2" != "$first" ]; then
    echo "run-quickstarts: $1 disagrees with the C quick start:"; echo "$2"; echo "$first"; exit 1
  fi
  echo "quickstart $1: ok ($(tr '\n' ' ' <<<"$2"))"
}
flags=(-Iinclude -Ibindings/cpp -L"$lib" -lsempart -Wl,-rpath,"$root/$lib")
cc -std=c11 -Wall -Wextra -Werror examples/quickstart/quickstart.c "${flags[@]}" -o "$tmp/qc"
check c "$("$tmp/qc" "$model")"
c++ -std=c++17 -Wall -Wextra -Werror examples/quickstart/quickstart.cpp "${flags[@]}" -o "$tmp/qcpp"
check c++ "$("$tmp/qcpp" "$model")"
check rust "$(cargo run --quiet -p sempart --example quickstart -- "$model")"
if [ -x "$python" ]; then
  check python "$(SEMPART_LIBRARY="$root/$lib/libsempart.so" "$python" examples/quickstart/quickstart.py "$model")"
else
  echo "run-quickstarts: $python is missing (the test command makes it before this step)" >&2; exit 1
fi
