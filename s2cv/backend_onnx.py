"""ONNX Runtime backend: the same dense maps as the torch backend, from an exported graph.

Where the graph comes from, first match wins: a ``.onnx`` passed as the model (``meta["onnx"]``);
the graph ``python -m s2cv.export`` wrote beside the checkpoint (``<checkpoint stem>.onnx``, used
only if it was exported from that very file: zoo models ship theirs); else an export of the
network into the cache directory ($S2CV_CACHE or ~/.cache/s2cv), keyed by the checkpoint's
sha256 (weights digest for in-memory nets) so it runs once per model. Nothing is ever written
beside installed files. CUDA execution provider when onnxruntime has one and the device allows
it, else CPU.

``backend="auto"`` takes onnxruntime on CPU when a prebuilt graph is at hand (1.1-1.2x SIFT's
speed at 640x480 against 0.9-1.0x for eager torch, docs/results.md) and never exports on the fly.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any
import warnings

import numpy as np
from torch import nn

from .backends import DenseMaps, resolve_device
from .export import (INPUT_NAME, OUTPUT_NAMES, arch_name, cache_dir, export_onnx, file_sha256,
                     read_onnx_metadata, weights_sha256)

# Validation of cache exports: small and quick; `python -m s2cv.export` does the full check.
_CACHE_VALIDATION_SIZES = ((64, 96),)


def _providers(device: str) -> list[Any]:
    """ONNX Runtime providers for an s2cv device string ('auto', 'cpu', 'cuda', 'cuda:N')."""
    import onnxruntime as ort

    available = ort.get_available_providers()
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


class OnnxRuntimeBackend:
    """Runs an s2cv ONNX export; returns numpy DenseMaps (the C++ postprocess takes them as is)."""

    name = "onnxruntime"

    def __init__(self, onnx_path: str | Path, device: str = "auto") -> None:
        from .export import onnx_session

        info = read_onnx_metadata(onnx_path)
        self.path = Path(onnx_path)
        self.info = info
        self.stride = int(info["stride"])
        self.pad_multiple = int(info["pad_multiple"])
        self.descriptor_dim = int(info["descriptor_dim"])
        providers = _providers(device)
        self.session = onnx_session(self.path, providers)
        self.providers = self.session.get_providers()
        if device.startswith("cuda") and "CUDAExecutionProvider" not in self.providers:
            raise RuntimeError(f"onnxruntime could not start the CUDA provider for {device!r} "
                               f"(session runs on {self.providers}); check the CUDA/cuDNN install")

    def __call__(self, batch: np.ndarray) -> DenseMaps:
        if not isinstance(batch, np.ndarray) or batch.ndim != 4 or batch.shape[1] != 1:
            shape = getattr(batch, "shape", type(batch).__name__)
            raise ValueError(f"expected a float32 batch of shape (B, 1, H, W), got {shape}")
        h, w = batch.shape[2:]
        if h % self.pad_multiple or w % self.pad_multiple:
            raise ValueError(f"height and width must be multiples of {self.pad_multiple}, got {h}x{w}")
        batch = np.ascontiguousarray(batch, np.float32)
        scores, desc = self.session.run(list(OUTPUT_NAMES), {INPUT_NAME: batch})
        return DenseMaps(scores[:, 0], desc, self.stride)


def cached_onnx(net: nn.Module, meta: dict[str, Any]) -> Path:
    """Export ``net`` once into the cache directory and return the file (reused afterwards)."""
    from . import __version__

    arch = arch_name(net, meta)
    source = meta.get("path")
    source_sha = file_sha256(source) if source and Path(source).is_file() else ""
    key = source_sha or weights_sha256(net)
    path = cache_dir() / "onnx" / f"{arch}-{key[:20]}-s2cv{__version__}.onnx"
    if path.is_file():
        info = read_onnx_metadata(path)
        if info["descriptor_dim"] == int(net.descriptor_dim) and info["stride"] == int(net.stride):
            return path
    export_onnx(net, path, arch=arch, source_sha256=source_sha, sizes=_CACHE_VALIDATION_SIZES, progress=False)
    return path


def prebuilt_onnx(meta: dict[str, Any]) -> Path | None:
    """The graph at hand without exporting: ``meta["onnx"]`` (an ``.onnx`` passed as the model),
    else ``<checkpoint stem>.onnx`` beside the checkpoint if it was exported from that checkpoint.

    A graph from other weights (left behind after retraining) would give another model's
    keypoints, so it is skipped with a warning saying how to re-export it.
    """
    if meta.get("onnx"):
        return Path(meta["onnx"])
    source = meta.get("path")
    if not source:
        return None
    path = Path(source).with_suffix(".onnx")
    if not path.is_file():
        return None
    try:
        recorded = read_onnx_metadata(path)["source_sha256"]
    except ValueError as exc:  # corrupt, or not an s2cv export
        warnings.warn(f"ignoring {path}: not a readable s2cv ONNX export ({type(exc).__name__}: {exc})",
                      stacklevel=3)
        return None
    if recorded != file_sha256(source):
        warnings.warn(f"ignoring {path}: it was exported from other weights than {source}; re-export it "
                      f"with `python -m s2cv.export {source} -o {path}`", stacklevel=3)
        return None
    return path


def _require_onnxruntime() -> None:
    try:
        import onnxruntime  # noqa: F401
    except ImportError as exc:
        raise ImportError("backend='onnxruntime' needs onnxruntime: pip install onnxruntime "
                          "(or onnxruntime-gpu)") from exc


def make_onnx(net: nn.Module | None, meta: dict[str, Any], device: str) -> OnnxRuntimeBackend:
    """Backend factory (see ``s2cv.backends.BACKENDS``): a prebuilt graph, else a cached export."""
    _require_onnxruntime()
    path = prebuilt_onnx(meta)
    if path:
        return OnnxRuntimeBackend(path, device)
    if net is None:
        raise ValueError("make_onnx needs a network or meta['onnx'] (path of an s2cv ONNX export)")
    return OnnxRuntimeBackend(cached_onnx(net, meta), device)


def make_auto_onnx(net: nn.Module | None, meta: dict[str, Any], device: str) -> OnnxRuntimeBackend:
    """``backend="auto"``'s onnxruntime step: CPU and a prebuilt graph only (no export on the fly,
    no onnxruntime-gpu on a GPU where torch feeds the CUDA post-processing)."""
    _require_onnxruntime()
    if resolve_device(device).type != "cpu":
        raise RuntimeError("backend='auto' uses onnxruntime on CPU only")
    path = prebuilt_onnx(meta)
    if not path:
        raise FileNotFoundError("no prebuilt ONNX graph beside the checkpoint (export one with "
                                "`python -m s2cv.export MODEL -o MODEL_STEM.onnx`)")
    return OnnxRuntimeBackend(path, device)


def onnx_model_meta(path: str | Path) -> dict[str, Any]:
    """Model metadata for an ``.onnx`` passed as ``model=`` (no checkpoint, no torch network)."""
    info = read_onnx_metadata(path)
    return {**info, "path": None, "onnx": str(Path(path))}
