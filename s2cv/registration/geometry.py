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


GUIDE_RADIUS = 6.0  # guided matching's search radius, in multiples of the fit's inlier threshold


def guided_matches(pts_a: np.ndarray, desc_a: np.ndarray, pts_b: np.ndarray, desc_b: np.ndarray,
                   H_ba: np.ndarray, radius: float, norm: int | None = None) -> np.ndarray:
    """Mutual nearest neighbours in descriptor space among the pairs (a, b) whose ``a`` lies
    within ``radius`` px of ``H_ba(b)``, as an (L, 2) array of (index in A, index in B).

    Why: across modalities a correct pair is often not the nearest neighbour over the whole
    image (a similar patch elsewhere wins), so a coarse fit rests on few matches; once the fit
    says where to look, the same descriptors find several times more correct pairs, and a refit
    on them lands closer (``register``'s guided refit). Candidates come from a grid of
    ``radius``-sized cells, so the cost grows with the keypoints, not their product."""
    pts_a = np.asarray(pts_a, np.float64).reshape(-1, 2)
    pts_b = np.asarray(pts_b, np.float64).reshape(-1, 2)
    if not (radius > 0 and math.isfinite(radius)):
        raise ValueError(f"radius must be a positive number of pixels, got {radius!r}")
    if len(pts_a) != len(desc_a) or len(pts_b) != len(desc_b):
        raise ValueError(f"{len(desc_a)} and {len(desc_b)} descriptor rows for {len(pts_a)} and {len(pts_b)} points")
    if np.ndim(desc_a) != 2 or np.ndim(desc_b) != 2 or np.shape(desc_a)[1] != np.shape(desc_b)[1]:
        raise ValueError(f"descriptor arrays must be (N, D) with the same D, got {np.shape(desc_a)} and {np.shape(desc_b)}")
    if not (np.isfinite(pts_a).all() and np.isfinite(pts_b).all()):
        raise ValueError("keypoint coordinates hold NaN/Inf values")
    target = warp_points(pts_b, H_ba)  # points the model sends to infinity get no candidates
    usable = np.flatnonzero(np.isfinite(target).all(1))
    if not len(pts_a) or not len(usable):
        return np.empty((0, 2), np.int64)
    cell_a = np.floor(pts_a / radius).astype(np.int64)
    lo = cell_a.min(0) - 1
    width = int(cell_a[:, 1].max() - lo[1]) + 3
    key_a = (cell_a[:, 0] - lo[0]) * width + (cell_a[:, 1] - lo[1])
    order = np.argsort(key_a, kind="stable")
    sorted_keys = key_a[order]
    cell_b = np.floor(target[usable] / radius).astype(np.int64) - lo  # may fall outside A's grid: no candidates
    offsets = np.array([(dx, dy) for dx in (-1, 0, 1) for dy in (-1, 0, 1)])
    cells = cell_b[:, None, :] + offsets[None]  # (n, 9, 2)
    valid = (cells[..., 1] >= 0) & (cells[..., 1] < width)
    keys = np.where(valid, cells[..., 0] * width + cells[..., 1], -1).reshape(-1)
    start, stop = np.searchsorted(sorted_keys, keys, "left"), np.searchsorted(sorted_keys, keys, "right")
    counts = np.where(keys >= 0, stop - start, 0)
    total = int(counts.sum())
    if not total:
        return np.empty((0, 2), np.int64)
    first = np.repeat(np.cumsum(counts) - counts, counts)
    ia = order[np.repeat(start, counts) + np.arange(total) - first]
    ib = np.repeat(np.repeat(usable, 9), counts)
    near = np.linalg.norm(pts_a[ia] - target[ib], axis=1) <= radius
    ia, ib = ia[near], ib[near]
    if not len(ia):
        return np.empty((0, 2), np.int64)
    if norm is None:
        norm = default_norm(np.asarray(desc_a))
    if norm == cv2.NORM_HAMMING:
        dist = np.unpackbits(np.bitwise_xor(desc_a[ia], desc_b[ib]), axis=1).sum(1).astype(np.float64)
    else:
        diff = np.asarray(desc_a, np.float32)[ia] - np.asarray(desc_b, np.float32)[ib]
        dist = np.abs(diff).sum(1) if norm == cv2.NORM_L1 else (diff * diff).sum(1)
    (low_a, pick_a), (low_b, pick_b) = _nearest(ia, ib, dist, len(pts_a)), _nearest(ib, ia, dist, len(pts_b))
    mutual = (dist == low_a[ia]) & (ib == pick_a[ia]) & (dist == low_b[ib]) & (ia == pick_b[ib])  # nearest of both
    return np.column_stack([ia[mutual], ib[mutual]]).astype(np.int64)


def _nearest(owner: np.ndarray, other: np.ndarray, dist: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """For each of n owners, the smallest distance among its candidates and the lowest ``other``
    index at that distance (a brute-force matcher's first hit on ties); inf / int64 max for none."""
    low = np.full(n, np.inf)
    np.minimum.at(low, owner, dist)
    tie = dist == low[owner]
    pick = np.full(n, np.iinfo(np.int64).max)
    np.minimum.at(pick, owner[tie], other[tie])
    return low, pick


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


def guided_refit(H: np.ndarray, inliers: np.ndarray, pts_a: np.ndarray, desc_a: np.ndarray, pts_b: np.ndarray,
                 desc_b: np.ndarray, transform: str = "homography", threshold: float = 3.0,
                 norm: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """A tighter second fit B -> A: every keypoint matched again within ``GUIDE_RADIUS`` x the
    threshold of where the fit ``H`` (B -> A, ``inliers`` its mask) puts it (``guided_matches``),
    then ``fit_transform(thorough=True)`` on those pairs. (H, pairs, inlier mask) when the refit
    has more inliers than the first fit, else None.

    Only for a fit already judged plausible: the guided pairs agree with ``H`` by construction,
    so the plausibility of a fit is judged on the unguided matches (``s2cv.registration.verdict``)."""
    pairs = guided_matches(pts_a, desc_a, pts_b, desc_b, H, GUIDE_RADIUS * threshold, norm)
    pa, pb = np.asarray(pts_a, np.float64)[pairs[:, 0]], np.asarray(pts_b, np.float64)[pairs[:, 1]]
    H2, inl2 = fit_transform(pb, pa, transform, threshold, thorough=True)
    if not invertible(H2) or int(inl2.sum()) <= int(np.count_nonzero(inliers)):
        return None
    return H2, pairs, inl2


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
