"""Register a thermal (or NIR) image onto a visible one: detect -> match -> robust fit.

Direction convention, used everywhere in this module: ``RegistrationResult.H`` maps a pixel
(x, y, 1) of the IR image onto the visible image, so ``cv2.warpPerspective(ir, H, vis_size)``
(or ``result.warp(ir)``) lays the IR frame over the visible one. Benchmark ground truth
(``roadscene_H.json``, evaluate's ``homographies.json``) goes the other way, visible -> IR.

The command line is ``s2cv register`` (``s2cv/cli/register.py``); ``match_pair`` is the pair
pipeline (detect both images, match, fit, judge) that ``calibrate`` and the registered video share.
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

from s2cv.feature.backends import DenseMaps
from s2cv.feature.feature2d import S2Net_create, S2NetFeature2D
from s2cv.feature.image import SAMPLES_DIR, read_image, to_uint8
from s2cv.registration import viz
from s2cv.registration.geometry import (MIN_POINTS, TRANSFORMS, corner_error, fit_transform, guided_refit, invertible,
                                        mutual_nn_matches)
from s2cv.registration.io import (  # noqa: F401 - RegistrationError, imwrite, json_default: their old home
    RegistrationError,
    imwrite,
    implausible_note,
    json_default,
    save_homography,
    write_summary,
)
from s2cv.registration.refine import RefineParams, refine_homography
from s2cv.registration.verdict import DEFAULT_THRESHOLDS, SecondView, Verdict, VerdictThresholds, plausibility
from s2cv.registration.accuracy import DEFAULT_MAX_ERROR, predict_error
from s2cv.registration import accuracy
from s2cv.registration import search as views

# name -> (visible, IR/NIR, ground-truth homography visible -> IR); see samples/CREDITS.txt
SAMPLES = {
    "roadscene": (SAMPLES_DIR / "roadscene_vis.png", SAMPLES_DIR / "roadscene_ir.png", SAMPLES_DIR / "roadscene_H.json"),
    "visnir": (SAMPLES_DIR / "visnir_vis.jpg", SAMPLES_DIR / "visnir_ir.jpg", SAMPLES_DIR / "visnir_H.json"),
}


@dataclass
class RegistrationResult:
    """Everything one ``register`` call found; ``H`` maps IR pixels onto the visible image."""

    H: np.ndarray | None                 # (3, 3) float64, IR -> visible; None when no model was fitted
    success: bool                         # H exists, is invertible, has >= min_inliers inliers, is
                                          # plausible and predicted_error <= max_error (or was kept
                                          # with accept_implausible)
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
    predicted_error: float = math.inf     # predicted mean corner error, IR px (s2cv.registration.accuracy)
    max_error: float = DEFAULT_MAX_ERROR  # success needs predicted_error <= this
    view: dict[str, float] = field(default_factory=lambda: {"scale": 1.0, "rotation_deg": 0})  # the view that won
    views_tried: list[dict[str, Any]] = field(default_factory=list)  # register's scale/rotation search log
    judged: tuple[np.ndarray, tuple[cv2.DMatch, ...], np.ndarray] | None = None  # (H, matches, inlier mask) the
                                          # verdict judged, where the guided refit replaced them (else None)

    @property
    def num_keypoints(self) -> tuple[int, int]:
        return len(self.keypoints_vis), len(self.keypoints_ir)

    @property
    def num_matches(self) -> int:
        return len(self.matches)

    @property
    def num_inliers(self) -> int:
        return int(np.count_nonzero(self.inlier_mask))

    @property
    def judged_fit(self) -> tuple[np.ndarray | None, tuple[cv2.DMatch, ...], np.ndarray]:
        """(H, matches, inlier mask) the verdict judged: ``judged`` where the guided refit replaced
        them, else the reported ones."""
        return self.judged if self.judged is not None else (self.H, self.matches, self.inlier_mask)

    def matched_points(self, judged: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """(M, 2) float32 coordinates of the matches in the visible and in the IR image; with
        ``judged``, of the matches the verdict judged (``judged_fit``)."""
        matches = self.judged_fit[1] if judged else self.matches
        pv = np.float32([self.keypoints_vis[m.queryIdx].pt for m in matches]).reshape(-1, 2)
        pi = np.float32([self.keypoints_ir[m.trainIdx].pt for m in matches]).reshape(-1, 2)
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
            "predicted_error": round(self.predicted_error, 3) if math.isfinite(self.predicted_error) else None,
            "max_error": self.max_error if math.isfinite(self.max_error) else None,
            "view": self.view, "views_tried": self.views_tried,
            "guided_refit": self.judged is not None,  # H, matches and inliers are the guided refit's
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
        t = time.perf_counter()
        detector = S2Net_create(nfeatures=nfeatures, model=model)
        timings["load"] = (time.perf_counter() - t) * 1e3
    from s2cv.feature.pyalgorithm import is_feature2d

    if not is_feature2d(detector):  # a cv2.Feature2D or its surface (S2NetFeature2D is a plain class)
        raise TypeError(f"detector must be a cv2.Feature2D (or have its methods), got {type(detector).__name__}")
    return detector


def for_detector(image: np.ndarray, detector: cv2.Feature2D, name: str) -> np.ndarray:
    """s2cv takes any depth (it normalises robustly); OpenCV's detectors want 8-bit gray."""
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


def resolve_matcher(matcher: Any, ratio: float | None) -> Any:
    """None/"mnn" -> None (mutual nearest neighbours); "glue" -> ``S2Glue_create()``; a matcher passes."""
    if matcher is None or (isinstance(matcher, str) and matcher == "mnn"):
        return None
    if isinstance(matcher, str) and matcher == "glue":
        from s2cv.feature.glue import S2Glue_create

        matcher = S2Glue_create()
    if not callable(getattr(matcher, "setPairInfo", None)) or not callable(getattr(matcher, "match", None)):
        raise ValueError(f"matcher must be 'mnn', 'glue' or an S2Glue_create() matcher, got {matcher!r}")
    if ratio is not None:
        raise ValueError("ratio is a nearest-neighbour test; it does not apply to matcher='glue'")
    return matcher


def glue_match(matcher: Any, kp_vis: Sequence[cv2.KeyPoint], desc_vis: np.ndarray | None,
               kp_ir: Sequence[cv2.KeyPoint], desc_ir: np.ndarray | None, vis_shape: tuple[int, ...],
               ir_shape: tuple[int, ...]) -> tuple[cv2.DMatch, ...]:
    """Learned matches visible -> IR (query: visible), as ``_match`` returns them."""
    if desc_vis is None or desc_ir is None or len(desc_vis) == 0 or len(desc_ir) == 0:
        return ()
    matcher.setPairInfo(kp_vis, kp_ir, (vis_shape[1], vis_shape[0]), (ir_shape[1], ir_shape[0]))
    return tuple(matcher.match(desc_vis, desc_ir))


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
    max_error: float = DEFAULT_MAX_ERROR,
    scale: float | str = "auto",
    fov: tuple[float, float] | None = None,
    rotation: str = "auto",
    matcher: Any = None,
) -> RegistrationResult:
    """Estimate the transform that maps IR pixels onto the visible image.

    ``vis``/``ir`` are arrays (gray, BGR, BGRA; uint8, uint16 or float) or image paths, and may
    differ in size. ``detector`` is any ``cv2.Feature2D`` (default: ``s2cv.S2Net_create(
    nfeatures, model=model)``; ``model``/``nfeatures`` only apply then). Matches are mutual
    nearest neighbours under ``detector.defaultNorm()``; ``ratio`` adds Lowe's ratio test.
    Failure to register is not an exception: check ``result.success`` / ``result.message``.
    Every fit is judged by ``s2cv.registration.verdict.plausibility`` (``thresholds``); an implausible one
    (e.g. two different scenes) is a failure whose message names the failed test, unless
    ``accept_implausible`` keeps it (then ``result.implausible_accepted`` is True).
    ``refine`` (True, or a ``RefineParams``) polishes a successful homography on the two
    images' dense descriptor maps that detection produced (``s2cv.registration.refine``; s2cv detectors only;
    several times the cost of detection: docs/results.md). The matches and inlier mask stay those of the fit.

    Every fit carries ``predicted_error`` (mean corner error in IR px, ``s2cv.registration.accuracy``);
    success needs it at most ``max_error``. ``scale`` is the ratio of the visible to the IR pixel
    scale (2: things look twice as large in the visible image), ``"auto"`` (default) tries 1 and
    searches 1/4 .. 4 only when that fit is not accepted (an accepted fit whose own scale is more
    than 1.3x off 1 is matched once more at that scale, the coarser image enlarged, and the
    better of the two kept); ``fov=(visible_deg, ir_deg)`` (horizontal
    fields of view) gives the ratio instead. ``rotation="any"`` also tries the IR image turned by
    multiples of 90 and 45 degrees (default ``"auto"``: the network's own +-30 degrees).
    ``result.view`` is the view that won (``s2cv.registration.search``); keypoints, matches and ``H``
    are always in the pixels of the images as given.
    ``matcher="glue"`` (or an ``s2cv.S2Glue_create`` matcher) matches with the learned S2Glue matcher
    instead of mutual nearest neighbours (``None``/``"mnn"``, the default); without a ``detector`` the
    detector is then the one the matcher was trained for (``matcher.det_model``).
    """
    check_options(transform, ratio, ransac_threshold, min_inliers)
    matcher = resolve_matcher(matcher, ratio)
    if matcher is not None and detector is None and model == "default":
        model = matcher.det_model
    hint = views.check_scale(scale)
    if fov is not None and hint is not None:
        raise ValueError("give scale or fov, not both")
    if fov is not None and (not isinstance(fov, (tuple, list)) or len(fov) != 2):
        raise ValueError(f"fov must be (visible_deg, ir_deg), got {fov!r}")
    if rotation not in views.ROTATIONS:
        raise ValueError(f"rotation must be one of {views.ROTATIONS}, got {rotation!r}")
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
    check_sizes(for_detector(vis_img, detector, "visible"), for_detector(ir_img, detector, "IR"))
    if fov is not None:
        hint = views.check_scale(views.scale_from_fov(*fov, np.shape(vis_img)[1], np.shape(ir_img)[1]))
    options = dict(ratio=ratio, transform=transform, ransac_threshold=ransac_threshold, min_inliers=min_inliers,
                   accept_implausible=accept_implausible, thresholds=thresholds, max_error=max_error, matcher=matcher)
    plan = views.stages(hint, rotation)
    result, maps = None, None
    if plan[0][0].identity:  # the common case: the pair as given, register's plain pipeline
        # refine works on the dense maps, so keep the ones detection ran on
        result, maps = match_pair(vis_img, ir_img, detector, maps=bool(refine), **options)
    if result is None or not (result.success and not result.implausible_accepted):
        searched = search_views(vis_img, ir_img, detector, plan[1:] if result is not None else plan,
                                bool(refine), options, timings)
        if searched is not None:
            log = searched[0].views_tried
            if result is not None:
                log = [{**plan[0][0].summary(), "inliers": result.num_inliers, "accepted": False}] + log
            if result is None or _better(searched[0], result):
                result, maps = searched
            result.views_tried = log
    elif plan[0][0].identity and (fine := views.rescale_view(result.H, np.shape(ir_img))) is not None:
        # accepted as given, but the fit says the cameras differ in scale: match once more at it
        searched = search_views(vis_img, ir_img, detector, [[fine]], bool(refine), options, timings)
        first = {**plan[0][0].summary(), "inliers": result.num_inliers, "accepted": True}
        if searched is not None:
            log = [first] + searched[0].views_tried
            candidate = searched[0]
            if (candidate.success and not candidate.implausible_accepted
                    and candidate.predicted_error <= result.predicted_error):
                result, maps = searched
            result.views_tried = log
    if refine and result.success:
        t = time.perf_counter()
        params = refine if isinstance(refine, RefineParams) else RefineParams()
        if maps is not None and len(maps) == 4:  # a view's maps, shapes and pixel maps: refine in its pixels
            (maps_v, Tv), (maps_i, Ti) = maps[:2], maps[2:]
            H_view = refine_homography(Tv[1] @ result.H @ np.linalg.inv(Ti[1]), maps_v, maps_i, Tv[0], Ti[0], params)
            H_new = np.linalg.inv(Tv[1]) @ H_view @ Ti[1]
            result.H = H_new / H_new[2, 2]
        else:
            result.H = refine_homography(result.H, *maps, result.vis_shape, np.asarray(ir_img).shape[:2], params)
        result.timings["refine"] = (time.perf_counter() - t) * 1e3
    result.timings = {**timings, **result.timings, "total": (time.perf_counter() - t_start) * 1e3}
    return result


def check_sizes(vis: np.ndarray, ir: np.ndarray, minimum: int = 16) -> None:
    """ValueError for an image too small to hold a keypoint away from its border."""
    for name, image in (("visible", vis), ("IR", ir)):
        shape = np.shape(image)
        if len(shape) >= 2 and 0 < min(shape[:2]) < minimum:  # empty: for_detector says so
            raise ValueError(f"{name} image is {shape[1]}x{shape[0]} px: too small to register "
                             f"(at least {minimum}x{minimum} px)")


def _better(a: RegistrationResult, b: RegistrationResult) -> bool:
    """Whether a searched result beats the first view's: accepted beats not, then more inliers
    among plausible fits."""
    def rank(r: RegistrationResult) -> tuple[int, int, int]:
        return (int(r.success and not r.implausible_accepted), int(r.verdict is not None and r.verdict.ok),
                r.num_inliers)
    return rank(a) > rank(b)


def search_views(vis: np.ndarray, ir: np.ndarray, detector: cv2.Feature2D, plan: list[list[views.View]],
                 maps: bool, options: dict[str, Any], timings: dict[str, float]
                 ) -> tuple[RegistrationResult, tuple | None] | None:
    """``register_features`` on the views of ``plan`` (``s2cv.registration.search``): the best
    result and, with ``maps``, (visible maps, (view shape, T), IR maps, (view shape, T)) for the
    refinement; None for an empty plan."""
    if not plan:
        return None
    a, b = for_detector(vis, detector, "visible"), for_detector(ir, detector, "IR")
    detect = detector.detectAndComputeMaps if maps else detector.detectAndCompute
    detections = views.Detections(a, b, lambda image, mask: detect(image, mask), timings)

    def fit(vis_det: tuple, ir_det: tuple, second_view: SecondView | None = None) -> RegistrationResult:
        threshold = views.view_threshold(options["ransac_threshold"], vis_det[4])
        return register_features(vis_det[0], vis_det[1], ir_det[0], ir_det[1], norm=detector.defaultNorm(),
                                 vis_shape=a.shape[:2], ir_shape=b.shape[:2], second_view=second_view,
                                 **{**options, "ransac_threshold": threshold})

    t = time.perf_counter()
    accepted = lambda r: r.success and not r.implausible_accepted  # noqa: E731
    result, view, tried = views.search(detections, plan, fit, accepted)
    result, view = detections.fine_pass(result, view, tried, fit, accepted)
    disagreement = lambda H1, H2: accuracy.view_disagreement(H1, H2, b.shape[:2], a.shape[:2])  # noqa: E731
    result, view = detections.corroborate(result, view, tried, fit, accepted, disagreement,
                                          options["thresholds"].max_view_disagreement_px)
    timings["search"] = (time.perf_counter() - t) * 1e3
    result.view, result.views_tried = view.summary(), views.log_of(tried, accepted)
    if not maps:
        return result, None
    (_, _, maps_v, img_v, Tv), (_, _, maps_i, img_i, Ti) = detections.view(view)
    return result, (maps_v[0], (img_v.shape[:2], Tv), maps_i[0], (img_i.shape[:2], Ti))


def match_pair(vis: np.ndarray, ir: np.ndarray, detector: cv2.Feature2D, *, maps: bool = False,
               **options: Any) -> tuple[RegistrationResult, tuple[DenseMaps, DenseMaps] | None]:
    """The pair pipeline ``register``, ``calibrate`` and the registered video share: both images
    made fit for ``detector`` (``for_detector``), detected, then matched, fitted and judged by
    ``register_features`` (``options``: its ratio, transform, thresholds, ...). With ``maps``
    (s2cv detectors) the dense maps detection ran on come back too (visible, IR), else None.
    ``result.timings`` holds the detection times."""
    a, b = for_detector(vis, detector, "visible"), for_detector(ir, detector, "IR")
    detect = detector.detectAndComputeMaps if maps else detector.detectAndCompute
    timings: dict[str, float] = {}
    t = time.perf_counter()
    kp_vis, desc_vis, *maps_vis = detect(a, None)
    timings["detect_vis"] = (time.perf_counter() - t) * 1e3
    t = time.perf_counter()
    kp_ir, desc_ir, *maps_ir = detect(b, None)
    timings["detect_ir"] = (time.perf_counter() - t) * 1e3
    result = register_features(kp_vis, desc_vis, kp_ir, desc_ir, norm=detector.defaultNorm(),
                               vis_shape=a.shape[:2], ir_shape=b.shape[:2], **options)
    result.timings = {**timings, **result.timings}
    return result, ((maps_vis[0], maps_ir[0]) if maps else None)


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
    max_error: float = DEFAULT_MAX_ERROR,
    matcher: Any = None,
    second_view: SecondView | None = None,
) -> RegistrationResult:
    """``register``'s match -> robust fit -> verdict on features already computed (``norm``:
    the detector's ``defaultNorm()``), so one detection can serve several fitting settings.
    ``ir_shape`` is the IR image's (h, w), which the verdict needs; without it the bounding box
    of the IR keypoints stands in for the image. A plausible fit is refitted on every keypoint
    matched again near where it puts it and replaced by that refit when it predicts a smaller
    corner error (``_guided_if_better``; the result's matches and inliers are then the refit's,
    the verdict's signals stay the first fit's). A fit whose predicted corner error
    (``s2cv.registration.accuracy``) exceeds ``max_error`` px is refused as a likely near miss.
    ``second_view``: an independent view's fit of the pair, for the verdict
    (``search.Detections.corroborate``)."""
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
    if matcher is None:
        matches = _match(desc_vis, desc_ir, norm, ratio)
    else:
        matches = glue_match(resolve_matcher(matcher, ratio), kp_vis, desc_vis, kp_ir, desc_ir, vis_shape,
                             ir_shape or vis_shape)
    timings["match"] = (time.perf_counter() - t) * 1e3

    t = time.perf_counter()
    pts_vis = np.float32([kp_vis[m.queryIdx].pt for m in matches]).reshape(-1, 2)
    pts_ir = np.float32([kp_ir[m.trainIdx].pt for m in matches]).reshape(-1, 2)
    H, inliers = fit_transform(pts_ir, pts_vis, transform, ransac_threshold, thorough=True)
    timings["fit"] = (time.perf_counter() - t) * 1e3

    n_in = int(inliers.sum())
    verdict, accepted, predicted, judged = None, False, math.inf, None
    if not (max_error > 0):
        raise ValueError(f"max_error must be a positive number of pixels (inf: no limit), got {max_error!r}")
    if H is None:
        message = f"no {transform} could be fitted to {len(matches)} matches"
    elif not invertible(H):
        message = f"the fitted {transform} is degenerate (not invertible)"
    elif n_in < min_inliers:
        message = f"only {n_in} inliers out of {len(matches)} matches (need {min_inliers})"
    else:
        t = time.perf_counter()
        if ir_shape is None:
            ir_shape = tuple(int(math.ceil(v)) + 1 for v in pts_ir.max(0)[::-1]) if len(pts_ir) else (1, 1)
        verdict = plausibility(H, pts_ir, pts_vis, ir_shape, vis_shape, inliers=inliers, transform=transform,
                               threshold=ransac_threshold, thresholds=thresholds, second_view=second_view)
        timings["verdict"] = (time.perf_counter() - t) * 1e3
        accepted = not verdict.ok and accept_implausible
        message = "" if verdict.ok or accepted else f"implausible {transform}, refused: {verdict.reason}"
        t = time.perf_counter()
        predicted = predict_error(H, pts_ir[inliers], pts_vis[inliers], ir_shape, vis_shape, transform)
        timings["accuracy"] = (time.perf_counter() - t) * 1e3
        if verdict.ok and desc_vis is not None and desc_ir is not None:
            t = time.perf_counter()
            first = H, matches, inliers
            H, matches, inliers, predicted = _guided_if_better(H, matches, inliers, predicted, kp_vis, desc_vis, kp_ir,
                                                               desc_ir, norm, transform, ransac_threshold, ir_shape,
                                                               vis_shape)
            judged = None if matches is first[1] else first
            timings["guided"] = (time.perf_counter() - t) * 1e3
        if not message and not accepted and not predicted <= max_error:  # accept_implausible keeps any fit
            message = (f"plausible {transform} but too uncertain, refused: predicted corner error "
                       f"{predicted:.1f} px > max_error {max_error:g} px (a near miss is likely; "
                       f"--max-error / max_error raises the limit)")
    return RegistrationResult(
        H=H, success=not message, transform=transform, keypoints_vis=tuple(kp_vis), keypoints_ir=tuple(kp_ir),
        matches=matches, inlier_mask=inliers, vis_shape=tuple(vis_shape[:2]),
        timings=timings, message=message, verdict=verdict, implausible_accepted=accepted,
        predicted_error=predicted, max_error=max_error, judged=judged,
    )


def _guided_if_better(H: np.ndarray, matches: tuple[cv2.DMatch, ...], inliers: np.ndarray, predicted: float,
                      kp_vis: Sequence[cv2.KeyPoint], desc_vis: np.ndarray, kp_ir: Sequence[cv2.KeyPoint],
                      desc_ir: np.ndarray, norm: int, transform: str, threshold: float, ir_shape: tuple[int, ...],
                      vis_shape: tuple[int, ...]) -> tuple[np.ndarray, tuple[cv2.DMatch, ...], np.ndarray, float]:
    """A plausible fit refitted on every keypoint matched again near where it puts it
    (``geometry.guided_refit``); the refit (its matches, inliers and predicted error) replaces the
    fit when its own predicted error (``accuracy.GUIDED_COEFFICIENTS``) is smaller. Not always:
    where the first fit is certain already, lookalike pairs near the right place pull the refit
    off more often than they help (validation, docs/results.md "A guided refit")."""
    all_vis = np.float64([k.pt for k in kp_vis]).reshape(-1, 2)
    all_ir = np.float64([k.pt for k in kp_ir]).reshape(-1, 2)
    refit = guided_refit(H, inliers, all_vis, desc_vis, all_ir, desc_ir, transform, threshold, norm)
    if refit is None:
        return H, matches, inliers, predicted
    H2, pairs, inl2 = refit
    predicted2 = predict_error(H2, all_ir[pairs[inl2, 1]], all_vis[pairs[inl2, 0]], ir_shape, vis_shape, transform,
                               guided=True)
    if not predicted2 < predicted:
        return H, matches, inliers, predicted
    refit_matches = tuple(cv2.DMatch(int(i), int(j), float(cv2.norm(desc_vis[i], desc_ir[j], norm))) for i, j in pairs)
    return H2, refit_matches, inl2, predicted2


# ---------------------------------------------------------------- outputs


def sample_ground_truth(name: str = "roadscene") -> np.ndarray:
    """A bundled pair's homography, visible -> IR (the benchmark's direction)."""
    return np.asarray(json.loads(SAMPLES[name][2].read_text())["H"], np.float64).reshape(3, 3)


def sample_corner_error(result: RegistrationResult, H_vis_to_ir: np.ndarray) -> float:
    """Mean corner error (px) of the visible image, as the benchmark measures it; inf on failure."""
    if result.H is None or not result.success:
        return math.inf
    return corner_error(np.linalg.inv(result.H), H_vis_to_ir, result.vis_shape)


def write_registration(result: RegistrationResult, vis: np.ndarray, ir: np.ndarray, out_dir: Path,
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
        imwrite(out_dir / "overlay.png", viz.overlay(vis8, warped, tile=viz.overlay_tile(vis8)))
        imwrite(out_dir / "blend.png", cv2.addWeighted(vis8, 0.5, warped, 0.5, 0.0))
        save_homography(out_dir / "H.txt", result.H, implausible_note(result))
        files += ["overlay.png", "blend.png", "H.txt"]
    summary = {**result.summary(), **(extra or {}), "outputs": sorted(files)}
    if result.implausible_accepted:
        summary["warning"] = f"implausible fit kept (accept_implausible): {result.verdict.reason}"
    write_summary(out_dir / "summary.json", summary)
    return summary


write_outputs = write_registration  # its name until 0.1: one of three write_outputs
