"""Run every method at every K on every benchmark pair: NC / NCM / CMR, MMA, corner error and
the plausibility verdict per pair (``s2cv.evaluation.metrics``), match pictures on request.

Every method sees the images as a user would pass them (``s2cv.feature.image.read_image``: BGR
visible, single-channel thermal/NIR).

Matches come from mutual nearest neighbours by default; ``matcher="glue"`` takes them from the
learned matcher ``s2cv.S2Glue_create`` (torch-free: its ONNX graph in cv2.LightGlueMatcher or
onnxruntime) for every s2cv method whose descriptors it was trained on; those rows are labelled
``<spec>+glue``.
"""
from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from s2cv.evaluation.datasets import Pair
from s2cv.evaluation.methods import Feature2D, MethodUnavailable, create_method
from s2cv.evaluation.metrics import JudgedPairResult, judged, score_pair
from s2cv.evaluation.report import safe_name
from s2cv.registration import viz
from s2cv.feature.backends import DenseMaps
from s2cv.feature.feature2d import S2NetFeature2D
from s2cv.feature.glue import S2Glue_create
from s2cv.registration.geometry import corner_error, estimate_homography, invertible, match_errors, mutual_nn_matches
from s2cv.feature.image import read_image
from s2cv.registration.refine import refine_homography


def timed_detect(det: Feature2D, img: np.ndarray, maps: bool = False
            ) -> tuple[np.ndarray, np.ndarray | None, float, DenseMaps | None]:
    """Keypoint coordinates (N, 2), descriptors, wall time in seconds and, with ``maps`` (s2cv
    detectors), the dense maps detection ran on (same work, so the time is comparable)."""
    t0 = time.perf_counter()
    kps, desc, *dense = det.detectAndComputeMaps(img, None) if maps else det.detectAndCompute(img, None)
    dt = time.perf_counter() - t0
    pts = np.array([kp.pt for kp in kps], dtype=np.float64).reshape(-1, 2)
    return pts, desc, dt, (dense[0] if dense else None)


def _refined_corner_error(ma: np.ndarray, mb: np.ndarray, H: np.ndarray, shape_a: Sequence[int],
                          shape_b: Sequence[int], maps_a: DenseMaps, maps_b: DenseMaps) -> float:
    """Corner error after ``refine_homography`` polishes the protocol fit of the matched points
    ``ma``/``mb`` (``score_pair``'s fit: the deterministic MAGSAC gives the same starting model)."""
    H_ab = estimate_homography(ma, mb)
    if not invertible(H_ab):
        return math.inf
    H_ba = refine_homography(np.linalg.inv(H_ab), maps_a, maps_b, tuple(shape_a), tuple(shape_b))
    return corner_error(np.linalg.inv(H_ba), H, shape_a)


MATCHERS = ("mnn", "glue")


def glue_matches(glue: object, pts_a: np.ndarray, desc_a: np.ndarray, shape_a: Sequence[int],
                 pts_b: np.ndarray, desc_b: np.ndarray, shape_b: Sequence[int]) -> np.ndarray:
    """(n, 2) index pairs from the learned matcher (``S2Glue_create``): keypoints and image sizes
    (width, height) first, then the descriptors, as with cv2.LightGlueMatcher."""
    glue.setPairInfo(pts_a.astype(np.float32), pts_b.astype(np.float32), (shape_a[1], shape_a[0]),
                     (shape_b[1], shape_b[0]))
    m0, _ = glue.matchArrays(desc_a, desc_b)
    keep = np.flatnonzero(m0 >= 0)
    return np.c_[keep, m0[keep]].astype(np.int64).reshape(-1, 2)


def norm_of(det: Feature2D) -> int | None:
    get = getattr(det, "defaultNorm", None)
    return get() if get is not None else None


# ---------------------------------------------------------------- evaluation


def evaluate(
    pairs: Sequence[Pair],
    methods: Sequence[str],
    ks: Sequence[int],
    threshold: float = 3.0,
    *,
    device: str | None = None,
    contrast_floor: float | None = None,
    out_dir: str | Path | None = None,
    n_plots: int = 0,
    refine: bool = False,
    matcher: str = "mnn",
    glue_model: str = "default",
    progress: bool = True,
    log: Callable[[str], None] = lambda msg: print(msg, file=sys.stderr),
) -> list[JudgedPairResult]:
    """Score every available method at every K on every pair, and judge each fit (``s2cv.registration.verdict``).

    Unavailable methods are reported through `log` and skipped. If `out_dir` is given, match
    pictures of the first `n_plots` pairs are written there for the first available method at
    the largest K. Detectors get one untimed warm-up call so lazy initialisation is not timed.
    With `refine`, every s2cv method also gets a ``<spec>+refine`` row: the same features and
    fit, the homography then polished on the dense maps (``s2cv.registration.refine``; only its corner error differs).

    ``matcher``: "mnn" (mutual nearest neighbours) or "glue": the matches scored (NCM, MMA, the
    homography) come from ``S2Glue_create(glue_model)``; a bare ``s2net`` then means the matcher's
    own detector (``s2net:<det_model>``), methods whose descriptors it does not take are skipped,
    and rows are labelled ``<spec>+glue``.
    """
    if not ks or min(ks) <= 0:
        raise ValueError(f"keypoint budgets must be positive integers, got {list(ks)}")
    if matcher not in MATCHERS:
        raise ValueError(f"matcher must be one of {MATCHERS}, got {matcher!r}")
    glue = S2Glue_create(glue_model) if matcher == "glue" else None
    if glue is not None:
        methods = [f"s2net:{glue.det_model}" if m.strip().lower() == "s2net" else m for m in methods]
    detectors: dict[tuple[str, int], Feature2D] = {}
    for spec in methods:
        try:
            for k in ks:
                det = create_method(spec, k, device, contrast_floor)
                if glue is not None and not (isinstance(det, S2NetFeature2D)
                                             and det.descriptorSize() == glue.descriptor_dim):
                    raise MethodUnavailable(f"S2Glue {glue.path.name} matches the {glue.descriptor_dim}-d descriptors "
                                            f"of s2net:{glue.det_model}, not those of {spec}")
                detectors[(spec, k)] = det
        except MethodUnavailable as e:
            log(f"skipping {spec}: {e}")
            detectors = {key: d for key, d in detectors.items() if key[0] != spec}
    if not detectors or not pairs:
        return []
    plot_key = next((spec, max(ks)) for spec, _ in detectors)
    if out_dir is not None:
        Path(out_dir).mkdir(parents=True, exist_ok=True)

    warm = read_image(pairs[0].path_a)
    for det in detectors.values():
        det.detectAndCompute(warm, None)

    results: list[JudgedPairResult] = []
    for i, pair in enumerate(tqdm(pairs, desc="pairs", disable=not progress)):
        img_a, img_b = read_image(pair.path_a), read_image(pair.path_b)
        dense: dict[str, tuple[DenseMaps, DenseMaps]] = {}  # per model: the maps do not depend on K
        for (spec, k), det in detectors.items():
            keep = refine and isinstance(det, S2NetFeature2D) and spec not in dense
            pts_a, desc_a, ta, maps_a = timed_detect(det, img_a, keep)
            pts_b, desc_b, tb, maps_b = timed_detect(det, img_b, keep)
            if keep:
                dense[spec] = (maps_a, maps_b)
            if glue is None:
                idx = mutual_nn_matches(desc_a, desc_b, norm_of(det))
            else:
                idx = glue_matches(glue, pts_a, desc_a, img_a.shape, pts_b, desc_b, img_b.shape)
            ma, mb = pts_a[idx[:, 0]], pts_b[idx[:, 1]]
            result = score_pair(
                pts_a, desc_a, pts_b, desc_b, pair.H, img_a.shape, img_b.shape, threshold,
                name=pair.name, method=spec if glue is None else f"{spec}+glue", k=k,
                ms=(ta + tb) / 2 * 1000, matches=idx,
            )
            result = judged(result, ma, mb, img_a.shape, img_b.shape)
            results.append(result)
            if spec in dense:
                err = _refined_corner_error(ma, mb, pair.H, img_a.shape, img_b.shape, *dense[spec])
                results.append(replace(result, method=f"{result.method}+refine", corner_error=err))
            if out_dir is not None and i < n_plots and (spec, k) == plot_key:
                ok = match_errors(ma, mb, pair.H) <= threshold
                canvas = viz.draw_matches(img_a, img_b, ma, mb, ok)
                fname = f"matches_{safe_name(spec)}_k{k}_{safe_name(pair.name)}.png"
                cv2.imwrite(str(Path(out_dir) / fname), canvas)
    return results
