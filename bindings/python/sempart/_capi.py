"""ctypes declarations of the C ABI (include/sempart.h) and where libsempart.so is found.

This module mirrors the header and nothing else: struct layouts, function signatures and the
library search. The Python API in ``sempart/__init__.py`` is built on it.
"""

import ctypes
import os
from pathlib import Path

c_u8_p = ctypes.POINTER(ctypes.c_uint8)
c_f32_p = ctypes.POINTER(ctypes.c_float)


class Options(ctypes.Structure):
    """``sempart_options``."""

    _fields_ = [
        ("providers", ctypes.c_uint32 * 3),
        ("provider_count", ctypes.c_uint32),
        ("allow_fallback", ctypes.c_uint8),
        ("cpu_threads", ctypes.c_uint32),
        ("device_id", ctypes.c_int32),
        ("tensorrt_fp16", ctypes.c_uint8),
        ("tensorrt_engine_cache_dir", ctypes.c_char_p),
        ("ort_library", ctypes.c_char_p),
        ("refine_radius", ctypes.c_float),
        ("refine_eps", ctypes.c_float),
        ("verify_integrity", ctypes.c_uint8),
    ]


class Frame(ctypes.Structure):
    """``sempart_frame``."""

    _fields_ = [
        ("data", c_u8_p),
        ("data_size_bytes", ctypes.c_size_t),
        ("width_px", ctypes.c_uint32),
        ("height_px", ctypes.c_uint32),
        ("row_stride_bytes", ctypes.c_size_t),
        ("pixel_format", ctypes.c_uint32),
    ]


class Box(ctypes.Structure):
    """``sempart_box``."""

    _fields_ = [(n, ctypes.c_uint32) for n in ("x0", "y0", "x1", "y1", "pixel_count")]


class Timing(ctypes.Structure):
    """``sempart_timing``."""

    _fields_ = [(n, ctypes.c_double) for n in ("preprocess_ms", "inference_ms", "postprocess_ms")]


class StreamOptions(ctypes.Structure):
    """``sempart_stream_options``."""

    _fields_ = [
        ("struct_size", ctypes.c_uint32),
        ("strength", ctypes.c_float),
        ("hysteresis", ctypes.c_float),
        ("motion_threshold", ctypes.c_float),
        ("scene_cut_threshold", ctypes.c_float),
        ("max_gap_ns", ctypes.c_int64),
    ]


LIBRARY_ENV = "SEMPART_LIBRARY"
_PACKAGE = Path(__file__).resolve().parent
# bindings/python/sempart -> the repository root, when the package runs from a checkout or
# was installed from one (pip records nothing of the source, so the checkout is also found
# through $SEMPART_ROOT).
_CHECKOUT = _PACKAGE.parents[2]


def _checkouts():
    roots = []
    if os.environ.get("SEMPART_ROOT"):
        roots.append(Path(os.environ["SEMPART_ROOT"]))
    roots.append(_CHECKOUT)
    roots.append(Path.cwd())
    return roots


def library_candidates():
    """Where libsempart.so is looked for, in order: ``$SEMPART_LIBRARY``; the ``lib/`` of
    ``$SEMPART_PREFIX`` (what scripts/install.sh made); the package's own ``_lib/`` (a wheel
    from scripts/build-wheel.sh carries it there); ``target/release`` then
    ``target/debug`` of the checkout ($SEMPART_ROOT, the one this package sits in, the
    working directory); finally the system's library path (``libsempart.so.0``)."""
    out = []
    if os.environ.get(LIBRARY_ENV):
        out.append(Path(os.environ[LIBRARY_ENV]))
    if os.environ.get("SEMPART_PREFIX"):
        out.append(Path(os.environ["SEMPART_PREFIX"]) / "lib" / "libsempart.so")
    out.append(_PACKAGE / "_lib" / "libsempart.so")
    for root in _checkouts():
        for profile in ("release", "debug"):
            out.append(root / "target" / profile / "libsempart.so")
    return out


def load_library():
    """Loads libsempart.so (see :func:`library_candidates`) and declares its functions."""
    tried = []
    lib = None
    for path in library_candidates():
        tried.append(str(path))
        if path.is_file():
            lib = ctypes.CDLL(str(path))
            break
    if lib is None:
        try:
            lib = ctypes.CDLL("libsempart.so.0")
        except OSError:
            tried.append("libsempart.so.0 on the system library path")
            raise OSError(
                "libsempart.so not found; looked at: " + ", ".join(tried)
                + " (build it with `cargo build --release -p sempart`, or set SEMPART_LIBRARY)"
            ) from None
    _declare(lib)
    return lib


def _declare(lib):
    s = ctypes.c_int32  # sempart_status
    p = ctypes.c_void_p
    sig = {
        "sempart_version": (ctypes.c_char_p, []),
        "sempart_status_string": (ctypes.c_char_p, [ctypes.c_int32]),
        "sempart_last_error_message": (ctypes.c_char_p, []),
        "sempart_options_init": (s, [ctypes.POINTER(Options)]),
        "sempart_model_open": (s, [ctypes.c_char_p, ctypes.POINTER(Options), ctypes.POINTER(p)]),
        "sempart_model_free": (None, [p]),
        "sempart_model_provider": (s, [p, ctypes.POINTER(ctypes.c_uint32)]),
        "sempart_model_set_min_component_fraction": (s, [p, ctypes.c_float]),
        "sempart_model_min_component_fraction": (s, [p, ctypes.POINTER(ctypes.c_float)]),
        "sempart_model_input_size": (s, [p] + [ctypes.POINTER(ctypes.c_uint32)] * 4),
        "sempart_model_metadata": (
            s, [p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_size_t, ctypes.POINTER(ctypes.c_size_t)]),
        "sempart_segment": (s, [p, ctypes.POINTER(Frame), ctypes.POINTER(p)]),
        "sempart_segment_batch": (s, [p, ctypes.POINTER(Frame), ctypes.c_size_t, ctypes.POINTER(p)]),
        "sempart_result_free": (None, [p]),
        "sempart_result_size": (s, [p] + [ctypes.POINTER(ctypes.c_uint32)] * 4),
        "sempart_result_fine_mask": (c_u8_p, [p]),
        "sempart_result_fine_probability": (c_f32_p, [p]),
        "sempart_result_coarse_mask": (c_u8_p, [p]),
        "sempart_result_coarse_probability": (c_f32_p, [p]),
        "sempart_result_box_count": (ctypes.c_size_t, [p]),
        "sempart_result_box": (s, [p, ctypes.c_size_t, ctypes.POINTER(Box)]),
        "sempart_result_object_index": (ctypes.c_int64, [p]),
        "sempart_result_timing": (Timing, [p]),
        "sempart_result_reset_reason": (s, [p, ctypes.POINTER(ctypes.c_uint32)]),
        "sempart_stream_options_init": (s, [ctypes.POINTER(StreamOptions)]),
        "sempart_stream_open": (s, [p, ctypes.POINTER(StreamOptions), ctypes.POINTER(p)]),
        "sempart_stream_segment": (s, [p, ctypes.POINTER(Frame), ctypes.c_int64, ctypes.POINTER(p)]),
        "sempart_stream_reset": (s, [p]),
        "sempart_stream_free": (None, [p]),
        "sempart_image_decode": (s, [c_u8_p, ctypes.c_size_t, ctypes.POINTER(p)]),
        "sempart_image_size": (s, [p, ctypes.POINTER(ctypes.c_uint32), ctypes.POINTER(ctypes.c_uint32)]),
        "sempart_image_pixels": (c_u8_p, [p]),
        "sempart_image_free": (None, [p]),
        "sempart_segment_encoded": (s, [p, c_u8_p, ctypes.c_size_t, ctypes.POINTER(p)]),
    }
    for name, (restype, argtypes) in sig.items():
        f = getattr(lib, name)
        f.restype = restype
        f.argtypes = argtypes
