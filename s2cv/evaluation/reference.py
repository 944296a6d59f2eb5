"""Plain NumPy reference of :mod:`s2cv.feature.postprocess`, for tests and benchmarks.

Written to be obviously right rather than fast. It repeats the compiled
kernels' float32 operations in the same order, so tests can compare
positions tightly and keypoint sets exactly.
"""
from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


def _window_max(s: np.ndarray, r: int) -> np.ndarray:
    """Max over the (2r+1)x(2r+1) window of every pixel, clipped at the edges."""
    padded = np.pad(s, r, constant_values=-np.inf)
    rows = sliding_window_view(padded, 2 * r + 1, axis=1).max(axis=-1)
    return sliding_window_view(rows, 2 * r + 1, axis=0).max(axis=-1)


def _parabola_offset(left: np.ndarray, centre: np.ndarray, right: np.ndarray) -> np.ndarray:
    denom = left - np.float32(2.0) * centre + right
    with np.errstate(divide="ignore", invalid="ignore"):
        off = np.float32(0.5) * (left - right) / denom
    return np.where(denom < 0, np.clip(off, np.float32(-0.5), np.float32(0.5)), np.float32(0.0))


def detect(
    scores: np.ndarray,
    mask: np.ndarray | None = None,
    nms_radius: int = 2,
    threshold: float = 0.0,
    border: int = 4,
    max_keypoints: int = 0,
    subpixel: bool = True,
) -> np.ndarray:
    """Reference of :func:`s2cv.feature.postprocess.detect` (same arguments and result)."""
    s = np.asarray(scores, dtype=np.float32)
    if s.ndim != 2 or s.size == 0:
        raise ValueError(f"scores: expected a non-empty 2-D array, got shape {s.shape}")
    if not np.isfinite(s).all():
        raise ValueError("scores contain NaN or Inf")
    if nms_radius < 0 or border < 0 or max_keypoints < 0:
        raise ValueError("nms_radius, border and max_keypoints must be >= 0")
    H, W = s.shape
    ys, xs = np.indices((H, W))
    keep = (s > np.float32(threshold)) & (xs >= border) & (xs <= W - 1 - border)
    keep &= (ys >= border) & (ys <= H - 1 - border)
    if mask is not None:
        keep &= np.asarray(mask) != 0
    if nms_radius > 0:
        keep &= s >= _window_max(s, nms_radius)  # >=: plateaus keep every pixel

    y, x = np.nonzero(keep)
    score = s[y, x]
    order = np.lexsort((x, y, -score))  # score descending, then y, then x
    if max_keypoints > 0:
        order = order[:max_keypoints]
    y, x, score = y[order], x[order], score[order]

    dx = np.zeros(len(x), np.float32)
    dy = np.zeros(len(y), np.float32)
    if subpixel:
        inner_x = (x > 0) & (x < W - 1)
        inner_y = (y > 0) & (y < H - 1)
        xl, xr = np.clip(x - 1, 0, W - 1), np.clip(x + 1, 0, W - 1)
        yu, yd = np.clip(y - 1, 0, H - 1), np.clip(y + 1, 0, H - 1)
        dx = np.where(inner_x, _parabola_offset(s[y, xl], score, s[y, xr]), np.float32(0.0))
        dy = np.where(inner_y, _parabola_offset(s[yu, x], score, s[yd, x]), np.float32(0.0))
    out = np.stack([x.astype(np.float32) + dx, y.astype(np.float32) + dy, score], axis=1)
    return out.astype(np.float32, copy=False).reshape(-1, 3)


def _tap(coord: np.ndarray, stride: np.float32, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    u = (coord + np.float32(0.5)) / stride - np.float32(0.5)
    u = np.clip(u, np.float32(0.0), np.float32(size - 1))
    i0 = u.astype(np.int64)  # u >= 0: truncation is floor
    return i0, np.minimum(i0 + 1, size - 1), u - i0.astype(np.float32)


def sample_descriptors(descriptors: np.ndarray, keypoints_xy: np.ndarray, stride: float = 1.0) -> np.ndarray:
    """Reference of :func:`s2cv.feature.postprocess.sample_descriptors`."""
    d = np.asarray(descriptors, dtype=np.float32)
    k = np.asarray(keypoints_xy, dtype=np.float32)
    if d.ndim != 3 or d.size == 0:
        raise ValueError(f"descriptors: expected a non-empty (D, h, w) array, got shape {d.shape}")
    if k.ndim != 2 or k.shape[1] != 2:
        raise ValueError(f"keypoints_xy: expected shape (N, 2), got {k.shape}")
    if not np.isfinite(k).all():
        raise ValueError("keypoints contain NaN or Inf")
    if not (np.isfinite(stride) and stride > 0):
        raise ValueError(f"stride must be a finite number > 0, got {stride}")
    _, h, w = d.shape
    x0, x1, tx = _tap(k[:, 0], np.float32(stride), w)
    y0, y1, ty = _tap(k[:, 1], np.float32(stride), h)
    top = d[:, y0, x0] + tx * (d[:, y0, x1] - d[:, y0, x0])
    bottom = d[:, y1, x0] + tx * (d[:, y1, x1] - d[:, y1, x0])
    v = (top + ty * (bottom - top)).T
    norm = np.sqrt((v * v).sum(axis=1, keepdims=True))
    return np.divide(v, norm, out=np.zeros_like(v), where=norm > 0)
