"""Sempart: unsupervised salient-object segmentation, from Python.

A thin host over the SDK's C ABI (libsempart.so, include/sempart.h): frames are NumPy uint8
arrays read in place (no copy), results are NumPy arrays, failures raise :class:`SempartError`
with the SDK's status and message. The C calls run without the GIL (ctypes releases it), so
threads segmenting on one :class:`Model` run in parallel.

    with sempart.Model() as model:
        result = model.segment(frame, format="bgr")   # OpenCV frame, uint8 [h, w, 3]
        result.fine_mask        # uint8 [h, w], 0 or 255
        result.object_box       # (x0, y0, x1, y1) with exclusive ends, or None
"""

import ctypes
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import _capi

__all__ = ["Model", "Result", "SempartError", "Status", "Stream", "version", "default_model_path", "library_path"]

_lib = None
_lib_lock = threading.Lock()


def _library():
    global _lib
    with _lib_lock:
        if _lib is None:
            _lib = _capi.load_library()
        return _lib


class Status:
    """``sempart_status`` values."""

    OK = 0
    NULL_ARGUMENT = 1
    INVALID_ARGUMENT = 2
    MODEL_NOT_FOUND = 3
    MODEL_CORRUPT = 4
    MODEL_FOREIGN = 5
    MODEL_UNSUPPORTED_VERSION = 6
    PROVIDER_UNAVAILABLE = 7
    RUNTIME_UNAVAILABLE = 8
    INFERENCE_FAILED = 9
    IO = 10
    INTERNAL = 11
    MODEL_INTEGRITY = 12


class SempartError(Exception):
    """A failed SDK call: ``status`` (a :class:`Status` value) and the SDK's ``message``."""

    def __init__(self, status, message):
        super().__init__(f"{message} (status {status})")
        self.status = status
        self.message = message


def _check(status):
    if status != Status.OK:
        raise SempartError(status, _library().sempart_last_error_message().decode("utf-8", "replace"))


def version():
    """The SDK version, e.g. ``"0.1.0"``."""
    return _library().sempart_version().decode()


def library_path():
    """The file of the loaded libsempart.so."""
    lib = _library()
    return Path(lib._name).resolve()


_PROVIDERS = {"tensorrt": 0, "cuda": 1, "cpu": 2}
_PROVIDER_NAMES = {v: k for k, v in _PROVIDERS.items()}
# format name -> (sempart_pixel_format, channels)
_FORMATS = {"rgb": (0, 3), "bgr": (1, 3), "rgba": (2, 4), "bgra": (3, 4), "gray": (4, 1), "nv12": (5, 1)}
_MODEL_FILES = {"fp32": "sempart-default.onnx", "int8": "sempart-default-int8.onnx"}


def default_model_path(providers=("cpu",)):
    """The model used when none is named, found as the ``sempart`` command finds it:
    ``$SEMPART_MODEL``; else ``../share/sempart/<file>`` beside the loaded library (an
    installed SDK); else ``models/<file>`` of the checkout. ``<file>`` is the int8 default
    model when the CPU comes first, the float32 one for a GPU provider."""
    if os.environ.get("SEMPART_MODEL"):
        return Path(os.environ["SEMPART_MODEL"])
    name = _MODEL_FILES["int8" if providers[0] == "cpu" else "fp32"]
    installed = library_path().parent.parent / "share" / "sempart" / name
    if installed.is_file():
        return installed
    for root in _capi._checkouts():
        candidate = root / "models" / name
        if candidate.is_file():
            return candidate
    return _capi._CHECKOUT / "models" / name


def _bytes(data):
    """A ctypes view of bytes-like ``data`` (bytes, bytearray, memoryview, uint8 array) and the
    object that keeps it alive."""
    if isinstance(data, (str, os.PathLike)):
        raise TypeError("expected the encoded image's bytes; read the file first (or use Model.segment_file)")
    buf = np.frombuffer(memoryview(data).cast("B"), dtype=np.uint8)
    if buf.size == 0:
        return None, 0, buf
    return buf.ctypes.data_as(_capi.c_u8_p), buf.size, buf


def decode(data):
    """Decodes an encoded image (JPEG, PNG, BMP, TIFF, WebP, PNM) with the SDK's own decoder, the
    one ``sempart segment`` and :meth:`Model.segment_encoded` use: ``[h, w, 3]`` uint8 RGB. EXIF
    orientation is not applied (the pixels as stored). PIL and OpenCV decode JPEG slightly
    differently, so masks of their pixels may differ from the CLI's on a few pixels."""
    lib = _library()
    ptr, size, keep = _bytes(data)
    handle = ctypes.c_void_p()
    _check(lib.sempart_image_decode(ptr, size, ctypes.byref(handle)))
    del keep
    try:
        w, h = ctypes.c_uint32(), ctypes.c_uint32()
        _check(lib.sempart_image_size(handle, ctypes.byref(w), ctypes.byref(h)))
        pixels = lib.sempart_image_pixels(handle)
        return np.ctypeslib.as_array(pixels, shape=(h.value, w.value, 3)).copy()
    finally:
        lib.sempart_image_free(handle)


@dataclass(frozen=True)
class Box:
    """A connected component of the fine mask: ``x1``, ``y1`` exclusive."""

    x0: int
    y0: int
    x1: int
    y1: int
    pixel_count: int

    @property
    def xyxy(self):
        return (self.x0, self.y0, self.x1, self.y1)


@dataclass(frozen=True)
class Result:
    """The result of one frame, copied out of the SDK (it owns its arrays)."""

    fine_mask: np.ndarray  #: uint8 [h, w], 0 or 255, at the frame's size
    fine_probability: np.ndarray  #: float32 [h, w]
    coarse_mask: np.ndarray  #: uint8 [grid_h, grid_w]
    coarse_probability: np.ndarray  #: float32 [grid_h, grid_w]
    boxes: tuple  #: every :class:`Box`
    object_index: int  #: index of the object box in ``boxes``, -1 when the mask is empty
    timing: dict  #: milliseconds: preprocess, inference, postprocess
    #: on a :class:`Stream`: why the temporal smoothing started again at this frame
    #: ("first_frame", "frame_changed", "timestamp_backwards", "timestamp_gap", "scene_cut",
    #: "requested"), else None (always None from :meth:`Model.segment`)
    reset: object = None

    @property
    def object_box(self):
        """``(x0, y0, x1, y1)`` of the object (the component with the largest box), or None."""
        return None if self.object_index < 0 else self.boxes[self.object_index].xyxy


def _result(lib, handle):
    try:
        w, h, gw, gh = (ctypes.c_uint32() for _ in range(4))
        _check(lib.sempart_result_size(handle, ctypes.byref(w), ctypes.byref(h), ctypes.byref(gw), ctypes.byref(gh)))
        n, g = w.value * h.value, gw.value * gh.value

        def copy(ptr, count, shape, dtype):
            return np.ctypeslib.as_array(ptr, shape=(count,)).astype(dtype, copy=True).reshape(shape)

        boxes = []
        b = _capi.Box()
        for i in range(lib.sempart_result_box_count(handle)):
            _check(lib.sempart_result_box(handle, i, ctypes.byref(b)))
            boxes.append(Box(b.x0, b.y0, b.x1, b.y1, b.pixel_count))
        t = lib.sempart_result_timing(handle)
        reason = ctypes.c_uint32()
        _check(lib.sempart_result_reset_reason(handle, ctypes.byref(reason)))
        return Result(
            fine_mask=copy(lib.sempart_result_fine_mask(handle), n, (h.value, w.value), np.uint8),
            fine_probability=copy(lib.sempart_result_fine_probability(handle), n, (h.value, w.value), np.float32),
            coarse_mask=copy(lib.sempart_result_coarse_mask(handle), g, (gh.value, gw.value), np.uint8),
            coarse_probability=copy(lib.sempart_result_coarse_probability(handle), g, (gh.value, gw.value), np.float32),
            boxes=tuple(boxes),
            object_index=int(lib.sempart_result_object_index(handle)),
            timing={"preprocess": t.preprocess_ms, "inference": t.inference_ms, "postprocess": t.postprocess_ms},
            reset=_RESET_REASONS.get(reason.value, str(reason.value)),
        )
    finally:
        lib.sempart_result_free(handle)


def _frame(array, format):
    """A ``sempart_frame`` over the array's memory (no copy), and the array it keeps alive."""
    if format not in _FORMATS:
        raise SempartError(Status.INVALID_ARGUMENT, f"unknown pixel format {format!r} (one of {', '.join(_FORMATS)})")
    code, channels = _FORMATS[format]
    a = np.asarray(array)
    if a.dtype != np.uint8:
        raise SempartError(Status.INVALID_ARGUMENT, f"frames must be uint8 arrays, got {a.dtype}")
    if channels == 1 and a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    want = 2 if channels == 1 else 3
    if a.ndim != want or (want == 3 and a.shape[2] != channels):
        shape = "[h, w]" if want == 2 else f"[h, w, {channels}]"
        raise SempartError(Status.INVALID_ARGUMENT, f"a {format} frame must have shape {shape}, got {list(a.shape)}")
    rows, width = a.shape[0], a.shape[1]
    pixel = channels
    empty = rows == 0 or width == 0  # the SDK refuses it with its own message
    inner_ok = a.strides[1] == pixel and (want == 2 or a.strides[2] == 1)
    if not empty and (not inner_ok or a.strides[0] < width * pixel):
        raise SempartError(
            Status.INVALID_ARGUMENT,
            f"the pixels of each row must be contiguous (row strides may be anything above a row); "
            f"strides {a.strides} for shape {list(a.shape)}: pass np.ascontiguousarray(frame)",
        )
    height = rows * 2 // 3 if format == "nv12" else rows
    if format == "nv12" and rows % 3 != 0:
        raise SempartError(Status.INVALID_ARGUMENT, f"an nv12 frame has 3/2 x height rows, got {rows}")
    stride = a.strides[0] if rows > 1 and not empty else width * pixel
    size = 0 if empty else stride * (rows - 1) + width * pixel
    f = _capi.Frame()
    # A zero-size frame still gets a non-NULL pointer, so that the SDK reports the size.
    f.data = ctypes.cast(a.ctypes.data or 1, _capi.c_u8_p)
    f.data_size_bytes = size
    f.width_px = width
    f.height_px = height
    f.row_stride_bytes = stride
    f.pixel_format = code
    return f, a


class _Handle:
    """An SDK object owned by Python: released by ``close()``, the end of a ``with`` block or
    garbage collection; a call after ``close()`` raises :class:`SempartError`. Subclasses name
    their C free function (``_FREE``) and what they are (``_WHAT``)."""

    _handle = None
    _FREE, _WHAT = None, None

    def close(self):
        """Releases the object (results already returned stay valid: they own their arrays)."""
        if self._handle is not None:
            getattr(self._lib, self._FREE)(self._handle)
            self._handle = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        self.close()

    def _h(self):
        if self._handle is None:
            raise SempartError(Status.NULL_ARGUMENT, f"the {self._WHAT} is closed")
        return self._handle


class Model(_Handle):
    """A loaded model. Thread-safe: any number of threads may call :meth:`segment` at once.

    ``path``: the model file (default: :func:`default_model_path` for ``providers``).
    ``providers``: execution providers in order of preference ("tensorrt", "cuda", "cpu").
    ``threads``: CPU inference threads (0: ONNX Runtime chooses). ``refine_radius`` /
    ``refine_eps``: the fine mask's refinement (radius 0: off). ``allow_fallback``,
    ``device_id``, ``verify_integrity``, ``ort_library``: as in ``sempart_options``.
    ``min_component_fraction``: components smaller than this share of the frame get no box
    (0..1; default 0.0005; see :attr:`min_component_fraction`).
    """

    def __init__(self, path=None, providers=("cpu",), threads=0, refine_radius=None, refine_eps=None,
                 allow_fallback=True, device_id=0, verify_integrity=True, ort_library=None,
                 min_component_fraction=None):
        self._handle = None
        lib = _library()
        providers = tuple(providers)
        if not 1 <= len(providers) <= 3 or any(p not in _PROVIDERS for p in providers):
            raise SempartError(Status.INVALID_ARGUMENT, f"providers must be 1 to 3 of {', '.join(_PROVIDERS)}, got {providers}")
        opts = _capi.Options()
        _check(lib.sempart_options_init(ctypes.byref(opts)))
        for i, p in enumerate(providers):
            opts.providers[i] = _PROVIDERS[p]
        opts.provider_count = len(providers)
        opts.allow_fallback = 1 if allow_fallback else 0
        if not 0 <= int(threads) <= 0xFFFFFFFF:
            raise SempartError(Status.INVALID_ARGUMENT, f"threads is {threads}, expected 0 or more")
        opts.cpu_threads = int(threads)
        opts.device_id = int(device_id)
        if refine_radius is not None:
            opts.refine_radius = float(refine_radius)
        if refine_eps is not None:
            opts.refine_eps = float(refine_eps)
        opts.verify_integrity = 1 if verify_integrity else 0
        keep = []
        if ort_library is not None:
            keep.append(os.fsencode(str(ort_library)))
            opts.ort_library = keep[-1]
        self.path = Path(path) if path is not None else default_model_path(providers)
        handle = ctypes.c_void_p()
        _check(lib.sempart_model_open(os.fsencode(str(self.path)), ctypes.byref(opts), ctypes.byref(handle)))
        self._handle = handle
        self._lib = lib
        if min_component_fraction is not None:
            try:
                self.min_component_fraction = min_component_fraction
            except SempartError:
                self.close()
                raise

    _FREE, _WHAT = "sempart_model_free", "model"

    @property
    def min_component_fraction(self):
        """The smallest component a result's box list keeps, as a share of the frame's area:
        smaller ones stay in the mask but get no box; the object box is always listed. Settable
        (0..1; 0 lists every component); applies to later results and streams of this model."""
        out = ctypes.c_float()
        _check(self._lib.sempart_model_min_component_fraction(self._h(), ctypes.byref(out)))
        return out.value

    @min_component_fraction.setter
    def min_component_fraction(self, fraction):
        _check(self._lib.sempart_model_set_min_component_fraction(self._h(), ctypes.c_float(float(fraction))))

    # -- calls -----------------------------------------------------------------------------
    def segment(self, frame, format="rgb"):
        """Segments one uint8 frame: ``[h, w, 3]`` for rgb/bgr, ``[h, w, 4]`` for rgba/bgra,
        ``[h, w]`` for gray, ``[h * 3 / 2, w]`` for nv12; rows may be strided (a slice of a
        larger array), the pixels within a row must be contiguous. Returns a :class:`Result`."""
        f, keep = _frame(frame, format)
        out = ctypes.c_void_p()
        _check(self._lib.sempart_segment(self._h(), ctypes.byref(f), ctypes.byref(out)))
        del keep
        return _result(self._lib, out)

    def segment_encoded(self, data):
        """Decodes an encoded image's bytes with the SDK's decoder (see :func:`decode`) and
        segments it: the :class:`Result` ``sempart segment`` gives for the same file."""
        ptr, size, keep = _bytes(data)
        out = ctypes.c_void_p()
        _check(self._lib.sempart_segment_encoded(self._h(), ptr, size, ctypes.byref(out)))
        del keep
        return _result(self._lib, out)

    def segment_file(self, path):
        """:meth:`segment_encoded` of a file's bytes."""
        return self.segment_encoded(Path(path).read_bytes())

    def segment_batch(self, frames, format="rgb"):
        """Segments several frames in one inference run (sizes may differ); ``format`` is one
        name for all or a list with one per frame. Returns a list of :class:`Result`."""
        frames = list(frames)
        formats = [format] * len(frames) if isinstance(format, str) else list(format)
        if len(formats) != len(frames):
            raise SempartError(Status.INVALID_ARGUMENT, f"{len(frames)} frames but {len(formats)} formats")
        made = [_frame(a, fmt) for a, fmt in zip(frames, formats)]
        array = (_capi.Frame * max(len(made), 1))(*[m[0] for m in made])
        outs = (ctypes.c_void_p * max(len(made), 1))()
        _check(self._lib.sempart_segment_batch(self._h(), array, len(made), outs))
        return [_result(self._lib, ctypes.c_void_p(outs[i])) for i in range(len(made))]

    def stream(self, strength=None, hysteresis=None, motion_threshold=None, scene_cut_threshold=None,
               max_gap_ns=None):
        """Opens a :class:`Stream` on this model: frames of one camera or video, in order, with
        temporal stability (on by default; ``strength=0`` gives exactly :meth:`segment`'s masks).
        Unset options keep the SDK's defaults (``sempart_stream_options_init``)."""
        return Stream(self, strength, hysteresis, motion_threshold, scene_cut_threshold, max_gap_ns)

    def info(self):
        """The model's metadata and how it runs: a dict with ``path``, ``provider``,
        ``input_size`` (w, h), ``grid`` (w, h) and every ``sempart.*`` metadata entry."""
        h = self._h()
        provider = ctypes.c_uint32()
        _check(self._lib.sempart_model_provider(h, ctypes.byref(provider)))
        w, hh, gw, gh = (ctypes.c_uint32() for _ in range(4))
        _check(self._lib.sempart_model_input_size(h, ctypes.byref(w), ctypes.byref(hh), ctypes.byref(gw), ctypes.byref(gh)))
        info = {
            "path": str(self.path),
            "provider": _PROVIDER_NAMES.get(provider.value, str(provider.value)),
            "input_size": (w.value, hh.value),
            "grid": (gw.value, gh.value),
        }
        for key in ("format_version", "precision", "input_width", "input_height", "patch_size", "mean", "std",
                    "backbone.name", "backbone.origin", "training", "content_sha256"):
            value = self.metadata("sempart." + key)
            if value is not None:
                info["sempart." + key] = value
        return info

    def metadata(self, key):
        """The metadata value of ``key`` (e.g. ``"sempart.backbone.origin"``), or None."""
        h = self._h()
        length = ctypes.c_size_t()
        status = self._lib.sempart_model_metadata(h, key.encode(), None, 0, ctypes.byref(length))
        if status == Status.INVALID_ARGUMENT and "no metadata entry" in self._lib.sempart_last_error_message().decode():
            return None
        _check(status)
        buf = ctypes.create_string_buffer(length.value + 1)
        _check(self._lib.sempart_model_metadata(h, key.encode(), buf, len(buf), ctypes.byref(length)))
        return buf.value.decode("utf-8", "replace")


_RESET_REASONS = {0: None, 1: "first_frame", 2: "frame_changed", 3: "timestamp_backwards", 4: "timestamp_gap",
                  5: "scene_cut", 6: "requested"}


class Stream(_Handle):
    """The frames of one camera or video, in order, with temporal stability (``sempart_stream``).

    Made by :meth:`Model.stream`. It keeps its model alive in the SDK (the :class:`Model` may be
    closed first). Calls on one stream are serialised; streams of one model are independent and
    may run on different threads. A frame of another size or format, a timestamp that goes
    backwards or jumps by more than ``max_gap_ns``, and a scene cut restart the smoothing; the
    result's ``reset`` says so.
    """

    _FREE, _WHAT = "sempart_stream_free", "stream"

    def __init__(self, model, strength=None, hysteresis=None, motion_threshold=None, scene_cut_threshold=None,
                 max_gap_ns=None):
        self._handle = None
        lib = model._lib
        opts = _capi.StreamOptions()
        _check(lib.sempart_stream_options_init(ctypes.byref(opts)))
        if strength is not None:
            opts.strength = float(strength)
        if hysteresis is not None:
            opts.hysteresis = float(hysteresis)
        if motion_threshold is not None:
            opts.motion_threshold = float(motion_threshold)
        if scene_cut_threshold is not None:
            opts.scene_cut_threshold = float(scene_cut_threshold)
        if max_gap_ns is not None:
            opts.max_gap_ns = int(max_gap_ns)
        self.strength, self.hysteresis, self.motion_threshold = opts.strength, opts.hysteresis, opts.motion_threshold
        self.scene_cut_threshold, self.max_gap_ns = opts.scene_cut_threshold, opts.max_gap_ns
        handle = ctypes.c_void_p()
        _check(lib.sempart_stream_open(model._h(), ctypes.byref(opts), ctypes.byref(handle)))
        self._handle = handle
        self._lib = lib

    def segment(self, frame, format="rgb", timestamp=None):
        """Segments the stream's next frame (as :meth:`Model.segment`). ``timestamp``: when it
        was taken, int nanoseconds on a clock that only moves forward (default: now, from
        ``time.monotonic_ns()``). Returns a :class:`Result` whose ``reset`` says whether and why
        the smoothing started again at this frame."""
        ts = time.monotonic_ns() if timestamp is None else int(timestamp)
        if not -(1 << 63) <= ts < (1 << 63):
            raise SempartError(Status.INVALID_ARGUMENT, f"timestamp {ts} does not fit in int64 nanoseconds")
        f, keep = _frame(frame, format)
        out = ctypes.c_void_p()
        _check(self._lib.sempart_stream_segment(self._h(), ctypes.byref(f), ts, ctypes.byref(out)))
        del keep
        return _result(self._lib, out)

    def reset(self):
        """Forgets the past frames (e.g. after a seek): the next result says ``"requested"``."""
        _check(self._lib.sempart_stream_reset(self._h()))

