"""Keypoint detection and descriptor sampling on network outputs.

The arithmetic lives in the compiled modules ``s2cv._C`` (CPU) and
``s2cv._C_cuda`` (GPU); this module converts and checks inputs so the
kernels only ever see well-formed buffers. There is deliberately no NumPy
fallback: a missing build must be loud, not silently several times slower.

Semantics shared by every back end:

* ``detect`` keeps a pixel when ``score > threshold``, it lies at least
  ``border`` pixels from each edge, ``mask`` allows it, and it is ``>=`` every
  pixel of its ``(2r+1)x(2r+1)`` window (clipped at the edges). Ties are kept:
  every pixel of a flat plateau survives. Rows ``(x, y, score)`` come best
  first, ties broken by smaller ``y`` then smaller ``x``. Sub-pixel refinement
  moves ``x``/``y`` to the vertex of a 1-D parabola through the centre
  row/column (offset clamped to [-0.5, 0.5], skipped on the image edge); the
  score stays the pixel's score.
* ``sample_descriptors`` maps image pixel ``x`` to ``(x + 0.5) / stride - 0.5``
  on the descriptor map (``grid_sample(align_corners=False,
  padding_mode="border")``), samples bilinearly and L2-normalises each row
  (an all-zero row stays zero).

``HAS_CUDA`` is true when ``s2cv._C_cuda`` was built and a GPU is visible; it
is evaluated on first access so importing this module never touches CUDA.
"""
from __future__ import annotations

import importlib
import operator
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch


__all__ = ["HAS_CUDA", "detect", "detect_cuda", "sample_descriptors", "sample_descriptors_cuda"]

_cuda_state: tuple[ModuleType | None, str] | None = None  # (module, reason it is unusable)


def _cpu() -> ModuleType:
    try:
        return importlib.import_module("s2cv._C")
    except ImportError as exc:
        raise ImportError(
            "s2cv's compiled extension s2cv._C is not built; run `pip install .` "
            "(or `pip install -e .`) in the repository root"
        ) from exc


def _cuda_module() -> tuple[ModuleType | None, str]:
    global _cuda_state
    if _cuda_state is None:
        try:
            module = importlib.import_module("s2cv._C_cuda")
        except ImportError as exc:
            _cuda_state = (None, f"s2cv._C_cuda is not built (no nvcc at build time or S2CV_NO_CUDA set): {exc}")
        else:
            usable = module.device_count() > 0
            _cuda_state = (module if usable else None, "" if usable else "no CUDA device is visible")
    return _cuda_state


def __getattr__(name: str) -> Any:
    if name == "HAS_CUDA":
        return _cuda_module()[0] is not None
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _index(value: object, name: str) -> int:
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(f"{name}: expected an integer, got {type(value).__name__}") from None


def _real(value: object, name: str) -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name}: expected a real number, got {type(value).__name__}")
    return float(value)


def _float32(array: object, name: str, ndim: int) -> np.ndarray:
    """Aligned C-contiguous float32 copy/view of a real-valued array."""
    a = np.asarray(array)
    if a.dtype.kind not in "fiu":
        raise TypeError(f"{name}: expected a real-valued array, got dtype {a.dtype}")
    if a.ndim != ndim:
        raise ValueError(f"{name}: expected {ndim} dimensions, got shape {a.shape}")
    return np.require(a, dtype=np.float32, requirements=["C", "A"])


def _mask_uint8(mask: object, shape: tuple[int, ...]) -> np.ndarray:
    m = np.asarray(mask)
    if m.dtype.kind not in "biu":
        raise TypeError(f"mask: expected a bool or integer array, got dtype {m.dtype}")
    if m.shape != shape:
        raise ValueError(f"mask: expected shape {shape} like scores, got {m.shape}")
    if m.dtype != np.uint8 and m.dtype != np.bool_:
        m = m != 0
    return np.require(m, requirements=["C", "A"])


def detect(
    scores: np.ndarray,
    mask: np.ndarray | None = None,
    nms_radius: int = 2,
    threshold: float = 0.0,
    border: int = 4,
    max_keypoints: int = 0,
    subpixel: bool = True,
) -> np.ndarray:
    """Keypoints of an (H, W) score map as float32 (N, 3) rows (x, y, score).

    ``max_keypoints=0`` keeps all; ``nms_radius=0`` disables suppression.
    Raises ValueError for empty or non-finite scores and negative parameters.
    """
    module = _cpu()
    s = _float32(scores, "scores", 2)
    m = None if mask is None else _mask_uint8(mask, s.shape)
    return module.detect(
        s,
        m,
        _index(nms_radius, "nms_radius"),
        _real(threshold, "threshold"),
        _index(border, "border"),
        _index(max_keypoints, "max_keypoints"),
        bool(subpixel),
    )


def sample_descriptors(descriptors: np.ndarray, keypoints_xy: np.ndarray, stride: float = 1.0) -> np.ndarray:
    """L2-normalised descriptors (N, D) sampled from a (D, h, w) map at image
    coordinates ``keypoints_xy`` (N, 2); the map has ``stride`` image pixels
    per cell. Raises ValueError for non-finite keypoints or a bad stride."""
    module = _cpu()
    k = _float32(keypoints_xy, "keypoints_xy", 2)
    a = np.asarray(descriptors)
    if a.ndim == 3 and a.dtype == np.float32 and not a.flags.c_contiguous and a.transpose(1, 2, 0).flags.c_contiguous:
        # A channels-last map (a torch CPU output) viewed as (D, h, w): read it in place.
        return module.sample_descriptors(a.transpose(1, 2, 0), k, _real(stride, "stride"), True)
    d = _float32(descriptors, "descriptors", 3)
    return module.sample_descriptors(d, k, _real(stride, "stride"), False)


def _require_cuda() -> ModuleType:
    module, reason = _cuda_module()
    if module is None:
        raise RuntimeError(f"CUDA post-processing is unavailable: {reason}")
    return module


def _cuda_tensor(t: object, name: str, ndim: int) -> torch.Tensor:
    import torch

    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor, got {type(t).__name__}")
    if not t.is_cuda:
        raise ValueError(f"{name}: expected a CUDA tensor, got device {t.device}")
    if t.dim() != ndim:
        raise ValueError(f"{name}: expected {ndim} dimensions, got shape {tuple(t.shape)}")
    if t.is_complex() or t.dtype == torch.bool:
        raise TypeError(f"{name}: expected a real-valued tensor, got dtype {t.dtype}")
    return t.to(torch.float32).contiguous()


def detect_cuda(
    scores: torch.Tensor,
    mask: torch.Tensor | None = None,
    nms_radius: int = 2,
    threshold: float = 0.0,
    border: int = 4,
    max_keypoints: int = 0,
    subpixel: bool = True,
) -> torch.Tensor:
    """GPU ``detect`` on a CUDA (H, W) tensor; returns a float32 (N, 3) CUDA
    tensor. Runs on the current stream and synchronises it once (to learn N)."""
    import torch

    module = _require_cuda()
    s = _cuda_tensor(scores, "scores", 2)
    H, W = s.shape
    if H * W == 0:
        raise ValueError(f"scores must be non-empty, got shape {(H, W)}")
    m = None
    if mask is not None:
        if not isinstance(mask, torch.Tensor):
            raise TypeError(f"mask: expected a torch.Tensor or None, got {type(mask).__name__}")
        if tuple(mask.shape) != (H, W):
            raise ValueError(f"mask: expected shape {(H, W)} like scores, got {tuple(mask.shape)}")
        if mask.device != s.device:
            raise ValueError(f"mask: expected device {s.device} like scores, got {mask.device}")
        if mask.is_floating_point() or mask.is_complex():
            raise TypeError(f"mask: expected a bool or integer tensor, got dtype {mask.dtype}")
        m = (mask != 0).to(torch.uint8).contiguous()
    k = _index(max_keypoints, "max_keypoints")
    capacity = H * W if k <= 0 else min(k, H * W)  # k < 0 is rejected by the kernel call
    device = s.get_device()
    out = torch.empty((capacity, 3), dtype=torch.float32, device=s.device)
    workspace = torch.empty(module.detect_workspace_bytes(H, W, device), dtype=torch.uint8, device=s.device)
    n = module.detect(
        s.data_ptr(),
        0 if m is None else m.data_ptr(),
        H,
        W,
        _index(nms_radius, "nms_radius"),
        _real(threshold, "threshold"),
        _index(border, "border"),
        k,
        bool(subpixel),
        out.data_ptr(),
        capacity,
        workspace.data_ptr(),
        workspace.numel(),
        device,
        torch.cuda.current_stream(s.device).cuda_stream,
    )
    return out[:n]


def sample_descriptors_cuda(
    descriptors: torch.Tensor, keypoints_xy: torch.Tensor, stride: float = 1.0
) -> torch.Tensor:
    """GPU ``sample_descriptors``: CUDA (D, h, w) map and (N, 2) keypoints in,
    float32 (N, D) CUDA tensor out. Checking for non-finite keypoints costs
    one synchronisation."""
    import torch

    module = _require_cuda()
    d = _cuda_tensor(descriptors, "descriptors", 3)
    k = _cuda_tensor(keypoints_xy, "keypoints_xy", 2)
    if k.shape[1] != 2:
        raise ValueError(f"keypoints_xy: expected shape (N, 2), got {tuple(k.shape)}")
    if k.device != d.device:
        raise ValueError(f"keypoints_xy: expected device {d.device} like descriptors, got {k.device}")
    if k.numel() and not bool(torch.isfinite(k).all()):
        raise ValueError("keypoints contain NaN or Inf")
    D, h, w = d.shape
    N = k.shape[0]
    out = torch.empty((N, D), dtype=torch.float32, device=d.device)
    device = d.get_device()
    module.sample_descriptors(
        d.data_ptr(),
        D,
        h,
        w,
        k.data_ptr(),
        N,
        _real(stride, "stride"),
        out.data_ptr(),
        device,
        torch.cuda.current_stream(d.device).cuda_stream,
    )
    return out
