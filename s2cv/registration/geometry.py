"""Matching and geometry shared by registration, calibration, refinement and the benchmarks.

Points are (N, 2) pixel coordinates; a homography H maps (x, y, 1) of one image to the other.
``fit_transform`` is the one robust fit (MAGSAC++ for homographies, RANSAC for affine and
similarity transforms) that every path uses, so ``register``, ``calibrate`` and ``evaluate``
cannot disagree about what "the fit of these matches" is.
"""
from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import cv2
import numpy as np

_CHUNK = 2048  # rows per block when computing all-pairs distances, bounds memory


def warp_points(pts: np.ndarray, H: np.ndarray) -> np.ndarray:
    """Map (N, 2) pixel coordinates through homography H; points sent to infinity become inf."""
    pts = np.asarray(pts, dtype=np.float64).reshape(-1, 2)
    hom = np.hstack([pts, np.ones((len(pts), 1))]) @ np.asarray(H, dtype=np.float64).T
    w = hom[:, 2:]
    with np.errstate(divide="ignore", invalid="ignore"):
        out = hom[:, :2] / w
    out[np.abs(w[:, 0]) < 1e-12] = np.inf
    return out


def inside_image(pts: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """Boolean mask of points lying on the pixel grid of an image of `shape` (h, w, ...)."""
    h, w = shape[:2]
    pts = np.asarray(pts, dtype=np.float64).reshape(-1, 2)
    return (pts[:, 0] >= 0) & (pts[:, 0] <= w - 1) & (pts[:, 1] >= 0) & (pts[:, 1] <= h - 1)


def _squared_distances(query: np.ndarray, ref: np.ndarray) -> Iterator[tuple[int, np.ndarray]]:
    """(first row, block of squared L2 distances) for blocks of ``_CHUNK`` query rows.

    |q - r|^2 = |q|^2 + |r|^2 - 2 q.r turns the all-pairs search into matrix products, which
    is several times faster than a brute-force matcher; blocks bound the memory.
    """
    ref_sq = (ref**2).sum(1)
    for i in range(0, len(query), _CHUNK):
        q = query[i : i + _CHUNK]
        yield i, (q**2).sum(1)[:, None] + ref_sq[None, :] - 2.0 * q @ ref.T


def nearest_distances(query: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Distance from each query point to its nearest reference point (inf if no reference)."""
    if len(ref) == 0:
        return np.full(len(query), np.inf)
    out = np.empty(len(query))
    for i, d2 in _squared_distances(query, ref):
        out[i : i + len(d2)] = np.sqrt(np.maximum(d2.min(1), 0.0))
    return out


def _nearest_index(query: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Index of each query row's nearest ref row under L2 (first one on ties, as cv2.BFMatcher)."""
    out = np.empty(len(query), np.int64)
    for i, d2 in _squared_distances(query, ref):
        out[i : i + len(d2)] = d2.argmin(1)
    return out


def default_norm(desc: np.ndarray) -> int:
    """Hamming for packed binary (uint8) descriptors, L2 otherwise."""
    return cv2.NORM_HAMMING if desc.dtype == np.uint8 else cv2.NORM_L2


def mutual_nn_matches(
    desc_a: np.ndarray | None, desc_b: np.ndarray | None, norm: int | None = None
) -> np.ndarray:
    """Mutual nearest-neighbour matches as an (L, 2) array of (index in A, index in B).

    `norm` defaults to Hamming for uint8 descriptors and L2 otherwise. L2 runs as matrix
    products (the pairs of ``cv2.BFMatcher(crossCheck=True)`` but several times faster; a
    near-tie may resolve differently after float rounding); other norms use that matcher.
    """
    if desc_a is None or desc_b is None or len(desc_a) == 0 or len(desc_b) == 0:
        return np.empty((0, 2), dtype=np.int64)
    if desc_a.ndim != 2 or desc_b.ndim != 2 or desc_a.shape[1] != desc_b.shape[1]:
        raise ValueError(f"descriptor arrays must be (N, D) with the same D, got {desc_a.shape} and {desc_b.shape}")
    if norm is None:
        norm = default_norm(desc_a)
    if norm in (cv2.NORM_L2, cv2.NORM_L1, cv2.NORM_L2SQR):
        desc_a, desc_b = desc_a.astype(np.float32), desc_b.astype(np.float32)
    if norm in (cv2.NORM_L2, cv2.NORM_L2SQR):
        forward, backward = _nearest_index(desc_a, desc_b), _nearest_index(desc_b, desc_a)
        mutual = np.flatnonzero(backward[forward] == np.arange(len(desc_a)))
        return np.column_stack([mutual, forward[mutual]]).astype(np.int64)
    matches = cv2.BFMatcher(norm, crossCheck=True).match(desc_a, desc_b)
    return np.array([(m.queryIdx, m.trainIdx) for m in matches], dtype=np.int64).reshape(-1, 2)


def match_errors(pts_a: np.ndarray, pts_b: np.ndarray, H: np.ndarray) -> np.ndarray:
    """Reprojection error (px) of each match: distance between H(a) and its matched b."""
    pts_b = np.asarray(pts_b, dtype=np.float64).reshape(-1, 2)
    return np.linalg.norm(warp_points(pts_a, H) - pts_b, axis=1)


def estimate_homography(pts_a: np.ndarray, pts_b: np.ndarray, threshold: float = 3.0) -> np.ndarray | None:
    """Robust homography A -> B from matched points (``fit_transform``); None when there are
    fewer than 4 matches or the estimator gives up."""
    return fit_transform(pts_a, pts_b, "homography", threshold)[0]


MIN_ABS_DET = 1e-8
"""A 3x3 transform whose determinant is smaller in magnitude is degenerate (not invertible)."""


def invertible(H: np.ndarray | None) -> bool:
    """``H`` exists and its determinant is at least ``MIN_ABS_DET`` in magnitude."""
    return H is not None and abs(np.linalg.det(H)) >= MIN_ABS_DET


def image_corners(shape: Sequence[int]) -> np.ndarray:
    """(4, 2) float64 pixel centres of the corners of an image of ``shape`` (h, w, ...), clockwise
    from the top left."""
    h, w = shape[:2]
    return np.array([[0, 0], [w - 1, 0], [w - 1, h - 1], [0, h - 1]], np.float64)


def corner_error(H_est: np.ndarray | None, H_gt: np.ndarray, shape_a: Sequence[int]) -> float:
    """Mean distance between image A's 4 corners warped by the estimate and by the truth.

    A missing estimate (registration failure) is an infinite error.
    """
    if H_est is None:
        return math.inf
    corners = image_corners(shape_a)
    err = np.linalg.norm(warp_points(corners, H_est) - warp_points(corners, H_gt), axis=1)
    mean = float(err.mean())
    return mean if math.isfinite(mean) else math.inf


TRANSFORMS = ("homography", "affine", "similarity")
MIN_POINTS = {"homography": 4, "affine": 3, "similarity": 2}


# ---------------------------------------------------------------- fitting


MAGSAC = getattr(cv2, "USAC_MAGSAC", cv2.RANSAC)  # the homography estimator (RANSAC where OpenCV lacks USAC)
THOROUGH = {"maxIters": 10000, "confidence": 0.9999}
"""MAGSAC++ effort of ``register``'s own fit (``thorough=True``): OpenCV's default (2 000
iterations, confidence 0.995) stops before the best model on more validation pairs (77.7 against
74.8 % within 10 px: benchmarks/accuracy_estimate.py); the verdict's baselines keep the default."""


def fit_transform(src: np.ndarray, dst: np.ndarray, transform: str = "homography",
                  threshold: float = 3.0, thorough: bool = False) -> tuple[np.ndarray | None, np.ndarray]:
    """Robust fit src -> dst (MAGSAC++ homography, RANSAC affine/similarity) as a 3x3 matrix
    and the inlier mask; (None, empty mask) when too few points or the estimator gives up.
    ``thorough`` (``register``'s and ``calibrate``'s own fit): more MAGSAC++ iterations and a higher
    confidence (``THOROUGH``), then the similarity-seeded refit (``_seeded_by_similarity``)."""
    src = np.asarray(src, np.float64).reshape(-1, 2)
    dst = np.asarray(dst, np.float64).reshape(-1, 2)
    empty = np.zeros(len(src), bool)
    if len(src) < MIN_POINTS[transform]:
        return None, empty
    if transform == "homography":
        M, mask = cv2.findHomography(src, dst, MAGSAC, threshold, **(THOROUGH if thorough else {}))
        if thorough:
            M, mask = _seeded_by_similarity(src, dst, threshold, M, mask)
    else:
        estimate = cv2.estimateAffine2D if transform == "affine" else cv2.estimateAffinePartial2D
        M, mask = estimate(src, dst, method=cv2.RANSAC, ransacReprojThreshold=threshold)
        if M is not None:
            M = np.vstack([M, [0.0, 0.0, 1.0]])
    if M is None or M.shape != (3, 3) or not np.isfinite(M).all():
        return None, empty
    inliers = empty if mask is None else mask.reshape(-1).astype(bool)
    return M.astype(np.float64), inliers


SEED_FACTOR = 4.0  # the similarity's inlier threshold, in multiples of the homography's


def _consensus(M: np.ndarray | None, src: np.ndarray, dst: np.ndarray, threshold: float) -> int:
    """How many pairs ``M`` maps within ``threshold`` px (0 without a model)."""
    if M is None or M.shape != (3, 3) or not np.isfinite(M).all():
        return 0
    return int((np.linalg.norm(warp_points(src, M) - dst, axis=1) <= threshold).sum())


def _seeded_by_similarity(src: np.ndarray, dst: np.ndarray, threshold: float, M: np.ndarray | None,
                          mask: np.ndarray | None) -> tuple[np.ndarray | None, np.ndarray | None]:
    """A second MAGSAC++ fit on the pairs a loose similarity keeps; the one of the two fits with
    more pairs within ``threshold`` wins.

    Why: with 5 % correct matches (a coarse thermal camera against a finer visible one) a 4-point
    sample is all-correct once in 160 000 draws, so MAGSAC++ settles on a wrong model although
    the correct matches are there; a 2-point similarity needs 400 draws, and its loose consensus
    (``SEED_FACTOR`` x the threshold: room for perspective) raises the share of correct matches
    the homography is then drawn from."""
    S, keep = cv2.estimateAffinePartial2D(src, dst, method=cv2.RANSAC, ransacReprojThreshold=SEED_FACTOR * threshold,
                                          maxIters=THOROUGH["maxIters"], confidence=THOROUGH["confidence"])
    if S is None or keep is None or int(keep.sum()) < MIN_POINTS["homography"] + 1:
        return M, mask
    sel = keep.reshape(-1).astype(bool)
    M2, mask2 = cv2.findHomography(src[sel], dst[sel], MAGSAC, threshold, **THOROUGH)
    if _consensus(M2, src, dst, threshold) <= _consensus(M, src, dst, threshold):
        return M, mask
    full = np.zeros(len(src), np.uint8)
    full[np.flatnonzero(sel)] = mask2.reshape(-1)
    return M2, full


def least_squares(src: np.ndarray, dst: np.ndarray, transform: str = "homography") -> np.ndarray | None:
    """Plain least-squares fit (no outlier rejection) of the given kind; None if degenerate."""
    src = np.asarray(src, np.float64).reshape(-1, 2)
    dst = np.asarray(dst, np.float64).reshape(-1, 2)
    if len(src) < MIN_POINTS[transform]:
        return None
    if transform == "homography":
        H, _ = cv2.findHomography(src, dst, 0)
        return H if H is not None and np.isfinite(H).all() else None
    n = len(src)
    if transform == "affine":
        A = np.zeros((2 * n, 6))
        A[0::2, 0:2], A[0::2, 2] = src, 1.0
        A[1::2, 3:5], A[1::2, 5] = src, 1.0
    else:  # similarity: x' = a x - b y + tx, y' = b x + a y + ty
        A = np.zeros((2 * n, 4))
        A[0::2] = np.column_stack([src[:, 0], -src[:, 1], np.ones(n), np.zeros(n)])
        A[1::2] = np.column_stack([src[:, 1], src[:, 0], np.zeros(n), np.ones(n)])
    p, _, rank, _ = np.linalg.lstsq(A, dst.reshape(-1), rcond=None)
    if rank < A.shape[1]:
        return None
    if transform == "affine":
        return np.array([[p[0], p[1], p[2]], [p[3], p[4], p[5]], [0, 0, 1.0]])
    return np.array([[p[0], -p[1], p[2]], [p[1], p[0], p[3]], [0, 0, 1.0]])
