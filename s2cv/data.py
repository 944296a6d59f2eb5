"""Training data: aligned cross-modal pairs -> crops for the S2 loss.

Layouts (all pixel-aligned pairs with the same file names on both sides):
- ``roadscene``: ``aligned/vis`` + ``aligned/ir``, names from ``train.txt`` (the test split is never read);
- ``visnir``: ``train/country/NNNN_rgb.jpg`` + ``NNNN_nir.jpg``;
- ``folder``: any folder with two sub-folders ``vis`` and ``ir`` (or ``a`` and ``b``) of matching names.
Every tenth pair (sorted by name) is held out as the validation split used to choose checkpoints.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from .augment import GeometricParams, pair_augment, s2_transform
from .image import to_gray_float
from .register import read_image

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")


@dataclass(frozen=True)
class AlignedPair:
    name: str
    path_a: Path  # visible
    path_b: Path  # thermal / near-infrared


def _check_dir(path: Path) -> Path:
    if not path.is_dir():
        raise FileNotFoundError(f"data folder not found: {path}")
    return path


def list_roadscene(root: Path) -> list[AlignedPair]:
    root = _check_dir(root)
    names = (root / "train.txt").read_text().split()
    return [AlignedPair(n, root / "aligned" / "vis" / n, root / "aligned" / "ir" / n) for n in names]


def list_visnir(root: Path) -> list[AlignedPair]:
    folder = _check_dir(root / "train" / "country")
    return [AlignedPair(p.name[:-8], p, p.with_name(p.name.replace("_rgb", "_nir")))
            for p in sorted(folder.glob("*_rgb.*"))]


def list_folder(root: Path) -> list[AlignedPair]:
    root = _check_dir(root)
    for a, b in (("vis", "ir"), ("a", "b")):
        if (root / a).is_dir() and (root / b).is_dir():
            files = {p.stem: p for p in (root / b).iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS}
            return [AlignedPair(p.stem, p, files[p.stem]) for p in sorted((root / a).iterdir())
                    if p.suffix.lower() in IMAGE_EXTENSIONS and p.stem in files]
    raise FileNotFoundError(f"{root}: expected sub-folders vis/ and ir/ (or a/ and b/) of aligned images")


LAYOUTS = {"roadscene": list_roadscene, "visnir": list_visnir, "folder": list_folder}


def list_pairs(kind: str, root: str | Path, split: str = "train") -> list[AlignedPair]:
    """The pairs of one data set's training data; ``split`` 'train' or 'val' (every tenth pair)."""
    if kind not in LAYOUTS:
        raise ValueError(f"unknown dataset {kind!r}; expected one of {sorted(LAYOUTS)}")
    pairs = sorted(LAYOUTS[kind](Path(root)), key=lambda p: p.name)
    if not pairs:
        raise FileNotFoundError(f"no aligned pairs found for dataset {kind!r} in {root}")
    val = [p for i, p in enumerate(pairs) if i % 10 == 5]
    return val if split == "val" else [p for p in pairs if p not in val]


def list_images(root: str | Path) -> list[Path]:
    """Every image of a folder of single-modality frames (sorted): material for one SSL branch."""
    root = _check_dir(Path(root))
    files = sorted(p for p in root.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
    if not files:
        raise FileNotFoundError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) in {root}")
    return files


def read_gray(path: Path) -> np.ndarray:
    """Gray float32 in [0, 1], read and normalised exactly as inference does (``register.read_image``
    keeps the file's depth, ``image.to_gray_float`` normalises it: a 16-bit radiometric frame is
    stretched robustly, not truncated to 8 bits)."""
    return to_gray_float(read_image(path), str(path))


class S2PairDataset(Dataset):
    """Random crops of aligned pairs, each item holding the three branches of the S2 loss.

    Item keys: ``sl_a, sl_b, sl_U, sl_valid_b`` (supervised cross-modal pair) and
    ``vis_a, vis_b, vis_U, vis_valid_b`` / ``ir_a, ir_b, ir_U, ir_valid_b`` (I, T(I)).
    Images are (1, crop, crop) float32; U maps pixels of ``*_a`` to ``*_b``.
    """

    def __init__(self, groups: list[list[AlignedPair]], crop: int = 192, length: int = 10**9, seed: int = 0,
                 p_invert_ir: float = 0.2, geometry: GeometricParams = GeometricParams(),
                 unpaired: dict[str, list[Path]] | None = None, p_unpaired: float = 0.5) -> None:
        """``groups``: one list of pairs per data set; each item first draws a data set uniformly,
        so a small set (VIS-NIR) is not drowned by a large one (RoadScene). ``unpaired``: extra
        single-modality frames per SSL branch ("vis", "ir"); with probability ``p_unpaired`` a
        branch takes its crop from them instead of from the aligned pair (L_SSL needs no partner)."""
        self.crop, self.length, self.seed, self.p_invert_ir = crop, length, seed, p_invert_ir
        self.geometry, self.p_unpaired = geometry, p_unpaired
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

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        rng = np.random.default_rng([self.seed, index])
        group = self.images[int(rng.integers(len(self.images)))]
        a, b = self.random_crop(rng, *group[int(rng.integers(len(group)))])
        if rng.random() < self.p_invert_ir:  # black-hot vs white-hot palettes
            b = 1.0 - b
        item: dict[str, np.ndarray] = {}
        sa, sb, U, valid = pair_augment(a, b, rng, self.geometry)
        item.update(sl_a=sa, sl_b=sb, sl_U=U, sl_valid_b=valid)
        for key, image in (("vis", a), ("ir", b)):
            frames = self.unpaired.get(key)
            if frames and rng.random() < self.p_unpaired:
                (image,) = self.random_crop(rng, frames[int(rng.integers(len(frames)))])
            tb, H, valid = s2_transform(image, rng, self.geometry)
            item.update({f"{key}_a": image, f"{key}_b": tb, f"{key}_U": H, f"{key}_valid_b": valid})
        return {k: torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32))[None] if v.ndim == 2 and k[-1] != "U"
                else torch.from_numpy(np.asarray(v, dtype=np.float32)) for k, v in item.items()}
