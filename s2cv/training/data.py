"""Training data: aligned cross-modal pairs (layouts: ``s2cv.evaluation.datasets``) -> crops for the S2 loss.

Files are read as the runtime reads them (``s2cv.feature.image.read_gray``), so a 16-bit thermal
frame is normalised the same way in training and inference. Every tenth pair (sorted by name) is
held out as the validation split used to choose checkpoints.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from s2cv.evaluation.datasets import AlignedPair
from s2cv.feature.image import read_gray
from s2cv.training.augment import GeometricParams, pair_augment, s2_transform
from s2cv.training.pseudo import pseudo_modality


class S2PairDataset(Dataset):
    """Random crops of aligned pairs, each item holding the three branches of the S2 loss.

    Item keys: ``sl_a, sl_b, sl_U, sl_valid_b`` (supervised cross-modal pair) and
    ``vis_a, vis_b, vis_U, vis_valid_b`` / ``ir_a, ir_b, ir_U, ir_valid_b`` (I, T(I)).
    Images are (1, crop, crop) float32; U maps pixels of ``*_a`` to ``*_b``.
    """

    def __init__(self, groups: list[list[AlignedPair]], crop: int = 192, length: int = 10**9, seed: int = 0,
                 p_invert_ir: float = 0.2,
                 geometry: GeometricParams | tuple[GeometricParams, ...] = GeometricParams(),
                 unpaired: dict[str, list[Path]] | None = None, p_unpaired: float = 0.5,
                 pseudo: tuple[str, ...] = (), p_pseudo: float = 0.5,
                 pair_pseudo: tuple[str, ...] = (), p_pair_pseudo: float = 0.5) -> None:
        """``groups``: one list of pairs per data set; each item first draws a data set uniformly,
        so a small set (VIS-NIR) is not drowned by a large one (RoadScene). ``unpaired``: extra
        single-modality frames per SSL branch ("vis", "ir"); with probability ``p_unpaired`` a
        branch takes its crop from them instead of from the aligned pair (L_SSL needs no partner).
        ``geometry``: one range, or several of which each transform draws one. ``pseudo``: the
        pseudo-modality families (``s2cv.training.pseudo``) of which, with probability ``p_pseudo``,
        one side of each SSL pair gets a random chain (no draw at all when empty, so runs without
        them keep their random stream). ``pair_pseudo``: the same for one side of the supervised
        cross-modal pair (with probability ``p_pair_pseudo``), e.g. ``optics``: a rig whose thermal
        camera is coarser than its visible one."""
        self.crop, self.length, self.seed, self.p_invert_ir = crop, length, seed, p_invert_ir
        self.pseudo, self.p_pseudo = tuple(pseudo), p_pseudo
        self.pair_pseudo, self.p_pair_pseudo = tuple(pair_pseudo), p_pair_pseudo
        self.geometries = geometry if isinstance(geometry, tuple) else (geometry,)
        self.p_unpaired = p_unpaired
        self.images = [[self._load(p) for p in pairs] for pairs in groups if pairs]
        if not self.images:
            raise ValueError("no training pairs given")
        unknown = set(unpaired or {}) - {"vis", "ir"}
        if unknown:
            raise ValueError(f"unpaired frames are for the 'vis' or 'ir' branch, got {sorted(unknown)}")
        self.unpaired = {k: [read_gray(p) for p in paths] for k, paths in (unpaired or {}).items() if paths}

    @staticmethod
    def _load(pair: AlignedPair) -> tuple[np.ndarray, np.ndarray]:
        a, b = read_gray(pair.path_a), read_gray(pair.path_b)
        if a.shape != b.shape:
            raise ValueError(f"pair {pair.name}: sizes differ {a.shape} vs {b.shape}; pairs must be aligned")
        return a, b

    def __len__(self) -> int:
        return self.length

    def random_crop(self, rng: np.random.Generator, *images: np.ndarray) -> list[np.ndarray]:
        """The same random rescale + crop of images of one size (a pair, or a single frame)."""
        c = self.crop
        # Rescale so the short side lands between 1.2 and 2.5 crops: covers test-time scales.
        short = min(images[0].shape)
        target = rng.uniform(1.2 * c, max(1.2 * c, min(short, 2.5 * c)))
        s = target / short
        size = (max(c, round(images[0].shape[1] * s)), max(c, round(images[0].shape[0] * s)))
        y, x = int(rng.integers(size[1] - c + 1)), int(rng.integers(size[0] - c + 1))
        return [cv2.resize(im, size, interpolation=cv2.INTER_AREA)[y:y + c, x:x + c] for im in images]

    def _geometry(self, rng: np.random.Generator) -> GeometricParams:
        """The range of one transform (no draw with a single range: its runs stay reproducible)."""
        if len(self.geometries) == 1:
            return self.geometries[0]
        return self.geometries[int(rng.integers(len(self.geometries)))]

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        rng = np.random.default_rng([self.seed, index])
        group = self.images[int(rng.integers(len(self.images)))]
        a, b = self.random_crop(rng, *group[int(rng.integers(len(group)))])
        if rng.random() < self.p_invert_ir:  # black-hot vs white-hot palettes
            b = 1.0 - b
        item: dict[str, np.ndarray] = {}
        sa, sb, U, valid = pair_augment(a, b, rng, self._geometry(rng))
        sa, sb = _pseudo_one_side(sa, sb, valid, rng, self.pair_pseudo, self.p_pair_pseudo)
        item.update(sl_a=sa, sl_b=sb, sl_U=U, sl_valid_b=valid)
        for key, image in (("vis", a), ("ir", b)):
            frames = self.unpaired.get(key)
            if frames and rng.random() < self.p_unpaired:
                (image,) = self.random_crop(rng, frames[int(rng.integers(len(frames)))])
            tb, H, valid = s2_transform(image, rng, self._geometry(rng))
            image, tb = _pseudo_one_side(image, tb, valid, rng, self.pseudo, self.p_pseudo)
            item.update({f"{key}_a": image, f"{key}_b": tb, f"{key}_U": H, f"{key}_valid_b": valid})
        return {k: torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32))[None] if v.ndim == 2 and k[-1] != "U"
                else torch.from_numpy(np.asarray(v, dtype=np.float32)) for k, v in item.items()}


def _pseudo_one_side(a: np.ndarray, b: np.ndarray, valid: np.ndarray, rng: np.random.Generator,
                     families: tuple[str, ...], p: float) -> tuple[np.ndarray, np.ndarray]:
    """With probability ``p``, a pseudo-modality chain on one of the pair's two sides (``b`` keeps
    its validity mask); no draw at all without families, so runs without them keep their stream."""
    if families and rng.random() < p:
        if rng.random() < 0.5:
            a = pseudo_modality(a, rng, families)
        else:
            b = pseudo_modality(b, rng, families) * valid
    return a, b
