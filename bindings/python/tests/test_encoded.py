"""Encoded images from Python: sempart.decode gives the SDK decoder's pixels (what the CLI
reads), Model.segment_encoded / segment_file the same result as segmenting them; bad bytes
raise with the SDK's message. Uses the tiny fixture model and the example images."""
import os
from pathlib import Path

import numpy as np
import pytest

import sempart

ROOT = Path(os.environ.get("SEMPART_ROOT", Path(__file__).resolve().parents[3]))
TINY = ROOT / "tests" / "fixtures" / "tiny.onnx"
JPEG = ROOT / "examples" / "images" / "rocket.jpg"


@pytest.fixture(scope="module")
def model():
    with sempart.Model(TINY) as m:
        yield m


def test_segment_encoded_equals_segment_of_the_decoded_pixels(model):
    data = JPEG.read_bytes()
    pixels = sempart.decode(data)
    assert pixels.dtype == np.uint8 and pixels.shape == (427, 640, 3)
    a = model.segment_encoded(data)
    b = model.segment(pixels)
    c = model.segment_file(JPEG)
    assert np.array_equal(a.fine_mask, b.fine_mask) and np.array_equal(a.fine_mask, c.fine_mask)
    assert a.boxes == b.boxes
    # bytearray, memoryview and a uint8 array of the bytes are accepted too.
    for view in (bytearray(data), memoryview(data), np.frombuffer(data, dtype=np.uint8)):
        assert np.array_equal(model.segment_encoded(view).fine_mask, a.fine_mask)


@pytest.mark.parametrize("data, words", [
    (b"", "empty"),
    (b"not an image", "cannot decode"),
    (JPEG.read_bytes()[:500], "cannot decode"),
])
def test_bad_bytes_raise_with_the_sdks_message(model, data, words):
    with pytest.raises(sempart.SempartError, match=words):
        model.segment_encoded(data)
    with pytest.raises(sempart.SempartError, match=words):
        sempart.decode(data)


def test_a_path_is_not_taken_for_bytes(model):
    with pytest.raises(TypeError, match="segment_file"):
        model.segment_encoded(str(JPEG))
