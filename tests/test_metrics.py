import math

import cv2
import numpy as np
import pytest

from s2cv.evaluation.metrics import PairResult, aggregate, error_auc, mma, repeatability, score_pair
from s2cv.registration.geometry import corner_error, estimate_homography, match_errors, mutual_nn_matches, warp_points

SHAPE = (100, 200)  # h, w
SHIFT = np.array([[1.0, 0, 5], [0, 1, 0], [0, 0, 1]])


def grid_points(n: int = 36) -> np.ndarray:
    side = int(math.isqrt(n))
    xs, ys = np.meshgrid(np.linspace(20, 170, side), np.linspace(10, 90, side))
    return np.stack([xs.ravel(), ys.ravel()], 1)


def unique_descriptors(n: int, dim: int = 32) -> np.ndarray:
    return np.random.default_rng(0).normal(size=(n, dim)).astype(np.float32)


def test_warp_points_identity_shift_and_projective():
    pts = np.array([[0.0, 0.0], [10.0, 20.0]])
    assert np.allclose(warp_points(pts, np.eye(3)), pts)
    assert np.allclose(warp_points(pts, SHIFT), pts + [5, 0])
    assert np.allclose(warp_points(pts, np.diag([1.0, 1.0, 2.0])), pts / 2)
    assert warp_points(np.empty((0, 2)), SHIFT).shape == (0, 2)


def test_repeatability_identity_counts_every_point():
    pts = grid_points()
    assert repeatability(pts, pts, np.eye(3), SHAPE, 3.0, SHAPE) == len(pts)


def test_repeatability_shift_needs_the_right_homography():
    pts = grid_points()
    assert repeatability(pts, pts + [5, 0], SHIFT, SHAPE, 3.0) == len(pts)
    assert repeatability(pts, pts + [5, 0], np.eye(3), SHAPE, 3.0) == 0
    assert repeatability(pts, pts + [2, 0], np.eye(3), SHAPE, 3.0) == len(pts)


def test_repeatability_ignores_points_warping_outside_b():
    pts_a = np.array([[10.0, 10.0], [195.0, 50.0]])  # second lands at x=215 > w-1
    pts_b = np.array([[15.0, 10.0], [199.0, 50.0]])
    assert repeatability(pts_a, pts_b, SHIFT, SHAPE, 30.0) == 1


def test_repeatability_restricts_b_to_common_view():
    # The only B point near A's warped point comes from outside image A, so it is not a candidate.
    pts_a = np.array([[1.0, 50.0]])
    pts_b = np.array([[4.0, 50.0]])  # inverse warp x=-1, outside A
    assert repeatability(pts_a, pts_b, SHIFT, SHAPE, 3.0) == 1
    assert repeatability(pts_a, pts_b, SHIFT, SHAPE, 3.0, shape_a=SHAPE) == 0


def test_repeatability_without_keypoints():
    assert repeatability(np.empty((0, 2)), grid_points(), np.eye(3), SHAPE) == 0
    assert repeatability(grid_points(), np.empty((0, 2)), np.eye(3), SHAPE) == 0


def test_mutual_nn_float_keeps_only_mutual_pairs():
    desc_a = np.array([[0.0, 0.0], [0.9, 0.0], [10.0, 10.0]], np.float32)
    desc_b = np.array([[1.0, 0.0], [10.0, 10.5]], np.float32)
    # a0 and a1 both prefer b0, but b0 prefers a1: only (1, 0) and (2, 1) are mutual.
    matches = mutual_nn_matches(desc_a, desc_b)
    assert sorted(map(tuple, matches.tolist())) == [(1, 0), (2, 1)]


@pytest.mark.parametrize("n_a, n_b, dim", [(5000, 3000, 128), (300, 700, 16)])
def test_mutual_nn_float_equals_bfmatcher_cross_check(n_a, n_b, dim):
    """The matrix-product search gives cv2.BFMatcher(crossCheck=True)'s pairs, across row blocks."""
    rng = np.random.default_rng(n_a)
    desc_a = rng.standard_normal((n_a, dim)).astype(np.float32)
    shared = min(n_a, n_b) // 2  # noisy copies of rows of a, so there are true matches
    desc_b = np.concatenate([desc_a[:shared] + 0.3 * rng.standard_normal((shared, dim)),
                             rng.standard_normal((n_b - shared, dim))]).astype(np.float32)
    ours = mutual_nn_matches(desc_a, desc_b, cv2.NORM_L2)
    theirs = cv2.BFMatcher(cv2.NORM_L2, crossCheck=True).match(desc_a, desc_b)
    assert ours.tolist() == [[m.queryIdx, m.trainIdx] for m in theirs] and len(ours) >= shared // 2


def test_mutual_nn_binary_uses_hamming():
    a = np.array([[0b00000000]], np.uint8)
    b = np.array([[0b10000000], [0b00000111]], np.uint8)  # 1 bit away (value 128) vs 3 bits (7)
    assert mutual_nn_matches(a, b).tolist() == [[0, 0]]
    assert mutual_nn_matches(a, b, cv2.NORM_L2).tolist() == [[0, 1]]


def test_mutual_nn_rejects_mismatched_descriptor_lengths():
    with pytest.raises(ValueError, match="same D"):
        mutual_nn_matches(unique_descriptors(3), np.ones((2, 5), np.float32))


def test_mutual_nn_without_descriptors():
    assert mutual_nn_matches(None, unique_descriptors(3)).shape == (0, 2)
    assert mutual_nn_matches(np.empty((0, 32), np.float32), unique_descriptors(3)).shape == (0, 2)


def test_mma_known_errors():
    values = mma(np.array([0.5, 2.5, 20.0]))
    assert len(values) == 10
    assert values[0] == pytest.approx(1 / 3)
    assert values[2] == pytest.approx(2 / 3)
    assert values[9] == pytest.approx(2 / 3)
    assert mma(np.empty(0)) == [0.0] * 10


def test_match_errors():
    pts = grid_points(4)
    assert np.allclose(match_errors(pts, pts + [5, 0], SHIFT), 0)
    assert np.allclose(match_errors(pts, pts + [5, 0], np.eye(3)), 5)


def test_corner_error_known_values():
    assert corner_error(np.eye(3), np.eye(3), SHAPE) == 0
    shifted = np.array([[1.0, 0, 3], [0, 1, 4], [0, 0, 1]])
    assert corner_error(shifted, np.eye(3), SHAPE) == pytest.approx(5.0)
    assert corner_error(None, np.eye(3), SHAPE) == math.inf


def test_estimate_homography_recovers_shift_and_needs_four_points():
    pts = grid_points()
    H = estimate_homography(pts, pts + [5, 0])
    assert H is not None
    assert corner_error(H, SHIFT, SHAPE) < 1e-3
    assert estimate_homography(pts[:3], pts[:3] + [5, 0]) is None


def test_error_auc_known_list():
    # Piecewise-linear recall through (0,0), (1,.5), (3,1): area up to 5 is 0.25 + 1.5 + 2.
    assert error_auc([1.0, 3.0], [5]) == [pytest.approx(3.75 / 5)]
    # Past the last error below t, recall stays flat (SuperGlue): up to 2 it is 0.25 + 0.5.
    assert error_auc([1.0, 3.0], [2]) == [pytest.approx((0.25 + 0.5) / 2)]
    assert error_auc([0.0, 0.0], [3, 5]) == [pytest.approx(1.0), pytest.approx(1.0)]
    assert error_auc([math.inf, math.inf], [3]) == [0.0]
    assert error_auc([], [3]) == [0.0]
    # A failure halves recall everywhere.
    assert error_auc([0.0, math.inf], [10]) == [pytest.approx(0.5)]


def test_score_pair_identity_all_correct():
    pts, desc = grid_points(), unique_descriptors(36)
    r = score_pair(pts, desc, pts, desc, np.eye(3), SHAPE, SHAPE, 3.0)
    assert (r.nc, r.matches, r.ncm) == (36, 36, 36)
    assert r.cmr == 1.0
    assert r.mma == [1.0] * 10
    assert r.corner_error == pytest.approx(0.0, abs=1e-6)


def test_score_pair_shift_with_right_and_wrong_homography():
    pts, desc = grid_points(), unique_descriptors(36)
    right = score_pair(pts, desc, pts + [5, 0], desc, SHIFT, SHAPE, SHAPE)
    assert (right.nc, right.ncm) == (36, 36)
    assert right.corner_error == pytest.approx(0.0, abs=1e-3)
    wrong = score_pair(pts, desc, pts + [5, 0], desc, np.eye(3), SHAPE, SHAPE)
    assert (wrong.nc, wrong.ncm, wrong.cmr) == (0, 0, 0.0)
    assert wrong.mma[:4] == [0.0] * 4 and wrong.mma[4] == 1.0  # all errors exactly 5 px
    assert wrong.corner_error == pytest.approx(5.0, abs=1e-3)


def test_score_pair_uses_the_callers_matches():
    pts, desc = grid_points(), unique_descriptors(36)
    own = score_pair(pts, desc, pts, desc, np.eye(3), SHAPE, SHAPE)
    given = score_pair(pts, desc, pts, desc, np.eye(3), SHAPE, SHAPE, matches=mutual_nn_matches(desc, desc))
    assert (given.matches, given.ncm, given.corner_error) == (own.matches, own.ncm, own.corner_error)
    half = score_pair(pts, desc, pts, desc, np.eye(3), SHAPE, SHAPE, matches=np.stack([np.arange(18)] * 2, 1))
    assert (half.matches, half.ncm, half.nc) == (18, 18, 36)  # matching is not redone


def test_score_pair_without_matches_does_not_crash():
    pts = grid_points()
    r = score_pair(pts, None, pts, None, np.eye(3), SHAPE, SHAPE)
    assert (r.matches, r.ncm, r.cmr) == (0, 0, 0.0)
    assert r.nc == 36
    assert r.corner_error == math.inf
    assert r.mma == [0.0] * 10
    empty = score_pair(np.empty((0, 2)), None, np.empty((0, 2)), None, np.eye(3), SHAPE, SHAPE)
    assert (empty.nc, empty.ncm, empty.cmr, empty.corner_error) == (0, 0, 0.0, math.inf)


def _result(method: str, k: int, nc: int, ncm: int, err: float) -> PairResult:
    return PairResult(
        name="p",
        method=method,
        k=k,
        kp_a=100,
        kp_b=50,
        nc=nc,
        matches=ncm,
        ncm=ncm,
        cmr=ncm / nc,
        mma=[ncm / 100] * 10,
        corner_error=err,
        ms=10.0,
    )


def test_aggregate_means_per_method_and_k():
    rows = aggregate(
        [
            _result("a", 1, 10, 5, 1.0),
            _result("a", 1, 20, 20, math.inf),
            _result("a", 2, 10, 10, 7.0),
            _result("b", 1, 10, 0, 4.0),
        ]
    )
    keys = [(r["method"], r["k"], r["pairs"]) for r in rows]
    assert keys == [("a", 1, 2), ("a", 2, 1), ("b", 1, 1)]
    a1 = rows[0]
    assert a1["nc"] == 15 and a1["ncm"] == 12.5 and a1["cmr"] == pytest.approx(0.75)
    assert a1["registered"] == 1 and a1["err_mean"] == 1.0 and a1["err_median"] == 1.0
    assert (a1["reg@3"], a1["reg@5"], a1["reg@10"]) == (0.5, 0.5, 0.5)
    assert a1["mma@3"] == pytest.approx(0.125)
    assert a1["kp"] == 75 and a1["ms"] == 10
    assert rows[1]["reg@5"] == 0.0 and rows[1]["reg@10"] == 1.0
    assert rows[2]["reg@3"] == 0.0 and rows[2]["reg@5"] == 1.0
