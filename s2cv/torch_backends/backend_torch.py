"""PyTorch backend, and the export of a checkpoint into the graph cache: needs the ``[train]`` extra.

Loaded by name from the feature's backend registry only when a network (not a graph) has to run
or be exported: ``backend="torch"`` (or ``auto`` falling back to it: an in-memory network, a
GPU), or a checkpoint without its ONNX graph, which is exported once into the cache
(``export_to_cache``, ``s2cv.feature.backends.EXPORT_TO_CACHE``). It reaches ``s2cv.models`` and
``s2cv.deploy``, which the feature room never imports (``tests/test_layout.py``); without torch,
importing it raises an ImportError naming the extra.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from s2cv.feature.backends import DenseMaps, resolve_device
from s2cv.feature.extras import import_torch
from s2cv.feature.graph import cache_dir, file_sha256, read_onnx_metadata

torch = import_torch("a PyTorch network (backend='torch', or a checkpoint without its ONNX graph)")
nn = torch.nn


class TorchBackend:
    """PyTorch eager inference; on CUDA the maps stay on the device for the CUDA postprocess.

    Runs a private copy of the network with BatchNorm folded into the convolutions, in
    channels-last layout on CPU (oneDNN's native one): the same maps, sooner
    (``benchmarks/bench_backends.py`` times it).
    The caller's module is never modified, so a network can be validated while it trains.
    """

    name = "torch"

    def __init__(self, net: nn.Module, device: str = "auto") -> None:
        from s2cv.models.common import fold_batchnorm

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


def network_for(net: nn.Module | None, meta: dict[str, Any], backend: str) -> nn.Module:
    """The given network, else the one in the checkpoint ``meta["path"]``; ``meta`` learns what the
    checkpoint says (arch, ...)."""
    if net is not None:
        return net
    if not meta.get("path"):
        raise ValueError(f"backend={backend!r} needs a network or a checkpoint (.pt), not only an .onnx graph")
    from s2cv.models.checkpoint import load_model

    net, loaded = load_model(meta["path"])
    for key, value in loaded.items():
        meta.setdefault(key, value)
    return net


def cached_onnx(net: Any, meta: dict[str, Any]) -> Path:
    """Export ``net`` once into the cache directory and return the file (reused afterwards).
    Exporting needs torch and onnx (the ``[train]`` extra)."""
    from s2cv import __version__
    from s2cv.deploy.export import arch_name, export_onnx, weights_sha256
    from s2cv.feature.backend_onnx import CACHE_VALIDATION_SIZES

    arch = arch_name(net, meta)
    source = meta.get("path")
    source_sha = file_sha256(source) if source and Path(source).is_file() else ""
    key = source_sha or weights_sha256(net)
    path = cache_dir() / "onnx" / f"{arch}-{key[:20]}-s2cv{__version__}.onnx"
    if path.is_file():
        info = read_onnx_metadata(path)
        if info["descriptor_dim"] == int(net.descriptor_dim) and info["stride"] == int(net.stride):
            return path
    export_onnx(net, path, arch=arch, source_sha256=source_sha, sizes=CACHE_VALIDATION_SIZES, progress=False)
    return path


def export_to_cache(net: Any, meta: dict[str, Any], backend: str) -> Path:
    """The graph a graph runtime runs for a model without a prebuilt one: the network (given, or
    the checkpoint's) exported once into the cache (``s2cv.feature.backends.EXPORT_TO_CACHE``)."""
    return cached_onnx(network_for(net, meta, backend), meta)


def make_torch(net: nn.Module | None, meta: dict[str, Any], device: str) -> TorchBackend:
    """Backend factory (see ``s2cv.feature.backends.BACKENDS``): the given network, else the checkpoint's."""
    if net is None and not meta.get("path"):
        raise ValueError("an .onnx model has no torch network: it runs with backend='onnxruntime', 'opencv' "
                         "or 'tensorrt'; backend='torch' needs a checkpoint (.pt) or a zoo name")
    return TorchBackend(network_for(net, meta, "torch"), device)
