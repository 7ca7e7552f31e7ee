"""Segments a webcam or video stream with OpenCV and shows the mask over the frames.

    python examples/python/webcam.py [--source 0 | --source clip.mp4] [--model M] [--frames N]
                                     [--strength S]

Needs OpenCV (pip install opencv-python); without it the script says so and exits 0. Frames
are passed to the SDK as OpenCV gives them (BGR, no copy). With --frames N it stops after N
frames and prints the mean time per stage, without a window. The frames go through a stream
(Model.stream): the masks hold still over time; --strength 0 gives per-frame masks.
"""

import argparse
import sys

import sempart


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--source", default="0")
    p.add_argument("--model", default=None)
    p.add_argument("--frames", type=int, default=0)
    p.add_argument("--strength", type=float, default=None, help="temporal stability (default: the SDK's)")
    args = p.parse_args()
    try:
        import cv2
    except ImportError:
        print("webcam.py: OpenCV is not installed (pip install opencv-python); nothing to do")
        return 0
    source = int(args.source) if args.source.isdigit() else args.source
    cap = cv2.VideoCapture(source)
    if not cap.isOpened():
        print(f"webcam.py: cannot open video source {args.source}", file=sys.stderr)
        return 1
    totals, n = {"preprocess": 0.0, "inference": 0.0, "postprocess": 0.0}, 0
    with sempart.Model(args.model) as model, model.stream(strength=args.strength) as stream:
        while args.frames == 0 or n < args.frames:
            ok, frame = cap.read()
            if not ok:
                break
            # A file's own clock when it has one, else the stream's (time.monotonic_ns()).
            msec = cap.get(cv2.CAP_PROP_POS_MSEC)
            result = stream.segment(frame, format="bgr", timestamp=int(msec * 1e6) if msec > 0 else None)
            n += 1
            for k, v in result.timing.items():
                totals[k] += v
            if args.frames == 0:
                shown = frame.copy()
                shown[result.fine_mask > 0] = (0.5 * shown[result.fine_mask > 0] + (0, 0, 127)).astype("uint8")
                if result.object_box:
                    x0, y0, x1, y1 = result.object_box
                    cv2.rectangle(shown, (x0, y0), (x1 - 1, y1 - 1), (0, 0, 255), 2)
                cv2.imshow("sempart", shown)
                if cv2.waitKey(1) in (27, ord("q")):
                    break
    if n:
        print("frames %d, mean ms: %s" % (n, ", ".join(f"{k} {v / n:.1f}" for k, v in totals.items())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
