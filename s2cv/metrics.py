"""Matching and registration metrics for image pairs related by a known homography.

Everything works on plain arrays (keypoint coordinates, descriptors, 3x3 matrices) so the
numbers can be checked on hand-made cases, independently of any detector.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np

MMA_THRESHOLDS: tuple[int, ...] = tuple(range(1, 11))
"""Pixel thresholds of the mean matching accuracy curve."""

REG_THRESHOLDS: tuple[int, ...] = (3, 5, 10)
"""Corner-error thresholds (px) for registration success rates and AUC."""

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


def _nearest_distances(query: np.ndarray, ref: np.ndarray) -> np.ndarray:
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


def repeatability(
    pts_a: np.ndarray,
    pts_b: np.ndarray,
    H: np.ndarray,
    shape_b: Sequence[int],
    threshold: float = 3.0,
    shape_a: Sequence[int] | None = None,
) -> int:
    """Number of correspondences NC between the keypoints of A and B.

    A keypoint of A counts when its warp by H (A -> B) lands inside image B and some keypoint
    of B lies within `threshold` px of it. If `shape_a` is given, only keypoints of B whose
    inverse warp lands inside A are candidates, so both sets are restricted to the common view.
    Several A keypoints may share the same B neighbour (this is not a one-to-one count).
    """
    pts_a = np.asarray(pts_a, dtype=np.float64).reshape(-1, 2)
    pts_b = np.asarray(pts_b, dtype=np.float64).reshape(-1, 2)
    warped = warp_points(pts_a, H)
    warped = warped[inside_image(warped, shape_b)]
    if shape_a is not None:
        pts_b = pts_b[inside_image(warp_points(pts_b, np.linalg.inv(H)), shape_a)]
    return int((_nearest_distances(warped, pts_b) <= threshold).sum())


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


def mma(errors: np.ndarray, thresholds: Iterable[float] = MMA_THRESHOLDS) -> list[float]:
    """Fraction of matches with error <= t for every t; all zeros when there are no matches."""
    errors = np.asarray(errors, dtype=np.float64)
    if errors.size == 0:
        return [0.0 for _ in thresholds]
    return [float((errors <= t).mean()) for t in thresholds]


def _robust_method() -> int:
    return getattr(cv2, "USAC_MAGSAC", cv2.RANSAC)


def estimate_homography(
    pts_a: np.ndarray, pts_b: np.ndarray, threshold: float = 3.0
) -> np.ndarray | None:
    """Robust homography A -> B from matched points (MAGSAC++ when available, else RANSAC).

    Returns None when there are fewer than 4 matches or the estimator gives up.
    """
    pts_a = np.asarray(pts_a, dtype=np.float64).reshape(-1, 2)
    pts_b = np.asarray(pts_b, dtype=np.float64).reshape(-1, 2)
    if len(pts_a) < 4:
        return None
    H, _ = cv2.findHomography(pts_a, pts_b, _robust_method(), threshold)
    if H is None or H.shape != (3, 3) or not np.isfinite(H).all():
        return None
    return H


def corner_error(H_est: np.ndarray | None, H_gt: np.ndarray, shape_a: Sequence[int]) -> float:
    """Mean distance between image A's 4 corners warped by the estimate and by the truth.

    A missing estimate (registration failure) is an infinite error.
    """
    if H_est is None:
        return math.inf
    h, w = shape_a[:2]
    corners = np.array([[0, 0], [w - 1, 0], [w - 1, h - 1], [0, h - 1]], dtype=np.float64)
    err = np.linalg.norm(warp_points(corners, H_est) - warp_points(corners, H_gt), axis=1)
    mean = float(err.mean())
    return mean if math.isfinite(mean) else math.inf


def error_auc(errors: Iterable[float], thresholds: Iterable[float] = REG_THRESHOLDS) -> list[float]:
    """Area under the recall-vs-error curve up to each threshold, normalised to [0, 1].

    Same definition as SuperGlue's pose AUC: recall(e) = share of pairs with error <= e,
    integrated from 0 to t and divided by t. Failures (inf) count as never recalled.
    """
    errors = np.sort(np.asarray(list(errors), dtype=np.float64))
    thresholds = list(thresholds)
    if errors.size == 0:
        return [0.0 for _ in thresholds]
    recall = np.r_[0.0, np.arange(1, len(errors) + 1) / len(errors)]
    errors = np.r_[0.0, errors]
    aucs = []
    for t in thresholds:
        last = int(np.searchsorted(errors, t))
        r = np.r_[recall[:last], recall[last - 1]]
        e = np.r_[errors[:last], t]
        aucs.append(float(np.sum(np.diff(e) * (r[1:] + r[:-1]) / 2) / t))
    return aucs


@dataclass
class PairResult:
    """All per-pair numbers for one method at one keypoint budget K."""

    name: str
    method: str
    k: int
    kp_a: int
    kp_b: int
    nc: int
    matches: int
    ncm: int
    cmr: float
    mma: list[float] = field(default_factory=list)
    corner_error: float = math.inf
    ms: float = math.nan  # mean detectAndCompute time per image


def score_pair(
    pts_a: np.ndarray,
    desc_a: np.ndarray | None,
    pts_b: np.ndarray,
    desc_b: np.ndarray | None,
    H: np.ndarray,
    shape_a: Sequence[int],
    shape_b: Sequence[int],
    threshold: float = 3.0,
    norm: int | None = None,
    *,
    name: str = "",
    method: str = "",
    k: int = 0,
    ms: float = math.nan,
    matches: np.ndarray | None = None,
) -> PairResult:
    """Compute NC, NCM, CMR, MMA and corner error of one pair from keypoints and descriptors.

    ``matches``: the pair's ``mutual_nn_matches(desc_a, desc_b, norm)`` when the caller already
    has them (it uses them too), so they are not computed twice.
    """
    pts_a = np.asarray(pts_a, dtype=np.float64).reshape(-1, 2)
    pts_b = np.asarray(pts_b, dtype=np.float64).reshape(-1, 2)
    nc = repeatability(pts_a, pts_b, H, shape_b, threshold, shape_a)
    idx = mutual_nn_matches(desc_a, desc_b, norm) if matches is None else matches
    ma, mb = pts_a[idx[:, 0]], pts_b[idx[:, 1]]
    errors = match_errors(ma, mb, H)
    ncm = int((errors <= threshold).sum())
    return PairResult(
        name=name,
        method=method,
        k=k,
        kp_a=len(pts_a),
        kp_b=len(pts_b),
        nc=nc,
        matches=len(idx),
        ncm=ncm,
        cmr=ncm / nc if nc > 0 else 0.0,
        mma=mma(errors),
        corner_error=corner_error(estimate_homography(ma, mb), H, shape_a),
        ms=ms,
    )


def aggregate(results: Iterable[PairResult]) -> list[dict[str, float | int | str]]:
    """Per (method, K) means over pairs, in first-seen order.

    NC, NCM, CMR, MMA, time and keypoint counts are plain means over pairs (CMR is the mean of
    per-pair ratios). Corner-error mean/median use registered pairs only (finite error);
    reg@t is the share of all pairs with error <= t and auc@t the cumulative-error AUC.
    """
    groups: dict[tuple[str, int], list[PairResult]] = {}
    for r in results:
        groups.setdefault((r.method, r.k), []).append(r)
    rows: list[dict[str, float | int | str]] = []
    for (method, k), rs in groups.items():
        errs = np.array([r.corner_error for r in rs])
        finite = errs[np.isfinite(errs)]
        mma_mean = np.mean([r.mma for r in rs], axis=0).tolist()
        row: dict[str, float | int | str] = {
            "method": method,
            "k": k,
            "pairs": len(rs),
            "nc": float(np.mean([r.nc for r in rs])),
            "ncm": float(np.mean([r.ncm for r in rs])),
            "cmr": float(np.mean([r.cmr for r in rs])),
            "matches": float(np.mean([r.matches for r in rs])),
            "registered": int(finite.size),
            "err_mean": float(finite.mean()) if finite.size else math.inf,
            "err_median": float(np.median(finite)) if finite.size else math.inf,
        }
        for t, m in zip(MMA_THRESHOLDS, mma_mean):
            row[f"mma@{t}"] = m
        for t, a in zip(REG_THRESHOLDS, error_auc(errs, REG_THRESHOLDS)):
            row[f"reg@{t}"] = float((errs <= t).mean())
            row[f"auc@{t}"] = a
        row["ms"] = float(np.mean([r.ms for r in rs]))
        row["kp"] = float(np.mean([(r.kp_a + r.kp_b) / 2 for r in rs]))
        rows.append(row)
    return rows
