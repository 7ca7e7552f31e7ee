"""The box list's minimum component size from Python: the constructor argument and the
property, on the tiny fixture model; the mask and the object box do not depend on it."""
import os
from pathlib import Path

import numpy as np
import pytest

import sempart

ROOT = Path(os.environ.get("SEMPART_ROOT", Path(__file__).resolve().parents[3]))
TINY = ROOT / "tests" / "fixtures" / "tiny.onnx"


def picture(w=96, h=64):
    """A disc and scattered dots over a gradient (RGB uint8): components of many sizes."""
    y, x = np.mgrid[0:h, 0:w]
    frame = np.stack([(x * 2) % 256, (y * 3) % 256, np.full_like(x, 90)], axis=-1).astype(np.uint8)
    inside = ((x - w * 0.35) ** 2 + (y - h * 0.5) ** 2 < (h * 0.25) ** 2) | ((x * 7 + y * 13) % 23 == 0)
    frame[inside] = (230, 200, 40)
    return frame


def test_the_setting_filters_boxes_but_not_the_mask_or_the_object():
    frame = picture()
    with sempart.Model(TINY, min_component_fraction=0) as every, sempart.Model(TINY) as default:
        assert every.min_component_fraction == 0
        assert default.min_component_fraction == pytest.approx(0.0005)
        a, b = every.segment(frame), default.segment(frame)
        assert np.array_equal(a.fine_mask, b.fine_mask)
        assert a.object_box == b.object_box
        default.min_component_fraction = 1.0
        c = default.segment(frame)
        assert len(c.boxes) == 1 and c.object_box == a.object_box
        assert len(a.boxes) > len(c.boxes)


def test_bad_values_raise_and_leave_the_setting():
    with pytest.raises(sempart.SempartError, match="min_component_fraction"):
        sempart.Model(TINY, min_component_fraction=1.5)
    with sempart.Model(TINY) as m:
        with pytest.raises(sempart.SempartError, match="min_component_fraction"):
            m.min_component_fraction = -0.5
        assert m.min_component_fraction == pytest.approx(0.0005)
