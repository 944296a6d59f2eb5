"""The S2 transform must return the exact homography: T(I)(H p) == I(p)."""
import numpy as np
import pytest
from conftest import smooth_noise

from s2cv.training.augment import (
    GeometricParams,
    PhotometricParams,
    pair_augment,
    photometric,
    random_homography,
    s2_transform,
    warp,
)


def textured(h: int = 160, w: int = 200, seed: int = 0) -> np.ndarray:
    return smooth_noise((h, w), np.random.default_rng(seed))


def bilinear(img: np.ndarray, pts: np.ndarray) -> np.ndarray:
    x, y = pts[:, 0], pts[:, 1]
    x0, y0 = np.floor(x).astype(int), np.floor(y).astype(int)
    fx, fy = x - x0, y - y0
    return (img[y0, x0] * (1 - fx) * (1 - fy) + img[y0, x0 + 1] * fx * (1 - fy)
            + img[y0 + 1, x0] * (1 - fx) * fy + img[y0 + 1, x0 + 1] * fx * fy)


def apply(H: np.ndarray, pts: np.ndarray) -> np.ndarray:
    p = np.c_[pts, np.ones(len(pts))] @ H.T
    return p[:, :2] / p[:, 2:]


@pytest.mark.parametrize("seed", range(5))
def test_homography_is_exact(seed):
    img = textured(seed=seed)
    rng = np.random.default_rng(seed)
    H = random_homography(img.shape, rng, GeometricParams(max_rotation_deg=30, scale_range=(0.8, 1.3)))
    out, valid = warp(img, H)
    pts = np.stack(np.meshgrid(np.arange(20, 180, 7.3), np.arange(20, 140, 6.1)), -1).reshape(-1, 2)
    dst = apply(H, pts)
    ok = (dst[:, 0] > 2) & (dst[:, 1] > 2) & (dst[:, 0] < img.shape[1] - 3) & (dst[:, 1] < img.shape[0] - 3)
    assert ok.sum() > 50
    # Smooth image: bilinear resampling error is small; a wrong H gives errors ~0.2+.
    err = np.abs(bilinear(out, dst[ok]) - bilinear(img, pts[ok]))
    assert np.median(err) < 0.01 and err.max() < 0.05
    wrong = apply(H @ np.array([[1, 0, 3], [0, 1, 0], [0, 0, 1.0]]), pts[ok])
    inside = (wrong[:, 0] > 2) & (wrong[:, 0] < img.shape[1] - 3) & (wrong[:, 1] > 2) & (wrong[:, 1] < img.shape[0] - 3)
    assert np.median(np.abs(bilinear(out, wrong[inside]) - bilinear(img, pts[ok][inside]))) > 0.02
    assert valid.dtype == np.float32 and set(np.unique(valid)) <= {0.0, 1.0}


def test_s2_transform_ranges_and_mask():
    img = textured()
    for seed in range(10):
        out, H, valid = s2_transform(img, np.random.default_rng(seed))
        assert out.shape == img.shape and out.dtype == np.float32
        assert 0.0 <= out.min() and out.max() <= 1.0
        assert np.all(out[valid == 0] == 0)
        assert abs(np.linalg.det(H[:2, :2])) > 0.5


def test_photometric_noise_variance_and_inversion():
    flat = np.full((200, 200), 0.5, np.float32)
    noisy = photometric(flat, np.random.default_rng(0), PhotometricParams(p_noise=1, p_blur=0, p_invert=0))
    assert abs(noisy.var() - 0.01) < 0.002 and abs(noisy.mean() - 0.5) < 0.01
    ramp = np.tile(np.linspace(0, 1, 100, dtype=np.float32), (10, 1))
    inv = photometric(ramp, np.random.default_rng(1), PhotometricParams(p_noise=0, p_blur=0, p_invert=1))
    changed = inv != ramp
    assert changed.any()
    # Everything above the threshold is inverted, everything below untouched.
    t = ramp[changed].min()
    assert np.allclose(inv[ramp > t], 1 - ramp[ramp > t]) and np.allclose(inv[ramp < t], ramp[ramp < t])


def test_pair_augment_correspondence():
    a = textured(128, 128, 3)
    b = 1 - a  # "other modality": same geometry
    for seed in range(5):
        a2, b2, U, _ = pair_augment(a, b, np.random.default_rng(seed), photo=PhotometricParams(0, 1, 0, 0, 0))
        pts = np.stack(np.meshgrid(np.arange(30, 98, 5.0), np.arange(30, 98, 5.0)), -1).reshape(-1, 2)
        dst = apply(U, pts)
        ok = (dst.min(1) > 2) & (dst.max(1) < 125)
        err = np.abs(bilinear(b2, dst[ok]) - (1 - bilinear(a2, pts[ok])))
        assert np.median(err) < 0.01


@pytest.mark.parametrize("seed", range(3))
def test_s2_transform_homography_is_exact(seed):
    """T(I) sampled at H p equals I at p (photometric part off, so only geometry is compared)."""
    img = textured(seed=seed)
    out, H, valid = s2_transform(img, np.random.default_rng(seed), photo=PhotometricParams(0, 1, 0, 0, 0))
    pts = np.stack(np.meshgrid(np.arange(20, 180, 7.3), np.arange(20, 140, 6.1)), -1).reshape(-1, 2)
    dst = apply(H, pts)
    ok = (dst[:, 0] > 2) & (dst[:, 1] > 2) & (dst[:, 0] < img.shape[1] - 3) & (dst[:, 1] < img.shape[0] - 3)
    ok &= valid[np.round(dst[:, 1]).clip(0, img.shape[0] - 1).astype(int), np.round(dst[:, 0]).clip(0, img.shape[1] - 1).astype(int)] > 0
    assert ok.sum() > 50
    err = np.abs(bilinear(out, dst[ok]) - bilinear(img, pts[ok]))
    assert np.median(err) < 0.01 and err.max() < 0.05
