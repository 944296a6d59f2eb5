"""Matching and registration metrics for image pairs related by a known homography.

Everything works on plain arrays (keypoint coordinates, descriptors, 3x3 matrices) so the
numbers can be checked on hand-made cases, independently of any detector.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from s2cv.registration.geometry import (
    nearest_distances,
    corner_error,
    estimate_homography,
    inside_image,
    invertible,
    match_errors,
    mutual_nn_matches,
    warp_points,
)
from s2cv.registration.verdict import plausibility

MMA_THRESHOLDS: tuple[int, ...] = tuple(range(1, 11))
"""Pixel thresholds of the mean matching accuracy curve."""

REG_THRESHOLDS: tuple[int, ...] = (3, 5, 10)
"""Corner-error thresholds (px) for registration success rates and AUC."""


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
    return int((nearest_distances(warped, pts_b) <= threshold).sum())


def mma(errors: np.ndarray, thresholds: Iterable[float] = MMA_THRESHOLDS) -> list[float]:
    """Fraction of matches with error <= t for every t; all zeros when there are no matches."""
    errors = np.asarray(errors, dtype=np.float64)
    if errors.size == 0:
        return [0.0 for _ in thresholds]
    return [float((errors <= t).mean()) for t in thresholds]


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


@dataclass
class JudgedPairResult(PairResult):
    """A pair's numbers plus ``s2cv.registration.verdict``'s decision on its protocol fit (the metrics are
    unchanged: a refused fit still has its corner error)."""

    verdict: str = "no fit"    # "plausible", "refused" or "no fit"
    verdict_reason: str = ""   # the failed tests, when refused


def judged(result: PairResult, ma: np.ndarray, mb: np.ndarray, shape_a: Sequence[int],
           shape_b: Sequence[int]) -> JudgedPairResult:
    """``result`` with the verdict on the protocol fit of the matched points ``ma -> mb``
    (``estimate_homography``, as ``score_pair`` fits; inliers: residual <= 3 px)."""
    H_ab = estimate_homography(ma, mb)
    if not invertible(H_ab):
        return JudgedPairResult(**asdict(result))
    v = plausibility(H_ab, ma, mb, shape_a, shape_b)
    return JudgedPairResult(**asdict(result), verdict="plausible" if v.ok else "refused", verdict_reason=v.reason)
