#!/usr/bin/env bash
# Temporal stability of streams on real video: the 20 DAVIS-2016 validation sequences, every
# frame (docs/CAMERA.md quotes its table). Per sequence and as the mean over sequences: J (mean
# IoU against the ground truth) and the flicker (the share of the mask that changes from one
# frame to the next where the ground truth does not), for per-frame segmentation and for
# streams, with the same model in the same run (`sempart eval-video`).
#
#   scripts/temporal-stability.sh [SEQUENCES] [OUT]    (defaults: .deps/data/davis16-seq, out/temporal)
#
# The sequences come from a snapshot of the public GitHub repository MathLee/EOR-VOS:
#   ../shared/data/get-davis-seq.sh GITDIR .deps/data/davis16-seq
# MODEL (default: the CPU default model) and the stream settings can be set from the environment:
#   STRENGTHS="0 0.2 0.3 0.5"  HYSTERESES="0.1 0.2"  MOTION="64"   (defaults: 0.3 0.6 0.8, 0.12, 255)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
seq_dir=${1:-.deps/data/davis16-seq}
out=${2:-out/temporal}
[ -d "$seq_dir" ] || { echo "temporal-stability: no $seq_dir (see the comment at the top of this script)" >&2; exit 1; }
cargo build --quiet --release -p sempart-cli
args=()
for s in ${STRENGTHS:-0.3 0.6 0.8}; do args+=(--strength "$s"); done
for h in ${HYSTERESES:-0.12}; do args+=(--hysteresis "$h"); done
for m in ${MOTION:-255}; do args+=(--motion-threshold "$m"); done
[ -n "${MODEL:-}" ] && args+=(--model "$MODEL")
mkdir -p "$out"
./target/release/sempart eval-video --sequences "$seq_dir" "${args[@]}" | tee "$out/davis.txt"
echo "temporal-stability: the table is in $out/davis.txt"
