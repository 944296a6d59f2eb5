"""Pictures the runtime writes (``register``, ``calibrate``, ``evaluate``): match lines and
checkerboard overlays, with OpenCV alone.
"""
from __future__ import annotations

import cv2
import numpy as np

from s2cv.feature.image import to_uint8

GREEN = (0, 200, 0)
RED = (0, 0, 255)


def to_bgr8(img: np.ndarray) -> np.ndarray:
    """8-bit 3-channel copy of any image, so different modalities can share one canvas.

    Non-8-bit images (16-bit thermal, float) get the same percentile stretch as everywhere
    else in s2cv (``image.to_uint8``), so a few hot pixels cannot turn the picture black.
    """
    img = to_uint8(img)
    if img.ndim == 2:
        return cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    if img.shape[2] == 1:
        return cv2.cvtColor(img[:, :, 0], cv2.COLOR_GRAY2BGR)
    if img.shape[2] == 4:
        return cv2.cvtColor(img, cv2.COLOR_BGRA2BGR)
    return img.copy()


def draw_matches(
    img_a: np.ndarray,
    img_b: np.ndarray,
    pts_a: np.ndarray,
    pts_b: np.ndarray,
    correct_mask: np.ndarray,
) -> np.ndarray:
    """Side-by-side BGR image with a line per match: green where correct, red otherwise."""
    a, b = to_bgr8(img_a), to_bgr8(img_b)
    pts_a = np.asarray(pts_a, dtype=np.float64).reshape(-1, 2)
    pts_b = np.asarray(pts_b, dtype=np.float64).reshape(-1, 2)
    correct_mask = np.asarray(correct_mask, dtype=bool).reshape(-1)
    if not len(pts_a) == len(pts_b) == len(correct_mask):
        raise ValueError(
            f"pts_a, pts_b and correct_mask differ in length: "
            f"{len(pts_a)}, {len(pts_b)}, {len(correct_mask)}"
        )
    h = max(a.shape[0], b.shape[0])
    canvas = np.zeros((h, a.shape[1] + b.shape[1], 3), np.uint8)
    canvas[: a.shape[0], : a.shape[1]] = a
    canvas[: b.shape[0], a.shape[1] :] = b
    offset = np.array([a.shape[1], 0.0])
    # Draw wrong matches first so the correct ones stay visible on top.
    for ok in (False, True):
        colour = GREEN if ok else RED
        for pa, pb in zip(pts_a[correct_mask == ok], pts_b[correct_mask == ok] + offset):
            p, q = tuple(int(round(v)) for v in pa), tuple(int(round(v)) for v in pb)
            cv2.line(canvas, p, q, colour, 1, cv2.LINE_AA)
            cv2.circle(canvas, p, 2, colour, -1, cv2.LINE_AA)
            cv2.circle(canvas, q, 2, colour, -1, cv2.LINE_AA)
    return canvas


def overlay_tile(image: np.ndarray) -> int:
    """The checkerboard tile of the registration overlays: an eighth of the shorter side, >= 8 px."""
    return max(8, min(image.shape[:2]) // 8)


def overlay(img_a: np.ndarray, img_b_warped: np.ndarray, tile: int = 32) -> np.ndarray:
    """Checkerboard of two same-size images: misregistration shows as broken edges at tile seams."""
    a, b = to_bgr8(img_a), to_bgr8(img_b_warped)
    if a.shape != b.shape:
        raise ValueError(f"images must have the same size, got {a.shape[:2]} and {b.shape[:2]}")
    if tile < 1:
        raise ValueError(f"tile must be >= 1, got {tile}")
    ys, xs = np.indices(a.shape[:2])
    use_b = ((ys // tile + xs // tile) % 2).astype(bool)
    out = a.copy()
    out[use_b] = b[use_b]
    return out
