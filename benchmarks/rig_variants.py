"""Rig-like variants of registration pairs: two cameras with different pixel scales, a cropped
field of view and a little roll; does ``register`` still find the homography?

Each pair (visible a, IR b, ground truth H: a -> b) becomes, for a net scale ratio r (visible
pixels per IR pixel, relative to the pair as given): the visible image resized by sqrt(r), the IR
image seeing the central 80 % of its field, turned by a random roll within +-3 degrees (fixed
seed) and resampled at 1/sqrt(r) of its pixel density. ``rig`` is the issue's rig: the visible
camera at 1.6x, the IR at 0.8x of its density over the central 80 % (net r = 2), roll within
+-3 degrees. ``rot90`` turns the IR image by 90 degrees (nothing else). ``none`` is the pair as
given. The corner error is measured where a rig user looks: at the THERMAL image's four corners,
mapped into the visible image by the estimate and by the truth (``corner_error`` with the thermal
image as image A), in visible px and, mapped back through the truth, in thermal px (the coarser
camera: the unit of ``predicted_error``). The earlier measure (the estimate mapped back to the
pair as given, the visible corners in original IR px: an extrapolation outside the cropped
thermal field) is kept for comparison (``error``).

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
from typing import Any, Callable

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


def roll_rng(variant: str) -> np.random.Generator:
    """The random stream of a variant's rolls: one per variant, so a run of a subset of the
    variants (or another script on the same pairs) draws the same rolls."""
    return np.random.default_rng(1000 + sum(variant.encode()))


def pairs_of(data: Path, split: str, draws: int = 1) -> list[tuple[str, np.ndarray, np.ndarray, np.ndarray]]:
    """The benchmark's test pairs, or the held-out validation pairs under a fixed paper-range
    homography (as validation_set builds them); ``draws`` > 1 warps each validation pair that many
    times (names ``stem#k``; the first draw is the single-draw set), for choices that 18 pairs
    cannot separate."""
    if split == "test":
        return [(p.name, read_image(p.path_a), read_image(p.path_b), p.H) for p in load_benchmark("roadscene", data)]
    from s2cv.training.augment import GEOMETRIES, random_homography

    out = []
    pairs = [(Path(p.name).stem, read_image(p.path_a), read_image(p.path_b)) for p in list_pairs("roadscene", data, "val")]
    for k in range(draws):
        rng = np.random.default_rng(29 if k == 0 else [29, k])
        for stem, a, b in pairs:
            H = random_homography(b.shape[:2], rng, GEOMETRIES["paper"])
            out.append((stem if k == 0 else f"{stem}#{k}", a, cv2.warpPerspective(b, H, (b.shape[1], b.shape[0])), H))
    return out


def thermal_corner_errors(H_est: np.ndarray, H: np.ndarray, S: np.ndarray, A: np.ndarray,
                          ir_shape: tuple[int, ...]) -> tuple[float, float]:
    """Corner error of an IR -> visible estimate (``register``'s H, the variant's pixels) at the
    THERMAL image's four corners: (visible px, thermal px). ``corner_error``'s convention with the
    thermal image as image A: its corners mapped into the visible image by the estimate and by the
    truth, distance in visible px; the thermal-px figure maps the estimate's points back through
    the true homography, so it is the same miss in the coarser (thermal) camera's pixels, the unit
    of ``predicted_error``. What a rig user sees: where the thermal frame lands."""
    G = S @ np.linalg.inv(H) @ np.linalg.inv(A)  # true IR' -> visible'
    err_vis = corner_error(H_est, G, ir_shape)
    err_ir = corner_error(np.linalg.inv(G) @ H_est, np.eye(3), ir_shape)
    return err_vis, err_ir


def run(data: Path, split: str, variants: list[str], det: cv2.Feature2D, only: set[str] | None = None,
        refine: bool = False, matcher: Any = None, draws: int = 1) -> list[dict]:
    """One row per pair, variant and method; ``refine``: ``register``'s dense refinement on;
    ``matcher``: ``register``'s matcher (None: mutual nearest neighbours)."""
    rows = []
    pairs = pairs_of(data, split, draws)
    for variant in variants:
        rng = roll_rng(variant)
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
                res = (match_pair(a2, b2, det, matcher=matcher)[0] if kw is None
                       else register(a2, b2, det, refine=refine, matcher=matcher, **kw))
                ms = (time.perf_counter() - t) * 1e3
                err = err_vis = err_ir = math.inf
                if res.H is not None:
                    H_orig = np.linalg.inv(A) @ np.linalg.inv(res.H) @ S  # visible -> IR, pair as given
                    err = corner_error(H_orig, H, a.shape)
                    err_vis, err_ir = thermal_corner_errors(res.H, H, S, A, b2.shape)
                fin = lambda e: e if math.isfinite(e) else None  # noqa: E731
                rows.append({"variant": variant, "pair": name, "method": method, "ratio": r, "success": res.success,
                             "error": fin(err), "error_tvis": fin(err_vis), "error_tir": fin(err_ir), "ms": ms,
                             "predicted": res.predicted_error if math.isfinite(res.predicted_error) else None,
                             "view": res.view, "vis_size": list(a2.shape[:2]), "ir_size": list(b2.shape[:2])})
    return rows


def _err(r: dict, key: str) -> float | None:
    """A row's error by ``key``; rows of the pair as given (``none``) written before the thermal-corner
    measure fall back on the benchmark's (visible corners, IR px), which is the same camera's pixels."""
    return r.get(key, r["error"]) if r["variant"] == "none" and r.get(key) is None else r.get(key)


def table(rows: list[dict]) -> str:
    """Registered within 10 px at the THERMAL image's corners (thermal px: the coarser camera, the unit
    of ``predicted_error``; and visible px), of the pairs ``auto`` registers as given (the benchmark's
    measure), how many fits reported registered are > 10 thermal px off, and the earlier measure
    (visible corners mapped back to the pair as given, original IR px) for comparison."""
    def good(r: dict, key: str) -> bool:
        e = _err(r, key)
        return bool(r["success"] and e is not None and e <= 10)
    base = {r["pair"] for r in rows if r["variant"] == "none" and r["method"] == "auto" and good(r, "error")}
    nb = max(len(base), 1)
    lines = ["| variant (net ratio) | method | within 10 thermal px (thermal corners) | of the pairs registered as given | "
             "within 10 visible px (thermal corners) | of the pairs registered as given | reported registered | "
             "of them > 10 thermal px | earlier measure: within 10 px (visible corners, IR px as given) | median ms |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for v in dict.fromkeys(r["variant"] for r in rows):
        for m in dict.fromkeys(r["method"] for r in rows if r["variant"] == v):
            sel = [r for r in rows if r["variant"] == v and r["method"] == m]
            n = len(sel)
            cells = []
            for key in ("error_tir", "error_tvis"):
                k = sum(good(r, key) for r in sel)
                kept = sum(good(r, key) for r in sel if r["pair"] in base)
                cells += [f"{k}/{n} ({100 * k / n:.0f} %)", f"{kept}/{len(base)} ({100 * kept / nb:.0f} %)"]
            rep = sum(bool(r["success"]) for r in sel)
            bad = sum(bool(r["success"]) and not good(r, "error_tir") for r in sel)
            old = sum(good(r, "error") for r in sel)
            lines.append(f"| {v} ({sel[0]['ratio']:.2f}) | {m} | " + " | ".join(cells) + f" | {rep} | {bad} | "
                         f"{old}/{n} ({100 * old / n:.0f} %) | {np.median([r['ms'] for r in sel]):.0f} |")
    return "\n".join(lines)


def limits_table(rows: list[dict], limits: tuple[float, ...] = (4, 6, 8, 11)) -> str:
    """How trustworthy ``success`` is on the off-scale variants: of the ``auto`` fits reported
    registered, with ``predicted_error`` <= each limit (11: the shipped ``max_error``), how many
    are > 10 / > 20 thermal px off at the thermal corners."""
    lines = ["| variant | max_error px | reported registered | within 10 thermal px | > 10 | > 20 (worst px) |",
             "|---|---|---|---|---|---|"]
    for v in dict.fromkeys(r["variant"] for r in rows if r["variant"] != "none"):
        sel = [r for r in rows if r["variant"] == v and r["method"] == "auto" and r["success"]]
        for limit in limits:
            e = [r["error_tir"] if r.get("error_tir") is not None else math.inf for r in sel
                 if r["predicted"] is not None and r["predicted"] <= limit]
            over20 = [x for x in e if x > 20]
            lines.append(f"| {v} | {limit:g} | {len(e)} | {sum(x <= 10 for x in e)} | {sum(x > 10 for x in e)} | "
                         f"{len(over20)}{f' ({max(over20):.0f})' if over20 else ''} |")
    return "\n".join(lines)


def check_draws(p: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """--draws is at least 1, and above 1 only for the validation split (the test pairs are fixed)."""
    if args.draws < 1 or (args.draws > 1 and args.split != "val"):
        p.error("--draws must be >= 1, and more than one draw is for --split val only")


def rig_pairs_main(doc: str, field: str, per_pair: Callable[..., Any], table_of: Callable[[list[dict]], str],
                   argv: list[str] | None = None) -> int:
    """The command line of a benchmark that measures each ``rig`` variant pair (same pairs and
    rolls as here): ``per_pair(detector, visible', IR', H, S, A)`` gives the row's ``field``;
    results.json and ``table_of(rows)`` (table.md) go to --out."""
    p = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    p.add_argument("--data", type=Path, required=True, help="RoadScene root")
    p.add_argument("--split", choices=("val", "test"), required=True)
    p.add_argument("--draws", type=int, default=1, help="validation only: homography draws per pair (as rig_variants.py)")
    p.add_argument("--model", default="default")
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    check_draws(p, args)
    det = s2cv.S2Net_create(model=args.model)
    rng = roll_rng("rig")
    rows = []
    for name, a, b, H in tqdm(pairs_of(args.data, args.split, args.draws), desc=f"rig {field}", unit="pair"):
        a2, b2, S, A, _ = make_variant(a, b, "rig", rng)
        rows.append({"pair": name, field: per_pair(det, a2, b2, H, S, A)})
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps({"split": args.split, "model": args.model, "rows": rows}))
    md = table_of(rows)
    (args.out / "table.md").write_text(md + "\n")
    print(md)
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, required=True, help="RoadScene root")
    p.add_argument("--split", choices=("val", "test"), required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--variants", default="none,rig,0.25,0.5,0.71,1.41,2,4,rot90")
    p.add_argument("--model", default="default")
    p.add_argument("--draws", type=int, default=1,
                   help="validation only: warp each pair this many times (18 x draws cases; the first draw is --draws 1's)")
    p.add_argument("--merge", nargs="+", type=Path, help="only merge the results.json of these folders into --out "
                   "(a later folder's rows replace an earlier folder's of the same variant and method)")
    p.add_argument("--methods", help="comma-separated subset of plain,auto,hint,any")
    p.add_argument("--no-fine", action="store_true",
                   help="without the fine pass (the coarser image enlarged): what it adds, for the record")
    p.add_argument("--no-rescale", action="store_true",
                   help="without matching again at an accepted scale-1 fit's own scale (search.RESCALE_MIN): "
                        "what it adds, for the record")
    p.add_argument("--refine", action="store_true", help="register with the dense refinement (refine=True): for the record")
    p.add_argument("--multiscale", action="store_true",
                   help="the detector's image pyramid (S2Net_create(multiscale=True)): for the record")
    p.add_argument("--matcher", choices=("mnn", "glue"), default="mnn",
                   help="register's matcher; glue = S2Glue_create() with the detector it was trained for "
                        "(--model is then ignored)")
    p.add_argument("--search-split", type=float, default=None,
                   help="every searched view (stage 2 on) at this split, 0 = the finer image shrunk, 1 = the coarser "
                        "enlarged, 0.5 = both meet halfway: what the search's choice of split does, for the record")
    args = p.parse_args(argv)
    check_draws(p, args)
    if args.search_split is not None:
        plain_stages, split = search.stages, args.search_split

        def stages(hint: float | None, rotation: str) -> list[list[search.View]]:
            plan = plain_stages(hint, rotation)
            return [plan[0]] + [[search.View(v.ratio, v.rotation, split if abs(v.ratio - 1.0) > 1e-9 else 0.0)
                                 for v in stage] for stage in plan[1:]]
        search.stages = stages
    if args.no_rescale:
        search.RESCALE_MIN = math.inf
    if args.no_fine:
        search.Detections.fine_pass = lambda self, result, view, tried, fit, accepted: (result, view)
    if args.merge:
        merged: dict[tuple[str, str], list[dict]] = {}  # a later folder's rows replace an earlier's (variant, method)
        for folder in args.merge:
            got: dict[tuple[str, str], list[dict]] = {}
            for r in json.loads((folder / "results.json").read_text())["rows"]:
                got.setdefault((r["variant"], r["method"]), []).append(r)
            merged.update(got)
        keep_v, keep_m = set(args.variants.split(",")), set(args.methods.split(",")) if args.methods else None
        rows = [r for (v, m), group in merged.items() if v in keep_v and (keep_m is None or m in keep_m) for r in group]
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "results.json").write_text(json.dumps({"split": args.split, "model": args.model, "rows": rows},
                                                          indent=0))
        md = table(rows) + "\n\n" + limits_table(rows)
        (args.out / "table.md").write_text(md + "\n")
        print(md)
        return 0
    matcher = s2cv.S2Glue_create() if args.matcher == "glue" else None
    if matcher is not None:
        args.model = matcher.det_model
    det = s2cv.S2Net_create(model=args.model, multiscale=args.multiscale)
    rows = run(args.data, args.split, args.variants.split(","), det, set(args.methods.split(",")) if args.methods else None,
               refine=args.refine, matcher=matcher, draws=args.draws)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps({"split": args.split, "model": args.model, "rows": rows}, indent=0))
    md = table(rows) + "\n\n" + limits_table(rows)
    (args.out / "table.md").write_text(md + "\n")
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
