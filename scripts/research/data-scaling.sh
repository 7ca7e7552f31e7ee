#!/usr/bin/env bash
# docs/EXPERIMENTS.md's data-quantity probe (issue 18, "more unlabelled photos"): the coarse phase of the
# committed recipe trained on every photo, every 2nd and every 4th (names in C-locale order),
# with the same number of steps (10, 20 and 40 coarse-only epochs), for each seed, and scored
# with `trainer eval --refine-radius 0` on davis16 and horses (coarse IoU / maxF). How much the
# coarse map gains per doubling of the photos says what more photos could buy. The subsets are
# folders of symbolic links, so the feature cache (keyed by content) is shared with the full
# set. Prints Markdown; checkpoints and JSON stay in the output folder. Needs
# scripts/setup.sh --trainer and ../shared/data. About 20 minutes on 2 cores with the features
# cached.
#   scripts/research/data-scaling.sh [OUT_DIR]              (default: out/data-scaling)
#   STRIDES="1 2" SEEDS=0 scripts/research/data-scaling.sh   (a subset)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
out=${1:-out/data-scaling}
strides=${STRIDES:-1 2 4}
seeds=${SEEDS:-0 1 2}
data=../shared/data
photos=$(cd "$data/photos" && pwd)
mkdir -p "$out"
out=$(cd "$out" && pwd)
cargo build --quiet --release -p trainer
trainer=./target/release/trainer
for stride in $strides; do
  subset="$out/photos-every-$stride"
  if [ ! -d "$subset" ]; then
    mkdir -p "$subset.tmp"
    i=0
    while IFS= read -r name; do
      if [ $((i % stride)) -eq 0 ]; then
        ln -s "$photos/$name" "$subset.tmp/$name"
      fi
      i=$((i + 1))
    done < <(ls "$photos" | LC_ALL=C sort)
    mv "$subset.tmp" "$subset"
  fi
  epochs=$((10 * stride))
  for seed in $seeds; do
    run="$out/every-$stride-seed-$seed"
    if [ ! -f "$run/checkpoint.safetensors" ]; then
      "$trainer" train --config models/default/config.toml --overwrite \
        --set "out_dir=$run" --set "schedule.seed=$seed" \
        --set "data.train_dirs=[\"$subset\"]" \
        --set "schedule.epochs=$epochs" --set "schedule.coarse_only_epochs=$epochs" > "$run.log" 2>&1
    fi
    for set in davis16 horses; do
      json="$run-$set.json"
      [ -s "$json" ] || "$trainer" eval --checkpoint "$run/checkpoint.safetensors" --data "$data/$set" --refine-radius 0 > "$json"
    done
  done
done
python3 - "$out" "$strides" "$seeds" <<'PY'
import json, os, sys
d, strides, seeds = sys.argv[1], sys.argv[2].split(), sys.argv[3].split()
print(f"| photos (steps held equal) | davis16 coarse IoU, seeds {' / '.join(seeds)} (mean) | horses coarse IoU (mean) |")
print("| --- | --- | --- |")
for k in strides:
    n = len(os.listdir(os.path.join(d, f"photos-every-{k}")))
    cells = []
    for s in ["davis16", "horses"]:
        ious = [json.load(open(os.path.join(d, f"every-{k}-seed-{seed}-{s}.json")))["coarse"]["iou"] for seed in seeds]
        cells.append(" / ".join(f"{x:.3f}" for x in ious) + f" ({sum(ious) / len(ious):.3f})")
    print(f"| {n} (every {k}, {10 * int(k)} epochs) | {cells[0]} | {cells[1]} |")
PY
