"""Robustness of a detector to how thermal frames reach users: palette, bit depth, image size.

Evaluates on the RoadScene benchmark pairs with the thermal side (1) as shipped (8-bit
white-hot), (2) inverted (black-hot palette), (3) as a 16-bit radiometric-like frame using only
7000-9040 of the 16-bit range (8-bit value x 8 + 7000), and with both images resized (4) to half
and (5) to twice their size (on average 292x512 px as shipped, so ~146x256 and ~584x1024; the
homography follows).
Each variant is written in the ``pairs`` layout (16-bit PNGs for (3)) and read back by
``s2cv.evaluate``. OpenCV's detectors refuse 16-bit input, so only s2cv methods run on (3).
Corner errors are in the pixels of the resized images.

    python benchmarks/robustness.py --data DATA/roadscene --methods s2net,sift --k 1024
"""
from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from s2cv.evaluate import evaluate, load_pairs, load_roadscene, markdown_table, read_image
from s2cv.metrics import aggregate

Variant = Callable[[np.ndarray, np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray, np.ndarray]]


def resized(scale: float) -> Variant:
    """Both images scaled by ``scale``; H (visible -> thermal pixels) conjugated to match
    (pixel centres: x' = scale * (x + 0.5) - 0.5)."""
    S = np.array([[scale, 0, 0.5 * scale - 0.5], [0, scale, 0.5 * scale - 0.5], [0, 0, 1]])

    def change(vis: np.ndarray, ir: np.ndarray, H: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
        vis, ir = (cv2.resize(x, None, fx=scale, fy=scale, interpolation=interp) for x in (vis, ir))
        return vis, ir, S @ H @ np.linalg.inv(S)

    return change


VARIANTS: dict[str, Variant] = {
    "white-hot 8-bit": lambda vis, ir, H: (vis, ir, H),
    "black-hot 8-bit": lambda vis, ir, H: (vis, 255 - ir, H),
    "16-bit narrow band": lambda vis, ir, H: (vis, ir.astype(np.uint16) * 8 + 7000, H),
    "half size": resized(0.5),
    "double size": resized(2.0),
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, required=True, help="RoadScene folder (with test/)")
    p.add_argument("--methods", default="s2net,sift")
    p.add_argument("--k", type=int, default=1024)
    p.add_argument("--variants", default=",".join(VARIANTS), help=f"comma list of: {', '.join(VARIANTS)}")
    args = p.parse_args()
    unknown = set(args.variants.split(",")) - set(VARIANTS)
    if unknown:
        p.error(f"unknown variants {sorted(unknown)}; choose from {list(VARIANTS)}")
    pairs = load_roadscene(args.data)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for variant in args.variants.split(","):
            d = Path(tmp) / variant.replace(" ", "_")
            d.mkdir()
            homographies = {}
            for pair in pairs:
                ir = read_image(pair.path_b)
                ir = ir if ir.ndim == 2 else cv2.cvtColor(ir, cv2.COLOR_BGR2GRAY)
                vis, ir, homographies[pair.name] = VARIANTS[variant](read_image(pair.path_a), ir, pair.H)
                cv2.imwrite(str(d / f"{pair.name}_a.png"), vis)
                cv2.imwrite(str(d / f"{pair.name}_b.png"), ir)
            (d / "homographies.json").write_text(json.dumps({n: H.tolist() for n, H in homographies.items()}))
            methods = args.methods.split(",")
            if "16-bit" in variant:  # OpenCV's detectors reject 16-bit images outright
                methods = [m for m in methods if m.startswith("s2net")]
            summary = aggregate(evaluate(load_pairs(d), methods, [args.k], progress=False))
            for row in summary:
                row["method"] = f"{row['method']} ({variant})"
            rows += summary
    print(markdown_table(rows))


if __name__ == "__main__":
    main()
