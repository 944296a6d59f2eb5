"""Inference backends: a batch of gray images -> dense maps. One small interface, four engines.

Every backend takes (B, 1, H, W) float32 in [0, 1] with H, W multiples of ``pad_multiple`` and
returns ``DenseMaps``: scores (B, H, W) and L2-normalised descriptors (B, D, H/stride, W/stride).
Each engine lives in its own module, imported only when asked for: ``opencv`` (cv2.dnn) and
``onnxruntime`` run the exported graph and need no torch; ``torch`` (``backend_torch``) and
``tensorrt`` (``backend_trt``) need the ``[train]`` extra / TensorRT. So ``import s2cv`` and
every ONNX path never import torch. ``make_backend`` is the one entry point.

A factory gets ``(net, meta, device)``: ``net`` is a torch module or None (then the checkpoint
at ``meta["path"]`` is loaded only by a backend that needs the network), ``meta`` says where
the checkpoint and its graph are (``s2cv.feature.zoo.model_meta``).
"""
from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from pathlib import Path
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from s2cv.feature.extras import torch_if_loaded
from s2cv.feature.graph import prebuilt_onnx, read_onnx_metadata


@dataclass
class DenseMaps:
    """Network output for a batch. Arrays are numpy on CPU, or torch CUDA tensors on the GPU path."""

    scores: Any        # (B, H, W) float32
    descriptors: Any   # (B, D, h, w) float32, L2-normalised along D
    stride: int


class Backend(Protocol):
    name: str
    stride: int
    pad_multiple: int
    descriptor_dim: int

    def __call__(self, batch: np.ndarray) -> DenseMaps: ...


class GraphBackend:
    """What the backends that run an s2cv ONNX graph share: the file, and the layout (stride, pad
    multiple, descriptor size) its metadata declares, read once without the onnx package."""

    def __init__(self, onnx_path: str | Path) -> None:
        self.path = Path(onnx_path)
        self.info = read_onnx_metadata(self.path)
        self.stride = int(self.info["stride"])
        self.pad_multiple = int(self.info["pad_multiple"])
        self.descriptor_dim = int(self.info["descriptor_dim"])


def check_batch(batch: Any, pad_multiple: int) -> np.ndarray:
    """The (B, 1, H, W) float32 batch a graph runtime is fed, contiguous; ValueError otherwise."""
    if not isinstance(batch, np.ndarray) or batch.ndim != 4 or batch.shape[1] != 1:
        shape = getattr(batch, "shape", type(batch).__name__)
        raise ValueError(f"expected a float32 batch of shape (B, 1, H, W), got {shape}")
    h, w = batch.shape[2:]
    if h % pad_multiple or w % pad_multiple:
        raise ValueError(f"height and width must be multiples of {pad_multiple}, got {h}x{w}")
    return np.ascontiguousarray(batch, np.float32)


# name -> "module:factory(net, meta, device)", imported lazily. The two that run torch code live
# outside the feature room (``s2cv.torch_backends``, beside ``s2cv.deploy``): the feature never
# imports them, it names them here (``tests/test_layout.py`` allows exactly these entry points).
BACKENDS: dict[str, str] = {
    "torch": "s2cv.torch_backends.backend_torch:make_torch",
    "onnxruntime": "s2cv.feature.backend_onnx:make_onnx",
    "opencv": "s2cv.feature.backend_opencv:make_opencv",
    "tensorrt": "s2cv.torch_backends.backend_trt:make_tensorrt",
}
# backend="auto" on CPU with a prebuilt graph: the faster of the two graph runtimes first, as
# measured by benchmarks/bench_backends.py (docs/results.md, "Speed (CPU)"); eager torch last.
AUTO_CPU_GRAPH_ORDER: tuple[str, ...] = ("onnxruntime", "opencv")
# "module:function(net, meta, backend) -> Path": export a network once into the graph cache, for a
# graph runtime asked to run a checkpoint without its graph (needs torch: the [train] extra).
EXPORT_TO_CACHE = "s2cv.torch_backends.backend_torch:export_to_cache"


def no_nvidia_driver() -> bool:
    """True where no NVIDIA GPU can be visible (Linux without the driver): then device='auto'
    means the CPU without importing torch (slow to import) just to hear it say so."""
    return sys.platform.startswith("linux") and not (os.path.exists("/proc/driver/nvidia")
                                                      or os.path.exists("/dev/dxg"))  # WSL2's GPU device


def resolve_device(device: str) -> str:
    """'auto' -> 'cuda' when torch is installed and sees a GPU, else 'cpu'; others are checked."""
    if not isinstance(device, str):
        raise TypeError(f"device must be a string ('auto', 'cpu', 'cuda', 'cuda:N'), got {type(device).__name__}")
    if device == "cpu":
        return device
    if device == "auto":
        if no_nvidia_driver():
            return "cpu"
        torch = torch_if_loaded()
        if torch is None and importlib.util.find_spec("torch") is not None:
            import torch
        return "cuda" if torch is not None and torch.cuda.is_available() else "cpu"
    if device == "cuda" or (device.startswith("cuda:") and device[5:].isdigit()):
        return device
    raise ValueError(f"unknown device {device!r}; expected 'auto', 'cpu', 'cuda' or 'cuda:N'")


def entry_point(spec: str):
    """The function a ``"module:function"`` string of this registry names, its module imported now."""
    module, func = spec.split(":")
    return getattr(importlib.import_module(module), func)


def auto_candidates(net: Any, meta: dict[str, Any], device: str) -> list[str]:
    """What ``backend="auto"`` tries, in order: on a GPU TensorRT (a prebuilt engine), then torch
    (maps stay on the device for the CUDA post-processing), then onnxruntime; on CPU the prebuilt
    graph (never exported on the fly) with the faster graph runtime, else torch."""
    graph = prebuilt_onnx(meta) is not None
    torch = ["torch"] if net is not None or meta.get("path") else []
    if resolve_device(device) != "cpu":
        return ["tensorrt", *torch, "onnxruntime"]
    return [*(AUTO_CPU_GRAPH_ORDER if graph else ()), *torch]


def make_backend(name: str, net: Any, meta: dict[str, Any], device: str = "auto") -> Backend:
    """Build a backend by name; ``auto`` picks the fastest one that works here."""
    if name != "auto":
        if name not in BACKENDS:
            raise ValueError(f"unknown backend {name!r}; expected 'auto' or one of {sorted(BACKENDS)}")
        return entry_point(BACKENDS[name])(net, meta, device)
    errors: list[tuple[str, Exception]] = []
    for candidate in auto_candidates(net, meta, device):
        try:
            return entry_point(BACKENDS[candidate])(net, meta, device)
        except (ImportError, RuntimeError, FileNotFoundError) as exc:
            errors.append((candidate, exc))
    message = "no inference backend could be created: " + ("; ".join(f"{c}: {e}" for c, e in errors) or
                                                            "no candidate for this model and device")
    if errors and all(isinstance(e, ImportError) for _, e in errors):
        raise ImportError(message)  # e.g. a checkpoint without a graph, and no torch to run it
    raise RuntimeError(message)
