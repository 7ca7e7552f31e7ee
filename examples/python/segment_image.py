"""Segments one image file: writes the fine mask as a PNG and prints the boxes.

    python examples/python/segment_image.py photo.jpg mask.png [--model M]

Reads the image with Pillow when it is installed, else with OpenCV; binary PPM/PGM files need
neither. Writes the mask with the same library (PPM/PGM input: a PGM mask).
"""

import argparse
import sys
from pathlib import Path

import numpy as np

import sempart


def read_image(path):
    """RGB uint8 [h, w, 3]."""
    data = Path(path).read_bytes()
    if data[:2] in (b"P6", b"P5"):
        parts = data.split(maxsplit=4)
        w, h, body = int(parts[1]), int(parts[2]), parts[4]
        channels = 3 if data[:2] == b"P6" else 1
        img = np.frombuffer(body, np.uint8, w * h * channels).reshape(h, w, channels)
        return np.repeat(img, 3, axis=2) if channels == 1 else img
    try:
        from PIL import Image
        return np.asarray(Image.open(path).convert("RGB"))
    except ImportError:
        pass
    try:
        import cv2
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if bgr is None:
            raise OSError(f"cannot read {path}")
        return np.ascontiguousarray(bgr[:, :, ::-1])
    except ImportError:
        raise SystemExit("reading this image needs Pillow or OpenCV (pip install pillow), or pass a PPM file")


def write_mask(path, mask):
    if str(path).lower().endswith((".pgm", ".ppm")):
        h, w = mask.shape
        Path(path).write_bytes(b"P5\n%d %d\n255\n" % (w, h) + mask.tobytes())
        return
    try:
        from PIL import Image
        Image.fromarray(mask).save(path)
    except ImportError:
        import cv2
        cv2.imwrite(str(path), mask)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("image")
    p.add_argument("mask")
    p.add_argument("--model", default=None)
    args = p.parse_args()
    try:
        with sempart.Model(args.model) as model:
            result = model.segment(read_image(args.image), format="rgb")
    except sempart.SempartError as e:
        print(f"segment_image: {e.message}", file=sys.stderr)
        return 1
    write_mask(args.mask, result.fine_mask)
    for i, b in enumerate(result.boxes):
        mark = " *object" if i == result.object_index else ""
        print(f"box {b.x0},{b.y0},{b.x1},{b.y1} ({b.pixel_count} px){mark}")
    t = result.timing
    print(f"preprocess {t['preprocess']:.1f} ms, inference {t['inference']:.1f} ms, postprocess {t['postprocess']:.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
