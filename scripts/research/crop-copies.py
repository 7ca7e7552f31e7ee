#!/usr/bin/env python3
"""Crop copies of the training photos, the augmentation probe of quality round 2 (docs/EXPERIMENTS.md).

For every photo of SRC (names in sorted order), one random crop of 35 to 80 % of its area with
its aspect ratio jittered by 3/4 to 4/3, written to DST as JPEG (quality 95). The crops are
drawn from Python's random.Random(SEED), so the same SEED gives the same windows. Train on
them beside the photos, e.g. with the steps of the committed recipe held equal:

    trainer train --config models/default/config.toml \
      --set 'data.train_dirs=["../shared/data/photos", "DST"]' \
      --set schedule.epochs=9 --set schedule.coarse_only_epochs=5

Needs Pillow (pip install pillow).

    scripts/research/crop-copies.py SRC DST [--seed 0]
"""

import argparse
import os
import random
import sys

from PIL import Image

MIN_AREA, MAX_AREA = 0.35, 0.80
MIN_ASPECT, MAX_ASPECT = 3 / 4, 4 / 3
TRIES = 20
FALLBACK_SIDE = 0.7


def crop_window(rng, w, h):
    """(x, y, width, height) of one crop of a w x h image."""
    for _ in range(TRIES):
        area = rng.uniform(MIN_AREA, MAX_AREA) * w * h
        aspect = rng.uniform(MIN_ASPECT, MAX_ASPECT) * w / h
        cw, ch = int(round((area * aspect) ** 0.5)), int(round((area / aspect) ** 0.5))
        if cw <= w and ch <= h:
            break
    else:
        cw, ch = int(w * FALLBACK_SIDE), int(h * FALLBACK_SIDE)
    return rng.randint(0, w - cw), rng.randint(0, h - ch), cw, ch


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("src")
    parser.add_argument("dst")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    names = sorted(os.listdir(args.src))
    if not names:
        sys.exit(f"crop-copies: no file in {args.src}")
    os.makedirs(args.dst, exist_ok=True)
    rng = random.Random(args.seed)
    for name in names:
        try:
            image = Image.open(os.path.join(args.src, name)).convert("RGB")
        except OSError as e:
            sys.exit(f"crop-copies: {name}: {e}")
        x, y, cw, ch = crop_window(rng, *image.size)
        out = os.path.join(args.dst, "crop_" + os.path.splitext(name)[0] + ".jpg")
        image.crop((x, y, x + cw, y + ch)).save(out, quality=95)
    print(f"wrote {len(names)} crops to {args.dst}")


if __name__ == "__main__":
    main()
