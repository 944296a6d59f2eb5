"""TensorRT backend: a prebuilt engine run on torch CUDA buffers, maps never leave the GPU.

Which engine: ``$S2CV_ENGINE``, else ``meta["engine"]``, else ``<checkpoint>.engine`` (or
``<checkpoint stem>.engine``) beside a user checkpoint or ONNX export. Engines are built
ahead of time (``python -m s2cv.build_engine`` or ``trt/build_engine.sh``, minutes per
build) and their ``.json`` sidecar is checked before use: other weights, another TensorRT
version or GPU generation are refused with the reason instead of giving wrong keypoints.

Every failure to start raises ImportError, RuntimeError or FileNotFoundError with the cause,
so ``backend="auto"`` falls back to torch. ``tensorrt`` and ``torch`` are imported inside
functions only: this module imports fine on machines without them.
"""
from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from s2cv.feature.backends import DenseMaps
from s2cv.feature.engine import (
    EngineInfo,
    EngineMismatchError,
    check_engine,
    import_tensorrt,
    normalize_trt_version,
    read_sidecar,
)
from s2cv.feature.extras import import_torch
from s2cv.feature.graph import INPUT_NAME, LAYOUT, OUTPUT_NAMES

if TYPE_CHECKING:
    from torch import nn


ENGINE_ENV = "S2CV_ENGINE"


def engine_candidates(meta: dict[str, Any]) -> list[Path]:
    """Places an engine for this model may be, in the order they are tried."""
    env = os.environ.get(ENGINE_ENV)
    if env:
        return [Path(env).expanduser()]
    if meta.get("engine"):
        return [Path(meta["engine"]).expanduser()]
    out: list[Path] = []
    for key in ("path", "onnx"):
        if meta.get(key):
            src = Path(meta[key])
            out += [src.with_name(src.name + ".engine"), src.with_suffix(".engine")]
    return list(dict.fromkeys(out))


def find_engine(meta: dict[str, Any]) -> Path:
    """The engine file for this model; FileNotFoundError saying where it looked and how to build one."""
    candidates = engine_candidates(meta)
    for path in candidates:
        if path.is_file():
            return path
    if os.environ.get(ENGINE_ENV) or meta.get("engine"):
        source = f"${ENGINE_ENV}" if os.environ.get(ENGINE_ENV) else "meta['engine']"
        raise FileNotFoundError(f"TensorRT engine {candidates[0]} (from {source}) does not exist")
    where = ", ".join(str(p) for p in candidates) or "nowhere (in-memory network, no checkpoint path)"
    raise FileNotFoundError(
        f"no TensorRT engine for this model; looked at {where}. Build one with "
        f"`python -m s2cv.build_engine MODEL -o MODEL.engine` and/or set {ENGINE_ENV}=/path/to/model.engine")


def _torch_dtype(trt: Any, dtype: Any) -> Any:
    import torch

    table = {trt.float32: torch.float32, trt.float16: torch.float16}
    if hasattr(trt, "bfloat16"):
        table[trt.bfloat16] = torch.bfloat16
    if dtype not in table:
        raise RuntimeError(f"engine tensor type {dtype} is not supported; expected float32, float16 or bfloat16")
    return table[dtype]


class TensorRTBackend:
    """One engine + execution context on one GPU; returns DenseMaps of torch CUDA tensors."""

    name = "tensorrt"

    def __init__(self, engine_path: str | Path, info: EngineInfo, device: Any) -> None:
        import torch

        trt = import_tensorrt()
        self.trt, self.info, self.path = trt, info, Path(engine_path)
        self.device = torch.device(device)
        self.stride, self.pad_multiple, self.descriptor_dim = info.stride, info.pad_multiple, info.descriptor_dim
        self._lock = threading.Lock()
        with torch.cuda.device(self.device):
            torch.cuda.init()  # TensorRT runs in the CUDA context torch created
            self.logger = trt.Logger(trt.Logger.WARNING)
            self.runtime = trt.Runtime(self.logger)
            self.engine = self.runtime.deserialize_cuda_engine(self.path.read_bytes())
            if self.engine is None:
                raise RuntimeError(f"TensorRT {trt.__version__} could not load {self.path} (see its log above); "
                                   f"the sidecar says TensorRT {info.tensorrt_version}, "
                                   f"compute capability {info.compute_capability or '?'}: rebuild the engine")
            self.context = self.engine.create_execution_context()
            if self.context is None:
                raise RuntimeError(f"TensorRT could not create an execution context for {self.path} (GPU memory?)")
            # A stream of our own: TensorRT warns about (and synchronises on) the legacy default stream.
            self.stream = torch.cuda.Stream(self.device)
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        expected = {INPUT_NAME: trt.TensorIOMode.INPUT_NAME, **{o: trt.TensorIOMode.OUTPUT for o in OUTPUT_NAMES}}
        for name, mode in expected.items():
            if name not in names or self.engine.get_tensor_mode(name) != mode:
                raise RuntimeError(f"{self.path} is not an s2cv engine: expected {LAYOUT}; found tensors {names}")
        self.dtypes = {n: _torch_dtype(trt, self.engine.get_tensor_dtype(n)) for n in expected}

    def __call__(self, batch: Any) -> DenseMaps:
        """(B,1,H,W) float32 numpy (or torch tensor) -> DenseMaps on the GPU (current stream may use them)."""
        import torch

        shape = tuple(batch.shape)
        if len(shape) != 4 or shape[1] != 1:
            raise ValueError(f"expected a batch of shape (B, 1, H, W), got {shape}")
        if shape[2] % self.pad_multiple or shape[3] % self.pad_multiple:
            raise ValueError(f"height and width must be multiples of {self.pad_multiple}, got {shape[2]}x{shape[3]}")
        check_engine(self.info, shape=shape)
        with self._lock, torch.cuda.device(self.device):
            current = torch.cuda.current_stream(self.device)
            x = torch.as_tensor(np.ascontiguousarray(batch) if isinstance(batch, np.ndarray) else batch)
            x = x.to(self.device, self.dtypes[INPUT_NAME], non_blocking=True).contiguous()
            if not self.context.set_input_shape(INPUT_NAME, shape):
                raise EngineMismatchError(f"TensorRT rejected input shape {shape} for {self.path}")
            outputs = {}
            for name in OUTPUT_NAMES:
                dims = tuple(self.context.get_tensor_shape(name))
                if any(d < 0 for d in dims):
                    raise RuntimeError(f"TensorRT left output {name!r} with unresolved shape {dims}")
                outputs[name] = torch.empty(dims, dtype=self.dtypes[name], device=self.device)
            self.context.set_tensor_address(INPUT_NAME, x.data_ptr())
            for name, tensor in outputs.items():
                self.context.set_tensor_address(name, tensor.data_ptr())
            self.stream.wait_stream(current)  # input copy and allocations happen-before the engine
            if not self.context.execute_async_v3(self.stream.cuda_stream):
                raise RuntimeError(f"TensorRT execution failed for input {shape} (see its log above)")
            current.wait_stream(self.stream)  # whatever runs next on the current stream sees the maps
            x.record_stream(self.stream)      # keep the input alive until the engine is done with it
            for tensor in outputs.values():
                tensor.record_stream(self.stream)
            scores, desc = (outputs[name] for name in OUTPUT_NAMES)
            if scores.dtype != torch.float32:
                scores, desc = scores.float(), desc.float()
        return DenseMaps(scores[:, 0], desc, self.stride)


def _cuda_device(device: str) -> Any:
    import torch

    if not torch.cuda.is_available():
        raise RuntimeError("backend='tensorrt' needs a CUDA GPU, but torch.cuda.is_available() is False "
                           "(no GPU, no driver, or a CPU-only torch build)")
    if device == "auto":
        return torch.device("cuda", torch.cuda.current_device())
    dev = torch.device(device)
    if dev.type != "cuda":
        raise RuntimeError(f"backend='tensorrt' runs on a CUDA device, got device={device!r}")
    return torch.device("cuda", dev.index if dev.index is not None else torch.cuda.current_device())


def make_tensorrt(net: nn.Module | None, meta: dict[str, Any], device: str) -> TensorRTBackend:
    """Backend factory (see ``s2cv.feature.backends.BACKENDS``): find, check and load the model's engine."""
    trt = import_tensorrt()
    torch = import_torch("backend='tensorrt'")  # TensorRT runs on torch's CUDA buffers
    dev = _cuda_device(device)
    path = find_engine(meta)
    try:
        info = read_sidecar(path)
    except ValueError as exc:  # a corrupt sidecar must not stop backend="auto" from falling back
        raise EngineMismatchError(str(exc)) from exc
    major, minor = torch.cuda.get_device_capability(dev)
    if net is not None:
        from s2cv.deploy.export import weights_sha256

        digest: str | None = weights_sha256(net)
    else:  # the graph beside the checkpoint records the digest of the weights it was exported from
        digest = meta.get("weights_sha256") or None
    check_engine(info, model_sha256=digest, tensorrt_version=normalize_trt_version(trt.__version__),
                 compute_capability=f"{major}.{minor}",
                 descriptor_dim=int(net.descriptor_dim) if net is not None else None)
    if net is not None and int(net.stride) != info.stride:
        raise EngineMismatchError(f"engine has stride {info.stride}, the model {int(net.stride)}")
    return TensorRTBackend(path, info, dev)
