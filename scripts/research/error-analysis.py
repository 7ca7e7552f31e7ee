#!/usr/bin/env python3
"""Where a model's fine masks go wrong on a labelled folder (quality round 3, docs/EXPERIMENTS.md).

Runs the SDK (Python binding, the refined fine probability at the image's size, as `sempart
eval` scores it) on every image of DATA/images and compares it with DATA/masks (PNG, >127
foreground, 128 ignored: the protocol of spec section 6). Prints:

- the mean IoU at thresholds 0.05 ... 0.95 (the product binarises at 0.5), and the mean of each
  image's best threshold (an oracle no product can reach: an upper bound of calibration);
- the IoU histogram at 0.5 and each bin's share of the lost IoU (1 - IoU, over all images);
- the images below IoU 0.3: how many the inverted mask would score better (a wrong foreground
  choice), how many predict more than twice the true area (over-segmentation), less than half;
- the mean IoU by the true object's share of the image;
- the mean IoU of label-free per-image threshold rules (Otsu's threshold of the map, twice the
  map's mean, half its maximum, and these combined with 0.5): can a rule reach the oracle?

Needs numpy and the SDK's library (scripts/setup.sh; the binding finds target/release). Images
and masks are decoded by the SDK's own decoder, so no imaging package is needed.

    .deps/python/bin/python scripts/research/error-analysis.py --model MODEL --data DATA [--limit N] [--json OUT]
"""

import argparse
import json
import os
import pathlib
import sys

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bindings" / "python"))
import sempart  # noqa: E402

THRESHOLDS = [round(0.05 * k, 2) for k in range(1, 20)]
IOU_BINS = [0.0, 0.1, 0.3, 0.5, 0.7, 0.9, 1.0001]
AREA_BINS = [0.0, 0.05, 0.15, 0.35, 1.0001]
LOW = 0.3


def otsu(prob):
    """Otsu's threshold of a probability map (256 bins on [0, 1])."""
    hist, edges = np.histogram(prob, bins=256, range=(0.0, 1.0))
    w = hist.astype(np.float64)
    centre = (edges[:-1] + edges[1:]) / 2
    w0 = np.cumsum(w)
    w1 = w0[-1] - w0
    s0 = np.cumsum(w * centre)
    m0 = s0 / np.maximum(w0, 1)
    m1 = (s0[-1] - s0) / np.maximum(w1, 1)
    return float(centre[np.argmax(w0 * w1 * (m0 - m1) ** 2)])


# Per-image threshold rules that read nothing but the map, given as (otsu, mean, max) of it.
RULES = {
    "0.5 (the product)": lambda otsu, mean, top: 0.5,
    "otsu": lambda otsu, mean, top: otsu,
    "otsu clipped to [0.35, 0.65]": lambda otsu, mean, top: min(max(otsu, 0.35), 0.65),
    "mean of otsu and 0.5": lambda otsu, mean, top: (otsu + 0.5) / 2,
    "max(0.5, otsu)": lambda otsu, mean, top: max(0.5, otsu),
    "2 x mean": lambda otsu, mean, top: min(max(2 * mean, 0.05), 0.95),
    "2 x mean clipped to [0.3, 0.7]": lambda otsu, mean, top: min(max(2 * mean, 0.3), 0.7),
    "max(0.5, 2 x mean)": lambda otsu, mean, top: min(max(0.5, 2 * mean), 0.95),
    "half the maximum": lambda otsu, mean, top: 0.5 * top,
}


def iou(pred, truth, scored):
    p, g = pred & scored, truth & scored
    union = np.count_nonzero(p | g)
    return 1.0 if union == 0 else np.count_nonzero(p & g) / union


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--data", required=True, help="folder with images/ and masks/")
    ap.add_argument("--limit", type=int, default=0, help="first N images only (sorted by name)")
    ap.add_argument("--json", help="also write the per-image numbers here")
    args = ap.parse_args()

    images = pathlib.Path(args.data) / "images"
    masks = pathlib.Path(args.data) / "masks"
    names = sorted(p.name for p in images.iterdir() if p.is_file())
    if args.limit:
        names = names[: args.limit]
    if not names:
        sys.exit(f"error: no images in {images}")

    model = sempart.Model(args.model)
    rows = []
    for name in names:
        mask_path = masks / (os.path.splitext(name)[0] + ".png")
        if not mask_path.is_file():
            sys.exit(f"error: {name} has no mask {mask_path}")
        pixels = sempart.decode((images / name).read_bytes())
        gray = sempart.decode(mask_path.read_bytes())[:, :, 0]
        prob = model.segment(pixels).fine_probability
        if prob.shape != gray.shape:
            sys.exit(f"error: {name}: mask {gray.shape} and image {prob.shape} differ in size")
        scored = gray != 128
        truth = gray > 127
        at = [iou(prob > t, truth, scored) for t in THRESHOLDS]
        stats = (otsu(prob), float(prob.mean()), float(prob.max()))
        pred = prob > 0.5
        n_scored = max(np.count_nonzero(scored), 1)
        rows.append(
            {
                "image": name,
                "iou": at[THRESHOLDS.index(0.5)],
                "iou_at": at,
                "iou_inverted": iou(~pred, truth, scored),
                "iou_rules": [iou(prob > rule(*stats), truth, scored) for rule in RULES.values()],
                "true_share": np.count_nonzero(truth & scored) / n_scored,
                "predicted_share": np.count_nonzero(pred & scored) / n_scored,
            }
        )

    n = len(rows)
    at = np.array([r["iou_at"] for r in rows])
    print(f"{n} images, model {args.model}")
    print("mean IoU by threshold:", " ".join(f"{t:.2f}:{v:.3f}" for t, v in zip(THRESHOLDS, at.mean(0))))
    print(f"mean of each image's best threshold (oracle): {at.max(1).mean():.3f}")

    ious = np.array([r["iou"] for r in rows])
    print(f"IoU at 0.5: {ious.mean():.3f}; by bin (images, share of the lost IoU):")
    for lo, hi in zip(IOU_BINS, IOU_BINS[1:]):
        m = (ious >= lo) & (ious < hi)
        print(f"  [{lo:.1f}, {min(hi, 1.0):.1f}{']' if hi > 1 else ')'}: {m.sum():4d} images, {(1 - ious[m]).sum() / n:.3f}")

    low = [r for r in rows if r["iou"] < LOW]
    inverted = [r for r in low if r["iou_inverted"] > r["iou"]]
    over = [r for r in low if r["predicted_share"] > 2 * r["true_share"]]
    under = [r for r in low if r["predicted_share"] < 0.5 * r["true_share"]]
    gain = sum(r["iou_inverted"] - r["iou"] for r in inverted) / n
    print(
        f"below IoU {LOW}: {len(low)} images; the inverted mask better on {len(inverted)} (mean IoU +{gain:.3f} "
        f"if all were inverted); predicted area > 2x the true one on {len(over)}, < 1/2 on {len(under)}"
    )

    share = np.array([r["true_share"] for r in rows])
    print("mean IoU by the object's share of the image:")
    for lo, hi in zip(AREA_BINS, AREA_BINS[1:]):
        m = (share >= lo) & (share < hi)
        if m.any():
            print(f"  [{lo:.2f}, {min(hi, 1.0):.2f}): {m.sum():4d} images, IoU {ious[m].mean():.3f}")

    rules = np.array([r["iou_rules"] for r in rows]).mean(0)
    print("mean IoU of per-image threshold rules:", "; ".join(f"{k} {v:.4f}" for k, v in zip(RULES, rules)))

    if args.json:
        with open(args.json, "w") as f:
            json.dump({"model": args.model, "thresholds": THRESHOLDS, "rules": list(RULES), "images": rows}, f)


if __name__ == "__main__":
    main()
