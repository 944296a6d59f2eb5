"""How far off is a fit? A predicted corner error for every transform ``register`` reports.

The plausibility verdict (``s2cv.registration.verdict``) says whether a fit is believable, not how
accurate it is: near misses of the right scene pass it. Their inliers leave signs, though: where
the inliers are few, noisy or bunched in one part of the image, the image corners are
extrapolated and least-squares refits on resampled inliers scatter there. So:

1. **bootstrap spread** — ``BOOTSTRAPS`` least-squares refits (direct linear transform, Hartley
   normalisation) of the inliers resampled with replacement (fixed seed: deterministic). Each
   refit maps four corners into the IR image: the visible image's (the benchmark's corner error
   is measured there), or the IR frame's own where the fit lands the whole frame inside the
   visible image (``probe_corners``: a narrower thermal camera, whose warped image never reaches
   the visible corners); the spread is the RMS distance (IR px) of those corners from where the
   reported fit puts them.
2. **hull share** — the inliers' convex hull over the IR image's area. Its fitted exponent is
   turned out small and positive (the spread already grows where the corners are extrapolated);
   it stays because the two together rank validation fits better than the spread alone
   (Spearman 0.68 against 0.67).

``predicted_error = exp(c0) * spread ** c1 * hull_share ** c2``, with (c0, c1, c2) fitted by
least squares in log space on validation pairs only (RoadScene/VIS-NIR/LLVIP training-split pairs
under random homographies: ``benchmarks/accuracy_estimate.py``, docs/results.md "Accuracy
estimate"). It estimates the mean corner error in the pixels of the coarser camera (IR px at equal
pixel scale: the benchmark's corner error; ``coarse_pixels``); ``register``
calls a fit a success only when it is plausible and this is at most ``max_error``.
"""
from __future__ import annotations

import math
from typing import Sequence

import cv2
import numpy as np

from s2cv.registration.geometry import MIN_POINTS, image_corners, inside_image, least_squares, warp_points

BOOTSTRAPS = 32
SEED = 0
# log(predicted) = C0 + C1 log(spread) + C2 log(hull share): fitted by benchmarks/accuracy_estimate.py on the
# default model's validation fits, refitted whenever the default model, register's fit or the probed corners change
# (s2fast-gen with the similarity-seeded fit and probe_corners; before probe_corners 1.3513, 0.8473, 0.4483, before
# the seed 1.4059, 0.9732, 0.5656; s2fast-wide's were 1.3082, 0.8081, 0.2877)
COEFFICIENTS = (1.3776, 0.8550, 0.4564)
# the same, fitted on the guided refits (geometry.guided_refit) of those validation fits: their many more inliers
# scatter less under the bootstrap than the first fit's, for a similar true error
GUIDED_COEFFICIENTS = (1.6554, 0.8647, 0.5720)
DEFAULT_MAX_ERROR = 9.0  # px; chosen on validation pairs with them (docs/results.md, "A guided refit"; was 10, 11)
MIN_SPREAD = 0.05        # px: the floor of the spread before the log (exact synthetic matches give 0)


def _normalise(pts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Hartley normalisation: centroid at 0, mean distance sqrt(2); the points and the 3x3 map."""
    c = pts.mean(0)
    d = np.sqrt(((pts - c) ** 2).sum(1)).mean()
    s = math.sqrt(2) / d if d > 1e-12 else 1.0
    T = np.array([[s, 0, -s * c[0]], [0, s, -s * c[1]], [0, 0, 1.0]])
    return (pts - c) * s, T


def bootstrap_homographies(src: np.ndarray, dst: np.ndarray, n: int = BOOTSTRAPS, seed: int = SEED) -> np.ndarray:
    """(n, 3, 3) least-squares homographies src -> dst on resamples (with replacement) of the
    point pairs. All refits share one set of per-point normal-equation terms, so the n fits cost
    one (n, N) x (N, 81) product and n 9x9 eigen-decompositions (a few ms for 1 000 points)."""
    src = np.asarray(src, np.float64).reshape(-1, 2)
    dst = np.asarray(dst, np.float64).reshape(-1, 2)
    N = len(src)
    (s, Ts), (d, Td) = _normalise(src), _normalise(dst)
    one, zero = np.ones(N), np.zeros(N)
    rx = np.column_stack([s[:, 0], s[:, 1], one, zero, zero, zero, -d[:, 0] * s[:, 0], -d[:, 0] * s[:, 1], -d[:, 0]])
    ry = np.column_stack([zero, zero, zero, s[:, 0], s[:, 1], one, -d[:, 1] * s[:, 0], -d[:, 1] * s[:, 1], -d[:, 1]])
    outer = (rx[:, :, None] * rx[:, None, :] + ry[:, :, None] * ry[:, None, :]).reshape(N, 81)
    rng = np.random.default_rng(seed)
    weights = rng.multinomial(N, np.full(N, 1.0 / N), size=n).astype(np.float64)  # (n, N) resample counts
    AtA = (weights @ outer).reshape(n, 9, 9)
    vecs = np.linalg.eigh(AtA)[1][:, :, 0]  # eigenvector of the smallest eigenvalue
    Hn = vecs.reshape(n, 3, 3)
    H = np.linalg.inv(Td)[None] @ Hn @ Ts[None]
    return H / H[:, 2:3, 2:3]


def probe_corners(H: np.ndarray, src_shape: Sequence[int], dst_shape: Sequence[int]) -> np.ndarray:
    """Where the error is predicted (dst px): the src (IR) frame's corners when ``H`` lands the
    whole frame inside the dst (visible) image, as a narrower thermal camera's does (the visible
    corners then lie where the IR image shows nothing), else the dst image's corners (the
    benchmark's corner error)."""
    quad = warp_points(image_corners(src_shape), H)
    return quad if np.isfinite(quad).all() and inside_image(quad, dst_shape).all() else image_corners(dst_shape)


def corner_spread(H: np.ndarray, src: np.ndarray, dst: np.ndarray, corners: np.ndarray,
                  transform: str = "homography", n: int = BOOTSTRAPS, seed: int = SEED) -> float:
    """RMS distance (src px) between where bootstrap refits of ``src -> dst`` and ``H`` send the
    ``corners`` (dst px, ``probe_corners``) back into src (inf when the refits are degenerate)."""
    src = np.asarray(src, np.float64).reshape(-1, 2)
    dst = np.asarray(dst, np.float64).reshape(-1, 2)
    if len(src) < MIN_POINTS[transform] + 1:
        return math.inf
    ref = warp_points(corners, np.linalg.inv(H))
    if transform == "homography":
        fits = bootstrap_homographies(src, dst, n, seed)
    else:
        rng = np.random.default_rng(seed)
        fits = [least_squares(src[i], dst[i], transform) for i in rng.integers(0, len(src), size=(n, len(src)))]
        if any(f is None for f in fits):
            return math.inf
        fits = np.stack(fits)
    try:
        inv = np.linalg.inv(fits)
    except np.linalg.LinAlgError:
        return math.inf
    hom = np.concatenate([corners, np.ones((4, 1))], 1) @ inv.transpose(0, 2, 1)  # (n, 4, 3)
    w = hom[..., 2:]
    if not np.all(np.abs(w) > 1e-12):
        return math.inf
    d2 = ((hom[..., :2] / w - ref[None]) ** 2).sum(-1)
    value = float(np.sqrt(d2.mean()))
    return value if math.isfinite(value) else math.inf


def hull_share(pts: np.ndarray, shape: Sequence[int]) -> float:
    """Area of the points' convex hull over the image's area (0 for fewer than 3 points)."""
    pts = np.asarray(pts, np.float32).reshape(-1, 2)
    if len(pts) < 3:
        return 0.0
    h, w = shape[:2]
    return float(cv2.contourArea(cv2.convexHull(pts))) / max(float((w - 1) * (h - 1)), 1.0)


def features(H: np.ndarray, src: np.ndarray, dst: np.ndarray, src_shape: Sequence[int], dst_shape: Sequence[int],
             transform: str = "homography") -> dict[str, float]:
    """The signals behind the prediction, for the inliers ``src -> dst`` of the fit ``H``."""
    return {"spread": corner_spread(H, src, dst, probe_corners(H, src_shape, dst_shape), transform),
            "hull_share": hull_share(src, src_shape), "inliers": float(len(np.asarray(src).reshape(-1, 2)))}


def combine(spread: float, hull: float, coefficients: Sequence[float] = COEFFICIENTS) -> float:
    """The calibrated prediction from the two signals (inf when either is missing)."""
    if not (math.isfinite(spread) and hull > 0):
        return math.inf
    c0, c1, c2 = coefficients
    return float(math.exp(c0 + c1 * math.log(max(spread, MIN_SPREAD)) + c2 * math.log(min(hull, 1.0))))


def pixel_ratio(H: np.ndarray, src_shape: Sequence[int]) -> float:
    """Mean linear scale of ``H`` over the src image (dst px per src px: the area of the warped
    outline over the image's); nan when the outline folds."""
    quad = warp_points(image_corners(src_shape), H).astype(np.float32)
    h, w = src_shape[:2]
    area = abs(cv2.contourArea(quad)) if np.isfinite(quad).all() else math.nan
    return math.sqrt(area / max((w - 1) * (h - 1), 1)) if area == area else math.nan


def coarse_pixels(error_src_px: float, H: np.ndarray, src_shape: Sequence[int]) -> float:
    """An error in src (IR) px expressed in the pixels of the coarser of the two images: a
    thermal camera with twice the visible camera's pixel density doubles every error in its own
    pixels without anything getting worse."""
    r = pixel_ratio(H, src_shape)
    return error_src_px * min(1.0, r) if r == r and r > 0 else error_src_px


def view_disagreement(H: np.ndarray, H_other: np.ndarray, src_shape: Sequence[int], dst_shape: Sequence[int]) -> float:
    """Mean distance between where two src (IR) -> dst (visible) fits send ``H``'s
    ``probe_corners`` back into src, in the coarser image's pixels (``predict_error``'s unit); inf
    when either fit sends a corner to infinity."""
    corners = probe_corners(H, src_shape, dst_shape)
    try:
        a, b = warp_points(corners, np.linalg.inv(H)), warp_points(corners, np.linalg.inv(H_other))
    except np.linalg.LinAlgError:
        return math.inf
    d = float(np.linalg.norm(a - b, axis=1).mean())
    return coarse_pixels(d, H, src_shape) if math.isfinite(d) else math.inf


def predict_error(H: np.ndarray, src: np.ndarray, dst: np.ndarray, src_shape: Sequence[int],
                  dst_shape: Sequence[int], transform: str = "homography", guided: bool = False) -> float:
    """Predicted mean corner error of the fit ``H`` (src = IR -> dst = visible) from its inliers
    ``src``/``dst``, at ``probe_corners``, in the pixels of the coarser image (IR px when the two
    have the same pixel scale: the benchmark's corner error); inf when it cannot be estimated.
    ``guided``: ``H`` is a guided refit (``GUIDED_COEFFICIENTS``)."""
    f = features(H, src, dst, src_shape, dst_shape, transform)
    return combine(coarse_pixels(f["spread"], H, src_shape), f["hull_share"],
                   GUIDED_COEFFICIENTS if guided else COEFFICIENTS)
