"""Time of ``register`` per 640x480 pair: the defaults, and what the scale/rotation options cost.

Pairs: RoadScene validation pairs (every tenth aligned training pair), both images resized to
640x480; ``rot90`` turns the thermal image by 90 degrees (what ``rotation="any"`` is for), ``2x``
doubles the visible image (1280x960, what the automatic scale search is for). The model is loaded
once, outside the timing; each setting runs ``--rounds`` times over the pairs, settings alternated
within a round so they share the machine's load; medians over all runs.

    python benchmarks/register_time.py --data ../shared/data/roadscene --pairs 8 --rounds 2
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import cv2
import numpy as np

import s2cv
from s2cv.evaluation.datasets import list_pairs
from s2cv.feature.image import read_image
from s2cv.registration.register import match_pair, register

SETTINGS = {
    "register() defaults": ("plain", {}),
    "pipeline without scale search (before)": ("plain", None),
    "rotation='any' (pair as given)": ("plain", {"rotation": "any"}),
    "refine=True": ("plain", {"refine": True}),
    "defaults, IR turned 90 deg (fails: no rotation search)": ("rot90", {}),
    "rotation='any', IR turned 90 deg": ("rot90", {"rotation": "any"}),
    "defaults, visible 2x (1280x960, found by the scale search)": ("2x", {}),
    "scale=2 hint, visible 2x": ("2x", {"scale": 2.0}),
}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--pairs", type=int, default=8)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--out", type=Path)
    args = p.parse_args(argv)
    det = s2cv.S2Net_create()
    pairs = []
    for pair in list_pairs("roadscene", args.data, "val")[:args.pairs]:
        a = cv2.resize(read_image(pair.path_a), (640, 480), interpolation=cv2.INTER_AREA)
        b = cv2.resize(read_image(pair.path_b), (640, 480), interpolation=cv2.INTER_AREA)
        pairs.append({"plain": (a, b), "rot90": (a, np.ascontiguousarray(np.rot90(b))),
                      "2x": (cv2.resize(a, (1280, 960)), b)})
    register(*pairs[0]["plain"], det)  # warm-up
    times: dict[str, list[float]] = {k: [] for k in SETTINGS}
    success: dict[str, list[bool]] = {k: [] for k in SETTINGS}
    for _ in range(args.rounds):
        for pr in pairs:
            for name, (kind, kw) in SETTINGS.items():
                t = time.perf_counter()
                res = match_pair(*pr[kind], det)[0] if kw is None else register(*pr[kind], det, **kw)
                times[name].append((time.perf_counter() - t) * 1e3)
                success[name].append(res.success)
    load = os.getloadavg()[0]
    lines = [f"| setting (640x480 pairs, {len(pairs)} pairs x {args.rounds} rounds, load {load:.1f}) | median ms | "
             "registered |", "|---|---|---|"]
    for name in SETTINGS:
        lines.append(f"| {name} | {np.median(times[name]):.0f} | {sum(success[name])}/{len(success[name])} |")
    print("\n".join(lines))
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "results.json").write_text(json.dumps({"ms": times, "success": success, "load": load}, indent=0))
        (args.out / "table.md").write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
