"""Training pairs for S2Glue: keypoints and descriptors of a frozen detector on two views with a
known homography, and the ground-truth partial assignment between them.

Two kinds of pairs, as in S2-Net's loss L = L_SL + lambda (L_SSL_vis + L_SSL_ir):

- SL: an aligned visible/IR (or NIR) training pair, with a random homography (``wide`` geometry
  by default) applied to the IR side (``augment.pair_augment``): cross-modal correspondences;
- SSL: one single-modality frame (visible, or thermal: including unpaired thermal folders that have
  no visible partner) and its S2 transform T(I) (``augment.s2_transform``): same-modality pairs
  that need no alignment at all.

Ground truth: keypoint i of view 0 projected by the homography lands within ``positive_px`` (3 px)
of keypoint j of view 1, and they are each other's nearest such point -> (i, j) matches; a point
with no counterpart within ``positive_px`` (or projected outside the other view) goes to the dustbin.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import cv2
import numpy as np

from s2cv.evaluation.datasets import list_pairs
from s2cv.feature.image import IMAGE_EXTENSIONS
from s2cv.training.augment import GEOMETRIES, GeometricParams, PhotometricParams, pair_augment, s2_transform

CROP = (240, 320)   # (h, w) of every training view: detector + matcher cost stays small on a CPU


@dataclass
class GluePair:
    """One training example: pixel keypoints, descriptors, sizes (w, h) and the GT assignment."""

    kind: str                 # "sl", "ssl_vis" or "ssl_ir"
    kpts0: np.ndarray         # (M, 2)
    kpts1: np.ndarray         # (N, 2)
    desc0: np.ndarray         # (M, D)
    desc1: np.ndarray         # (N, D)
    size0: tuple[int, int]
    size1: tuple[int, int]
    matches: np.ndarray       # (L, 2) GT pairs (i, j)
    unmatched0: np.ndarray    # rows that go to the dustbin
    unmatched1: np.ndarray    # columns that go to the dustbin
    images: tuple[np.ndarray, np.ndarray] | None = None  # the uint8 views the detector saw (joint training)


def ground_truth(kpts0: np.ndarray, kpts1: np.ndarray, H: np.ndarray, size1: tuple[int, int],
                 positive_px: float = 3.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(matches (L, 2), unmatched rows, unmatched columns) from the homography view 0 -> view 1."""
    if len(kpts0) == 0 or len(kpts1) == 0:
        return np.zeros((0, 2), np.int64), np.arange(len(kpts0)), np.arange(len(kpts1))
    p = np.c_[kpts0, np.ones(len(kpts0))] @ H.T
    proj = p[:, :2] / np.where(np.abs(p[:, 2:]) < 1e-9, 1e-9, p[:, 2:])
    d = np.linalg.norm(proj[:, None, :] - kpts1[None, :, :], axis=2)
    nn01, nn10 = d.argmin(1), d.argmin(0)
    rows = np.arange(len(kpts0))
    mutual = (nn10[nn01] == rows) & (d[rows, nn01] <= positive_px)
    matches = np.c_[rows[mutual], nn01[mutual]].astype(np.int64)
    unmatched0 = np.flatnonzero(d.min(1) > positive_px)
    unmatched1 = np.flatnonzero(d.min(0) > positive_px)
    return matches, unmatched0, unmatched1


def _gray(path: Path) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if img is None:
        raise FileNotFoundError(f"cannot read image {path}")
    return img


def fit_crop(img: np.ndarray, rng: np.random.Generator, crop: tuple[int, int] = CROP) -> tuple[int, int, float]:
    """Scale (shorter side -> crop side) and a random crop offset for an image of this size."""
    h, w = img.shape[:2]
    scale = max(crop[0] / h, crop[1] / w)
    sh, sw = int(round(h * scale)), int(round(w * scale))
    return int(rng.integers(0, sh - crop[0] + 1)), int(rng.integers(0, sw - crop[1] + 1)), scale


def _crop(img: np.ndarray, y: int, x: int, scale: float, crop: tuple[int, int] = CROP) -> np.ndarray:
    h, w = img.shape[:2]
    small = cv2.resize(img, (int(round(w * scale)), int(round(h * scale))), interpolation=cv2.INTER_AREA)
    return (small[y:y + crop[0], x:x + crop[1]].astype(np.float32) / 255.0)


def list_single_frames(folders: Sequence[str | Path]) -> list[Path]:
    """Every image file in the given folders (sorted), for the SSL branch."""
    out: list[Path] = []
    for folder in folders:
        folder = Path(folder)
        if not folder.is_dir():
            raise FileNotFoundError(f"SSL folder {folder} does not exist")
        out += sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
    return out


class GluePairSampler:
    """Draws SL and SSL pairs and runs the frozen detector on them (features computed per crop).

    ``detector`` is any object with ``detectAndCompute`` (an ``S2Net_create`` detector)."""

    def __init__(self, detector: Any, aligned: Sequence[tuple[str, str | Path]], ssl_vis: Sequence[str | Path] = (),
                 ssl_ir: Sequence[str | Path] = (), geometry: GeometricParams = GEOMETRIES["wide"],
                 seed: int = 0, split: str = "train") -> None:
        self.detector = detector
        self.pairs = [p for kind, root in aligned for p in list_pairs(kind, root, split)]
        if not self.pairs:
            raise ValueError("no aligned training pairs: pass --data KIND=PATH")
        # the aligned pairs' own frames join the SSL pools (vis side -> vis, IR/NIR side -> ir)
        self.vis = [p.path_a for p in self.pairs] + list_single_frames(ssl_vis)
        self.ir = [p.path_b for p in self.pairs] + list_single_frames(ssl_ir)
        self.geometry = geometry
        self.rng = np.random.default_rng(seed)

    def _features(self, img: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        kp, desc = self.detector.detectAndCompute(img, None)
        if desc is None or len(kp) == 0:
            return np.zeros((0, 2), np.float32), np.zeros((0, self.detector.descriptorSize()), np.float32)
        return cv2.KeyPoint_convert(kp).reshape(-1, 2), desc.astype(np.float32)

    def _pair(self, kind: str, a: np.ndarray, b: np.ndarray, H: np.ndarray) -> GluePair:
        a, b = (np.clip(v * 255, 0, 255).astype(np.uint8) for v in (a, b))
        k0, d0 = self._features(a)
        k1, d1 = self._features(b)
        size = (a.shape[1], a.shape[0])
        matches, u0, u1 = ground_truth(k0, k1, H, size)
        return GluePair(kind, k0, k1, d0, d1, size, size, matches, u0, u1, (a, b))

    def supervised(self) -> GluePair:
        pair = self.pairs[int(self.rng.integers(len(self.pairs)))]
        vis, ir = _gray(pair.path_a), _gray(pair.path_b)
        if vis.shape != ir.shape:
            ir = cv2.resize(ir, (vis.shape[1], vis.shape[0]), interpolation=cv2.INTER_AREA)
        y, x, scale = fit_crop(vis, self.rng)
        a, b, U, _ = pair_augment(_crop(vis, y, x, scale), _crop(ir, y, x, scale), self.rng, self.geometry,
                                  PhotometricParams(p_invert=0.0))
        return self._pair("sl", a, b, U)

    def self_supervised(self, modality: str) -> GluePair:
        pool = self.vis if modality == "vis" else self.ir
        img = _gray(pool[int(self.rng.integers(len(pool)))])
        y, x, scale = fit_crop(img, self.rng)
        a = _crop(img, y, x, scale)
        b, H, _ = s2_transform(a, self.rng, self.geometry)
        return self._pair(f"ssl_{modality}", a, b, H)
