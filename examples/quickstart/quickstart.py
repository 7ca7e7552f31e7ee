# examples/quickstart/quickstart.py
# Segments a synthetic 64x48 RGB frame; prints the foreground pixel count and the object box.
# .venv/bin/python examples/quickstart/quickstart.py [MODEL.onnx]
import sys

import numpy as np
import sempart


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else None  # None: the default model
    h, w = 48, 64
    frame = np.empty((h, w, 3), np.uint8)  # a gradient: no image decoder needed
    frame[:, :, 0], frame[:, :, 1], frame[:, :, 2] = np.arange(w) * 4, np.arange(h)[:, None] * 5, 128
    try:
        with sempart.Model(path) as model:  # freed when the block ends
            result = model.segment(frame, format="rgb")
    except (sempart.SempartError, OSError) as e:  # OSError: libsempart.so not found
        print(f"quickstart: {e}", file=sys.stderr)
        return 1
    print(f"foreground pixels: {int((result.fine_mask == 255).sum())} of {w * h}")
    box = result.object_box  # (x0, y0, x1, y1), x1 and y1 exclusive, or None
    print("object box: none" if box is None else "object box: x0={} y0={} x1={} y1={} (x1, y1 exclusive)".format(*box))
    return 0


if __name__ == "__main__":
    sys.exit(main())
