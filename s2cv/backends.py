"""Inference backends: a batch of gray images -> dense maps. One small interface, three engines.

Every backend takes (B, 1, H, W) float32 in [0, 1] with H, W multiples of ``pad_multiple`` and
returns ``DenseMaps``: scores (B, H, W) and L2-normalised descriptors (B, D, H/stride, W/stride).
``torch`` is here; ``onnxruntime`` and ``tensorrt`` live in their own modules, imported only
when asked for, so ``import s2cv`` never needs them. ``make_backend`` is the one entry point.
"""
from __future__ import annotations

from dataclasses import dataclass
import importlib
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from .models.common import fold_batchnorm


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


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {device!r} requested but torch sees no CUDA device")
    return dev


class TorchBackend:
    """PyTorch eager inference; on CUDA the maps stay on the device for the CUDA postprocess.

    Runs a private copy of the network with BatchNorm folded into the convolutions, in
    channels-last layout on CPU (oneDNN's native one): the same maps, about 1.3x sooner.
    The caller's module is never modified, so a network can be validated while it trains.
    """

    name = "torch"

    def __init__(self, net: nn.Module, device: str = "auto") -> None:
        self.device = resolve_device(device)
        self.memory_format = torch.channels_last if self.device.type == "cpu" else torch.contiguous_format
        self.net = fold_batchnorm(net).to(self.device, memory_format=self.memory_format)
        self.stride = int(net.stride)
        self.pad_multiple = int(net.pad_multiple)
        self.descriptor_dim = int(net.descriptor_dim)

    @torch.inference_mode()
    def __call__(self, batch: np.ndarray) -> DenseMaps:
        x = torch.from_numpy(batch).to(self.device).contiguous(memory_format=self.memory_format)
        out = self.net(x)
        scores, desc = out["scores"][:, 0].contiguous(), out["descriptors"]
        if self.device.type == "cpu":
            # Descriptors stay channels-last: the C++ sampler reads that layout in place.
            return DenseMaps(scores.numpy(), desc.numpy(), self.stride)
        return DenseMaps(scores, desc.contiguous(), self.stride)


def make_torch(net: nn.Module, meta: dict[str, Any], device: str) -> Backend:
    return TorchBackend(net, device)


# name -> "module:factory(net, meta, device)", imported lazily.
BACKENDS: dict[str, str] = {
    "torch": "s2cv.backends:make_torch",
    "onnxruntime": "s2cv.backend_onnx:make_onnx",
    "tensorrt": "s2cv.backend_trt:make_tensorrt",
}
# backend="auto" tries these in order: TensorRT when a GPU and an engine are there, onnxruntime
# on CPU when a prebuilt graph is (faster than eager torch there), else torch.
AUTO_ORDER: tuple[tuple[str, str], ...] = (
    ("tensorrt", BACKENDS["tensorrt"]),
    ("onnxruntime", "s2cv.backend_onnx:make_auto_onnx"),  # prebuilt graph and CPU only
    ("torch", BACKENDS["torch"]),
)


def _factory(spec: str):
    module, func = spec.split(":")
    return getattr(importlib.import_module(module), func)


def make_backend(name: str, net: nn.Module, meta: dict[str, Any], device: str = "auto") -> Backend:
    """Build a backend by name; ``auto`` picks the fastest one that works here."""
    if name == "auto":
        errors = []
        for candidate, spec in AUTO_ORDER:
            try:
                return _factory(spec)(net, meta, device)
            except (ImportError, RuntimeError, FileNotFoundError) as exc:
                errors.append(f"{candidate}: {exc}")
        raise RuntimeError("no inference backend could be created: " + "; ".join(errors))
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}; expected 'auto' or one of {sorted(BACKENDS)}")
    return _factory(BACKENDS[name])(net, meta, device)
