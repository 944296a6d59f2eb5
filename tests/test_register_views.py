"""register on what users bring (issue 29): another pixel scale, any roll, and a predicted error.

Pairs are built from the bundled RoadScene sample and its ground truth, so the expected answer
is known: a 2x rig (visible camera at twice the thermal's pixel density), the thermal image turned
by 90 degrees, and noisier keypoints (a near miss the predicted error has to flag).
"""
from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from s2cv.registration import accuracy, search
from s2cv.registration.geometry import corner_error, image_corners, warp_points
from s2cv.registration.register import SAMPLES, register, register_features, sample_ground_truth
from s2cv.feature.image import read_image


@pytest.fixture(scope="module")
def detector():
    import s2cv

    return s2cv.S2Net_create()


@pytest.fixture(scope="module")
def sample():
    vis, ir = read_image(SAMPLES["roadscene"][0]), read_image(SAMPLES["roadscene"][1])
    return vis, ir, sample_ground_truth("roadscene")


def _error(result, H_vis_to_ir: np.ndarray, vis_shape) -> float:
    return math.inf if result.H is None else corner_error(np.linalg.inv(result.H), H_vis_to_ir, vis_shape)


def test_2x_rig_pair_registers_automatically(detector, sample):
    vis, ir, H = sample
    vis2 = cv2.resize(vis, None, fx=2, fy=2, interpolation=cv2.INTER_LINEAR)
    H2 = H @ np.linalg.inv(search._resize_matrix(2.0))  # visible(2x) -> IR
    result = register(vis2, ir, detector)
    assert result.success, result.message
    assert result.view["scale"] > 1.2  # found by the search, not at the pair as given
    # error in IR px (the coarser image here), the sample's own fit is 7.2 px at equal scale
    assert _error(result, H2, vis2.shape) <= 10


def test_2x_rig_pair_with_a_scale_hint_searches_nothing_else(detector, sample):
    vis, ir, H = sample
    vis2 = cv2.resize(vis, None, fx=2, fy=2, interpolation=cv2.INTER_LINEAR)
    H2 = H @ np.linalg.inv(search._resize_matrix(2.0))
    hinted = register(vis2, ir, detector, scale=2.0)
    assert hinted.success and hinted.view["scale"] == 2.0
    assert {v["scale"] for v in hinted.views_tried} == {2.0}  # the hint, shrunk and then enlarged (fine)
    assert _error(hinted, H2, vis2.shape) <= 10


def test_90_degree_rotated_pair_needs_rotation_any(detector, sample):
    vis, ir, H = sample
    R, _ = search._rotation_matrix(ir.shape, 90)
    ir90 = np.ascontiguousarray(np.rot90(ir))
    plain = register(vis, ir90, detector)
    assert not plain.success  # beyond the network's +-30 degrees: refused, not a wrong fit
    result = register(vis, ir90, detector, rotation="any")
    assert result.success, result.message
    assert result.view["rotation_deg"] == 270  # turning back the 90 degrees counter-clockwise
    assert _error(result, R @ H, vis.shape) <= 10


def test_near_miss_is_reported_with_its_predicted_error(detector, sample):
    """Only the IR keypoints of the left 40 % of the image: the fit is plausible but extrapolated
    over the rest (about 14 px off); its predicted error says so and register refuses it."""
    vis, ir, H = sample
    kv, dv = detector.detectAndCompute(vis, None)
    ki, di = detector.detectAndCompute(ir, None)
    common = dict(norm=detector.defaultNorm(), vis_shape=vis.shape[:2], ir_shape=ir.shape[:2])
    clean = register_features(kv, dv, ki, di, **common)
    assert clean.success and clean.predicted_error < accuracy.DEFAULT_MAX_ERROR
    keep = np.array([k.pt[0] < 0.4 * ir.shape[1] for k in ki])
    left = [k for k, kept in zip(ki, keep) if kept]
    near_miss = register_features(kv, dv, left, di[keep], **common)
    assert near_miss.verdict.ok and near_miss.H is not None  # the verdict alone would report it
    true_error = corner_error(np.linalg.inv(near_miss.H), H, vis.shape)
    assert true_error > 10
    assert near_miss.predicted_error > max(accuracy.DEFAULT_MAX_ERROR, 2 * clean.predicted_error)
    assert not near_miss.success
    assert f"{near_miss.predicted_error:.1f} px" in near_miss.message and "max_error" in near_miss.message
    assert near_miss.summary()["predicted_error"] == pytest.approx(near_miss.predicted_error, abs=1e-3)
    kept = register_features(kv, dv, left, di[keep], **common, max_error=math.inf)
    assert kept.success and kept.predicted_error == pytest.approx(near_miss.predicted_error)


@pytest.mark.parametrize("kwargs, text", [
    ({"scale": 20}, "out of range"),
    ({"scale": 0.0}, "out of range"),
    ({"scale": "big"}, "scale must be 'auto' or a number"),
    ({"fov": (60.0, 200.0)}, "field of view"),
    ({"rotation": "sideways"}, "rotation must be one of"),
    ({"max_error": -1.0}, "max_error must be a positive"),
])
def test_bad_options_raise_clear_value_errors(detector, sample, kwargs, text):
    vis, ir, _ = sample
    with pytest.raises(ValueError, match=text):
        register(vis, ir, detector, **kwargs)


def test_tiny_image_is_refused_with_a_clear_message(detector, sample):
    vis, _, _ = sample
    with pytest.raises(ValueError, match="too small to register"):
        register(vis, np.zeros((1, 1), np.uint8), detector)


def test_bootstrap_spread_is_deterministic_and_grows_with_noise():
    rng = np.random.default_rng(3)
    H = np.array([[1.05, 0.02, 8.0], [-0.01, 0.97, -4.0], [2e-5, 1e-5, 1.0]])
    src = rng.uniform(0, 400, (300, 2))
    exact = warp_points(src, H)
    corners = image_corners((300, 400))
    assert accuracy.corner_spread(H, src, exact, corners) < 1e-3
    noisy = exact + rng.normal(0, 1.0, exact.shape)
    a, b = accuracy.corner_spread(H, src, noisy, corners), accuracy.corner_spread(H, src, noisy, corners)
    assert a == b and a > 0.05
    assert accuracy.corner_spread(H, src, exact + rng.normal(0, 3.0, exact.shape), corners) > 2 * a
    # fewer, bunched inliers: the corners are extrapolated, the spread grows
    patch = src[(src[:, 0] < 120) & (src[:, 1] < 120)]
    assert accuracy.corner_spread(H, patch, warp_points(patch, H) + rng.normal(0, 1.0, patch.shape), corners) > 2 * a


def test_the_error_is_predicted_at_the_narrower_cameras_corners():
    """A thermal frame that lands inside the visible image (a narrower camera) is judged at its own
    corners, where the warped IR image is; otherwise at the visible image's (the benchmark's)."""
    inside = np.array([[2.0, 0.0, 100.0], [0.0, 2.0, 80.0], [0.0, 0.0, 1.0]])  # 160x120 IR -> 520x400 visible
    np.testing.assert_allclose(accuracy.probe_corners(inside, (120, 160), (400, 520)),
                               warp_points(image_corners((120, 160)), inside))
    beyond = inside.copy()
    beyond[0, 2] = 300.0  # the right edge of the IR frame now lands beyond the visible image
    np.testing.assert_allclose(accuracy.probe_corners(beyond, (120, 160), (400, 520)), image_corners((400, 520)))


def test_a_shrunk_view_fits_with_the_threshold_in_its_own_pixels(detector, sample, monkeypatch):
    """A visible image shrunk by 2 for a view localises its keypoints to 2 of its original pixels,
    so the view's fit takes a 2x inlier threshold (in original visible px); the enlarged (fine)
    view and the pair as given keep the user's."""
    from s2cv.registration import register as reg

    seen = []
    real = reg.register_features
    monkeypatch.setattr(reg, "register_features", lambda *a, **k: seen.append(k["ransac_threshold"]) or real(*a, **k))
    vis, ir, _ = sample
    reg.register(cv2.resize(vis, None, fx=2, fy=2), ir, detector, scale=2.0, ransac_threshold=2.5)
    # the hint's view (visible shrunk by 2), its fine view, then both meeting halfway (shrunk by sqrt 2)
    assert seen[:3] == pytest.approx([5.0, 2.5, 2.5 * math.sqrt(2)])


@pytest.mark.parametrize("view", [search.View(2.0, 0), search.View(2.0, 0, 1.0), search.View(0.5, 90, 0.5),
                                  search.View(1.0, 0)])
def test_a_view_is_rebuilt_from_its_summary(view):
    """calibrate fixes the rig's view from the first registered frame's ``result.view``."""
    assert search.View.from_summary(view.summary()) == view


@pytest.mark.parametrize("degrees, ratio", [(90, 1.0), (270, 0.5), (45, 1.0), (180, 0.71)])
def test_view_keypoints_map_back_to_the_original_pixels(degrees, ratio):
    image = np.zeros((60, 80), np.uint8)
    image[20, 30] = 255
    turned, T = search.transform_image(image, ratio, degrees)
    y, x = np.unravel_index(np.argmax(cv2.GaussianBlur(turned.astype(np.float32), (0, 0), 1.0)), turned.shape)
    (back,) = search.moved_keypoints([cv2.KeyPoint(float(x), float(y), 4.0)], T)
    assert back.pt == pytest.approx((30, 20), abs=1.5 / ratio)


def test_scale_from_fields_of_view():
    # same sensor width, the visible lens twice as narrow: about twice the pixels per degree
    assert search.scale_from_fov(30.0, 60.0, 640, 640) == pytest.approx(2.155, abs=0.01)
    assert search.scale_from_fov(50.0, 50.0, 1280, 640) == pytest.approx(2.0)


def test_calibrate_finds_the_rig_scale_and_reports_the_predicted_error(detector, sample, tmp_path):
    from s2cv.registration.calibrate import calibrate

    vis, ir, H = sample
    vis2 = cv2.resize(vis, None, fx=2, fy=2, interpolation=cv2.INTER_LINEAR)
    for side, image in (("vis", vis2), ("ir", ir)):
        (tmp_path / side).mkdir()
        cv2.imwrite(str(tmp_path / side / "f0.png"), image)  # one frame pair: the view search, then the frame at it
    result = calibrate(tmp_path / "vis", tmp_path / "ir", detector, progress=False)
    assert result.success, result.message
    assert result.view["scale"] > 1.2
    H2 = H @ np.linalg.inv(search._resize_matrix(2.0))
    assert corner_error(np.linalg.inv(result.H), H2, vis2.shape) <= 10
    assert math.isfinite(result.predicted_error) and result.summary()["view"] == result.view


def test_rescale_view_only_for_a_fit_clearly_off_scale_1():
    shape = (360, 480)
    assert search.rescale_view(None, shape) is None
    assert search.rescale_view(np.eye(3), shape) is None
    assert search.rescale_view(np.diag([1.2, 1.2, 1.0]), shape) is None  # within 1.3x: the network's range
    assert search.fit_scale(np.diag([2.0, 2.0, 1.0]), shape) == pytest.approx(2.0)
    view = search.rescale_view(np.diag([2.0, 2.0, 1.0]), shape)
    assert view is not None and view.ratio == pytest.approx(2.0) and view.split == 1.0
    assert search.side_ratios(view) == pytest.approx((1.0, 2.0))  # the coarser (IR) image enlarged
    small = search.rescale_view(np.diag([0.5, 0.5, 1.0]), shape)
    assert small is not None and search.side_ratios(small) == pytest.approx((2.0, 1.0))  # the visible enlarged


def test_fine_pass_retries_the_views_with_the_most_inliers_when_none_was_accepted():
    """With no accepted view, the fine pass retries the FINE_VIEWS views off scale 1 with the most
    inliers, each enlarged and halfway, in that order."""
    from types import SimpleNamespace

    image = np.zeros((40, 60), np.uint8)
    detections = search.Detections(image, image, lambda img, mask: ((), None), {})
    ranked = ((1.0, 50), (2.0, 30), (0.5, 10), (1.4142, 20), (2.8284, 25), (4.0, 5))
    tried = [(search.View(r, 0), SimpleNamespace(num_inliers=n)) for r, n in ranked]
    refused = SimpleNamespace(num_inliers=0, predicted_error=math.inf)
    result, _ = detections.fine_pass(refused, search.View(2.0, 0), tried, lambda v, i: refused, lambda r: False)
    retried = [(v.ratio, v.split == 1.0) for v, _ in tried[len(ranked):]]
    order = [2.0, 2.8284, 1.4142][:search.FINE_VIEWS]
    assert search.FINE_VIEWS == 3 and retried == [(s, fine) for s in order for fine in (True, False)]
    assert result is refused


def _refused(H: np.ndarray, failed: tuple[str, ...], inliers: int):
    from types import SimpleNamespace

    points = np.full((inliers, 2), float(inliers), np.float32)  # tells the fits apart by their matches
    return SimpleNamespace(H=H, num_inliers=inliers, verdict=SimpleNamespace(failed=failed), predicted_error=math.inf,
                           matched_points=lambda judged=False: (points, points + 1))


def test_corroborate_rejudges_fits_that_independent_views_put_at_one_place():
    """With nothing accepted, a fit refused on share or uniqueness alone is judged again with
    another view's fit made from other detections of both images (its disagreement and matches);
    a fit refused on evidence corroborates but is not judged again; fits refused on geometry, and
    views sharing a detection, never corroborate."""
    from s2cv.registration.accuracy import view_disagreement

    image = np.zeros((40, 60), np.uint8)
    detections = search.Detections(image, image, lambda img, mask: ((), None), {})
    shift = lambda dx: np.array([[1.0, 0, dx], [0, 1, 0], [0, 0, 1]])  # noqa: E731
    a, b, c, far, folded = (search.View(2.0, 0), search.View(2.0, 0, 1.0), search.View(2.0, 0, 0.5),
                            search.View(2.8284, 0), search.View(4.0, 0))
    assert detections.keys(a)[1] == detections.keys(far)[1]  # a and far share the IR detection
    tried = [(a, _refused(shift(0.0), ("share", "uniqueness"), 30)),
             (far, _refused(shift(-3.0), ("share",), 50)),          # agrees with a, but not independent of it
             (folded, _refused(shift(0.5), ("orientation",), 90)),  # refused on geometry: never a partner
             (b, _refused(shift(4.0), ("evidence", "uniqueness"), 60)),  # a partner, never judged again
             (c, _refused(shift(40.0), ("uniqueness",), 80))]       # independent, but elsewhere
    disagreement = lambda H1, H2: view_disagreement(H1, H2, (40, 60), (80, 120))  # noqa: E731
    calls = []

    def fit(vis_det, ir_det, second_view=None):
        calls.append(second_view)
        return _refused(None, (), 0)

    accepted = lambda r: r in accepted_results  # noqa: E731
    accepted_results: list = []
    first = _refused(None, (), 0)
    result, view = detections.corroborate(first, c, tried, fit, accepted, disagreement, 6.0)
    assert result is first and view == c and len(calls) == 1 and len(tried) == 6
    (judged,) = calls  # a, by b: b's matches, IR points as the verdict's src
    assert judged.disagreement_px == pytest.approx(4.0)
    assert np.all(judged.src == 61) and np.all(judged.dst == 60) and len(judged.src) == 60

    calls.clear()
    accepted_results.append(first)  # an accepted result is left alone
    assert detections.corroborate(first, c, tried[:5], fit, accepted, disagreement, 6.0) == (first, c) and not calls
    accepted_results.clear()
    assert detections.corroborate(first, c, tried[:5], fit, accepted, disagreement, 3.0) == (first, c) and not calls


def test_a_second_view_passes_the_share_and_pools_the_uniqueness():
    from s2cv.registration.verdict import DEFAULT_THRESHOLDS, judge

    signals = {"proper": 1.0, "min_corner_angle_deg": 80.0, "scale": 1.0, "inliers": 30.0, "matches": 1200.0,
               "inlier_share": 0.025, "shuffled_inliers": 6.0, "evidence": 5.0, "rival_inliers": 15.0,
               "uniqueness": 2.0, "hull_share": 0.3, "halves_disagreement_px": 2.0, "halves_disagreement": 0.003}
    assert judge(signals).failed == ("share", "uniqueness")
    limit = DEFAULT_THRESHOLDS.max_view_disagreement_px
    pooled = {"view_inliers": 58.0, "view_rival_inliers": 30.0, "view_uniqueness": 1.93}  # the rival came again
    assert judge({**signals, "view_disagreement_px": limit, **pooled}).failed == ("uniqueness",)
    unique = {**signals, "view_inliers": 58.0, "view_rival_inliers": 16.0, "view_uniqueness": 3.6}
    assert judge({**unique, "view_disagreement_px": limit}).ok
    assert judge({**unique, "view_disagreement_px": limit + 0.1}).failed == ("share", "uniqueness")
    assert judge({**unique, "view_disagreement_px": 1.0, "hull_share": 0.01}).failed == ("spread",)
    assert judge({**unique, "view_disagreement_px": 1.0, "evidence": 2.5}).failed == ("evidence",)


def test_pooled_uniqueness_tells_a_chance_rival_from_one_every_view_finds():
    """The second view's correct matches join the fit's; a rival model it finds again joins the rival's."""
    from s2cv.registration.verdict import SecondView, measure

    rng = np.random.default_rng(3)
    shape = (240, 320)
    H = np.array([[1.0, 0.02, 4.0], [-0.01, 1.0, -3.0], [0, 0, 1.0]])
    H_rival = np.array([[0.8, 0.0, 60.0], [0.0, 0.8, 40.0], [0, 0, 1.0]])

    def matches(n_true: int, n_rival: int, n_noise: int) -> tuple[np.ndarray, np.ndarray]:
        src = rng.uniform([0, 0], [319, 239], (n_true + n_rival + n_noise, 2))
        dst = rng.uniform([0, 0], [319, 239], src.shape)
        for M, sl in ((H, slice(0, n_true)), (H_rival, slice(n_true, n_true + n_rival))):
            hom = np.column_stack([src[sl], np.ones(len(src[sl]))]) @ M.T
            dst[sl] = hom[:, :2] / hom[:, 2:] + rng.normal(0, 0.5, (len(src[sl]), 2))
        return src, dst

    src, dst = matches(40, 20, 60)
    alone = measure(H, src, dst, shape, shape)
    assert alone["uniqueness"] < DEFAULT_UNIQUENESS and "view_uniqueness" not in alone
    chance = measure(H, src, dst, shape, shape, second_view=SecondView(2.0, *matches(40, 0, 60)))
    assert chance["view_inliers"] >= 75 and chance["view_uniqueness"] >= DEFAULT_UNIQUENESS
    assert chance["view_disagreement_px"] == 2.0
    again = measure(H, src, dst, shape, shape, second_view=SecondView(2.0, *matches(40, 20, 60)))
    assert again["view_rival_inliers"] >= 35 and again["view_uniqueness"] < DEFAULT_UNIQUENESS
    with pytest.raises(ValueError, match="second view: src and dst differ in length"):
        measure(H, src, dst, shape, shape, second_view=SecondView(2.0, src, dst[:-1]))
    with pytest.raises(ValueError, match="second view src holds NaN"):
        measure(H, src, dst, shape, shape, second_view=SecondView(2.0, np.full_like(src, np.nan), dst))


DEFAULT_UNIQUENESS = 3.4  # VerdictThresholds.min_uniqueness, spelled out so that a change of it is a decision


def test_view_disagreement_is_measured_in_the_coarser_cameras_pixels():
    from s2cv.registration.accuracy import view_disagreement

    H = np.diag([2.0, 2.0, 1.0])  # IR -> visible: the IR camera is the coarser, 2 visible px per IR px
    moved = np.array([[2.0, 0, 3.0], [0, 2.0, 4.0], [0, 0, 1]])  # 5 visible px = 2.5 IR px away
    assert view_disagreement(H, moved, (100, 100), (200, 200)) == pytest.approx(2.5)
    assert view_disagreement(H, H, (100, 100), (200, 200)) == 0.0


def test_the_search_log_names_a_corroborated_fit():
    from types import SimpleNamespace

    from s2cv.registration.verdict import Verdict

    plain = SimpleNamespace(num_inliers=30, verdict=Verdict(False, "share", ("share",), {"inliers": 30.0}))
    judged = SimpleNamespace(num_inliers=30, verdict=Verdict(True, "", (), {"view_disagreement_px": 4.321}))
    log = search.log_of([(search.View(2.0, 0), plain), (search.View(2.0, 0, 1.0), judged)], lambda r: r is judged)
    assert log == [{"scale": 2.0, "rotation_deg": 0, "inliers": 30, "accepted": False},
                   {"scale": 2.0, "rotation_deg": 0, "fine": True, "inliers": 30, "accepted": True,
                    "view_disagreement_px": 4.32}]
