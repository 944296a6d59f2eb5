"""PNG grid of the pseudo-modality families (``s2cv.training.pseudo``) on the bundled sample pair.

Row 1: the visible and thermal sample as the network sees them, then the chain of families that
one SSL pair may get; rows 2-3: each family alone on the visible image, three random draws each.

    python benchmarks/pseudo_grid.py --out docs/images/pseudo_modalities.png
"""
from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from s2cv.feature.image import read_gray
from s2cv.training.pseudo import FAMILIES, pseudo_modality

SAMPLES = Path(__file__).resolve().parents[1] / "s2cv" / "samples"


def tile(image: np.ndarray, label: str, size: int = 220) -> np.ndarray:
    """A square 8-bit tile with a caption bar."""
    h, w = image.shape
    s = size / max(h, w)
    small = cv2.resize(image, (round(w * s), round(h * s)), interpolation=cv2.INTER_AREA)
    canvas = np.full((size + 22, size), 255, np.uint8)
    y, x = 22 + (size - small.shape[0]) // 2, (size - small.shape[1]) // 2
    canvas[y:y + small.shape[0], x:x + small.shape[1]] = np.clip(small * 255 + 0.5, 0, 255).astype(np.uint8)
    cv2.putText(canvas, label, (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, 0, 1, cv2.LINE_AA)
    return canvas


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=Path("docs/images/pseudo_modalities.png"))
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    vis, ir = read_gray(SAMPLES / "roadscene_vis.png"), read_gray(SAMPLES / "roadscene_ir.png")
    rng = np.random.default_rng(args.seed)
    head = [tile(vis, "visible (input)"), tile(ir, "real thermal")]
    head += [tile(pseudo_modality(vis, rng, tuple(FAMILIES)), f"random chain {i + 1}") for i in range(len(FAMILIES) - 2)]
    rows = [np.hstack(head)]
    names = list(FAMILIES)
    for draw in range(3):
        rows.append(np.hstack([tile(np.clip(FAMILIES[n](vis, rng), 0, 1), f"{n} #{draw + 1}") for n in names]))
    grid = np.vstack(rows)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(args.out), grid)
    print(f"wrote {args.out} ({grid.shape[1]}x{grid.shape[0]})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
