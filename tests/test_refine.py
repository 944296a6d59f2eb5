"""s2cv.registration.refine: featuremetric polishing of a homography on the dense descriptor maps."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

import s2cv
from s2cv.cli import register as register_cli
from s2cv.registration import register as reg
from s2cv.feature.backends import DenseMaps
from s2cv.registration.geometry import corner_error
from s2cv.feature.image import to_gray_float
from s2cv.registration.refine import RefineParams, refine_homography

# b = a warped by H_AB; refinement works in the other direction (b pixels -> a pixels).
H_AB = np.array([[0.97, -0.06, 12.0], [0.05, 0.98, -7.0], [4e-5, -3e-5, 1.0]])


@pytest.fixture(scope="module")
def warped_pair():
    """The bundled visible image and an exact warp of it, with both images' dense maps."""
    if "default" not in s2cv.available_models():
        pytest.skip("no default model shipped")
    a = cv2.cvtColor(reg.read_image(reg.SAMPLES["roadscene"][0]), cv2.COLOR_BGR2GRAY)
    b = cv2.warpPerspective(a, H_AB, (a.shape[1], a.shape[0]))
    det = s2cv.S2Net_create()
    return a, b, det.denseMaps(to_gray_float(a)), det.denseMaps(to_gray_float(b))


def _offset(H_ba: np.ndarray, dx: float, dy: float, angle_deg: float) -> np.ndarray:
    """H_ba followed by a small rigid motion in image a (a start the fit could have given)."""
    c, s = np.cos(np.radians(angle_deg)), np.sin(np.radians(angle_deg))
    return np.array([[c, -s, dx], [s, c, dy], [0, 0, 1]]) @ H_ba


@pytest.mark.parametrize("params", [RefineParams(), RefineParams(dims=0), RefineParams(levels=3)])
def test_recovers_a_perturbed_homography(warped_pair, params):
    a, b, maps_a, maps_b = warped_pair
    start = _offset(np.linalg.inv(H_AB), 5.0, -4.0, 1.0)
    before = corner_error(np.linalg.inv(start), H_AB, a.shape)
    refined = refine_homography(start, maps_a, maps_b, a.shape, b.shape, params)
    after = corner_error(np.linalg.inv(refined), H_AB, a.shape)
    assert before > 5.0 and after < 1.0, (before, after)


def test_gives_up_instead_of_drifting(warped_pair):
    a, b, maps_a, maps_b = warped_pair
    start = _offset(np.linalg.inv(H_AB), 5.0, -4.0, 1.0)
    kept = refine_homography(start, maps_a, maps_b, a.shape, b.shape, RefineParams(max_shift=1e-6))
    np.testing.assert_array_equal(kept, start)


def test_bad_inputs(warped_pair):
    a, b, maps_a, maps_b = warped_pair
    with pytest.raises(ValueError, match="invertible"):
        refine_homography(np.zeros((3, 3)), maps_a, maps_b, a.shape, b.shape)
    with pytest.raises(ValueError, match="invertible"):
        refine_homography(np.full((3, 3), np.nan), maps_a, maps_b, a.shape, b.shape)
    with pytest.raises(ValueError, match="scores of shape"):
        refine_homography(np.eye(3), maps_a, maps_b, a.shape, (b.shape[0] + 8, b.shape[1]))
    nan = DenseMaps(scores=maps_b.scores, descriptors=maps_b.descriptors.copy(), stride=maps_b.stride)
    nan.descriptors[0, :, 3, 3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        refine_homography(np.eye(3), maps_a, nan, a.shape, b.shape)
    other = DenseMaps(scores=maps_b.scores, descriptors=maps_b.descriptors, stride=maps_b.stride * 2)
    with pytest.raises(ValueError, match="strides"):
        refine_homography(np.eye(3), maps_a, other, a.shape, b.shape)
    tiny = DenseMaps(scores=np.zeros((1, 4, 4), np.float32), descriptors=np.ones((1, 8, 1, 1), np.float32),
                     stride=maps_a.stride)
    with pytest.raises(ValueError, match="too small"):
        refine_homography(np.eye(3), tiny, tiny, (4, 4), (4, 4))
    for bad in ({"iters": 0}, {"iters": 2.5}, {"max_points": 8}, {"max_shift": float("nan")}, {"levels": 0},
                {"dims": -1}):
        with pytest.raises(ValueError):
            RefineParams(**bad)


def test_register_refine_option(warped_pair):
    a, b, _, _ = warped_pair
    det = s2cv.S2Net_create(nfeatures=1024)
    plain = reg.register(a, b, det)
    refined = reg.register(a, b, det, refine=True)
    assert plain.success and refined.success and "refine" in refined.timings
    coarse = reg.register(a, b, det, refine=RefineParams(levels=2))
    assert corner_error(np.linalg.inv(coarse.H), H_AB, a.shape) < 1.0 and not np.array_equal(coarse.H, refined.H)
    # Same matches and inliers; only H is polished (and stays on the truth of this exact warp).
    assert refined.num_inliers == plain.num_inliers and not np.array_equal(refined.H, plain.H)
    assert corner_error(np.linalg.inv(refined.H), H_AB, a.shape) < 1.0
    with pytest.raises(ValueError, match="s2cv detector"):
        reg.register(a, b, cv2.SIFT_create(), refine=True)
    with pytest.raises(ValueError, match="homography"):
        reg.register(a, b, det, transform="affine", refine=True)


def test_register_refine_reuses_the_detection_maps(warped_pair, monkeypatch):
    """refine=True runs the network once per image (the maps detection ran on), and polishes H
    exactly as refining on freshly computed maps would."""
    a, b, maps_a, maps_b = warped_pair
    det = s2cv.S2Net_create(nfeatures=1024)
    plain = reg.register(a, b, det)

    class Counting:
        """The detector's backend, counting network passes."""

        def __init__(self, backend) -> None:
            self.backend, self.calls = backend, 0

        def __getattr__(self, name: str):
            return getattr(self.backend, name)

        def __call__(self, batch):
            self.calls += 1
            return self.backend(batch)

    counting = Counting(det._net_backend)
    monkeypatch.setattr(det, "_net_backend", counting)
    refined = reg.register(a, b, det, refine=True)
    assert counting.calls == 2
    expected = refine_homography(plain.H, maps_a, maps_b, a.shape, b.shape)
    np.testing.assert_allclose(refined.H, expected, rtol=1e-9, atol=1e-9)


def test_detect_and_compute_maps():
    """The maps come with the same keypoints/descriptors detectAndCompute gives, also when the
    pyramid has no scale 1 (then they are computed at full resolution)."""
    if "default" not in s2cv.available_models():
        pytest.skip("no default model shipped")
    img = reg.read_image(reg.SAMPLES["roadscene"][1])
    for params in ({}, {"multiscale": True, "scales": (0.7071, 0.5)}):
        det = s2cv.S2Net_create(nfeatures=500, **params)
        kps, desc = det.detectAndCompute(img, None)
        kps2, desc2, maps = det.detectAndComputeMaps(img, None)
        assert [k.pt for k in kps] == [k.pt for k in kps2] and np.array_equal(desc, desc2)
        ref = det.denseMaps(to_gray_float(img))
        assert maps.scores.shape == ref.scores.shape == (1, *img.shape[:2])
        np.testing.assert_allclose(maps.descriptors, ref.descriptors, atol=1e-6)


def test_cli_refine_flag(tmp_path, capsys):
    if "default" not in s2cv.available_models():
        pytest.skip("no default model shipped")
    assert register_cli.main(["--sample", "-o", str(tmp_path), "--refine"]) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["refine"] is True and summary["timings_ms"]["refine"] > 0
    assert "corner error" in capsys.readouterr().out


def test_principal_axes_keep_the_descriptor_variance(warped_pair):
    """The projection keeps the leading axes: 64 of the default's 128 channels hold all of its
    maps' variance (so the default projection loses nothing), 16 hold most of it."""
    from s2cv.registration.refine import _principal

    _, _, maps_a, maps_b = warped_pair
    desc = [np.ascontiguousarray(m.descriptors[0].transpose(1, 2, 0)) for m in (maps_a, maps_b)]

    def variance(maps: list[np.ndarray]) -> float:
        cells = np.concatenate([d.reshape(-1, d.shape[2]) for d in maps])
        return float(((cells - cells.mean(0)) ** 2).sum())

    assert variance(_principal(desc, 64)) > 0.999 * variance(desc)
    assert variance(_principal(desc, 16)) > 0.5 * variance(desc)
