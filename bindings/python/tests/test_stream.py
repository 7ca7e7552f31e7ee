"""Streams from Python (Model.stream): the same Result as Model.segment, strength 0 equal to it
bit for bit, the reset reasons, option checks, threads and the model kept alive. Uses the tiny
fixture model, like test_sempart.py."""
import os
import threading
from pathlib import Path

import numpy as np
import pytest

import sempart

ROOT = Path(os.environ.get("SEMPART_ROOT", Path(__file__).resolve().parents[3]))
TINY = ROOT / "tests" / "fixtures" / "tiny.onnx"
NS = 33_333_333


def clip(t, w=64, h=40):
    """Frame t of a disc moving right over a gradient (RGB uint8)."""
    y, x = np.mgrid[0:h, 0:w]
    frame = np.stack([(x * 2) % 256, (y * 3) % 256, np.full_like(x, 90)], axis=-1).astype(np.uint8)
    inside = (x - (w * 0.3 + 2 * t)) ** 2 + (y - h * 0.5) ** 2 < (h * 0.25) ** 2
    frame[inside] = (230, 200, 40)
    return frame


@pytest.fixture(scope="module")
def model():
    with sempart.Model(TINY) as m:
        yield m


def test_strength_zero_equals_segment_bit_for_bit(model):
    with model.stream(strength=0) as stream:
        for t in range(4):
            frame = clip(t)
            want = model.segment(frame)
            got = stream.segment(frame, timestamp=t * NS)
            assert got.reset == ("first_frame" if t == 0 else None)
            assert want.reset is None
            np.testing.assert_array_equal(got.fine_mask, want.fine_mask)
            assert got.fine_probability.tobytes() == want.fine_probability.tobytes()
            assert got.boxes == want.boxes and got.object_index == want.object_index


def test_reset_reasons(model):
    stream = model.stream()
    assert stream.strength == pytest.approx(0.6) and stream.hysteresis == pytest.approx(0.12)
    assert stream.segment(clip(0), timestamp=0).reset == "first_frame"
    assert stream.segment(clip(1), timestamp=NS).reset is None
    assert stream.segment(clip(2), timestamp=NS // 2).reset == "timestamp_backwards"
    assert stream.segment(clip(3), timestamp=NS + 10**9).reset == "timestamp_gap"
    assert stream.segment(clip(3, w=48), timestamp=2 * 10**9).reset == "frame_changed"
    gray = np.full((40, 48), 128, np.uint8)
    assert stream.segment(gray, format="gray", timestamp=2 * 10**9 + NS).reset == "frame_changed"
    stream.reset()
    assert stream.segment(gray, format="gray", timestamp=2 * 10**9 + 2 * NS).reset == "requested"
    assert stream.segment(gray, format="gray").reset is not None  # now: far after the last timestamp
    stream.close()
    with pytest.raises(sempart.SempartError, match="closed"):
        stream.segment(gray, format="gray")


def test_bad_options_and_frames_raise_with_the_sdks_message(model):
    for kwargs, word in [({"strength": 1.0}, "strength"), ({"motion_threshold": 0}, "motion_threshold"),
                         ({"max_gap_ns": -5}, "max_gap_ns")]:
        with pytest.raises(sempart.SempartError, match=word) as e:
            model.stream(**kwargs)
        assert e.value.status == sempart.Status.INVALID_ARGUMENT
    with model.stream() as stream:
        with pytest.raises(sempart.SempartError, match="shape"):
            stream.segment(np.zeros((4, 4, 2), np.uint8))
        with pytest.raises(sempart.SempartError, match="int64"):
            stream.segment(clip(0), timestamp=1 << 63)
        # The failures left the stream untouched: the first good frame is its first frame.
        assert stream.segment(clip(0), timestamp=0).reset == "first_frame"


def test_threads_and_a_stream_outliving_its_model():
    model = sempart.Model(TINY)
    frames = [clip(t) for t in range(5)]
    with model.stream() as s:
        serial = [s.segment(f, timestamp=t * NS).fine_mask for t, f in enumerate(frames)]
    failures = []

    def run():
        with model.stream() as s:
            for t, f in enumerate(frames):
                if not np.array_equal(s.segment(f, timestamp=t * NS).fine_mask, serial[t]):
                    failures.append(t)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert failures == []
    stream = model.stream()
    model.close()
    assert stream.segment(frames[0], timestamp=0).reset == "first_frame"
    stream.close()
