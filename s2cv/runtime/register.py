"""Register a thermal (or NIR) image onto a visible one: detect -> match -> robust fit.

Direction convention, used everywhere in this module: ``RegistrationResult.H`` maps a pixel
(x, y, 1) of the IR image onto the visible image, so ``cv2.warpPerspective(ir, H, vis_size)``
(or ``result.warp(ir)``) lays the IR frame over the visible one. Benchmark ground truth
(``roadscene_H.json``, evaluate's ``homographies.json``) goes the other way, visible -> IR.

The command line is ``s2cv register`` (``s2cv/register.py``).
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import cv2
import numpy as np

from s2cv.runtime import viz
from s2cv.runtime.geometry import MIN_POINTS, TRANSFORMS, corner_error, fit_transform, mutual_nn_matches
from s2cv.runtime.image import SAMPLES_DIR, read_image, to_uint8
from s2cv.runtime.refine import RefineParams, refine_homography
from s2cv.runtime.verdict import DEFAULT_THRESHOLDS, Verdict, VerdictThresholds, plausibility

# name -> (visible, IR/NIR, ground-truth homography visible -> IR); see samples/CREDITS.txt
SAMPLES = {
    "roadscene": (SAMPLES_DIR / "roadscene_vis.png", SAMPLES_DIR / "roadscene_ir.png", SAMPLES_DIR / "roadscene_H.json"),
    "visnir": (SAMPLES_DIR / "visnir_vis.jpg", SAMPLES_DIR / "visnir_ir.jpg", SAMPLES_DIR / "visnir_H.json"),
}


class RegistrationError(RuntimeError):
    """The inputs could not be registered or read; the message is meant for the user."""


@dataclass
class RegistrationResult:
    """Everything one ``register`` call found; ``H`` maps IR pixels onto the visible image."""

    H: np.ndarray | None                 # (3, 3) float64, IR -> visible; None when no model was fitted
    success: bool                         # H exists, is invertible, has >= min_inliers inliers and is
                                          # plausible (or was kept with accept_implausible)
    transform: str
    keypoints_vis: tuple[cv2.KeyPoint, ...]
    keypoints_ir: tuple[cv2.KeyPoint, ...]
    matches: tuple[cv2.DMatch, ...]       # queryIdx -> keypoints_vis, trainIdx -> keypoints_ir
    inlier_mask: np.ndarray               # (len(matches),) bool
    vis_shape: tuple[int, int]            # (h, w) of the visible image: the warp target
    timings: dict[str, float] = field(default_factory=dict)  # milliseconds per stage
    message: str = ""                     # why registration failed ("" on success)
    verdict: Verdict | None = None        # plausibility of the fit (None when nothing could be fitted)
    implausible_accepted: bool = False    # success only because accept_implausible kept a refused fit

    @property
    def num_keypoints(self) -> tuple[int, int]:
        return len(self.keypoints_vis), len(self.keypoints_ir)

    @property
    def num_matches(self) -> int:
        return len(self.matches)

    @property
    def num_inliers(self) -> int:
        return int(np.count_nonzero(self.inlier_mask))

    def matched_points(self) -> tuple[np.ndarray, np.ndarray]:
        """(M, 2) float32 coordinates of the matches in the visible and in the IR image."""
        pv = np.float32([self.keypoints_vis[m.queryIdx].pt for m in self.matches]).reshape(-1, 2)
        pi = np.float32([self.keypoints_ir[m.trainIdx].pt for m in self.matches]).reshape(-1, 2)
        return pv, pi

    def warp(self, ir_image: np.ndarray, interpolation: int = cv2.INTER_LINEAR) -> np.ndarray:
        """The IR image resampled onto the visible image's pixel grid (same h, w as visible)."""
        if self.H is None:
            raise RegistrationError(f"no transform to warp with: {self.message or 'registration failed'}")
        h, w = self.vis_shape
        return cv2.warpPerspective(np.asarray(ir_image), self.H, (w, h), flags=interpolation,
                                   borderMode=cv2.BORDER_CONSTANT, borderValue=0)

    def summary(self) -> dict[str, Any]:
        """JSON-ready numbers (what the CLI writes to summary.json)."""
        return {
            "success": self.success,
            "message": self.message,
            "transform": self.transform,
            "H_ir_to_vis": None if self.H is None else self.H.tolist(),
            "keypoints": {"vis": len(self.keypoints_vis), "ir": len(self.keypoints_ir)},
            "matches": self.num_matches,
            "inliers": self.num_inliers,
            "verdict": None if self.verdict is None else self.verdict.summary(),
            "implausible_accepted": self.implausible_accepted,
            "timings_ms": {k: round(v, 3) for k, v in self.timings.items()},
        }


def _gray8(image: np.ndarray) -> np.ndarray:
    img = to_uint8(image)
    if img.ndim == 3:
        img = cv2.cvtColor(img, cv2.COLOR_BGRA2GRAY if img.shape[2] == 4 else cv2.COLOR_BGR2GRAY)
    return img


def detector_or_default(detector: cv2.Feature2D | None, nfeatures: int, model: str | Path,
                         timings: dict[str, float]) -> cv2.Feature2D:
    """The caller's detector, or ``S2Net_create(nfeatures, model)`` with its load time in ``timings``."""
    if detector is None:
        from s2cv.runtime.feature2d import S2Net_create

        t = time.perf_counter()
        detector = S2Net_create(nfeatures=nfeatures, model=model)
        timings["load"] = (time.perf_counter() - t) * 1e3
    if not isinstance(detector, cv2.Feature2D):
        raise TypeError(f"detector must be a cv2.Feature2D, got {type(detector).__name__}")
    return detector


def for_detector(image: np.ndarray, detector: cv2.Feature2D, name: str) -> np.ndarray:
    """s2cv takes any depth (it normalises robustly); OpenCV's detectors want 8-bit gray."""
    from s2cv.runtime.feature2d import S2NetFeature2D

    if image is None:
        raise TypeError(f"{name} image is None (did cv2.imread fail to read the file?)")
    image = np.asarray(image)
    if image.size == 0:
        raise ValueError(f"{name} image is empty (shape {image.shape})")
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (1, 3, 4)):
        raise ValueError(f"{name} image: expected shape (H, W), (H, W, 3) or (H, W, 4), got {image.shape}")
    if isinstance(detector, S2NetFeature2D):
        if image.dtype.kind in "iu" and image.dtype not in (np.uint8, np.uint16):
            return image.astype(np.float32)  # e.g. signed 16-bit TIFF: robust normalisation follows
        return image
    return _gray8(image)


# ---------------------------------------------------------------- pipeline


def _match(desc_vis: np.ndarray | None, desc_ir: np.ndarray | None, norm: int,
           ratio: float | None) -> tuple[cv2.DMatch, ...]:
    """Mutual nearest neighbours; with ``ratio``, also Lowe's test on the visible -> IR side."""
    if desc_vis is None or desc_ir is None or len(desc_vis) == 0 or len(desc_ir) == 0:
        return ()
    if ratio is None:
        return tuple(cv2.DMatch(int(i), int(j), float(cv2.norm(desc_vis[i], desc_ir[j], norm)))
                     for i, j in mutual_nn_matches(desc_vis, desc_ir, norm))
    matcher = cv2.BFMatcher(norm, crossCheck=False)
    backward = {m.queryIdx: m.trainIdx for m in matcher.match(desc_ir, desc_vis)}
    kept = []
    for pair in matcher.knnMatch(desc_vis, desc_ir, k=2):
        if not pair:
            continue
        best = pair[0]
        if backward.get(best.trainIdx) != best.queryIdx:
            continue
        if len(pair) == 1 or best.distance < ratio * pair[1].distance:
            kept.append(best)
    return tuple(kept)


def check_options(transform: str, ratio: float | None, ransac_threshold: float, min_inliers: int) -> None:
    if transform not in TRANSFORMS:
        raise ValueError(f"transform must be one of {TRANSFORMS}, got {transform!r}")
    if ratio is not None and not (0.0 < ratio <= 1.0):
        raise ValueError(f"ratio must be in (0, 1], got {ratio!r}")
    if not (ransac_threshold > 0 and math.isfinite(ransac_threshold)):
        raise ValueError(f"ransac_threshold must be a positive number, got {ransac_threshold!r}")
    if int(min_inliers) != min_inliers or min_inliers < MIN_POINTS[transform]:
        raise ValueError(f"min_inliers must be an integer >= {MIN_POINTS[transform]} for {transform}, "
                         f"got {min_inliers!r}")


def register(
    vis: np.ndarray | str | Path,
    ir: np.ndarray | str | Path,
    detector: cv2.Feature2D | None = None,
    *,
    model: Any = "default",
    nfeatures: int = 4096,
    ratio: float | None = None,
    transform: str = "homography",
    ransac_threshold: float = 3.0,
    min_inliers: int = 12,
    refine: bool | RefineParams = False,
    accept_implausible: bool = False,
    thresholds: VerdictThresholds = DEFAULT_THRESHOLDS,
) -> RegistrationResult:
    """Estimate the transform that maps IR pixels onto the visible image.

    ``vis``/``ir`` are arrays (gray, BGR, BGRA; uint8, uint16 or float) or image paths, and may
    differ in size. ``detector`` is any ``cv2.Feature2D`` (default: ``s2cv.S2Net_create(
    nfeatures, model=model)``; ``model``/``nfeatures`` only apply then). Matches are mutual
    nearest neighbours under ``detector.defaultNorm()``; ``ratio`` adds Lowe's ratio test.
    Failure to register is not an exception: check ``result.success`` / ``result.message``.
    Every fit is judged by ``s2cv.runtime.verdict.plausibility`` (``thresholds``); an implausible one
    (e.g. two different scenes) is a failure whose message names the failed test, unless
    ``accept_implausible`` keeps it (then ``result.implausible_accepted`` is True).
    ``refine`` (True, or a ``RefineParams``) polishes a successful homography on the two
    images' dense descriptor maps that detection produced (``s2cv.runtime.refine``; s2cv detectors only;
    several times the cost of detection: docs/results.md). The matches and inlier mask stay those of the fit.
    """
    check_options(transform, ratio, ransac_threshold, min_inliers)
    from s2cv.runtime.feature2d import S2NetFeature2D

    if refine and transform != "homography":
        raise ValueError(f"refine polishes a homography; got transform={transform!r}")
    if refine and detector is not None and not isinstance(detector, S2NetFeature2D):
        raise ValueError("refine needs an s2cv detector (it works on the network's dense maps), "
                         f"got {type(detector).__name__}")
    vis_img = read_image(vis) if isinstance(vis, (str, Path)) else vis
    ir_img = read_image(ir) if isinstance(ir, (str, Path)) else ir
    timings: dict[str, float] = {}
    t_start = time.perf_counter()
    detector = detector_or_default(detector, nfeatures, model, timings)
    a, b = for_detector(vis_img, detector, "visible"), for_detector(ir_img, detector, "IR")

    # refine works on the dense maps, so keep the ones detection ran on
    detect = detector.detectAndComputeMaps if refine else detector.detectAndCompute
    t = time.perf_counter()
    kp_vis, desc_vis, *maps_vis = detect(a, None)
    timings["detect_vis"] = (time.perf_counter() - t) * 1e3
    t = time.perf_counter()
    kp_ir, desc_ir, *maps_ir = detect(b, None)
    timings["detect_ir"] = (time.perf_counter() - t) * 1e3
    result = register_features(kp_vis, desc_vis, kp_ir, desc_ir, norm=detector.defaultNorm(),
                               vis_shape=np.asarray(vis_img).shape[:2], ir_shape=np.asarray(ir_img).shape[:2],
                               ratio=ratio, transform=transform, ransac_threshold=ransac_threshold,
                               min_inliers=min_inliers, accept_implausible=accept_implausible,
                               thresholds=thresholds)
    if refine and result.success:
        t = time.perf_counter()
        params = refine if isinstance(refine, RefineParams) else RefineParams()
        result.H = refine_homography(result.H, *maps_vis, *maps_ir, a.shape, b.shape, params)
        result.timings["refine"] = (time.perf_counter() - t) * 1e3
    result.timings = {**timings, **result.timings, "total": (time.perf_counter() - t_start) * 1e3}
    return result


def register_features(
    kp_vis: Sequence[cv2.KeyPoint],
    desc_vis: np.ndarray | None,
    kp_ir: Sequence[cv2.KeyPoint],
    desc_ir: np.ndarray | None,
    *,
    norm: int,
    vis_shape: tuple[int, ...],
    ir_shape: tuple[int, ...] | None = None,
    ratio: float | None = None,
    transform: str = "homography",
    ransac_threshold: float = 3.0,
    min_inliers: int = 12,
    accept_implausible: bool = False,
    thresholds: VerdictThresholds = DEFAULT_THRESHOLDS,
) -> RegistrationResult:
    """``register``'s match -> robust fit -> verdict on features already computed (``norm``:
    the detector's ``defaultNorm()``), so one detection can serve several fitting settings.
    ``ir_shape`` is the IR image's (h, w), which the verdict needs; without it the bounding box
    of the IR keypoints stands in for the image."""
    check_options(transform, ratio, ransac_threshold, min_inliers)
    for name, kps, desc in (("visible", kp_vis, desc_vis), ("IR", kp_ir, desc_ir)):
        if desc is not None and len(desc) != len(kps):
            raise ValueError(f"{name}: {len(desc)} descriptor rows for {len(kps)} keypoints")
        if desc is not None and desc.dtype.kind == "f" and not np.isfinite(desc).all():
            raise ValueError(f"{name} descriptors hold NaN/Inf values")
    if desc_vis is not None and desc_ir is not None and desc_vis.dtype != desc_ir.dtype:
        raise ValueError(f"descriptor dtypes differ: {desc_vis.dtype} (visible) vs {desc_ir.dtype} (IR)")
    timings: dict[str, float] = {}
    t = time.perf_counter()
    matches = _match(desc_vis, desc_ir, norm, ratio)
    timings["match"] = (time.perf_counter() - t) * 1e3

    t = time.perf_counter()
    pts_vis = np.float32([kp_vis[m.queryIdx].pt for m in matches]).reshape(-1, 2)
    pts_ir = np.float32([kp_ir[m.trainIdx].pt for m in matches]).reshape(-1, 2)
    H, inliers = fit_transform(pts_ir, pts_vis, transform, ransac_threshold)
    timings["fit"] = (time.perf_counter() - t) * 1e3

    n_in = int(inliers.sum())
    verdict, accepted = None, False
    if H is None:
        message = f"no {transform} could be fitted to {len(matches)} matches"
    elif abs(np.linalg.det(H)) < 1e-8:
        message = f"the fitted {transform} is degenerate (not invertible)"
    elif n_in < min_inliers:
        message = f"only {n_in} inliers out of {len(matches)} matches (need {min_inliers})"
    else:
        t = time.perf_counter()
        if ir_shape is None:
            ir_shape = tuple(int(math.ceil(v)) + 1 for v in pts_ir.max(0)[::-1]) if len(pts_ir) else (1, 1)
        verdict = plausibility(H, pts_ir, pts_vis, ir_shape, vis_shape, inliers=inliers, transform=transform,
                               threshold=ransac_threshold, thresholds=thresholds)
        timings["verdict"] = (time.perf_counter() - t) * 1e3
        accepted = not verdict.ok and accept_implausible
        message = "" if verdict.ok or accepted else f"implausible {transform}, refused: {verdict.reason}"
    return RegistrationResult(
        H=H, success=not message, transform=transform, keypoints_vis=tuple(kp_vis), keypoints_ir=tuple(kp_ir),
        matches=matches, inlier_mask=inliers, vis_shape=tuple(vis_shape[:2]),
        timings=timings, message=message, verdict=verdict, implausible_accepted=accepted,
    )


# ---------------------------------------------------------------- outputs


def imwrite(path: Path, image: np.ndarray) -> None:
    ok, data = cv2.imencode(path.suffix, image)
    if not ok:
        raise RegistrationError(f"cannot encode {path}")
    data.tofile(str(path))


def sample_ground_truth(name: str = "roadscene") -> np.ndarray:
    """A bundled pair's homography, visible -> IR (the benchmark's direction)."""
    return np.asarray(json.loads(SAMPLES[name][2].read_text())["H"], np.float64).reshape(3, 3)


def sample_corner_error(result: RegistrationResult, H_vis_to_ir: np.ndarray) -> float:
    """Mean corner error (px) of the visible image, as the benchmark measures it; inf on failure."""
    if result.H is None or not result.success:
        return math.inf
    return corner_error(np.linalg.inv(result.H), H_vis_to_ir, result.vis_shape)


def write_outputs(result: RegistrationResult, vis: np.ndarray, ir: np.ndarray, out_dir: Path,
                  extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """matches.png and summary.json always; H.txt, overlay.png, blend.png only on success."""
    out_dir.mkdir(parents=True, exist_ok=True)
    vis8, ir8 = viz.to_bgr8(vis), viz.to_bgr8(ir)
    pv, pi = result.matched_points()
    keep = result.inlier_mask if result.success else np.ones(len(pv), bool)  # failure: show everything
    imwrite(out_dir / "matches.png", viz.draw_matches(vis8, ir8, pv[keep], pi[keep], result.inlier_mask[keep]))
    files = ["matches.png", "summary.json"]
    if result.success:
        warped = result.warp(ir8)
        imwrite(out_dir / "overlay.png", viz.overlay(vis8, warped, tile=max(8, min(vis8.shape[:2]) // 8)))
        imwrite(out_dir / "blend.png", cv2.addWeighted(vis8, 0.5, warped, 0.5, 0.0))
        header = "3x3 homography mapping IR pixels (x, y, 1) onto the visible image"
        if result.implausible_accepted:
            header += f"\nIMPLAUSIBLE, kept by --accept-implausible: {result.verdict.reason}"
        np.savetxt(out_dir / "H.txt", result.H, fmt="%.10g", header=header)
        files += ["overlay.png", "blend.png", "H.txt"]
    summary = {**result.summary(), **(extra or {}), "outputs": sorted(files)}
    if result.implausible_accepted:
        summary["warning"] = f"implausible fit kept (accept_implausible): {result.verdict.reason}"
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2, allow_nan=False, default=json_default))
    return summary


def json_default(value: Any) -> Any:
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
