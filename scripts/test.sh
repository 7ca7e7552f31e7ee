#!/usr/bin/env bash
# Sets everything up on a fresh machine and runs every check CI runs: formatting, clippy,
# the header drift check and all tests (Rust, C and C++). `.ci/run` runs exactly this.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

"$root/scripts/setup.sh" --trainer --gstreamer --scale-out

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy -D warnings"
cargo clippy --workspace --all-targets -- -D warnings
echo "== source files at most 500 lines (docs/ARCHITECTURE.md)"
long=$(find sdk/src trainer/src cli/src bindings/gstreamer/src -name '*.rs' -exec wc -l {} + | awk '$2 != "total" && $1 > 500')
if [ -n "$long" ]; then
  echo "longer than 500 lines (split the file by job, or say why in docs/ARCHITECTURE.md and raise this limit):"
  echo "$long"
  exit 1
fi
echo "== no module imports another that imports it back, directly or in a loop (scripts/check-module-cycles.py)"
python3 scripts/check-module-cycles.py --self-test
python3 scripts/check-module-cycles.py
echo "== the library depends on nothing only the command needs (no clap, indicatif, anyhow)"
# Build-time proc-macros count too: the ONNX messages implement prost::Message by hand
# (sdk/src/model/onnx/wire.rs) because prost's derive brings in anyhow.
if cargo tree -p sempart -e normal --prefix none | grep -E "^(clap|indicatif|anyhow) "; then
  echo "the sempart library depends on the command's crates (above): move that code to cli/"
  exit 1
fi
echo "== cargo test"
# The GStreamer element's test compares its masks with the ones `sempart segment` writes here.
cargo run --release --quiet -p sempart-cli -- segment --out target/gst-check/cli examples/images/*.png
# The fuzz targets run once each here and for their time budget in the next step.
SEMPART_GST_CLI_MASKS="$root/target/gst-check/cli" SEMPART_FUZZ_SECONDS=0 cargo test --workspace
echo "== the GStreamer plugin file in gst-launch-1.0 (bindings/gstreamer)"
cargo build --quiet -p gst-plugin-sempart
export GST_PLUGIN_PATH="$root/target/debug"
gst-inspect-1.0 sempartseg >/dev/null
gst-launch-1.0 -q videotestsrc num-buffers=60 ! video/x-raw,format=NV12,width=640,height=480 \
  ! sempartseg ! fakesink
gst-launch-1.0 -q videotestsrc num-buffers=60 ! video/x-raw,format=RGB,width=320,height=240 \
  ! sempartseg mode=alpha stability=0.5 ! videoconvert ! fakesink
if gst-launch-1.0 -q videotestsrc num-buffers=3 ! sempartseg model=/no/such/model.onnx ! fakesink 2>target/gst-check/bad.txt; then
  echo "gst-launch-1.0 succeeded with a missing model"; exit 1
fi
grep -q "cannot open the model /no/such/model.onnx" target/gst-check/bad.txt
echo "gst-launch-1.0: 60 frames at 640x480 (roi) and 320x240 (alpha) passed; a missing model is an error"
unset GST_PLUGIN_PATH
echo "== the AVX2 pixel loops give the baseline's bits, optimised as shipped (sdk/src/simd.rs)"
cargo test --release -p sempart --lib simd::
echo "== fuzz (sdk/tests/fuzz.rs, 20 s per target, 3 targets in parallel; scripts/fuzz.sh for longer)"
SEMPART_FUZZ_SECONDS=20 cargo test -p sempart --test fuzz -- --nocapture --test-threads 3 2>&1 | grep -E "^fuzz |^  \(|test result|panicked|FAILED"
echo "== Python host (bindings/python, pytest in .deps/python)"
if [ ! -x .deps/python/bin/python ]; then
  python3 -m venv .deps/python
fi
.deps/python/bin/pip install --quiet --disable-pip-version-check ./bindings/python pytest
.deps/python/bin/python -m pytest -q bindings/python/tests
echo "== the README: quick starts equal their files, at most 300 lines, links resolve (scripts/check-readme.py)"
python3 scripts/check-readme.py --self-test
python3 scripts/check-readme.py
echo "== the quick starts build and run in every host (scripts/run-quickstarts.sh)"
scripts/run-quickstarts.sh models/sempart-default-int8.onnx .deps/python/bin/python
echo "== retraining as a user would: tiny photo folder, fixture backbone, train, export, int8, segment, eval (scripts/test-retraining.sh)"
scripts/test-retraining.sh
echo "== scale-out: the wheel in a fresh venv, Triton and Ray on this machine (scripts/test-scale-out.sh)"
scripts/test-scale-out.sh
echo "== all checks passed"
