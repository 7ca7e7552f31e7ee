#!/usr/bin/env bash
# Scale-out checks with the real engines, on this machine and 127.0.0.1 only (docs/SCALE_OUT.md):
#   1. the wheel (scripts/build-wheel.sh) installs into a fresh venv made with the system's
#      python3 (Triton's Python backend stub links the system's libpython), beside
#      nvidia-pytriton 0.7.0 (which bundles tritonserver 2.51), tritonclient and ray[data];
#   2. `sempart export-triton` writes a repository, and tests/scale_out/check_triton.py serves
#      it with the bundled tritonserver: 64 HTTP + 64 gRPC requests from 8 threads with bad
#      requests among them; masks equal `sempart segment`'s, batching seen, errors isolated;
#   3. examples/python/ray_segment.py on a local Ray (2 CPUs) over 50 photos and a corrupt file:
#      masks equal `sempart segment`'s, the corrupt file reported, exit status 1 as the CLI's;
#      the throughput of both is printed.
# Needs scripts/setup.sh --scale-out (python3-venv and libpython from apt) and network access to
# PyPI (pip's cache makes later runs quick).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
out="$root/target/scale-out"
venv="$root/.deps/scale-out-venv"
py=${SEMPART_SYSTEM_PYTHON:-/usr/bin/python3}
rm -rf "$out" && mkdir -p "$out"

echo "-- the wheel, into a fresh venv ($py)"
scripts/build-wheel.sh "$out/wheels"
rm -rf "$venv"
"$py" -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check "$out"/wheels/sempart-*.whl \
  "nvidia-pytriton==0.7.0" "tritonclient[http,grpc]==2.73.0" "ray[data]==2.60.0" "pyarrow==18.1.0"
(cd "$out" && "$venv/bin/python" -c 'import sempart; p = sempart.library_path(); print("sempart", sempart.version(), "from", p); assert "/site-packages/sempart/_lib/" in str(p), p')

export SEMPART_MODEL="$root/models/sempart-default-int8.onnx"
cargo build --quiet --release -p sempart-cli
sempart="$root/target/release/sempart"

echo "-- Triton: export-triton, then the bundled tritonserver"
"$sempart" segment --out "$out/cli-examples" examples/images >/dev/null
"$sempart" export-triton --out "$out/triton"
timeout 900 "$venv/bin/python" tests/scale_out/check_triton.py --repo "$out/triton" \
  --expected "$out/cli-examples" --log "$out/triton.log" examples/images/*.png examples/images/*.jpg

echo "-- Ray: examples/python/ray_segment.py on a local Ray, 50 photos and a corrupt file"
mkdir -p "$out/ray-in"
# The first 50 photos by name (read whole, then cut: `| head` would end `sort` with SIGPIPE, which
# pipefail turns into a failure when the timing is unlucky).
mapfile -t photos < <(find "$root/../shared/data/photos" -maxdepth 1 -name '*.jpg' | sort)
[ "${#photos[@]}" -ge 50 ] || { echo "fewer than 50 photos in ../shared/data/photos"; exit 1; }
cp "${photos[@]:0:50}" "$out/ray-in/"
printf 'this is not a JPEG' > "$out/ray-in/zz-corrupt.jpg"
start=$(date +%s.%N)
if "$sempart" segment --out "$out/cli-ray" "$out/ray-in" > "$out/cli-ray.txt" 2>&1; then
  echo "sempart segment succeeded with a corrupt file among the inputs"; exit 1
fi
cli_s=$(python3 -c "print($(date +%s.%N) - $start)")
set +e
(cd "$out" && RAY_memory_monitor_refresh_ms=0 timeout 900 "$venv/bin/python" "$root/examples/python/ray_segment.py" \
  "$out/ray-in" "$out/ray-out" --model "$SEMPART_MODEL") > "$out/ray.txt" 2> "$out/ray.err"
status=$?
set -e
cat "$out/ray.txt"
grep -q "zz-corrupt.jpg" "$out/ray.err" || { echo "ray_segment did not report the corrupt file"; cat "$out/ray.err"; exit 1; }
[ "$status" = 1 ] || { echo "ray_segment exited with $status, expected 1 (one file failed)"; tail -20 "$out/ray.err"; exit 1; }
"$venv/bin/python" - "$out/cli-ray" "$out/ray-out" "$cli_s" <<'PY'
import json, sys
from pathlib import Path
import numpy as np
import sempart
cli, ray_out, cli_s = Path(sys.argv[1]), Path(sys.argv[2]), float(sys.argv[3])
masks = sorted(p.name for p in cli.glob("*.mask.png"))
assert len(masks) == 50 and masks == sorted(p.name for p in ray_out.glob("*.mask.png")), "the two runs wrote different masks"
differ = [m for m in masks if not np.array_equal(sempart.decode((cli / m).read_bytes()), sempart.decode((ray_out / m).read_bytes()))]
assert not differ, f"masks differ from sempart segment's: {differ[:5]}"
a, b = json.loads((cli / "boxes.json").read_text())["images"], json.loads((ray_out / "boxes.json").read_text())["images"]
key = lambda d: {Path(k).name: (v["object"], [(x["x0"], x["y0"], x["x1"], x["y1"]) for x in v["boxes"]]) for k, v in d.items()}
assert key(a) == key(b), "the boxes differ from sempart segment's"
print(f"ray: 50 masks and boxes equal sempart segment's; sempart segment took {cli_s:.1f} s for the same 51 files "
      f"({50 / cli_s:.2f} images/s, one process)")
PY
echo "scale-out checks passed"
