"""ONNX Runtime backend: the same dense maps as the torch backend, from an exported graph.

Where the graph comes from, first match wins: a ``.onnx`` passed as the model (``meta["onnx"]``);
the graph ``s2cv export`` wrote beside the checkpoint (``<checkpoint stem>.onnx``, used only if
it was exported from that very file: zoo models ship theirs); else an export of the network
into the cache directory ($S2CV_CACHE or ~/.cache/s2cv), keyed by the checkpoint's sha256
(weights digest for in-memory nets) so it runs once per model. Only that last case needs torch
(the ``[train]`` extra) and goes through ``backend_torch``. Nothing is ever written beside installed files. CUDA execution
provider when onnxruntime has one and the device allows it, else CPU.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from s2cv.feature.backends import EXPORT_TO_CACHE, DenseMaps, GraphBackend, check_batch, entry_point
from s2cv.feature.graph import (
    INPUT_NAME,
    OUTPUT_NAMES,
    prebuilt_onnx,
)

# Validation of cache exports: small and quick; `s2cv export` does the full check.
CACHE_VALIDATION_SIZES = ((64, 96),)


def _import_onnxruntime() -> Any:
    try:
        import onnxruntime
    except ImportError as exc:
        raise ImportError("backend='onnxruntime' needs onnxruntime: pip install onnxruntime "
                          "(or onnxruntime-gpu)") from exc
    return onnxruntime


def onnx_session(model: bytes | str | Path, providers: Sequence[Any] = ("CPUExecutionProvider",)) -> Any:
    """An onnxruntime session with every graph optimisation and its log kept quiet."""
    ort = _import_onnxruntime()
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    source = model if isinstance(model, bytes) else str(model)
    return ort.InferenceSession(source, sess_options=options, providers=list(providers))


def _providers(device: str) -> list[Any]:
    """ONNX Runtime providers for an s2cv device string ('auto', 'cpu', 'cuda', 'cuda:N')."""
    available = _import_onnxruntime().get_available_providers()
    has_cuda = "CUDAExecutionProvider" in available
    if device == "cpu":
        return ["CPUExecutionProvider"]
    if device == "auto":
        return (["CUDAExecutionProvider"] if has_cuda else []) + ["CPUExecutionProvider"]
    if device.startswith("cuda"):
        if not has_cuda:
            raise RuntimeError(f"device {device!r} requested but this onnxruntime has no CUDAExecutionProvider "
                               f"(available: {available}); install onnxruntime-gpu or use device='cpu'")
        index = int(device.split(":")[1]) if ":" in device else 0
        return [("CUDAExecutionProvider", {"device_id": index}), "CPUExecutionProvider"]
    raise ValueError(f"unknown device {device!r}; expected 'auto', 'cpu', 'cuda' or 'cuda:N'")


class OnnxRuntimeBackend(GraphBackend):
    """Runs an s2cv ONNX export; returns numpy DenseMaps (the C++ postprocess takes them as is)."""

    name = "onnxruntime"

    def __init__(self, onnx_path: str | Path, device: str = "auto") -> None:
        super().__init__(onnx_path)
        providers = _providers(device)
        self.session = onnx_session(self.path, providers)
        self.providers = self.session.get_providers()
        if device.startswith("cuda") and "CUDAExecutionProvider" not in self.providers:
            raise RuntimeError(f"onnxruntime could not start the CUDA provider for {device!r} "
                               f"(session runs on {self.providers}); check the CUDA/cuDNN install")

    def __call__(self, batch: np.ndarray) -> DenseMaps:
        batch = check_batch(batch, self.pad_multiple)
        scores, desc = self.session.run(list(OUTPUT_NAMES), {INPUT_NAME: batch})
        return DenseMaps(scores[:, 0], desc, self.stride)


def graph_for(net: Any, meta: dict[str, Any], backend: str) -> Path:
    """The graph a graph runtime runs for this model: the prebuilt one, else a cached export of
    the network (loaded from ``meta["path"]`` when not given; needs the ``[train]`` extra)."""
    path = prebuilt_onnx(meta)
    if path:
        return path
    return entry_point(EXPORT_TO_CACHE)(net, meta, backend)


def make_onnx(net: Any, meta: dict[str, Any], device: str) -> OnnxRuntimeBackend:
    """Backend factory (see ``s2cv.feature.backends.BACKENDS``): a prebuilt graph, else a cached export."""
    _import_onnxruntime()
    return OnnxRuntimeBackend(graph_for(net, meta, "onnxruntime"), device)
