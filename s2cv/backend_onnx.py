"""ONNX Runtime backend: the same dense maps as the torch backend, from an exported graph.

Where the graph comes from, first match wins: a ``.onnx`` passed as the model (``meta["onnx"]``);
the graph ``s2cv export`` wrote beside the checkpoint (``<checkpoint stem>.onnx``, used only if
it was exported from that very file: zoo models ship theirs); else an export of the network
into the cache directory ($S2CV_CACHE or ~/.cache/s2cv), keyed by the checkpoint's sha256
(weights digest for in-memory nets) so it runs once per model. Only that last case needs torch
(the ``[train]`` extra). Nothing is ever written beside installed files. CUDA execution
provider when onnxruntime has one and the device allows it, else CPU.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .backends import DenseMaps, check_batch
from .graph import (INPUT_NAME, OUTPUT_NAMES, cache_dir, file_sha256, onnx_model_meta,  # noqa: F401 (re-exported)
                    prebuilt_onnx, read_onnx_metadata)

# Validation of cache exports: small and quick; `s2cv export` does the full check.
_CACHE_VALIDATION_SIZES = ((64, 96),)


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


class OnnxRuntimeBackend:
    """Runs an s2cv ONNX export; returns numpy DenseMaps (the C++ postprocess takes them as is)."""

    name = "onnxruntime"

    def __init__(self, onnx_path: str | Path, device: str = "auto") -> None:
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
        batch = check_batch(batch, self.pad_multiple)
        scores, desc = self.session.run(list(OUTPUT_NAMES), {INPUT_NAME: batch})
        return DenseMaps(scores[:, 0], desc, self.stride)


def cached_onnx(net: Any, meta: dict[str, Any]) -> Path:
    """Export ``net`` once into the cache directory and return the file (reused afterwards).
    Exporting needs torch and onnx (the ``[train]`` extra)."""
    from . import __version__
    from .export import arch_name, export_onnx, weights_sha256

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


def graph_for(net: Any, meta: dict[str, Any], backend: str) -> Path:
    """The graph a graph runtime runs for this model: the prebuilt one, else a cached export of
    the network (loaded from ``meta["path"]`` when not given; needs the ``[train]`` extra)."""
    path = prebuilt_onnx(meta)
    if path:
        return path
    if net is None:
        if not meta.get("path"):
            raise ValueError(f"backend={backend!r} needs a network, a checkpoint or meta['onnx'] "
                             f"(path of an s2cv ONNX export)")
        from .zoo import load_model

        net, loaded = load_model(meta["path"])
        for key, value in loaded.items():  # the detector's meta learns what the checkpoint says (arch, ...)
            meta.setdefault(key, value)
    return cached_onnx(net, meta)


def make_onnx(net: Any, meta: dict[str, Any], device: str) -> OnnxRuntimeBackend:
    """Backend factory (see ``s2cv.backends.BACKENDS``): a prebuilt graph, else a cached export."""
    _import_onnxruntime()
    return OnnxRuntimeBackend(graph_for(net, meta, "onnxruntime"), device)
