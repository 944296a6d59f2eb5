"""Helpers shared by the test modules: synthetic images, a tiny untrained network, the bundled
sample pair, pair folders on disk.

pytest loads this file before the test modules; they import the helpers with
``from conftest import ...``. torch and the training extras are imported inside the helpers that
need them, so torch-free test modules can use the rest.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from s2cv.registration.register import SAMPLES

if TYPE_CHECKING:
    import torch


# ---------------------------------------------------------------- synthetic images


def textured_image(h: int = 240, w: int = 320, seed: int = 1) -> np.ndarray:
    """Colour image of blobs and boxes: plenty of repeatable corners for SIFT."""
    rng = np.random.default_rng(seed)
    img = cv2.GaussianBlur(rng.integers(0, 255, (h, w, 3), dtype=np.uint8), (0, 0), 2)
    for _ in range(150):
        colour = tuple(int(c) for c in rng.integers(0, 255, 3))
        x, y = int(rng.integers(0, w)), int(rng.integers(0, h))
        if rng.random() < 0.5:
            cv2.circle(img, (x, y), int(rng.integers(4, 20)), colour, -1)
        else:
            size = rng.integers(5, 30, 2)
            cv2.rectangle(img, (x, y), (x + int(size[0]), y + int(size[1])), colour, -1)
    return img


def smooth_noise(shape: tuple[int, int], rng: np.random.Generator, sigma: float = 2.0) -> np.ndarray:
    """Blurred uniform noise stretched to exactly 0..1 (float32): texture everywhere, no flat areas.

    Takes the generator (not a seed) so callers can keep drawing from the same stream.
    """
    img = cv2.GaussianBlur(rng.random(shape).astype(np.float32), (0, 0), sigma)
    return (img - img.min()) / (img.max() - img.min())


def warped_pair(size: int = 64, seed: int = 0
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """A training pair as the losses take it: image, its warp by a random homography, the homography
    and both validity masks, each (1, 1, size, size) (the homography (1, 3, 3))."""
    import torch

    from s2cv.training.augment import random_homography, warp

    rng = np.random.default_rng(seed)
    img = smooth_noise((size, size), rng, sigma=1.5)
    H = random_homography(img.shape, rng)
    out, valid = warp(img, H)

    def t(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(a, np.float32))[None, None]

    return t(img), t(out), torch.from_numpy(H).float()[None], torch.ones(1, 1, size, size), t(valid)


# ---------------------------------------------------------------- networks


def untrained_net(arch: str = "fast", seed: int = 0) -> torch.nn.Module:
    """A randomly initialised network in eval mode, the same weights for the same seed."""
    import torch

    from s2cv.models import build_model

    torch.manual_seed(seed)
    return build_model(arch).eval()


# ---------------------------------------------------------------- bundled samples


def read_sample(name: str = "roadscene", side: str = "vis", flags: int = cv2.IMREAD_COLOR) -> np.ndarray:
    """One image of a bundled pair (s2cv/samples), read by cv2.imread with ``flags``."""
    return cv2.imread(str(SAMPLES[name][{"vis": 0, "ir": 1}[side]]), flags)


# ---------------------------------------------------------------- files on disk


def write_pair(d: Path, vis: np.ndarray, ir: np.ndarray, vis_name: str = "vis.png",
               ir_name: str = "ir.png") -> tuple[str, str]:
    """Write one visible/IR pair into folder ``d``; returns the two paths as strings (CLI arguments)."""
    d.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(d / vis_name), vis) and cv2.imwrite(str(d / ir_name), ir)
    return str(d / vis_name), str(d / ir_name)


def write_folders(root: Path, frames, names=None, ir_ext: str = ".png") -> tuple[Path, Path]:
    """Write (visible, IR) frames as root/vis/<name>.png and root/ir/<name><ir_ext>
    (names default to frame_0, frame_1, ...); returns the two folders."""
    vis_dir, ir_dir = root / "vis", root / "ir"
    vis_dir.mkdir(parents=True, exist_ok=True)
    ir_dir.mkdir(parents=True, exist_ok=True)
    for i, (vis, ir) in enumerate(frames):
        name = names[i] if names else f"frame_{i}"
        assert cv2.imwrite(str(vis_dir / f"{name}.png"), vis) and cv2.imwrite(str(ir_dir / f"{name}{ir_ext}"), ir)
    return vis_dir, ir_dir


def make_folder(root: Path, n: int = 12, size: int = 96) -> Path:
    """A tiny aligned 'vis'/'ir' training set (``--dataset folder``): blurred noise and its inverted,
    gamma-changed copy, named p00, p01, ..."""
    rng = np.random.default_rng(0)
    frames = []
    for _ in range(n):
        img = smooth_noise((size, size + 20), rng)
        frames.append(((img * 255).astype(np.uint8), ((1 - img) ** 1.5 * 255).astype(np.uint8)))
    write_folders(root, frames, names=[f"p{i:02d}" for i in range(n)])
    return root
