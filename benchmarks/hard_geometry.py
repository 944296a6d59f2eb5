"""Hard-geometry variants of benchmark pairs: what users' rigs add to the near-identity test sets.

Each pair's infrared/NIR image is moved once more by a random homography of the ``hard`` range
(s2cv.training.augment.GEOMETRIES: rotation up to ±30°, scale 0.7-1.3 log-uniform, perspective up to 0.2,
about the image centre; a fixed seed, so every run builds the same set), and the ground truth is
composed with it. The result is a folder in the ``pairs`` layout of ``s2cv.evaluate``:

    python benchmarks/hard_geometry.py --dataset roadscene --data ../shared/data/roadscene --out runs/hard/roadscene
    python -m s2cv.evaluate --dataset pairs --data runs/hard/roadscene --methods s2net,sift --k 1024,4096

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

from s2cv.evaluation.datasets import load_benchmark
from s2cv.feature.image import read_image
from s2cv.training.augment import GEOMETRIES, random_homography


def build(dataset: str, data: Path, out: Path, seed: int = 0) -> int:
    pairs = load_benchmark(dataset, data)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    truth = {}
    for pair in tqdm(pairs, desc=f"hard-geometry {dataset}"):
        a, b = read_image(pair.path_a), read_image(pair.path_b)
        G = random_homography(b.shape[:2], rng, GEOMETRIES["hard"])
        name = pair.name.replace("/", "_")
        cv2.imwrite(str(out / f"{name}_a.png"), a)
        cv2.imwrite(str(out / f"{name}_b.png"), cv2.warpPerspective(b, G, (b.shape[1], b.shape[0])))
        H = G @ pair.H
        truth[name] = (H / H[2, 2]).tolist()
    (out / "homographies.json").write_text(json.dumps(truth, indent=1))
    return len(truth)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", choices=["roadscene", "visnir"], required=True)
    p.add_argument("--data", type=Path, required=True, help="the data set's folder (its test pairs are read)")
    p.add_argument("--out", type=Path, required=True, help="folder to write (pairs layout)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    n = build(args.dataset, args.data, args.out, args.seed)
    print(f"wrote {n} pairs to {args.out}; evaluate with: python -m s2cv.evaluate --dataset pairs --data {args.out}")


if __name__ == "__main__":
    main()
