"""Robustness of a detector to how thermal frames reach users: palette and bit depth.

Evaluates on the RoadScene benchmark pairs three ways, with the thermal side
(1) as shipped (8-bit white-hot), (2) inverted (black-hot palette), and (3) as a 16-bit
radiometric-like frame using only 7000-9040 of the 16-bit range (8-bit value x 8 + 7000),
written as 16-bit PNGs in the ``pairs`` layout and read back by ``s2cv.evaluate``. OpenCV's
detectors refuse 16-bit input, so only s2cv methods run on variant (3).

    python benchmarks/robustness.py --data DATA/roadscene --methods s2net,sift --k 1024
"""
from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import cv2
import numpy as np

from s2cv.evaluation.benchmark import evaluate
from s2cv.evaluation.datasets import load_pairs, load_roadscene
from s2cv.evaluation.metrics import aggregate
from s2cv.evaluation.report import markdown_table
from s2cv.feature.image import read_image

VARIANTS = {
    "white-hot 8-bit": lambda ir: ir,
    "black-hot 8-bit": lambda ir: 255 - ir,
    "16-bit narrow band": lambda ir: ir.astype(np.uint16) * 8 + 7000,
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, required=True, help="RoadScene folder (with test/)")
    p.add_argument("--methods", default="s2net,sift")
    p.add_argument("--k", type=int, default=1024)
    args = p.parse_args()
    pairs = load_roadscene(args.data)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for variant, change in VARIANTS.items():
            d = Path(tmp) / variant.replace(" ", "_")
            d.mkdir()
            for pair in pairs:
                cv2.imwrite(str(d / f"{pair.name}_a.png"), read_image(pair.path_a))
                ir = read_image(pair.path_b)
                cv2.imwrite(str(d / f"{pair.name}_b.png"), change(ir if ir.ndim == 2 else cv2.cvtColor(ir, cv2.COLOR_BGR2GRAY)))
            (d / "homographies.json").write_text(json.dumps({p.name: p.H.tolist() for p in pairs}))
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
