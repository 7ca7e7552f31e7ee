"""Tests of the Python host (run by the README's test command through scripts/test.sh).

They need the library and the `sempart` command built by cargo (target/debug or
target/release) and use the tiny fixture model; the comparison with the default model runs
when scripts/setup.sh made it.
"""

import os
import struct
import subprocess
import threading
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

import sempart

ROOT = Path(os.environ.get("SEMPART_ROOT", Path(__file__).resolve().parents[3]))
TINY = ROOT / "tests" / "fixtures" / "tiny.onnx"


def cli():
    for profile in ("debug", "release"):
        exe = ROOT / "target" / profile / "sempart"
        if exe.is_file():
            return exe
    pytest.skip("the sempart command is not built")


def read_gray_png(path):
    """An 8-bit grayscale, non-interlaced PNG (what `sempart segment` writes for masks)."""
    data = Path(path).read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width = 8, b"", None
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", body)
            assert (depth, colour, interlace) == (8, 0, 0), "8-bit gray, not interlaced"
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    raw = zlib.decompress(idat)
    out = np.zeros((height, width), np.uint8)
    prev = np.zeros(width, np.int32)
    for y in range(height):
        f, row = raw[y * (width + 1)], np.frombuffer(raw, np.uint8, width, y * (width + 1) + 1).astype(np.int32)
        cur = np.zeros(width, np.int32)
        for x in range(width):
            a = cur[x - 1] if x else 0
            b, c = prev[x], (prev[x - 1] if x else 0)
            if f == 0:
                pred = 0
            elif f == 1:
                pred = a
            elif f == 2:
                pred = b
            elif f == 3:
                pred = (a + b) // 2
            else:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
            cur[x] = (row[x] + pred) & 0xFF
        out[y], prev = cur, cur
    return out


def scene(w, h, seed=0):
    """A frame with a bright disk on a textured background."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    img = np.stack([(x * 255 // max(w, 1)), (y * 255 // max(h, 1)), np.full_like(x, 90)], axis=-1).astype(np.uint8)
    img = (img ^ rng.integers(0, 24, img.shape, dtype=np.uint8))
    inside = (x - w * 0.55) ** 2 + (y - h * 0.5) ** 2 < (min(w, h) * 0.3) ** 2
    img[inside] = (230, 60 + seed % 40, 40)
    return img


@pytest.fixture(scope="module")
def tiny():
    with sempart.Model(TINY, threads=1) as m:
        yield m


def write_ppm(path, rgb):
    h, w, _ = rgb.shape
    Path(path).write_bytes(b"P6\n%d %d\n255\n" % (w, h) + np.ascontiguousarray(rgb).tobytes())


def cli_mask(model, rgb, tmp_path):
    frame = tmp_path / "frame.ppm"
    write_ppm(frame, rgb)
    out = tmp_path / "out"
    subprocess.run([str(cli()), "segment", "--model", str(model), "--out", str(out), str(frame)], check=True,
                   capture_output=True)
    return read_gray_png(out / "frame.mask.png")


def test_masks_equal_the_sempart_command_bit_for_bit(tiny, tmp_path):
    rgb = scene(97, 71)
    ours = tiny.segment(rgb)
    assert ours.fine_mask.shape == (71, 97) and ours.fine_mask.dtype == np.uint8
    assert set(np.unique(ours.fine_mask)) <= {0, 255}
    np.testing.assert_array_equal(ours.fine_mask, cli_mask(TINY, rgb, tmp_path))


def test_default_model_masks_equal_the_sempart_command(tmp_path):
    path = sempart.default_model_path()
    if not path.is_file():
        pytest.skip(f"{path} is missing (scripts/setup.sh makes it)")
    rgb = scene(320, 240, seed=3)
    with sempart.Model(path) as m:
        ours = m.segment(rgb)
        assert m.info()["sempart.precision"] == "int8"
    np.testing.assert_array_equal(ours.fine_mask, cli_mask(path, rgb, tmp_path))


def test_strided_views_and_every_pixel_format_give_the_same_mask(tiny):
    rgb = scene(64, 48, seed=1)
    want = tiny.segment(rgb)
    big = np.zeros((100, 90, 3), np.uint8)
    big[20:68, 13:77] = rgb
    view = big[20:68, 13:77]
    assert not view.flags["C_CONTIGUOUS"]
    bgr = np.ascontiguousarray(rgb[:, :, ::-1])
    alpha = np.full((48, 64, 1), 7, np.uint8)
    cases = {
        "strided view": (view, "rgb"),
        "bgr": (bgr, "bgr"),
        "rgba": (np.concatenate([rgb, alpha], axis=2), "rgba"),
        "bgra": (np.concatenate([bgr, alpha], axis=2), "bgra"),
        "strided bgr": (np.ascontiguousarray(big[:, :, ::-1])[20:68, 13:77], "bgr"),
    }
    for name, (frame, fmt) in cases.items():
        got = tiny.segment(frame, format=fmt)
        np.testing.assert_array_equal(got.fine_mask, want.fine_mask, err_msg=name)
        np.testing.assert_array_equal(got.coarse_mask, want.coarse_mask, err_msg=name)
        assert got.boxes == want.boxes, name


def test_gray_and_nv12_match_their_rgb_equivalents(tiny):
    luma = np.ascontiguousarray(scene(64, 48, seed=2)[:, :, 0])
    with pytest.raises(sempart.SempartError, match="contiguous"):
        tiny.segment(scene(64, 48)[:, :, 0], "gray")  # a channel view: pixels 3 bytes apart
    gray_as_rgb = np.repeat(luma[:, :, None], 3, axis=2)
    np.testing.assert_array_equal(tiny.segment(luma, "gray").fine_mask, tiny.segment(gray_as_rgb).fine_mask)
    np.testing.assert_array_equal(tiny.segment(luma[:, :, None], "gray").fine_mask, tiny.segment(gray_as_rgb).fine_mask)
    # NV12 with neutral chroma is the gray frame of the BT.601 limited-range luma.
    nv12 = np.concatenate([luma, np.full((24, 64), 128, np.uint8)], axis=0)
    expanded = np.clip(np.round(np.float32(1.164383) * (luma.astype(np.float32) - np.float32(16))), 0, 255).astype(np.uint8)
    np.testing.assert_array_equal(tiny.segment(nv12, "nv12").fine_mask, tiny.segment(expanded, "gray").fine_mask)


def test_batch_equals_single_calls(tiny):
    frames = [scene(64, 48, seed=s) for s in range(3)] + [scene(40, 30, seed=9)]
    batch = tiny.segment_batch(frames)
    for f, b in zip(frames, batch):
        np.testing.assert_array_equal(b.fine_mask, tiny.segment(f).fine_mask)
    bgr = [np.ascontiguousarray(f[:, :, ::-1]) for f in frames]
    mixed = tiny.segment_batch([frames[0], bgr[1]], format=["rgb", "bgr"])
    np.testing.assert_array_equal(mixed[1].fine_mask, batch[1].fine_mask)


def expect_error(status, fragment, fn, *args, **kwargs):
    with pytest.raises(sempart.SempartError) as e:
        fn(*args, **kwargs)
    assert e.value.status == status, e.value
    assert fragment in e.value.message, e.value.message
    return e.value


def test_every_error_path_raises_with_the_sdk_message(tiny, tmp_path):
    rgb = scene(64, 48)
    S = sempart.Status
    expect_error(S.INVALID_ARGUMENT, "uint8", tiny.segment, rgb.astype(np.float32))
    expect_error(S.INVALID_ARGUMENT, "shape [h, w, 3]", tiny.segment, rgb[:, :, :2])
    expect_error(S.INVALID_ARGUMENT, "shape [h, w, 4]", tiny.segment, rgb, "rgba")
    expect_error(S.INVALID_ARGUMENT, "contiguous", tiny.segment, rgb[:, ::2])
    expect_error(S.INVALID_ARGUMENT, "contiguous", tiny.segment, rgb[:, :, ::-1])
    expect_error(S.INVALID_ARGUMENT, "unknown pixel format", tiny.segment, rgb, "yuyv")
    # From the SDK itself: its messages, its statuses.
    expect_error(S.INVALID_ARGUMENT, "frame size 0x48", tiny.segment, np.zeros((48, 0, 3), np.uint8))
    expect_error(S.INVALID_ARGUMENT, "frame size 64x0", tiny.segment, np.zeros((0, 64, 3), np.uint8))
    expect_error(S.INVALID_ARGUMENT, "width and height must be even", tiny.segment, np.zeros((9, 7), np.uint8), "nv12")
    expect_error(S.INVALID_ARGUMENT, "batch of 0 frames", tiny.segment_batch, [])
    missing = tmp_path / "missing.onnx"
    expect_error(S.MODEL_NOT_FOUND, str(missing), sempart.Model, missing)
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"\x08\x07not an onnx file at all" * 40)
    expect_error(S.MODEL_CORRUPT, "not a valid ONNX file", sempart.Model, corrupt)
    flipped = tmp_path / "flipped.onnx"
    data = bytearray(TINY.read_bytes())
    data[len(data) // 2] ^= 0x04
    flipped.write_bytes(bytes(data))
    expect_error(S.MODEL_INTEGRITY, "content", sempart.Model, flipped)
    expect_error(S.INVALID_ARGUMENT, "cpu_threads is 100000", sempart.Model, TINY, threads=100000)
    expect_error(S.INVALID_ARGUMENT, "refinement radius", sempart.Model, TINY, refine_radius=-1)
    expect_error(S.INVALID_ARGUMENT, "providers", sempart.Model, TINY, providers=("gpu",))
    # A closed model refuses calls instead of crashing.
    m = sempart.Model(TINY, threads=1)
    m.close()
    m.close()
    expect_error(S.NULL_ARGUMENT, "closed", m.segment, rgb)


def test_eight_threads_on_one_model_give_the_serial_results(tiny):
    frames = [scene(64, 48, seed=s) for s in range(16)]
    serial = [tiny.segment(f).fine_mask for f in frames]
    with ThreadPoolExecutor(8) as pool:
        parallel = list(pool.map(lambda f: tiny.segment(f).fine_mask, frames * 2))
    for i, m in enumerate(parallel):
        np.testing.assert_array_equal(m, serial[i % 16])


def test_the_gil_is_released_during_calls(tiny):
    # While one thread is inside sempart_segment, another Python thread keeps running.
    ticks = []
    stop = threading.Event()

    def tick():
        while not stop.is_set():
            ticks.append(1)

    t = threading.Thread(target=tick)
    t.start()
    before = len(ticks)
    for _ in range(20):
        tiny.segment(scene(160, 120))
    stop.set()
    t.join()
    assert len(ticks) > before


def rss_mib():
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def test_a_thousand_calls_leave_resident_memory_flat(tiny):
    rgb = scene(96, 72)
    for _ in range(100):
        tiny.segment(rgb)
    start = rss_mib()
    for _ in range(1000):
        tiny.segment(rgb)
    grown = rss_mib() - start
    print(f"RSS after warm-up {start:.1f} MiB, after 1,000 more calls +{grown:.2f} MiB")
    assert grown < 8.0, f"resident memory grew by {grown:.1f} MiB over 1,000 calls"


def test_info_results_and_lifetimes(tiny):
    info = tiny.info()
    assert info["provider"] == "cpu" and info["sempart.format_version"] == "2"
    assert info["input_size"][0] > 0 and "sempart.backbone.origin" in info
    assert tiny.metadata("no.such.key") is None
    r = tiny.segment(scene(64, 48))
    assert r.coarse_mask.shape == (info["grid"][1], info["grid"][0])
    assert r.fine_probability.dtype == np.float32 and r.fine_probability.shape == (48, 64)
    assert all(b.x0 < b.x1 <= 64 and b.y0 < b.y1 <= 48 for b in r.boxes)
    assert (r.object_box is None) == (r.object_index < 0)
    assert set(r.timing) == {"preprocess", "inference", "postprocess"}
    assert sempart.version().count(".") == 2
    # Results own their arrays: they outlive the model.
    with sempart.Model(TINY, threads=1) as m:
        kept = m.segment(scene(64, 48))
    assert kept.fine_mask.sum() == kept.fine_mask.sum()


def test_examples_run(tmp_path):
    import sys
    rgb = scene(97, 71, seed=5)
    image = tmp_path / "in.ppm"
    write_ppm(image, rgb)
    mask = tmp_path / "mask.pgm"
    out = subprocess.run([sys.executable, str(ROOT / "examples/python/segment_image.py"), str(image), str(mask),
                          "--model", str(TINY)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "preprocess" in out.stdout
    with sempart.Model(TINY, threads=1) as m:
        want = m.segment(rgb).fine_mask
    body = mask.read_bytes().split(maxsplit=4)[4]
    np.testing.assert_array_equal(np.frombuffer(body, np.uint8).reshape(71, 97), want)
    bad = subprocess.run([sys.executable, str(ROOT / "examples/python/segment_image.py"), str(image), str(mask),
                          "--model", str(tmp_path / "none.onnx")], capture_output=True, text=True)
    assert bad.returncode == 1 and "none.onnx" in bad.stderr
    cam = subprocess.run([sys.executable, str(ROOT / "examples/python/webcam.py"), "--frames", "2", "--model", str(TINY)],
                         capture_output=True, text=True)
    try:
        import cv2  # noqa: F401
        assert cam.returncode in (0, 1)  # no camera on a CI machine: a clear message, no crash
    except ImportError:
        assert cam.returncode == 0 and "OpenCV is not installed" in cam.stdout
