"""Segment a folder of images with Ray Data, one `sempart.Model` per actor.

    python examples/python/ray_segment.py IN OUT [--address A] [--model M] [--actors N]

Reads the files as bytes (`ray.data.read_binary_files`; the SDK decodes them, not Ray's PIL
reader, so every mask equals `sempart segment`'s), segments them in actors (`map_batches` with
a callable class: each actor opens the model once), writes `<stem>.mask.png` per image and
`boxes.json` (the same layout as `sempart segment`'s) into OUT. A file that cannot be read or
decoded is reported and skipped; the job exits with status 1 when any failed, as `sempart
segment` does. `--address` joins a running Ray cluster (e.g. `ray://head:10001` or `auto`);
without it Ray starts on this machine. See docs/SCALE_OUT.md.
"""
import argparse
import json
import os
import struct
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import ray

import sempart

EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".pnm", ".ppm", ".pgm"}


def mask_png(mask):
    """A grayscale 8-bit PNG of a uint8 [h, w] mask (no dependency beyond zlib)."""
    h, w = mask.shape
    raw = b"".join(b"\0" + mask[y].tobytes() for y in range(h))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b"")


class Segment:
    """One actor: opens the model once, segments batches of files, writes their masks."""

    def __init__(self, model, out):
        self.model = sempart.Model(model) if model else sempart.Model()
        self.out = Path(out)

    def __call__(self, batch):
        rows = {"path": [], "stem": [], "entry": [], "error": []}
        for data, path in zip(batch["bytes"], batch["path"]):
            stem = Path(path).stem
            try:
                r = self.model.segment_encoded(bytes(data))
                (self.out / f"{stem}.mask.png").write_bytes(mask_png(r.fine_mask))
                entry = {
                    "boxes": [{"x0": b.x0, "y0": b.y0, "x1": b.x1, "y1": b.y1, "pixels": b.pixel_count} for b in r.boxes],
                    "object": list(r.object_box) if r.object_box else None,
                    "width": int(r.fine_mask.shape[1]),
                    "height": int(r.fine_mask.shape[0]),
                    "mask": f"{stem}.mask.png",
                }
                rows["entry"].append(json.dumps(entry))
                rows["error"].append("")
            except Exception as e:  # reported by the driver; the other files go on
                rows["entry"].append("")
                rows["error"].append(str(e))
            rows["path"].append(path)
            rows["stem"].append(stem)
        return {k: np.array(v, dtype=object) for k, v in rows.items()}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("inputs", type=Path, help="folder of images")
    ap.add_argument("out", type=Path, help="output folder (created if missing)")
    ap.add_argument("--address", help="Ray cluster to join (default: start Ray here)")
    ap.add_argument("--model", help="model file (default: the SDK's default model)")
    ap.add_argument("--actors", type=int, default=0, help="segmenting actors (default: one per 2 CPUs)")
    ap.add_argument("--batch-size", type=int, default=8)
    args = ap.parse_args(argv)

    files = sorted(str(p) for p in args.inputs.iterdir() if p.suffix.lower() in EXTENSIONS and p.is_file())
    if not files:
        print(f"ray_segment: no images in {args.inputs}", file=sys.stderr)
        return 2
    stems = [Path(f).stem for f in files]
    if len(set(stems)) != len(stems):
        print("ray_segment: two files share a name stem; their masks would collide", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    ray.init(address=args.address, log_to_driver=False, include_dashboard=False)
    actors = args.actors or max(1, int(ray.cluster_resources().get("CPU", 2)) // 2)
    start = time.perf_counter()
    ds = ray.data.read_binary_files(files, include_paths=True)
    ds = ds.map_batches(
        Segment,
        fn_constructor_args=(args.model, str(args.out.resolve())),
        batch_size=args.batch_size,
        concurrency=actors,
        num_cpus=1,
    )
    rows = ds.take_all()
    seconds = time.perf_counter() - start
    images, failed = {}, 0
    for row in rows:
        if row["error"]:
            failed += 1
            print(f"ray_segment: {row['path']}: {row['error']}", file=sys.stderr)
        else:
            images[row["path"]] = json.loads(row["entry"])
    doc = {"images": dict(sorted(images.items()))}
    (args.out / "boxes.json").write_text(json.dumps(doc, indent=2))
    print(f"segmented {len(images)} of {len(files)} images into {args.out} ({failed} failed) "
          f"in {seconds:.1f} s with {actors} actor(s): {len(images) / seconds:.2f} images/s")
    ray.shutdown()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
