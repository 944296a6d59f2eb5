"""Hard-geometry variants of benchmark pairs: what users' rigs add to the near-identity test sets.

Each pair's infrared/NIR image is moved once more by a random homography of the ``hard`` range
(s2cv.training.augment.GEOMETRIES: rotation up to ±30°, scale 0.7-1.3 log-uniform, perspective up to 0.2,
about the image centre; a fixed seed, so every run builds the same set), and the ground truth is
composed with it. The result is a folder in the ``pairs`` layout of ``s2cv.evaluate``:

    python benchmarks/hard_geometry.py --dataset roadscene --data ../shared/data/roadscene --out runs/hard/roadscene
    python -m s2cv.evaluate --dataset pairs --data runs/hard/roadscene --methods s2net,sift --k 1024,4096

A folder of aligned pairs (``--dataset folder``, e.g. LLVIP's) becomes a benchmark the same way, from
the identity; ``--geometry paper`` draws the training range instead (rotation ±10°, scale 1-1.2):

    python benchmarks/hard_geometry.py --dataset folder --data ../shared/data/llvip/train --max-side 640 \
        --out runs/hard/llvip

Upside-down pairs (rotations beyond ±90°) are out of range on purpose: none of s2cv's networks is
rotation invariant, and a camera rig is not mounted that way.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from s2cv.evaluation.datasets import BENCHMARK_LAYOUTS, Pair, list_pairs, load_benchmark
from s2cv.feature.image import read_image, shrink_to
from s2cv.training.augment import GEOMETRIES, random_homography


def _pairs(dataset: str, data: Path) -> list[Pair]:
    """Benchmark pairs with their homographies, or aligned training-layout pairs (identity)."""
    if dataset in BENCHMARK_LAYOUTS:
        return load_benchmark(dataset, data)
    return [Pair(p.name, p.path_a, p.path_b, np.eye(3)) for p in list_pairs(dataset, data, split="all")]


def _shrunk(img: np.ndarray, max_side: int | None) -> tuple[np.ndarray, np.ndarray]:
    """The image at most max_side px long, and the scaling that maps its old pixels to the new."""
    if max_side is None:
        return img, np.eye(3)
    img, s = shrink_to(img, max_side)
    return img, np.diag([s, s, 1.0])


def build(dataset: str, data: Path, out: Path, seed: int = 0, geometry: str = "hard",
          max_side: int | None = None) -> int:
    pairs = _pairs(dataset, data)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    truth = {}
    for pair in tqdm(pairs, desc=f"{geometry}-geometry {dataset}"):
        (a, Sa), (b, Sb) = _shrunk(read_image(pair.path_a), max_side), _shrunk(read_image(pair.path_b), max_side)
        G = random_homography(b.shape[:2], rng, GEOMETRIES[geometry])
        name = pair.name.replace("/", "_")
        cv2.imwrite(str(out / f"{name}_a.png"), a)
        cv2.imwrite(str(out / f"{name}_b.png"), cv2.warpPerspective(b, G, (b.shape[1], b.shape[0])))
        H = G @ Sb @ pair.H @ np.linalg.inv(Sa)
        truth[name] = (H / H[2, 2]).tolist()
    (out / "homographies.json").write_text(json.dumps(truth, indent=1))
    return len(truth)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", choices=["roadscene", "visnir", "folder"], required=True)
    p.add_argument("--data", type=Path, required=True,
                   help="the data set's folder (its test pairs are read; every pair of a 'folder')")
    p.add_argument("--geometry", choices=["hard", "paper"], default="hard")
    p.add_argument("--out", type=Path, required=True, help="folder to write (pairs layout)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-side", type=int, help="shrink larger images first (LLVIP's 1280x1024 frames: 640, as validation)")
    args = p.parse_args()
    n = build(args.dataset, args.data, args.out, args.seed, args.geometry, args.max_side)
    print(f"wrote {n} pairs to {args.out}; evaluate with: python -m s2cv.evaluate --dataset pairs --data {args.out}")


if __name__ == "__main__":
    main()
