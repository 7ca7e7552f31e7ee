"""Triton Inference Server model (Python backend) serving the whole Sempart SDK pipeline.

Written into a model repository by `sempart export-triton` (do not edit the copy there: export
again). Needs the `sempart` wheel (scripts/build-wheel.sh) in the Python environment the
backend runs. The model file sits beside this file; config.pbtxt names it.

Inputs (one image per request; the batch dimension comes first):
  IMAGE   TYPE_STRING [1]        an encoded image (JPEG, PNG, ...), decoded by the SDK's own
                                 decoder, as `sempart segment` decodes files, or
  PIXELS  TYPE_UINT8 [h, w, c]   raw pixels with
  FORMAT  TYPE_STRING [1]        rgb, bgr, rgba, bgra, gray or nv12 (default rgb).
Outputs (only those the client asks for are computed):
  MASK          TYPE_UINT8 [h, w]   the fine mask, 255 = object
  PROBABILITY   TYPE_FP32 [h, w]    the fine probability
  BOXES         TYPE_INT32 [n, 5]   x0, y0, x1 (exclusive), y1 (exclusive), pixels per box
  OBJECT_INDEX  TYPE_INT64 [1]      index of the object box in BOXES, -1 when the mask is empty
A bad request (no input, an empty, corrupt or oversized image, a bad format) gets an error
response; the other requests of the same batch are answered as usual.
"""
import json
import os

import numpy as np
import triton_python_backend_utils as pb_utils

import sempart


def _parameters(config):
    return {k: v.get("string_value", "") for k, v in config.get("parameters", {}).items()}


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        params = _parameters(config)
        path = os.path.join(os.path.dirname(os.path.abspath(__file__)), params["model_file"])
        providers = tuple(p.strip() for p in params.get("providers", "cpu").split(",") if p.strip())
        if args.get("model_instance_kind") != "GPU":
            providers = ("cpu",)
        self.model = sempart.Model(
            path,
            providers=providers,
            threads=int(params.get("threads", "0")),
            device_id=int(args.get("model_instance_device_id", "0") or 0),
            min_component_fraction=float(params["min_component_fraction"])
            if params.get("min_component_fraction") else None,
        )

    def execute(self, requests):
        responses = []
        for request in requests:
            try:
                responses.append(self._answer(request))
            except Exception as e:  # this request fails alone
                responses.append(pb_utils.InferenceResponse(output_tensors=[], error=pb_utils.TritonError(str(e))))
        return responses

    def _answer(self, request):
        image = pb_utils.get_input_tensor_by_name(request, "IMAGE")
        pixels = pb_utils.get_input_tensor_by_name(request, "PIXELS")
        if image is not None:
            values = image.as_numpy().reshape(-1)
            if values.size != 1:
                raise ValueError(f"IMAGE holds {values.size} elements, expected one encoded image")
            data = values[0]
            if not isinstance(data, (bytes, bytearray)):
                raise ValueError("IMAGE must hold the encoded image's bytes")
            result = self.model.segment_encoded(bytes(data))
        elif pixels is not None:
            fmt = pb_utils.get_input_tensor_by_name(request, "FORMAT")
            fmt = fmt.as_numpy().reshape(-1)[0] if fmt is not None else b"rgb"
            fmt = fmt.decode() if isinstance(fmt, bytes) else str(fmt)
            frame = pixels.as_numpy()
            if frame.ndim == 4:
                if frame.shape[0] != 1:
                    raise ValueError(f"PIXELS holds {frame.shape[0]} frames, expected one per request")
                frame = frame[0]
            if fmt in ("gray", "nv12") and frame.ndim == 3 and frame.shape[2] == 1:
                frame = frame[:, :, 0]
            result = self.model.segment(np.ascontiguousarray(frame), format=fmt)
        else:
            raise ValueError("send IMAGE (an encoded image) or PIXELS (uint8 [h, w, c]) with FORMAT")
        wanted = set(request.requested_output_names())
        out = []
        if not wanted or "MASK" in wanted:
            out.append(pb_utils.Tensor("MASK", result.fine_mask[np.newaxis]))
        if "PROBABILITY" in wanted:
            out.append(pb_utils.Tensor("PROBABILITY", result.fine_probability.astype(np.float32)[np.newaxis]))
        if not wanted or "BOXES" in wanted:
            boxes = np.array([[b.x0, b.y0, b.x1, b.y1, b.pixel_count] for b in result.boxes], dtype=np.int32)
            out.append(pb_utils.Tensor("BOXES", boxes.reshape(1, -1, 5)))
        if not wanted or "OBJECT_INDEX" in wanted:
            out.append(pb_utils.Tensor("OBJECT_INDEX", np.array([[result.object_index]], dtype=np.int64)))
        return pb_utils.InferenceResponse(output_tensors=out)
