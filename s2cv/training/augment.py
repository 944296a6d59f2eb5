"""The S2 transform T and the supervised pair augmentation.

T = Ts·Tr·Tq·Tn·Tb·Ti (scale, rotation, quadrangle projection, Gaussian noise, Gaussian blur,
gray inversion above a threshold). The geometric part is a homography we know exactly, so
(I, T(I)) is a labelled correspondence pair for free: that is the self-supervision of S2-Net.
All images here are float32 gray in [0, 1]; homographies map pixel (x, y, 1) of the source to
the output image.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class GeometricParams:
    """Ranges of the random homography (paper: rotation ±10°, scale [1, 1.2], projection [0, 0.2]).

    The scale is drawn log-uniformly, so zooming in and out by the same factor are equally likely.
    """

    max_rotation_deg: float = 10.0
    scale_range: tuple[float, float] = (1.0, 1.2)
    max_projection: float = 0.2


# Named ranges for training and validation. "wide" is what users' rigs need: in-plane rotation to
# ±30°, a 2x resolution / field-of-view difference either way, stronger perspective. "hard" is
# the hard-geometry check (±30°, scale 0.7-1.3) that validation and benchmarks/hard_geometry.py use.
GEOMETRIES: dict[str, GeometricParams] = {
    "paper": GeometricParams(),
    "wide": GeometricParams(max_rotation_deg=30.0, scale_range=(0.5, 2.0), max_projection=0.3),
    "hard": GeometricParams(max_rotation_deg=30.0, scale_range=(0.7, 1.3), max_projection=0.2),
}
# What ``s2cv train --geometry`` draws from: each named range alone, or "mixed": every transform
# takes paper's or wide's range with equal chance, so near-identity pairs stay common while the
# network still sees rotated and rescaled ones.
TRAINING_GEOMETRIES: dict[str, tuple[GeometricParams, ...]] = {
    **{name: (params,) for name, params in GEOMETRIES.items()},
    "mixed": (GEOMETRIES["paper"], GEOMETRIES["wide"]),
}


@dataclass(frozen=True)
class PhotometricParams:
    """Noise (mean 0, variance 0.01), blur (sigma 1) and gray inversion, each applied with a probability."""

    noise_std: float = 0.1
    blur_sigma: float = 1.0
    p_noise: float = 0.5
    p_blur: float = 0.5
    p_invert: float = 0.5


def random_homography(size: tuple[int, int], rng: np.random.Generator,
                      params: GeometricParams = GeometricParams()) -> np.ndarray:
    """Ts·Tr·Tq about the image centre, for an image of (height, width) = size."""
    h, w = size
    centre = np.array([[1, 0, -(w - 1) / 2], [0, 1, -(h - 1) / 2], [0, 0, 1]], np.float64)
    s = float(np.exp(rng.uniform(*np.log(params.scale_range))))
    a = np.deg2rad(rng.uniform(-params.max_rotation_deg, params.max_rotation_deg))
    rs = np.array([[s * np.cos(a), -s * np.sin(a), 0], [s * np.sin(a), s * np.cos(a), 0], [0, 0, 1]])
    # Tq: move the four corners of the (centred) image by up to ratio * half-size each.
    ratio = rng.uniform(0, params.max_projection)
    half = np.array([(w - 1) / 2, (h - 1) / 2])
    src = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]]) * half
    dst = src + rng.uniform(-ratio, ratio, size=(4, 2)) * half
    tq = cv2.getPerspectiveTransform(src.astype(np.float32), dst.astype(np.float32))
    H = np.linalg.inv(centre) @ tq @ rs @ centre
    return H / H[2, 2]


def warp(image: np.ndarray, H: np.ndarray, size: tuple[int, int] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Warp ``image`` by H (source -> output pixels); returns the image and its validity mask."""
    h, w = size or image.shape[:2]
    out = cv2.warpPerspective(image, H, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    valid = cv2.warpPerspective(np.ones(image.shape[:2], np.float32), H, (w, h), flags=cv2.INTER_NEAREST)
    return out, valid


def photometric(image: np.ndarray, rng: np.random.Generator,
                params: PhotometricParams = PhotometricParams()) -> np.ndarray:
    """Tn·Tb·Ti: noise, blur, and inversion of the gray values above a random threshold."""
    out = image.astype(np.float32, copy=True)
    if rng.random() < params.p_noise:
        out += rng.normal(0.0, params.noise_std, out.shape).astype(np.float32)
    if rng.random() < params.p_blur:
        out = cv2.GaussianBlur(out, (0, 0), params.blur_sigma)
    out = np.clip(out, 0.0, 1.0)
    if rng.random() < params.p_invert:
        t = rng.uniform(0.0, 1.0)
        out = np.where(out > t, 1.0 - out, out).astype(np.float32)
    return out


def s2_transform(image: np.ndarray, rng: np.random.Generator,
                 geometric: GeometricParams = GeometricParams(),
                 photo: PhotometricParams = PhotometricParams()) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """T(I): returns (transformed image, exact 3x3 homography I -> T(I), validity mask of T(I))."""
    H = random_homography(image.shape[:2], rng, geometric)
    out, valid = warp(image, H)
    return photometric(out, rng, photo) * valid, H, valid


def pair_augment(a: np.ndarray, b: np.ndarray, rng: np.random.Generator,
                 geometric: GeometricParams = GeometricParams(),
                 photo: PhotometricParams = PhotometricParams(p_invert=0.0)
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Supervised-branch augmentation of an aligned pair (a, b).

    Flips and 90° rotations are applied to both images (U stays the identity for them); a random
    rotation/scale/projection is applied to ``b`` only, so the returned U maps a's pixels to b's.
    Returns (a', b', U, validity mask of b').
    """
    if rng.random() < 0.5:
        a, b = a[:, ::-1], b[:, ::-1]
    k = int(rng.integers(4))
    a, b = np.ascontiguousarray(np.rot90(a, k)), np.ascontiguousarray(np.rot90(b, k))
    U = random_homography(b.shape[:2], rng, geometric)
    b, valid = warp(b, U)
    return photometric(a, rng, photo), photometric(b, rng, photo) * valid, U, valid
