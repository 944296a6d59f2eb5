"""Calibrate a fixed visible/IR rig: one homography from the matches of many frame pairs.

For a rig whose scene is far away, the IR -> visible homography is the same in every frame.
One pair leaves textureless regions (sky, road) to extrapolation and lets a few near-miss
matches tilt the fit; the matches of many pairs, pooled into one robust fit, cover the image and
outvote them. Each pair is detected and matched as ``s2cv register`` does (mutual nearest
neighbours, its own USAC/MAGSAC fit and plausibility verdict kept for comparison), the pooled
matches get the same robust fit and the same verdict (``s2cv.registration.verdict``), optionally a polish on
the dense descriptor maps of several pairs at once (``s2cv.registration.refine.refine_homography_pairs``), and
frames that disagree with the result are flagged.

The command line is ``s2cv calibrate`` (``s2cv/cli/calibrate.py``).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import cv2
import numpy as np

from s2cv.feature.backends import DenseMaps
from s2cv.feature.extras import missing_train_extra
from s2cv.feature.feature2d import S2NetFeature2D
from s2cv.feature.image import to_gray_float
from s2cv.registration import viz
from s2cv.registration.geometry import fit_transform, invertible, match_errors
from s2cv.registration.io import (
    RegistrationError,
    implausible_note,
    imwrite,
    progress_bar,
    save_homography,
    write_summary,
)
from s2cv.registration.plots import plot_residuals
from s2cv.registration.refine import RefineParams, refine_homography_pairs
from s2cv.registration.register import (
    RegistrationResult,
    check_options,
    detector_or_default,
    for_detector,
    match_pair,
    register,
    register_features,
    resolve_matcher,
)
from s2cv.registration.verdict import DEFAULT_THRESHOLDS, Verdict, VerdictThresholds, plausibility
from s2cv.registration.accuracy import predict_error
from s2cv.registration import search as views
from s2cv.registration.video import PairedFrames

AGREEMENT_MIN = 0.5
"""A frame whose own single-pair fit has more than 1 / AGREEMENT_MIN times the inliers the rig
homography gives it disagrees with the rig (moved sensor, near scene, wrong pairing)."""
OVERLAY_FRAMES = 4


@dataclass
class FrameResult:
    """One frame pair's evidence: its matches, its own fit, its agreement with the rig's H."""

    index: int                    # position in the input sequence
    name: str
    keypoints: tuple[int, int]    # (visible, IR)
    matches: int
    own_success: bool             # the pair registers on its own (``register``'s verdict)
    own_inliers: int              # inliers of its own fit
    own_message: str              # why it does not ("" when it does)
    inliers: int = 0              # matches within ransac_threshold of the rig homography
    median_residual: float = math.nan  # px, median distance of those inliers to the rig homography
    flags: list[str] = field(default_factory=list)  # "disagrees", "weak"
    ms: float = 0.0               # detection + matching + own fit

    def summary(self) -> dict[str, Any]:
        return {
            "index": self.index, "name": self.name, "keypoints": list(self.keypoints), "matches": self.matches,
            "own_success": self.own_success, "own_inliers": self.own_inliers, "own_message": self.own_message,
            "inliers": self.inliers,
            "inlier_share": round(self.inliers / self.matches, 4) if self.matches else 0.0,
            "median_residual_px": None if math.isnan(self.median_residual) else round(self.median_residual, 3),
            "flags": self.flags, "ms": round(self.ms, 1),
        }


@dataclass
class CalibrationResult:
    """What ``calibrate`` found; ``H`` maps IR pixels onto the visible image."""

    H: np.ndarray | None          # (3, 3) float64 IR -> visible; None when nothing could be fitted
    success: bool
    message: str                  # why calibration failed ("" on success)
    frames: list[FrameResult]
    vis_shape: tuple[int, int] | None
    ir_shape: tuple[int, int] | None
    source: PairedFrames
    verdict: Verdict | None = None  # plausibility of the pooled fit (None when nothing could be fitted)
    implausible_accepted: bool = False  # success only because accept_implausible kept a refused fit
    refined_on: list[str] = field(default_factory=list)  # frames the featuremetric refinement used
    timings: dict[str, float] = field(default_factory=dict)  # milliseconds
    ransac_threshold: float = 3.0
    min_inliers: int = 12
    predicted_error: float = math.inf  # predicted corner error of the pooled fit (s2cv.registration.accuracy)
    view: dict[str, float] = field(default_factory=lambda: {"scale": 1.0, "rotation_deg": 0})  # the rig's view

    @property
    def num_matches(self) -> int:
        return sum(f.matches for f in self.frames)

    @property
    def num_inliers(self) -> int:
        return sum(f.inliers for f in self.frames)

    @property
    def flagged(self) -> list[FrameResult]:
        return [f for f in self.frames if f.flags]

    @property
    def ms_per_frame(self) -> float:
        """Calibration cost per frame pair, model loading excluded."""
        work = self.timings.get("total", 0.0) - self.timings.get("load", 0.0)
        return work / len(self.frames) if self.frames else math.nan

    def warp(self, ir_image: np.ndarray) -> np.ndarray:
        """An IR frame resampled onto the visible frame's pixel grid."""
        if self.H is None or self.vis_shape is None:
            raise RegistrationError(f"no homography to warp with: {self.message or 'calibration failed'}")
        h, w = self.vis_shape
        return cv2.warpPerspective(np.asarray(ir_image), self.H, (w, h))

    def summary(self) -> dict[str, Any]:
        """JSON-ready numbers (what the CLI writes to summary.json)."""
        return {
            "success": self.success, "message": self.message,
            "H_ir_to_vis": None if self.H is None else self.H.tolist(),
            "vis": str(self.source.vis_path), "ir": str(self.source.ir_path), "input": self.source.kind,
            "frames_in_input": self.source.total, "frames_used": len(self.frames),
            "skipped": list(self.source.skipped), "skipped_count": len(self.source.skipped),
            "matches": self.num_matches, "inliers": self.num_inliers,
            "verdict": None if self.verdict is None else self.verdict.summary(),
            "implausible_accepted": self.implausible_accepted,
            "predicted_error": round(self.predicted_error, 3) if math.isfinite(self.predicted_error) else None,
            "view": self.view,
            "flagged": [f.name for f in self.flagged], "refined_on": self.refined_on,
            "vis_shape": self.vis_shape, "ir_shape": self.ir_shape,
            "ransac_threshold": self.ransac_threshold, "min_inliers": self.min_inliers,
            "timings_ms": {k: round(v, 1) for k, v in self.timings.items()},
            "ms_per_frame": None if math.isnan(self.ms_per_frame) else round(self.ms_per_frame, 1),
            "per_frame": [f.summary() for f in self.frames],
        }


def _score_frames(frames: list[FrameResult], points: list[tuple[np.ndarray, np.ndarray]], H: np.ndarray,
                  threshold: float, min_inliers: int) -> None:
    """Each frame's matches measured against the rig homography; flags for the odd ones out."""
    for frame, (pts_vis, pts_ir) in zip(frames, points):
        errors = match_errors(pts_ir, pts_vis, H)
        inlier = errors <= threshold
        frame.inliers = int(inlier.sum())
        frame.median_residual = float(np.median(errors[inlier])) if inlier.any() else math.nan
        frame.flags = []
        if frame.own_success and frame.inliers < AGREEMENT_MIN * frame.own_inliers:
            frame.flags.append("disagrees")
        if frame.inliers < min_inliers:
            frame.flags.append("weak")


def fit_at_view(vis: np.ndarray, ir: np.ndarray, detector: Any, view: views.View, **options: Any) -> RegistrationResult:
    """``register_features`` of one pair detected at ``view`` (keypoints in original pixels):
    what ``calibrate`` runs on every frame once the rig's view is known."""
    if view.identity:
        return match_pair(vis, ir, detector, **options)[0]
    a, b = for_detector(vis, detector, "visible"), for_detector(ir, detector, "IR")
    timings: dict[str, float] = {}
    detections = views.Detections(a, b, lambda image, mask: detector.detectAndCompute(image, mask), timings)
    (kv, dv, *_), (ki, di, *_) = detections.view(view)
    result = register_features(kv, dv, ki, di, norm=detector.defaultNorm(), vis_shape=a.shape[:2],
                               ir_shape=b.shape[:2], **options)
    result.timings = {**timings, **result.timings}
    result.view = view.summary()
    return result


def calibrate(
    vis_source: str | Path,
    ir_source: str | Path,
    detector: cv2.Feature2D | None = None,
    *,
    model: Any = "default",
    nfeatures: int = 4096,
    ransac_threshold: float = 3.0,
    min_inliers: int = 12,
    max_frames: int | None = None,
    step: int = 1,
    refine: bool | str | RefineParams = "auto",
    refine_frames: int = 16,
    accept_implausible: bool = False,
    thresholds: VerdictThresholds = DEFAULT_THRESHOLDS,
    progress: bool | None = None,
    scale: float | str = "auto",
    fov: tuple[float, float] | None = None,
    rotation: str = "auto",
    matcher: Any = None,
) -> CalibrationResult:
    """One IR -> visible homography for a fixed rig from all its frame pairs.

    ``vis_source``/``ir_source``: two folders of frames with matching names, or two videos
    (``s2cv.registration.video.PairedFrames``: every ``step``-th pair, at most ``max_frames``; frames are
    streamed, only each pair's matched coordinates are kept). ``detector`` is any
    ``cv2.Feature2D`` (default ``s2cv.S2Net_create(nfeatures, model=model)``). ``refine`` polishes
    the pooled fit on the dense maps of up to ``refine_frames`` agreeing frames (the ones with the
    most inliers; read a second time, s2cv detectors only); ``"auto"`` (default) refines whenever the
    detector is an s2cv one: a rig is calibrated once, and on the simulated rig the refinement takes
    12 frames from 1.76 to 1.29 px (docs/results.md) for about 4x the time. Each pair's own fit and the pooled fit
    are judged by ``s2cv.registration.verdict.plausibility`` (``thresholds``); an implausible pooled fit is a
    failure unless ``accept_implausible`` keeps it. Failure is not an exception: check
    ``result.success`` / ``result.message``. ``progress`` None shows a bar on a terminal only.
    ``scale``, ``fov`` and ``rotation`` are ``register``'s: the rig's view (pixel-scale ratio, roll)
    is searched on the first frame pairs (up to ``search.VIEW_PROBES``, until one registers) and then
    every frame is detected at it (``result.view``). ``matcher`` is ``register``'s ("mnn" or None:
    mutual nearest neighbours; "glue": the learned S2Glue matcher and, without a ``detector``, its own).
    """
    check_options("homography", None, ransac_threshold, min_inliers)
    matcher = resolve_matcher(matcher, None)
    if matcher is not None and detector is None and model == "default":
        model = matcher.det_model
    if isinstance(refine_frames, bool) or int(refine_frames) != refine_frames or refine_frames < 1:
        raise ValueError(f"refine_frames must be an integer >= 1, got {refine_frames!r}")
    if isinstance(refine, str) and refine != "auto":
        raise ValueError(f"refine must be True, False, 'auto' or RefineParams, got {refine!r}")
    if refine is True and detector is not None and not isinstance(detector, S2NetFeature2D):
        raise ValueError("refine needs an s2cv detector (it works on the network's dense maps), "
                         f"got {type(detector).__name__}")
    hint = views.check_scale(scale)
    if rotation not in views.ROTATIONS:
        raise ValueError(f"rotation must be one of {views.ROTATIONS}, got {rotation!r}")
    if fov is not None and (hint is not None or not isinstance(fov, (tuple, list)) or len(fov) != 2):
        raise ValueError(f"fov must be (visible_deg, ir_deg) and excludes scale, got fov={fov!r}, scale={scale!r}")
    source = PairedFrames(vis_source, ir_source, step=step, max_frames=max_frames)
    timings: dict[str, float] = {}
    t_start = time.perf_counter()
    detector = detector_or_default(detector, nfeatures, model, timings)
    if refine == "auto":
        refine = isinstance(detector, S2NetFeature2D)

    frames: list[FrameResult] = []
    view: views.View | None = None
    probes = 0
    points: list[tuple[np.ndarray, np.ndarray]] = []  # per frame: matched (visible, IR) coordinates
    shapes: tuple[tuple[int, int] | None, tuple[int, int] | None] = (None, None)
    t = time.perf_counter()
    for pair in progress_bar(source, source.count, "calibrate", "pair", progress):
        t_frame = time.perf_counter()
        options = dict(ransac_threshold=ransac_threshold, min_inliers=min_inliers, thresholds=thresholds,
                       matcher=matcher)
        if view is None:  # the rig's view: searched on the first frames, then fixed
            if fov is not None:
                hint = views.check_scale(views.scale_from_fov(*fov, pair.vis.shape[1], pair.ir.shape[1]))
            probes += 1
            found = register(pair.vis, pair.ir, detector, scale="auto" if hint is None else hint, rotation=rotation,
                             **options)
            if found.success or probes >= views.VIEW_PROBES:
                view = (views.View.from_summary(found.view) if found.success
                        else views.View(1.0 if hint is None else hint, 0))
        own = fit_at_view(pair.vis, pair.ir, detector, view or views.View(1.0 if hint is None else hint, 0),
                                **options)
        # the pooled fit, verdict and estimate see what they were calibrated on: the unguided matches
        points.append(own.matched_points(judged=True))
        own_inliers = int(np.count_nonzero(own.judged_fit[2]))
        frames.append(FrameResult(pair.index, pair.name, own.num_keypoints, len(points[-1][0]), own.success,
                                  own_inliers, own.message, ms=(time.perf_counter() - t_frame) * 1e3))
        shapes = (pair.vis.shape[:2], pair.ir.shape[:2])
    timings["frames"] = (time.perf_counter() - t) * 1e3

    def done(H: np.ndarray | None, message: str, verdict: Verdict | None = None,
             refined_on: Sequence[str] = ()) -> CalibrationResult:
        timings["total"] = (time.perf_counter() - t_start) * 1e3
        accepted = verdict is not None and not verdict.ok and not message
        return CalibrationResult(H, not message, message, frames, *shapes, source, verdict, accepted, list(refined_on),
                                 timings, ransac_threshold, min_inliers)

    if not frames:
        return done(None, f"no frame pair could be read ({len(source.skipped)} skipped)")
    t = time.perf_counter()
    pts_vis = np.concatenate([p[0] for p in points])
    pts_ir = np.concatenate([p[1] for p in points])
    H = fit_transform(pts_ir, pts_vis, "homography", ransac_threshold, thorough=True)[0]  # register's fit: MAGSAC++
    timings["fit"] = (time.perf_counter() - t) * 1e3
    why = f"{len(pts_vis)} matches in {len(frames)} frame pairs"
    if H is None:
        return done(None, f"no frame registers: no homography could be fitted to the {why}")
    if not invertible(H):
        return done(None, f"no frame registers: the homography fitted to the {why} is degenerate")
    _score_frames(frames, points, H, ransac_threshold, min_inliers)
    if sum(f.inliers for f in frames) < min_inliers:
        return done(None, f"no frame registers: only {sum(f.inliers for f in frames)} of the {why} agree with "
                          f"the best homography (need {min_inliers})")
    t = time.perf_counter()
    verdict = plausibility(H, pts_ir, pts_vis, shapes[1], shapes[0], inliers=match_errors(pts_ir, pts_vis, H)
                           <= ransac_threshold, threshold=ransac_threshold, thresholds=thresholds)
    timings["verdict"] = (time.perf_counter() - t) * 1e3
    if not verdict.ok and not accept_implausible:
        return done(H, f"no frame registers: the homography fitted to the {why} is implausible, refused: "
                       f"{verdict.reason}", verdict)

    # the pooled inliers' bootstrap, on the feature fit (as register: the refinement moves H off the
    # least-squares solutions the bootstrap scatters around)
    inliers = match_errors(pts_ir, pts_vis, H) <= ransac_threshold
    predicted = predict_error(H, pts_ir[inliers], pts_vis[inliers], shapes[1], shapes[0])
    refined_on: list[str] = []
    if refine:
        t = time.perf_counter()
        params = refine if isinstance(refine, RefineParams) else RefineParams()
        agreeing = sorted((f for f in frames if not f.flags), key=lambda f: -f.inliers)[:refine_frames]
        chosen = {f.index for f in agreeing}
        if chosen:
            rig_view = view or views.View(1.0 if hint is None else hint, 0)
            Tv, shape_v, Ti, shape_i = views.view_matrices(rig_view, shapes[0], shapes[1])
            ratios = views.side_ratios(rig_view)

            def maps() -> Iterator[tuple[DenseMaps, DenseMaps]]:  # one pair's maps at a time, in the view's pixels
                for pair in source.frames(only=chosen):
                    refined_on.append(pair.name)
                    yield tuple(detector.denseMaps(to_gray_float(views.transform_image(
                        for_detector(image, detector, side), ratio, degrees)[0]))
                        for image, side, ratio, degrees in ((pair.vis, "visible", ratios[0], 0),
                                                            (pair.ir, "IR", ratios[1], rig_view.rotation)))

            H_view = refine_homography_pairs(Tv @ H @ np.linalg.inv(Ti), maps(), shape_v, shape_i, params)
            H = np.linalg.inv(Tv) @ H_view @ Ti
            H = H / H[2, 2]
            _score_frames(frames, points, H, ransac_threshold, min_inliers)
        timings["refine"] = (time.perf_counter() - t) * 1e3
    result = done(H, "", verdict, refined_on)
    result.predicted_error = predicted
    result.view = (view or views.View(1.0 if hint is None else hint, 0)).summary()
    return result


# ---------------------------------------------------------------- outputs


def _overlay_grid(result: CalibrationResult, count: int = OVERLAY_FRAMES) -> np.ndarray | None:
    """Checkerboard overlays of a few frames spread over the sequence, two to a row."""
    if result.H is None or not result.frames:
        return None
    spread = np.linspace(0, len(result.frames) - 1, min(count, len(result.frames))).round().astype(int)
    picks = {result.frames[i].index: result.frames[i] for i in spread}
    tiles = []
    for pair in result.source.frames(only=set(picks)):
        vis8 = viz.to_bgr8(pair.vis)
        tile = viz.overlay(vis8, result.warp(viz.to_bgr8(pair.ir)), tile=viz.overlay_tile(vis8))
        frame = picks[pair.index]
        text = f"{pair.name}: {frame.inliers}/{frame.matches} inliers" + (f" ({', '.join(frame.flags)})"
                                                                         if frame.flags else "")
        for colour, thick in (((0, 0, 0), 3), ((255, 255, 255), 1)):
            cv2.putText(tile, text, (6, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.5, colour, thick, cv2.LINE_AA)
        tiles.append(tile)
    if not tiles:
        return None
    if len(tiles) > 1 and len(tiles) % 2:
        tiles.append(np.zeros_like(tiles[0]))
    rows = [np.hstack(tiles[i:i + 2]) for i in range(0, len(tiles), 2)]
    return np.vstack(rows)


def write_calibration(result: CalibrationResult, out_dir: str | Path, extra: dict[str, Any] | None = None
                      ) -> dict[str, Any]:
    """summary.json always; residuals.png when a frame was measured; H.txt, overlay.png on success."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    files, notes = ["summary.json"], {}
    if result.success:
        save_homography(out_dir / "H.txt", result.H, implausible_note(result))
        files.append("H.txt")
        grid = _overlay_grid(result)
        if grid is not None:
            imwrite(out_dir / "overlay.png", grid)
            files.append("overlay.png")
    if result.frames:
        try:
            plot_residuals(result, out_dir / "residuals.png")
            files.append("residuals.png")
        except ImportError as exc:  # matplotlib is part of the [train] extra, not of the runtime
            notes["residuals.png"] = str(missing_train_extra(exc, "residuals.png"))
    summary = {**result.summary(), **(extra or {}), "outputs": sorted(files), **({"not_written": notes} if notes else {})}
    if result.implausible_accepted:
        summary["warning"] = f"implausible fit kept (accept_implausible): {result.verdict.reason}"
    write_summary(out_dir / "summary.json", summary)
    return summary


write_outputs = write_calibration  # its name until 0.1: one of three write_outputs
