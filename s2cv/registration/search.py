"""Views of a pair for ``register``: a resolution ratio between the cameras and any in-plane roll.

The networks match across about 2x of scale and +-30 degrees of roll (the ``wide`` training
geometry). A rig whose cameras differ more (a 1280 px visible camera beside a 320 px thermal one,
a sensor mounted on its side) needs the pair brought into that range first. A *view* shrinks the
image with the finer pixel scale by the assumed ratio and turns the IR image by a multiple of 45
degrees; its keypoints are mapped back to the original pixels before the fit, so the transform,
the verdict and the predicted error always speak of the images as given.

``register`` tries the cheapest view first (no change, or the user's hint) and searches further
only when that fit is not accepted (plausible and within ``max_error``): stage 2 the other scale
ratios 1, 1/sqrt(2), ... 1/4 of either image (and with ``rotation="any"`` the IR image turned by
90, 180, 270 degrees), stage 3 (``rotation="any"`` only) 45-degree turns and turned views at the
other ratios. Within a stage the accepted fit with the most inliers wins. Every detection is
computed once and shared by the views that use it. Last, the winning ratio is tried once more with
the coarser image enlarged instead of the finer one shrunk (``Detections.fine_pass``): the matches
then localise at the finer resolution (on validation rig variants: 9 instead of 4 of 18 pairs
within 10 px; docs/results.md "Scale, roll and rig variants"), and with the two images meeting
halfway (55 instead of 53 of 72 validation rig cases). A fit accepted as given (scale 1)
whose own scale is more than ``RESCALE_MIN`` off 1 (the network matched across the scale gap) is
tried once more at that scale with the coarser image enlarged (``rescale_view``), and the better
of the two kept (accepted, smaller predicted error).
"""
from __future__ import annotations

import itertools
import math
import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import cv2
import numpy as np

from s2cv.registration.verdict import SecondView

MAX_RATIO = 8.0        # a hint beyond 1/8 .. 8 is refused (the verdict's scale limit)
SEARCH_RATIO = 4.0     # automatic search covers 1/4 .. 4
RATIO_STEP = math.sqrt(2.0)
ROTATIONS = ("auto", "any")


def check_scale(scale: Any) -> float | None:
    """None for ``"auto"``; else the hint as a float (visible pixels per IR pixel), checked."""
    if isinstance(scale, str):
        if scale == "auto":
            return None
        raise ValueError(f"scale must be 'auto' or a number (visible pixels per IR pixel), got {scale!r}")
    if isinstance(scale, bool) or not isinstance(scale, (int, float, np.floating, np.integer)):
        raise ValueError(f"scale must be 'auto' or a number (visible pixels per IR pixel), got {scale!r}")
    value = float(scale)
    if not (math.isfinite(value) and 1.0 / MAX_RATIO <= value <= MAX_RATIO):
        raise ValueError(f"scale {scale!r} is out of range: the ratio of the visible to the IR pixel scale must lie "
                         f"between {1 / MAX_RATIO:g} and {MAX_RATIO:g}")
    return value


def scale_from_fov(fov_vis_deg: float, fov_ir_deg: float, vis_width: int, ir_width: int) -> float:
    """Visible pixels per IR pixel from the cameras' horizontal fields of view and image widths
    (pinhole: focal length in px = width / 2 / tan(fov / 2))."""
    for name, fov in (("visible", fov_vis_deg), ("IR", fov_ir_deg)):
        if not (isinstance(fov, (int, float)) and math.isfinite(fov) and 0 < fov < 180):
            raise ValueError(f"{name} field of view must be in (0, 180) degrees, got {fov!r}")
    f_vis = vis_width / 2 / math.tan(math.radians(fov_vis_deg) / 2)
    f_ir = ir_width / 2 / math.tan(math.radians(fov_ir_deg) / 2)
    return f_vis / f_ir


@dataclass(frozen=True)
class View:
    """``ratio``: visible px per IR px assumed (> 1 shrinks the visible image by it, < 1 the IR
    image); ``rotation``: degrees the IR image is turned counter-clockwise before detection."""

    ratio: float = 1.0
    rotation: int = 0
    split: float = 0.0  # 0: the finer image shrunk to the coarser's scale; 1: the coarser enlarged (``side_ratios``)

    @property
    def identity(self) -> bool:
        return self.rotation % 360 == 0 and abs(self.ratio - 1.0) < 1e-9

    def fine(self) -> "View":
        """The same view with the coarser image enlarged to the finer one's pixel scale."""
        return View(self.ratio, self.rotation, 1.0)

    def halfway(self) -> "View":
        """The same view with both images meeting halfway (each resized by the ratio's square root)."""
        return View(self.ratio, self.rotation, 0.5)

    def summary(self) -> dict[str, float]:
        out = {"scale": round(self.ratio, 4), "rotation_deg": self.rotation}
        if not self.split or abs(self.ratio - 1.0) < 1e-9:
            return out
        return {**out, "fine": True} if self.split == 1.0 else {**out, "split": self.split}

    @classmethod
    def from_summary(cls, summary: dict[str, Any]) -> "View":
        """The view a ``summary()`` describes (``result.view``)."""
        return cls(summary["scale"], summary["rotation_deg"], 1.0 if summary.get("fine") else summary.get("split", 0.0))


def stages(hint: float | None, rotation: str) -> list[list[View]]:
    """The views ``register`` tries, stage by stage (see the module docstring)."""
    if rotation not in ROTATIONS:
        raise ValueError(f"rotation must be one of {ROTATIONS}, got {rotation!r}")
    first = 1.0 if hint is None else hint
    if hint is None:
        steps = [RATIO_STEP ** k for k in range(1, int(round(math.log(SEARCH_RATIO, RATIO_STEP))) + 1)]
        others = [r for s in steps for r in (s, 1 / s)]
    else:
        others = [r for r in (hint * RATIO_STEP, hint / RATIO_STEP) if 1 / MAX_RATIO <= r <= MAX_RATIO]
    plan = [[View(first, 0)], [View(r, 0) for r in others]]
    if rotation == "any":
        plan[1] += [View(first, a) for a in (90, 180, 270)]
        plan.append([View(first, a) for a in (45, 135, 225, 315)] + [View(r, a) for a in (90, 180, 270) for r in others])
    return [s for s in plan if s]


# ---------------------------------------------------------------- image transforms


def _resize_matrix(s: float) -> np.ndarray:
    """Pixel map of cv2.resize by factor s (pixel centres: x' = (x + 0.5) s - 0.5)."""
    return np.array([[s, 0, 0.5 * s - 0.5], [0, s, 0.5 * s - 0.5], [0, 0, 1.0]])


def _rotation_matrix(shape: Sequence[int], degrees: int) -> tuple[np.ndarray, tuple[int, int]]:
    """Map of original pixels onto a canvas holding the image turned by ``degrees`` (counter-
    clockwise on screen), and the canvas size (w, h)."""
    h, w = shape[:2]
    a = math.radians(degrees)
    c, s = math.cos(a), math.sin(a)
    if degrees % 90 == 0:
        c, s = round(c), round(s)
    R = np.array([[c, s, 0], [-s, c, 0], [0, 0, 1.0]])  # y points down: this turns counter-clockwise on screen
    corners = np.array([[0, 0, 1], [w - 1, 0, 1], [w - 1, h - 1, 1], [0, h - 1, 1]], np.float64) @ R.T
    lo, hi = corners[:, :2].min(0), corners[:, :2].max(0)
    R[:2, 2] = -lo
    size = (int(round(hi[0] - lo[0])) + 1, int(round(hi[1] - lo[1])) + 1)
    return R, size


def transform_image(image: np.ndarray, ratio: float, degrees: int) -> tuple[np.ndarray, np.ndarray]:
    """(the image turned by ``degrees`` then shrunk by ``ratio`` < 1, the 3x3 map of original
    pixels onto it)."""
    T = np.eye(3)
    if degrees % 360:
        R, size = _rotation_matrix(image.shape, degrees)
        if degrees % 90 == 0:
            image = np.ascontiguousarray(np.rot90(image, k=(degrees // 90) % 4))
        else:
            image = cv2.warpAffine(image, R[:2], size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
        T = R
    if ratio != 1.0:
        h, w = image.shape[:2]
        size = (max(1, int(round(w * ratio))), max(1, int(round(h * ratio))))
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA if ratio < 1 else cv2.INTER_LINEAR)
        T = _resize_matrix(ratio) @ T
    return image, T


def moved_keypoints(kps: Sequence[cv2.KeyPoint], T: np.ndarray) -> tuple[cv2.KeyPoint, ...]:
    """Keypoints of a transformed image back in the original's pixels (``T``: original -> view)."""
    if np.allclose(T, np.eye(3)):
        return tuple(kps)
    if not len(kps):
        return ()
    pts = np.float64([k.pt for k in kps])
    back = np.linalg.inv(T)
    out = np.column_stack([pts, np.ones(len(pts))]) @ back.T
    out = out[:, :2] / out[:, 2:]
    scale = math.sqrt(abs(np.linalg.det(back[:2, :2])))
    angle = math.degrees(math.atan2(back[1, 0], back[0, 0]))
    return tuple(cv2.KeyPoint(float(x), float(y), k.size * scale, (k.angle + angle) % 360 if k.angle >= 0 else k.angle,
                              k.response, k.octave, k.class_id) for (x, y), k in zip(out, kps))


class Detections:
    """Lazily computed detections of the transformed images, each computed once."""

    def __init__(self, vis: np.ndarray, ir: np.ndarray, detect: Callable[..., tuple], timings: dict[str, float]):
        self.images = {"vis": vis, "ir": ir}
        self.detect = detect
        self.timings = timings
        self.cache: dict[tuple[str, float, int], tuple] = {}

    def get(self, side: str, ratio: float, degrees: int) -> tuple:
        """(keypoints in original pixels, descriptors, extra detector outputs, view image, T)."""
        key = (side, round(ratio, 6), degrees % 360)
        if key not in self.cache:
            image, T = transform_image(self.images[side], ratio, degrees)
            mask = _valid_mask(self.images[side], degrees, image.shape, T)
            t = time.perf_counter()
            kps, desc, *maps = self.detect(image, mask)
            name = f"detect_{side}" + ("" if key[1:] == (1.0, 0) else f"@{key[1]:g}x{key[2]}")
            self.timings[name] = (time.perf_counter() - t) * 1e3
            self.cache[key] = (moved_keypoints(kps, T), desc, maps, image, T)
        return self.cache[key]

    def view(self, view: View) -> tuple[tuple, tuple]:
        """The visible and IR detections a view uses."""
        rv, ri = side_ratios(view)
        return self.get("vis", rv, 0), self.get("ir", ri, view.rotation)

    def fine_pass(self, result: Any, view: View, tried: list[tuple[View, Any]], fit: Callable[..., Any],
                  accepted: Callable[[Any], bool]) -> tuple[Any, View]:
        """The search shrinks the finer image (cheap); the views it ranks first are tried once more
        with the coarser image enlarged instead (the matches localised at the finer pixel scale)
        and with the two meeting halfway, each kept when accepted with a smaller predicted error
        (or when the search found nothing). Every fit is added to ``tried``."""
        if accepted(result):
            tries = [view] if abs(view.ratio - 1.0) > 1e-9 and not view.split else []
        else:  # nothing accepted: the FINE_VIEWS views with the most inliers off scale 1
            ranked = sorted((vr for vr in tried if abs(vr[0].ratio - 1.0) > 1e-9), key=lambda vr: -vr[1].num_inliers)
            tries = [View.from_summary(v.summary()) for v, _ in ranked[:FINE_VIEWS]]  # the ratio as logged (4 decimals)
        for v in [w for t in tries for w in (t.fine(), t.halfway())]:
            candidate = fit(*self.view(v))
            tried.append((v, candidate))
            ok = accepted(candidate)
            if ok and (not accepted(result) or candidate.predicted_error <= result.predicted_error):
                result, view = candidate, v
        return result, view

    def corroborate(self, result: Any, view: View, tried: list[tuple[View, Any]], fit: Callable[..., Any],
                    accepted: Callable[[Any], bool], disagreement: Callable[[np.ndarray, np.ndarray], float],
                    limit: float) -> tuple[Any, View]:
        """When no view was accepted: a fit refused on inlier share or uniqueness alone
        (``CORROBORATED``) is judged again with the closest fit of another view made from other
        detections of both images and refused at most on the statistical tests (``PARTNER``),
        when the two land the IR frame within ``limit`` (``disagreement(H_a, H_b)``): its
        disagreement and matches (``verdict.SecondView``). The first so judged accepted wins, most
        inliers first. Chance does not put two independent detections' fits at one place
        (docs/results.md "Two views agree")."""
        if accepted(result):
            return result, view
        results = dict(tried)
        closest = agreements(tried, disagreement, limit)
        for v in sorted(closest, key=lambda v: -results[v].num_inliers):
            px, partner = closest[v]
            vis_pts, ir_pts = results[partner].matched_points(judged=True)
            candidate = fit(*self.view(v), second_view=SecondView(px, ir_pts, vis_pts))
            tried.append((v, candidate))
            if accepted(candidate):
                return candidate, v
        return result, view

    @staticmethod
    def keys(view: View) -> tuple[tuple[float, int], tuple[float, int]]:
        """Which detections a view uses: (visible, IR), each as ``get`` caches it (resize factor, turn)."""
        rv, ri = side_ratios(view)
        return (round(rv, 6), 0), (round(ri, 6), view.rotation % 360)


def agreements(tried: list[tuple[View, Any]], disagreement: Callable[[np.ndarray, np.ndarray], float],
               limit: float = math.inf) -> dict[View, tuple[float, View]]:
    """For every view whose fit was refused on ``CORROBORATED`` tests alone: (disagreement, view)
    of the closest fit refused at most on ``PARTNER`` tests and made from other detections of both
    images, when within ``limit`` (``Detections.corroborate``)."""
    partners = [(v, r) for v, r in tried if r.verdict is not None and set(r.verdict.failed) <= set(PARTNER)]
    judged = {v for v, r in partners if r.verdict.failed and set(r.verdict.failed) <= set(CORROBORATED)}
    closest: dict[View, tuple[float, View]] = {}
    for (va, ra), (vb, rb) in itertools.combinations(partners, 2):
        if not {va, vb} & judged or any(x == y for x, y in zip(Detections.keys(va), Detections.keys(vb))):
            continue  # nothing to judge again, or a shared detection
        d = disagreement(ra.H, rb.H)
        for v, other in ((va, vb), (vb, va)):
            if v in judged and d <= limit and d < closest.get(v, (math.inf, None))[0]:
                closest[v] = (d, other)
    return closest


def _valid_mask(image: np.ndarray, degrees: int, shape: Sequence[int], T: np.ndarray) -> np.ndarray | None:
    """Where a turned image holds image content (eroded a few pixels: no keypoints on the border
    the turn creates); None when every pixel does."""
    if degrees % 90 == 0:
        return None
    h, w = image.shape[:2]
    ones = np.full((h, w), 255, np.uint8)
    mask = cv2.warpPerspective(ones, T, (shape[1], shape[0]), flags=cv2.INTER_NEAREST)
    return cv2.erode(mask, np.ones((9, 9), np.uint8))


def search(detections: Detections, plan: list[list[View]], fit: Callable[[tuple, tuple], Any],
           accepted: Callable[[Any], bool]) -> tuple[Any, View, list[tuple[View, Any]]]:
    """The result of the first stage with an accepted view (the one with the most inliers), else
    the plausible view with the most inliers, else the first view's result; with every view
    tried and its result. ``fit(vis_detection, ir_detection)`` registers one view."""
    tried: list[tuple[View, Any]] = []
    for stage in plan:
        found = []
        for view in stage:
            result = fit(*detections.view(view))
            tried.append((view, result))
            if accepted(result):
                found.append((view, result))
        if found:
            view, result = max(found, key=lambda vr: vr[1].num_inliers)
            return result, view, tried
    plausible = [(v, r) for v, r in tried if r.verdict is not None and r.verdict.ok]
    view, result = max(plausible, key=lambda vr: vr[1].num_inliers) if plausible else tried[0]
    return result, view, tried


def log_of(tried: list[tuple[View, Any]], accepted: Callable[[Any], bool]) -> list[dict[str, Any]]:
    """``result.views_tried``: each view tried, its inliers and whether it was accepted (and, for a
    fit judged with another view's agreement, that disagreement in px)."""
    out = []
    for view, result in tried:
        entry = {**view.summary(), "inliers": result.num_inliers, "accepted": accepted(result)}
        d = result.verdict.view_disagreement_px if result.verdict is not None else math.inf
        out.append({**entry, "view_disagreement_px": round(d, 2)} if math.isfinite(d) else entry)
    return out


CORROBORATED = ("share", "uniqueness")  # the verdict's tests an independent view's agreement judges again
PARTNER = ("evidence", "share", "uniqueness")  # the tests a fit that corroborates another may have failed
FINE_VIEWS = 3  # views the fine pass retries when the search accepted none (2 before: docs/results.md "A guided refit")
RESCALE_MIN = 1.3  # an accepted fit at scale 1 whose own scale is beyond 1/1.3 .. 1.3 gets a fine view at that scale


def fit_scale(H: np.ndarray | None, ir_shape: Sequence[int]) -> float | None:
    """Visible px per IR px of an IR -> visible fit: sqrt |det| of its Jacobian at the IR image's
    centre (the affine part of a homography, where it is measured); None without a usable fit."""
    if H is None:
        return None
    h, w = ir_shape[:2]
    q = H @ np.array([(w - 1) / 2, (h - 1) / 2, 1.0])
    if not np.all(np.isfinite(q)) or abs(q[2]) < 1e-12:
        return None
    J = (H[:2, :2] - np.outer(q[:2] / q[2], H[2, :2])) / q[2]
    s = math.sqrt(abs(float(np.linalg.det(J))))
    return s if math.isfinite(s) and s > 0 else None


def rescale_view(H: np.ndarray | None, ir_shape: Sequence[int]) -> View | None:
    """The fine view (coarser image enlarged) at an accepted scale-1 fit's own scale, when that
    scale differs from 1 by more than ``RESCALE_MIN`` (within the search's 1/8 .. 8); else None."""
    s = fit_scale(H, ir_shape)
    if s is None or max(s, 1 / s) <= RESCALE_MIN or not 1 / MAX_RATIO <= s <= MAX_RATIO:
        return None
    return View(s, 0).fine()


# ---------------------------------------------------------------- a rig's view (calibrate)

VIEW_PROBES = 5  # frame pairs calibrate searches for the rig's view before it settles for its default


def view_threshold(threshold: float, T_vis: np.ndarray) -> float:
    """An inlier threshold (visible px) in the pixels matching ran at: a view that shrinks the
    visible image by s (``T_vis``: original -> view) localises its keypoints to s of its original
    pixels, so its fit takes ``threshold / s``; an enlarged image keeps ``threshold``."""
    return threshold / min(math.sqrt(abs(float(np.linalg.det(T_vis[:2, :2])))), 1.0)


def side_ratios(view: View) -> tuple[float, float]:
    """(visible, IR) resize factors of a view: the finer image shrunk by ratio ** (1 - split), the
    coarser enlarged by ratio ** split, so both meet at one pixel scale."""
    r, s = view.ratio, view.split
    return (r ** -(1 - s), r ** s) if r >= 1 else (r ** -s, r ** (1 - s))


def view_matrices(view: View, vis_shape: Sequence[int], ir_shape: Sequence[int]
                  ) -> tuple[np.ndarray, tuple[int, int], np.ndarray, tuple[int, int]]:
    """(T_vis, view visible shape, T_ir, view IR shape): original pixels -> the view's pixels."""
    rv, ri = side_ratios(view)
    out = []
    for shape, ratio, degrees in ((vis_shape, rv, 0), (ir_shape, ri, view.rotation)):
        image, T = transform_image(np.zeros(tuple(shape[:2]), np.uint8), ratio, degrees)
        out += [T, image.shape[:2]]
    return tuple(out)  # type: ignore[return-value]
