"""Is a fitted transform believable? A plausibility verdict from measured evidence.

A robust fit (RANSAC/MAGSAC) returns *some* model with *some* inliers even on two images of
different scenes: among a thousand mutual nearest-neighbour matches a dozen or three agree with
some homography by chance or by repeated structure (car lights along a horizon, window rows).
``plausibility`` tests a fit with signals that do not depend on the detector that made the
matches, each against a threshold (``VerdictThresholds``); a fit must pass all of them:

* **orientation, corner_angle, scale** (geometry) — the warped outline of each image is a
  convex quad of the same orientation (no mirror; the line at infinity stays off both images),
  its corners are at least ``min_corner_angle_deg`` from 0 and 180 degrees, and its mean scale is
  within ``[1/max_scale, max_scale]``. Loose physical limits, not fitted: 30 degrees allows a
  relative camera rotation of about 40 degrees about any axis with a 60-degree field of view; 8
  allows a resolution ratio of 8 between the two images.
* **evidence** — the inliers outnumber, by ``min_evidence``, the most inliers the same robust
  fit finds on the same matches with their pairing shuffled (same points, same count, no
  correspondence): what random matches give at this keypoint count.
* **share** — the inliers are at least ``min_inlier_share`` of the matches. Accidental agreement
  between two different scenes is structure, not chance (car lights along a horizon), so it
  grows with the match count far above the shuffled baseline. Its share depends on how many
  matches a detector keeps (a detector with fewer, more selective matches reaches a higher one),
  so uniqueness does the rest.
* **uniqueness** — the inliers outnumber, by ``min_uniqueness``, those of the best rival model:
  the same fit on the matches this model places more than 5 % of the diagonal away. Two models
  of similar support (repeated structure, shuffled tiles) leave the answer undecided.
* **spread** — the inliers' convex hull covers ``min_hull_share`` of the overlap of the two
  images, in each image: a fit supported by one patch says little about the rest.
* **stability** — least-squares fits on two random halves of the inliers place the overlap's
  outline within ``max_halves_disagreement`` of the diagonal of each other (median of 3 splits).
* **corroboration** (``register``'s view search only: ``SecondView``) — a fit made from other
  detections of both images (another view: ``search``) lands the IR frame within
  ``max_view_disagreement_px`` of this one (``view_disagreement_px``). A coarse thermal camera's
  true fit has few inliers among many matches (2-4 %); chance does not put two independent
  detections' fits at one place. Then share passes, and uniqueness is also measured on the two
  views' matches pooled (``view_uniqueness``): the true model gathers the second view's
  correct matches, a chance rival does not, while a genuine second model (shuffled tiles, a
  repeated facade) is found again by every view and stays as strong. Evidence is not waived:
  two fits of a mismatched training pair barely above the shuffled baseline agreed within 5 px
  once (docs/results.md "Two views agree").

The thresholds of evidence, share and uniqueness were chosen on pairs built from training
images only, for every shipped model and SIFT at K = 1024 to 4096: 0.85 x the weakest correct
true fit's value (sparing the single weakest), then uniqueness raised until no mismatched
training pair of any model passes (``benchmarks/verdict_roc.py``; docs/results.md,
"Plausibility verdict"). Spread and stability are loose guards against degenerate supports
(about half the weakest correct fit's spread, 2.5 times its worst disagreement).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Sequence

import cv2
import numpy as np

from s2cv.registration.geometry import MIN_POINTS, TRANSFORMS, fit_transform, image_corners, invertible, least_squares

SHUFFLES = 10        # shuffled-match fits behind the chance baseline (the most inliers of these)
SPLITS = 3           # random half/half splits behind the stability signal (their median)
RIVAL_RADIUS = 0.05  # share of the diagonal beyond which another model is a rival, not a variant
Fit = Callable[[np.ndarray, np.ndarray], "tuple[np.ndarray | None, np.ndarray]"]


@dataclass(frozen=True)
class VerdictThresholds:
    """Limits of ``plausibility``; a fit must pass every test to be accepted."""

    min_corner_angle_deg: float = 30.0     # every corner of both warped outlines in [a, 180 - a]
    max_scale: float = 8.0                 # mean linear scale of the transform within [1/s, s]
    min_evidence: float = 3.7              # inliers >= this x the inliers of shuffled matches
    min_inlier_share: float = 0.037        # inliers / matches
    min_uniqueness: float = 3.4            # inliers >= this x the inliers of the best rival model
    min_hull_share: float = 0.1            # inlier hull / overlap area, in each image
    max_halves_disagreement: float = 0.05  # half-fit disagreement on the overlap / image diagonal
    max_view_disagreement_px: float = 6.0  # another view's fit this close: share passes, uniqueness pooled


DEFAULT_THRESHOLDS = VerdictThresholds()


@dataclass(frozen=True)
class SecondView:
    """Another view's fit of the same pair, made from other detections of both images
    (``search.Detections.corroborate``): how far it lands the IR frame from the fit judged, and its
    matched points in the judged fit's ``src``/``dst`` pixels."""

    disagreement_px: float
    src: np.ndarray
    dst: np.ndarray


@dataclass(frozen=True)
class Verdict:
    """``ok`` when every test passed; ``reason`` names the failed tests with their numbers."""

    ok: bool
    reason: str                              # "" when ok
    failed: tuple[str, ...]                  # names of the failed tests, in test order
    signals: dict[str, float] = field(default_factory=dict)
    thresholds: VerdictThresholds = DEFAULT_THRESHOLDS

    @property
    def view_disagreement_px(self) -> float:
        """px to the independent view's fit it was judged with (``plausibility(second_view=)``); inf if none."""
        return self.signals.get("view_disagreement_px", math.inf)

    def summary(self) -> dict[str, Any]:
        """JSON-ready form (``summary.json``'s ``verdict``; infinite signals become null)."""
        return {"plausible": self.ok, "reason": self.reason, "failed": list(self.failed),
                "signals": {k: float(v) if math.isfinite(v) else None for k, v in self.signals.items()},
                "thresholds": asdict(self.thresholds)}


# ---------------------------------------------------------------- signals


def _project(H: np.ndarray, pts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Projected points and their homogeneous w (w <= 0: beyond the line at infinity)."""
    hom = np.hstack([pts, np.ones((len(pts), 1))]) @ H.T
    w = hom[:, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        return hom[:, :2] / w[:, None], w


def _quad_geometry(H: np.ndarray | None, shape: Sequence[int]) -> tuple[bool, float, float]:
    """(proper, corner-angle margin in degrees, area) of image ``shape``'s outline warped by H.

    ``proper``: every corner stays in front of the line at infinity (w > 0 once H is scaled to
    H[2, 2] = 1) and the warped outline is a convex quad with the original orientation. The
    margin is the smallest distance of a corner angle from 0 or 180 degrees (0 if not proper).
    """
    if H is None or H[2, 2] == 0:
        return False, 0.0, 0.0
    quad, w = _project(H / H[2, 2], image_corners(shape))
    if not (np.all(w > 0) and np.isfinite(quad).all()):
        return False, 0.0, 0.0
    edges = np.roll(quad, -1, axis=0) - quad
    following = np.roll(edges, -1, axis=0)
    turns = edges[:, 0] * following[:, 1] - edges[:, 1] * following[:, 0]
    if not np.all(turns > 0):  # pixel axes (x right, y down): the outline turns positively
        return False, 0.0, 0.0
    angles = []
    for i in range(4):
        u, v = quad[i - 1] - quad[i], quad[(i + 1) % 4] - quad[i]
        cos = float(u @ v / (np.linalg.norm(u) * np.linalg.norm(v)))
        angles.append(math.degrees(math.acos(min(1.0, max(-1.0, cos)))))
    area = 0.5 * abs(float(np.sum(quad[:, 0] * np.roll(quad[:, 1], -1) - np.roll(quad[:, 0], -1) * quad[:, 1])))
    return True, min(min(angles), 180.0 - max(angles)), area


def _overlap(H: np.ndarray, src_shape: Sequence[int], dst_shape: Sequence[int]) -> np.ndarray:
    """Polygon (dst pixels) where the warped src image and the dst image overlap."""
    quad, _ = _project(H, image_corners(src_shape))
    area, poly = cv2.intersectConvexConvex(quad.astype(np.float32), image_corners(dst_shape).astype(np.float32))
    return np.zeros((0, 2)) if poly is None or area <= 0 else poly.reshape(-1, 2).astype(np.float64)


def _hull_area(pts: np.ndarray) -> float:
    if len(pts) < 3:
        return 0.0
    return float(cv2.contourArea(cv2.convexHull(np.asarray(pts, np.float32))))


def _shuffled_inliers(src: np.ndarray, dst: np.ndarray, fit: Fit, rng: np.random.Generator) -> float:
    """Most inliers the robust fit finds in SHUFFLES fits with the pairing of the matches shuffled."""
    best = 0
    for _ in range(SHUFFLES):
        H, inl = fit(src, dst[rng.permutation(len(dst))])
        best = max(best, int(inl.sum()) if H is not None else 0)
    return float(best)


def _halves_disagreement(src: np.ndarray, dst: np.ndarray, transform: str, probe: np.ndarray,
                         rng: np.random.Generator) -> float:
    """Median over SPLITS random splits of the mean distance (dst px) between where least-squares
    fits on the two halves of the inliers put the ``probe`` points (src px); inf if degenerate."""
    n = len(src)
    if n < 2 * MIN_POINTS[transform] or len(probe) == 0:
        return math.inf
    values = []
    for _ in range(SPLITS):
        order = rng.permutation(n)
        fits = [least_squares(src[half], dst[half], transform) for half in (order[: n // 2], order[n // 2:])]
        if any(f is None for f in fits):
            values.append(math.inf)
            continue
        (pa, wa), (pb, wb) = (_project(f, probe) for f in fits)
        ok = np.all(wa * fits[0][2, 2] > 0) and np.all(wb * fits[1][2, 2] > 0)
        values.append(float(np.linalg.norm(pa - pb, axis=1).mean()) if ok else math.inf)
    return float(np.median(values))


def _rival_inliers(residual: np.ndarray, src: np.ndarray, dst: np.ndarray, dst_shape: Sequence[int],
                   threshold: float, fit: Fit) -> float:
    """Inliers of the best rival model: the robust fit on the matches a model leaves more than
    ``RIVAL_RADIUS`` of the diagonal away (``residual``: each match's distance to it, dst px)."""
    radius = max(3 * threshold, RIVAL_RADIUS * math.hypot(*dst_shape[:2]))
    far = ~(residual <= radius)  # NaN residuals (points sent to infinity) count as far
    H_rival, inl_rival = fit(src[far].astype(np.float32), dst[far].astype(np.float32))
    return float(inl_rival.sum()) if H_rival is not None else 0.0


def _points(pts: Any, name: str) -> np.ndarray:
    arr = np.asarray(pts, np.float64)
    if arr.ndim not in (2, 3) or arr.shape[-1] != 2 or (arr.ndim == 3 and arr.shape[1] != 1):
        raise ValueError(f"{name}: expected (N, 2) or (N, 1, 2) point coordinates, got shape {arr.shape}")
    arr = arr.reshape(-1, 2)
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} holds NaN/Inf coordinates")
    return arr


def _matches(src: Any, dst: Any, owner: str = "") -> tuple[np.ndarray, np.ndarray]:
    """Validated matched points (``owner``: whose, for the message, e.g. "second view")."""
    src, dst = _points(src, f"{owner} src".strip()), _points(dst, f"{owner} dst".strip())
    if len(src) != len(dst):
        raise ValueError(f"{owner + ': ' if owner else ''}src and dst differ in length: {len(src)} vs {len(dst)} points")
    return src, dst


def _residuals(H: np.ndarray, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Distance of each match from H's prediction (dst px); NaN where H sends a point to infinity."""
    proj, _ = _project(H, src)
    with np.errstate(invalid="ignore"):
        return np.linalg.norm(proj - dst, axis=1)


def _checked(H: Any, src: Any, dst: Any, src_shape: Sequence[int], dst_shape: Sequence[int],
             inliers: Any, transform: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validated (src, dst, H) as float64 arrays; ValueError naming what is wrong."""
    if transform not in TRANSFORMS:
        raise ValueError(f"transform must be one of {TRANSFORMS}, got {transform!r}")
    H = np.asarray(H, np.float64)
    if H.shape != (3, 3) or not np.isfinite(H).all():
        raise ValueError(f"H must be a finite 3x3 matrix, got shape {H.shape}")
    src, dst = _matches(src, dst)
    for name, shape in (("src_shape", src_shape), ("dst_shape", dst_shape)):
        if len(shape) < 2 or min(shape[:2]) < 2:
            raise ValueError(f"{name} must be an image shape (h, w, ...) with h, w >= 2, got {tuple(shape)}")
    if inliers is not None and np.asarray(inliers).reshape(-1).shape != (len(src),):
        raise ValueError(f"inliers must have one entry per match ({len(src)}), got shape {np.shape(inliers)}")
    return src, dst, H


def measure(H: np.ndarray, src: np.ndarray, dst: np.ndarray, src_shape: Sequence[int], dst_shape: Sequence[int],
            *, inliers: np.ndarray | None = None, transform: str = "homography", threshold: float = 3.0,
            fit: Fit | None = None, seed: int = 0, second_view: SecondView | None = None) -> dict[str, float]:
    """The signals ``plausibility`` decides on, for H mapping ``src`` points onto ``dst``
    (arguments as there); a dict of floats, inf where a signal cannot be computed."""
    src, dst, H = _checked(H, src, dst, src_shape, dst_shape, inliers, transform)
    residual = _residuals(H, src, dst)
    inliers = residual <= threshold if inliers is None else np.asarray(inliers, bool).reshape(-1)
    k, m = int(inliers.sum()), len(src)
    rng = np.random.default_rng(seed)
    fit = fit or (lambda s, d: fit_transform(s, d, transform, threshold))
    signals: dict[str, float] = {"matches": float(m), "inliers": float(k), "inlier_share": k / m if m else 0.0}

    Hinv = np.linalg.inv(H) if invertible(H) else None
    fwd, bwd = _quad_geometry(H, src_shape), _quad_geometry(Hinv, dst_shape)
    proper = fwd[0] and bwd[0]
    h, w = src_shape[:2]
    signals["proper"] = float(proper)
    signals["min_corner_angle_deg"] = min(fwd[1], bwd[1])
    signals["scale"] = math.sqrt(fwd[2] / ((w - 1) * (h - 1)))

    signals["shuffled_inliers"] = _shuffled_inliers(src.astype(np.float32), dst.astype(np.float32), fit, rng)
    signals["evidence"] = k / max(signals["shuffled_inliers"], 1.0)
    signals["rival_inliers"] = _rival_inliers(residual, src, dst, dst_shape, threshold, fit)
    signals["uniqueness"] = k / max(signals["rival_inliers"], 1.0)
    if second_view is not None:  # the same test on both views' matches pooled
        other_src, other_dst = _matches(second_view.src, second_view.dst, "second view")
        other_residual = _residuals(H, other_src, other_dst)
        pooled = k + int(np.count_nonzero(other_residual <= threshold))
        rival = _rival_inliers(np.concatenate([residual, other_residual]), np.vstack([src, other_src]),
                               np.vstack([dst, other_dst]), dst_shape, threshold, fit)
        signals.update(view_disagreement_px=float(second_view.disagreement_px), view_inliers=float(pooled),
                       view_rival_inliers=rival, view_uniqueness=pooled / max(rival, 1.0))

    signals.update(hull_share=0.0, halves_disagreement_px=math.inf, halves_disagreement=math.inf)
    poly_dst = _overlap(H, src_shape, dst_shape) if proper else np.zeros((0, 2))
    if _hull_area(poly_dst) > 0:
        poly_src, _ = _project(Hinv, poly_dst)
        signals["hull_share"] = min(_hull_area(src[inliers]) / max(_hull_area(poly_src), 1e-12),
                                    _hull_area(dst[inliers]) / _hull_area(poly_dst))
        px = _halves_disagreement(src[inliers], dst[inliers], transform, poly_src, rng)
        signals["halves_disagreement_px"] = px
        signals["halves_disagreement"] = px / math.hypot(*dst_shape[:2])
    return signals


def judge(signals: dict[str, float], thresholds: VerdictThresholds = DEFAULT_THRESHOLDS) -> Verdict:
    """The verdict on measured ``signals`` (from ``measure``) under ``thresholds``."""
    t, s = thresholds, signals
    corroborated = s.get("view_disagreement_px", math.inf) <= t.max_view_disagreement_px
    pooled = (f"; with the second view's matches {s['view_inliers']:.0f} are {s['view_uniqueness']:.2f}x "
              f"its {s['view_rival_inliers']:.0f}" if corroborated and "view_uniqueness" in s else "")
    halves = (f"disagree by {s['halves_disagreement_px']:.1f} px = {100 * s['halves_disagreement']:.1f} % of the diagonal"
              if math.isfinite(s["halves_disagreement"]) else "are degenerate")
    # (name, passed, why not); the outline-based tests mean nothing once the outline is folded
    tests: list[tuple[str, bool, str]] = [
        ("orientation", s["proper"] > 0,
         "the transform mirrors or folds the image (a warped outline is not a convex quad of the same orientation)"),
        ("corner_angle", s["min_corner_angle_deg"] >= t.min_corner_angle_deg or not s["proper"],
         f"a warped corner is {s['min_corner_angle_deg']:.1f} deg from 0/180 (need >= {t.min_corner_angle_deg:g})"),
        ("scale", 1.0 / t.max_scale <= s["scale"] <= t.max_scale or not s["proper"],
         f"mean scale {s['scale']:.3g} (allowed {1 / t.max_scale:.3g} to {t.max_scale:g})"),
        ("evidence", s["evidence"] >= t.min_evidence,
         f"{s['inliers']:.0f} inliers are {s['evidence']:.2f}x the {s['shuffled_inliers']:.0f} that shuffled "
         f"matches give (need >= {t.min_evidence:g}x)"),
        ("share", s["inlier_share"] >= t.min_inlier_share or corroborated,
         f"{s['inliers']:.0f} inliers are {100 * s['inlier_share']:.1f} % of the {s['matches']:.0f} matches "
         f"(need >= {100 * t.min_inlier_share:g} %)"),
        ("uniqueness", s["uniqueness"] >= t.min_uniqueness
         or (corroborated and s.get("view_uniqueness", 0.0) >= t.min_uniqueness),
         f"{s['inliers']:.0f} inliers are {s['uniqueness']:.2f}x the {s['rival_inliers']:.0f} of the best rival "
         f"model{pooled} (need >= {t.min_uniqueness:g}x)"),
        ("spread", s["hull_share"] >= t.min_hull_share or not s["proper"],
         f"the inliers cover {100 * s['hull_share']:.1f} % of the overlap (need >= {100 * t.min_hull_share:g} %)"),
        ("stability", s["halves_disagreement"] <= t.max_halves_disagreement or not s["proper"],
         f"fits on two halves of the inliers {halves} (allowed {100 * t.max_halves_disagreement:g} %)"),
    ]
    failed = tuple(name for name, ok, _ in tests if not ok)
    reason = "; ".join(f"{name}: {text}" for name, ok, text in tests if not ok)
    return Verdict(ok=not failed, reason=reason, failed=failed, signals=dict(signals), thresholds=thresholds)


def plausibility(H: np.ndarray, src: np.ndarray, dst: np.ndarray, src_shape: Sequence[int],
                 dst_shape: Sequence[int], *, inliers: np.ndarray | None = None, transform: str = "homography",
                 threshold: float = 3.0, thresholds: VerdictThresholds = DEFAULT_THRESHOLDS,
                 fit: Fit | None = None, seed: int = 0, second_view: SecondView | None = None) -> Verdict:
    """Verdict on the transform ``H`` fitted to the matches ``src[i] -> dst[i]``.

    ``src``/``dst``: (N, 2) matched pixel coordinates; ``src_shape``/``dst_shape``: (h, w) of
    the two images; ``inliers``: the fit's inlier mask over the matches (default: residual <=
    ``threshold``); ``transform``/``threshold``: the kind of model and the inlier threshold (px)
    of the fit, reused by the shuffled and rival baselines (``fit(src, dst) -> (H, mask)``
    replaces their robust estimator). Deterministic for a given ``seed``. ``second_view``: an
    independent view's fit of the same pair (``search.Detections.corroborate``).
    """
    signals = measure(H, src, dst, src_shape, dst_shape, inliers=inliers, transform=transform, threshold=threshold,
                      fit=fit, seed=seed, second_view=second_view)
    return judge(signals, thresholds)
