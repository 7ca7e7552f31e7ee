#!/usr/bin/env bash
# Installs the Sempart SDK (C API, C++ wrapper, pkg-config and CMake packages) under PREFIX:
#
#   PREFIX/lib/libsempart.so.X.Y.Z            the library (soname libsempart.so.X)
#   PREFIX/lib/libsempart.so.X -> .X.Y.Z      run-time link
#   PREFIX/lib/libsempart.so   -> .X          link-time link
#   PREFIX/lib/libonnxruntime.so.1.31.1       ONNX Runtime, which libsempart loads from its own folder
#   PREFIX/include/sempart.h, sempart.hpp     C header, header-only C++17 wrapper
#   PREFIX/lib/pkgconfig/sempart.pc           cc app.c $(pkg-config --cflags --libs sempart)
#   PREFIX/lib/cmake/Sempart/                 find_package(Sempart) -> Sempart::sempart
#   PREFIX/share/doc/sempart/                 C_API.md and the examples
#   PREFIX/bin/sempart                        the command (when built alongside the library)
#   PREFIX/share/sempart/sempart-default.onnx the default model (when setup composed it) and
#   PREFIX/share/sempart/sempart-default-int8.onnx its int8 variant; the
#                                             installed command and library find it without --model
#
# usage: scripts/install.sh [--lib-dir DIR] PREFIX
#   Builds the release library first (cargo build --release -p sempart --lib), unless
#   --lib-dir names a folder holding an already built libsempart.so (e.g. target/debug).
#   Needs .deps/onnxruntime from scripts/setup.sh. Re-running it updates the install.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
say() { printf 'install: %s\n' "$*"; }
die() { printf 'install: error: %s\n' "$*" >&2; exit 1; }
usage() { echo "usage: $0 [--lib-dir DIR] PREFIX" >&2; exit 2; }

lib_dir=""
prefix=""
while [ $# -gt 0 ]; do
  case "$1" in
    --lib-dir) [ $# -ge 2 ] || usage; lib_dir=$2; shift 2 ;;
    -h|--help) usage ;;
    -*) usage ;;
    *) [ -z "$prefix" ] || usage; prefix=$1; shift ;;
  esac
done
[ -n "$prefix" ] || usage

# The version is the one the header states (SEMPART_VERSION_*), i.e. the ABI's.
header="$root/include/sempart.h"
version_part() { sed -n "s/^#define SEMPART_VERSION_$1 \([0-9][0-9]*\)$/\1/p" "$header"; }
major=$(version_part MAJOR); minor=$(version_part MINOR); patch=$(version_part PATCH)
[ -n "$major" ] && [ -n "$minor" ] && [ -n "$patch" ] || die "no SEMPART_VERSION_* in $header"
version="$major.$minor.$patch"

ort="$root/.deps/onnxruntime/libonnxruntime.so.1.31.1"
[ -f "$ort" ] || die "$ort is missing: run scripts/setup.sh"

if [ -z "$lib_dir" ]; then
  say "building the release library"
  (cd "$root" && cargo build --release --quiet -p sempart -p sempart-cli)
  lib_dir="$root/target/release"
fi
built="$lib_dir/libsempart.so"
[ -f "$built" ] || die "$built is missing"
soname=$(readelf -d "$built" 2>/dev/null | sed -n 's/.*Library soname: \[\(.*\)\]/\1/p')
[ "$soname" = "libsempart.so.$major" ] || die "$built has soname '$soname', expected libsempart.so.$major"

mkdir -p "$prefix"
prefix=$(cd "$prefix" && pwd)
lib="$prefix/lib"
mkdir -p "$lib/pkgconfig" "$lib/cmake/Sempart" "$prefix/include" "$prefix/share/doc/sempart/examples"

install -m 755 "$built" "$lib/libsempart.so.$version"
ln -sfn "libsempart.so.$version" "$lib/libsempart.so.$major"
ln -sfn "libsempart.so.$major" "$lib/libsempart.so"
install -m 755 "$ort" "$lib/"
for extra in "$root"/.deps/onnxruntime/libonnxruntime_providers_*.so; do
  if [ -f "$extra" ]; then install -m 755 "$extra" "$lib/"; fi
done

install -m 644 "$header" "$prefix/include/sempart.h"
install -m 644 "$root/bindings/cpp/sempart.hpp" "$prefix/include/sempart.hpp"

subst() {
  sed -e "s|@PREFIX@|$prefix|g" -e "s|@VERSION@|$version|g" -e "s|@SOVERSION@|$major|g" \
      -e "s|@MAJOR@|$major|g" -e "s|@MINOR@|$minor|g" "$1" > "$2"
}
subst "$root/packaging/sempart.pc.in" "$lib/pkgconfig/sempart.pc"
subst "$root/packaging/SempartConfig.cmake.in" "$lib/cmake/Sempart/SempartConfig.cmake"
subst "$root/packaging/SempartConfigVersion.cmake.in" "$lib/cmake/Sempart/SempartConfigVersion.cmake"

# The command and the default model. An installed `sempart` looks for the model in
# ../share/sempart/ and for ONNX Runtime in ../lib/ from its own folder.
if [ -x "$lib_dir/sempart" ]; then
  mkdir -p "$prefix/bin"
  install -m 755 "$lib_dir/sempart" "$prefix/bin/sempart"
fi
for name in sempart-default sempart-default-int8; do
  model="$root/models/$name.onnx"
  if [ -f "$model" ]; then
    (cd "$root/models" && sha256sum --check --quiet "$name.sha256") \
      || die "$model does not match models/$name.sha256: run scripts/setup.sh"
    mkdir -p "$prefix/share/sempart"
    install -m 644 "$model" "$prefix/share/sempart/$name.onnx"
  else
    say "no models/$name.onnx to install (run scripts/setup.sh first to include it)"
  fi
done

install -m 644 "$root/docs/C_API.md" "$prefix/share/doc/sempart/"
for f in "$root"/examples/*; do
  if [ -f "$f" ]; then install -m 644 "$f" "$prefix/share/doc/sempart/examples/"; fi
done

say "Sempart SDK $version -> $prefix"
say "build an application with:"
say "  PKG_CONFIG_PATH=$lib/pkgconfig cc app.c \$(pkg-config --cflags --libs sempart)"
