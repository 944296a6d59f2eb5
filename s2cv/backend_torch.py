"""PyTorch backend: the network itself, eagerly. Needs the ``[train]`` extra.

Imported only when ``backend="torch"`` is asked for (or ``auto`` falls back to it: an in-memory
network, a checkpoint without an exported graph, a GPU), so the rest of the runtime never
imports torch; without torch, importing this module raises an ImportError naming the extra.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from .backends import DenseMaps, resolve_device
from .extras import import_torch

torch = import_torch("backend='torch'")
nn = torch.nn


class TorchBackend:
    """PyTorch eager inference; on CUDA the maps stay on the device for the CUDA postprocess.

    Runs a private copy of the network with BatchNorm folded into the convolutions, in
    channels-last layout on CPU (oneDNN's native one): the same maps, about 1.3x sooner.
    The caller's module is never modified, so a network can be validated while it trains.
    """

    name = "torch"

    def __init__(self, net: nn.Module, device: str = "auto") -> None:
        from .models.common import fold_batchnorm

        self.device = torch.device(resolve_device(device))
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError(f"device {device!r} requested but torch sees no CUDA device")
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


def make_torch(net: nn.Module | None, meta: dict[str, Any], device: str) -> TorchBackend:
    """Backend factory (see ``s2cv.backends.BACKENDS``): the given network, else the checkpoint's."""
    if net is None:
        if not meta.get("path"):
            raise ValueError("an .onnx model has no torch network: it runs with backend='onnxruntime', 'opencv' "
                             "or 'tensorrt'; backend='torch' needs a checkpoint (.pt) or a zoo name")
        from .zoo import load_model

        net, loaded = load_model(meta["path"])
        for key, value in loaded.items():  # the detector's meta learns what the checkpoint says (arch, ...)
            meta.setdefault(key, value)
    return TorchBackend(net, device)
