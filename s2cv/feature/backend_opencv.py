"""OpenCV backend: the exported graph run by ``cv2.dnn`` alone (no onnxruntime, no torch).

The same graph and the same dense maps as the onnxruntime backend (``tests/test_backend_opencv.py``
checks keypoints and descriptors against it). OpenCV 5's ONNX engine runs on the CPU only.

Two properties of ``cv2.dnn`` shape this module: ``forward`` returns arrays that alias the
network's own buffers (the next call overwrites them), so outputs are copied; and a ``Net`` is
not safe to call from several threads, so calls are serialised. cv2.dnn's Softplus overflows to
inf for inputs above about 88, so a graph with a plain Softplus gives NaN scores here (``s2cv
export`` writes a stable one): non-finite scores raise instead of silently losing keypoints.
"""
from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from s2cv.feature.backend_onnx import graph_for
from s2cv.feature.backends import DenseMaps, GraphBackend, check_batch, resolve_device
from s2cv.feature.graph import INPUT_NAME, OUTPUT_NAMES


class OpenCVBackend(GraphBackend):
    """Runs an s2cv ONNX export with ``cv2.dnn``; returns numpy DenseMaps."""

    name = "opencv"

    def __init__(self, onnx_path: str | Path, device: str = "auto") -> None:
        if device not in ("auto", "cpu"):
            resolve_device(device)  # ValueError for a name that is no device at all
            raise RuntimeError(f"backend='opencv' runs on the CPU only (OpenCV {cv2.__version__}'s ONNX engine has "
                               f"no GPU back-end), got device={device!r}")
        super().__init__(onnx_path)
        try:
            self.net = cv2.dnn.readNetFromONNX(str(self.path))
        except cv2.error as exc:
            raise ValueError(f"OpenCV {cv2.__version__} cannot load {self.path}: {str(exc).strip()}") from exc
        self._lock = threading.Lock()

    def __call__(self, batch: np.ndarray) -> DenseMaps:
        batch = check_batch(batch, self.pad_multiple)
        with self._lock:
            self.net.setInput(batch, INPUT_NAME)
            scores, desc = (np.array(out, np.float32, copy=True) for out in self.net.forward(list(OUTPUT_NAMES)))
        if not np.isfinite(scores).all():
            raise RuntimeError(f"cv2.dnn computed NaN/Inf scores with {self.path}: the graph predates s2cv's "
                               f"overflow-free softplus; re-export it with `s2cv export MODEL -o {self.path.name}`")
        return DenseMaps(scores[:, 0], desc, self.stride)


def make_opencv(net: Any, meta: dict[str, Any], device: str) -> OpenCVBackend:
    """Backend factory (see ``s2cv.feature.backends.BACKENDS``): a prebuilt graph, else a cached export."""
    return OpenCVBackend(graph_for(net, meta, "opencv"), device)
