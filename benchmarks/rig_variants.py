"""Rig-like variants of registration pairs: two cameras with different pixel scales, a cropped
field of view and a little roll; does ``register`` still find the homography?

Each pair (visible a, IR b, ground truth H: a -> b) becomes, for a net scale ratio r (visible
pixels per IR pixel, relative to the pair as given): the visible image resized by sqrt(r), the IR
image seeing the central 80 % of its field, turned by a random roll within +-3 degrees (fixed
seed) and resampled at 1/sqrt(r) of its pixel density. ``rig`` is the issue's rig: the visible
camera at 1.6x, the IR at 0.8x of its density over the central 80 % (net r = 2), roll within
+-3 degrees. ``rot90`` turns the IR image by 90 degrees (nothing else). ``none`` is the pair as
given. The corner error is measured after mapping the estimate back to the pair as given (the
benchmark's corner error: visible corners, IR px), so every variant is on one scale.

Methods: ``plain`` = register's pipeline on the view as given (no scale/rotation search: what
``register`` did before scale handling; none, rig and rot90 only), ``auto`` = ``register`` with its defaults, ``hint`` =
``register(scale=r)``, ``any`` = ``register(rotation="any")`` (rot90 only).

    python benchmarks/rig_variants.py --data ../shared/data/roadscene --split val --out docs/eval/rig-variants-val
    python benchmarks/rig_variants.py --data ../shared/data/roadscene --split test --out docs/eval/rig-variants-test
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

import s2cv
from s2cv.evaluation.datasets import list_pairs, load_benchmark
from s2cv.feature.image import read_image
from s2cv.registration import search
from s2cv.registration.geometry import corner_error
from s2cv.registration.register import match_pair, register

RATIOS = (0.25, 0.5, 0.71, 1.0, 1.41, 2.0, 2.83, 4.0)
CROP = 0.8
ROLL_DEG = 3.0


def _vis_resize(a: np.ndarray, s: float) -> tuple[np.ndarray, np.ndarray]:
    h, w = a.shape[:2]
    size = (max(16, round(w * s)), max(16, round(h * s)))
    S = np.diag([size[0] / w, size[1] / h, 1.0])
    out = cv2.resize(a, size, interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
    return out, S


def _ir_view(b: np.ndarray, density: float, crop: float, roll_deg: float) -> tuple[np.ndarray, np.ndarray]:
    """The IR camera seeing the central ``crop`` of b's field, rolled, at ``density`` x its pixels."""
    h, w = b.shape[:2]
    out_w, out_h = max(16, round(w * crop * density)), max(16, round(h * crop * density))
    a = math.radians(roll_deg)
    R = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]]) * density
    c, c2 = np.array([(w - 1) / 2, (h - 1) / 2]), np.array([(out_w - 1) / 2, (out_h - 1) / 2])
    A = np.eye(3)
    A[:2, :2], A[:2, 2] = R, c2 - R @ c
    out = cv2.warpAffine(b, A[:2], (out_w, out_h), flags=cv2.INTER_AREA if density < 1 else cv2.INTER_LINEAR)
    return out, A


def make_variant(a: np.ndarray, b: np.ndarray, name: str, rng: np.random.Generator
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, float]:
    """(visible', IR', S: a -> a', A: b -> b', the net ratio) of one variant."""
    if name == "none":
        return a, b, np.eye(3), np.eye(3), 1.0
    if name == "rot90":
        R, _ = search._rotation_matrix(b.shape, 90)
        return a, np.ascontiguousarray(np.rot90(b)), np.eye(3), R, 1.0
    roll = float(rng.uniform(-ROLL_DEG, ROLL_DEG))
    if name == "rig":
        sv, si = 1.6, 0.8
    else:
        r = float(name)
        sv, si = math.sqrt(r), 1 / math.sqrt(r)
    a2, S = _vis_resize(a, sv)
    b2, A = _ir_view(b, si, CROP, roll)
    return a2, b2, S, A, sv / si


def pairs_of(data: Path, split: str) -> list[tuple[str, np.ndarray, np.ndarray, np.ndarray]]:
    if split == "test":
        return [(p.name, read_image(p.path_a), read_image(p.path_b), p.H) for p in load_benchmark("roadscene", data)]
    # validation: aligned held-out pairs under a fixed paper-range homography (as validation_set builds them)
    from s2cv.training.augment import GEOMETRIES, random_homography

    rng = np.random.default_rng(29)
    out = []
    for p in list_pairs("roadscene", data, "val"):
        a, b = read_image(p.path_a), read_image(p.path_b)
        H = random_homography(b.shape[:2], rng, GEOMETRIES["paper"])
        out.append((Path(p.name).stem, a, cv2.warpPerspective(b, H, (b.shape[1], b.shape[0])), H))
    return out


def run(data: Path, split: str, variants: list[str], det: cv2.Feature2D, only: set[str] | None = None) -> list[dict]:
    rows = []
    pairs = pairs_of(data, split)
    for variant in variants:
        rng = np.random.default_rng(1000 + sum(variant.encode()))  # per variant: a run of a subset draws the same rolls
        for name, a, b, H in tqdm(pairs, desc=f"variant {variant}", unit="pair"):
            a2, b2, S, A, r = make_variant(a, b, variant, rng)
            methods = {"plain": None, "auto": {}} if variant in ("none", "rig", "rot90") else {"auto": {}}
            if variant not in ("none", "rot90"):
                methods["hint"] = {"scale": r}
            if variant == "rot90":
                methods["any"] = {"rotation": "any"}
            for method, kw in methods.items():
                if only and method not in only:
                    continue
                t = time.perf_counter()
                res = match_pair(a2, b2, det)[0] if kw is None else register(a2, b2, det, **kw)
                ms = (time.perf_counter() - t) * 1e3
                err = math.inf
                if res.H is not None:
                    H_orig = np.linalg.inv(A) @ np.linalg.inv(res.H) @ S  # visible -> IR, pair as given
                    err = corner_error(H_orig, H, a.shape)
                rows.append({"variant": variant, "pair": name, "method": method, "ratio": r, "success": res.success,
                             "error": err if math.isfinite(err) else None, "ms": ms,
                             "predicted": res.predicted_error if math.isfinite(res.predicted_error) else None,
                             "view": res.view, "vis_size": list(a2.shape[:2]), "ir_size": list(b2.shape[:2])})
    return rows


def coarse_density(variant: str) -> float:
    """Pixel density of the variant's coarser image relative to the pair as given: an error in the
    pair's pixels times this is the error in the coarser camera's pixels (what register predicts)."""
    if variant in ("none", "rot90"):
        return 1.0
    if variant == "rig":
        return min(1.6, 0.8)
    return min(math.sqrt(float(variant)), 1 / math.sqrt(float(variant)))


def table(rows: list[dict]) -> str:
    ok = {(r["variant"], r["pair"], r["method"]): r["success"] and r["error"] is not None and r["error"] <= 10
          for r in rows}
    ok_coarse = {(r["variant"], r["pair"], r["method"]): r["success"] and r["error"] is not None
                 and r["error"] * coarse_density(r["variant"]) <= 10 for r in rows}
    base = {p for (v, p, m), good in ok.items() if v == "none" and m == "auto" and good}
    lines = ["| variant (net ratio) | method | registered within 10 px | of the pairs registered as given (auto) | "
             "reported > 10 px | within 10 px of the coarser camera | of the pairs registered as given | median ms |",
             "|---|---|---|---|---|---|---|---|"]
    variants = list(dict.fromkeys(r["variant"] for r in rows))
    for v in variants:
        for m in list(dict.fromkeys(r["method"] for r in rows if r["variant"] == v)):
            sel = [r for r in rows if r["variant"] == v and r["method"] == m]
            n_ok = sum(ok[(v, r["pair"], m)] for r in sel)
            kept = sum(ok[(v, p, m)] for p in base if (v, p, m) in ok)
            bad = sum(r["success"] and (r["error"] is None or r["error"] > 10) for r in sel)
            ratio = sel[0]["ratio"]
            n_c = sum(ok_coarse[(v, r["pair"], m)] for r in sel)
            kept_c = sum(ok_coarse[(v, p, m)] for p in base if (v, p, m) in ok_coarse)
            lines.append(f"| {v} ({ratio:.2f}) | {m} | {n_ok}/{len(sel)} ({100 * n_ok / len(sel):.0f} %) | "
                         f"{kept}/{len(base)} ({100 * kept / max(len(base), 1):.0f} %) | {bad} | "
                         f"{n_c}/{len(sel)} ({100 * n_c / len(sel):.0f} %) | "
                         f"{kept_c}/{len(base)} ({100 * kept_c / max(len(base), 1):.0f} %) | "
                         f"{np.median([r['ms'] for r in sel]):.0f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, required=True, help="RoadScene root")
    p.add_argument("--split", choices=("val", "test"), required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--variants", default="none,rig,0.25,0.5,0.71,1.41,2,4,rot90")
    p.add_argument("--model", default="default")
    p.add_argument("--merge", nargs="+", type=Path, help="only merge the results.json of these folders into --out")
    p.add_argument("--methods", help="comma-separated subset of plain,auto,hint,any")
    p.add_argument("--no-fine", action="store_true",
                   help="without the fine pass (the coarser image enlarged): what it adds, for the record")
    args = p.parse_args(argv)
    if args.no_fine:
        search.Detections.fine_pass = lambda self, result, view, log, fit, accepted: (result, view)
    if args.merge:
        rows = [r for folder in args.merge for r in json.loads((folder / "results.json").read_text())["rows"]]
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "results.json").write_text(json.dumps({"split": args.split, "model": args.model, "rows": rows},
                                                          indent=0))
        (args.out / "table.md").write_text(table(rows) + "\n")
        print(table(rows))
        return 0
    det = s2cv.S2Net_create(model=args.model)
    rows = run(args.data, args.split, args.variants.split(","), det, set(args.methods.split(",")) if args.methods else None)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps({"split": args.split, "model": args.model, "rows": rows}, indent=0))
    md = table(rows)
    (args.out / "table.md").write_text(md + "\n")
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
