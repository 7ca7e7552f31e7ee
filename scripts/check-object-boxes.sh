#!/usr/bin/env bash
# The box list's minimum component size leaves every object box as it was: segments the dev sets
# (davis16, horses, duts-te-dev) with `--min-component-fraction 0` (every component listed) and
# with the default, and compares the object box of every image (CorLoc reads only those) and the
# number of boxes. docs/CAMERA.md ("Boxes a pipeline can use") quotes its output.
#
#   scripts/check-object-boxes.sh [OUT]     (default out/object-boxes; MODEL= to pick a model)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
out=${1:-out/object-boxes}
cargo build --quiet --release -p sempart-cli
model=()
[ -n "${MODEL:-}" ] && model=(--model "$MODEL")
for set in davis16 horses duts-te-dev; do
  for f in 0 default; do
    args=()
    [ "$f" != default ] && args=(--min-component-fraction "$f")
    ./target/release/sempart segment "${model[@]}" "${args[@]}" --out "$out/$set-$f" "../shared/data/$set/images" >/dev/null
  done
  python3 - "$out/$set-0/boxes.json" "$out/$set-default/boxes.json" "$set" <<'PY'
import json, sys
every, default = (json.load(open(p))["images"] for p in sys.argv[1:3])
assert every.keys() == default.keys(), "the two runs segmented different images"
changed = [k for k in every if every[k]["object"] != default[k]["object"]]
n_every = sum(len(v["boxes"]) for v in every.values())
n_default = sum(len(v["boxes"]) for v in default.values())
print(f"{sys.argv[3]}: {len(every)} images, object boxes changed: {len(changed)}; "
      f"boxes per image {n_every / len(every):.1f} (every component) -> {n_default / len(every):.1f} (default)")
sys.exit(1 if changed else 0)
PY
done
