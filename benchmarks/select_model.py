"""Choose a default model by the generalisation rule, on validation pairs only (issue 25).

Every model is measured on the trainer's validation sets (``s2cv.training.loop.validation_set``:
the held-out pairs of each training camera, and every pair of a camera held out of training,
each warped by a fixed random homography of the paper's range and, separately, of the hard
range), at K keypoints, with the trainer's own metrics (``validation_metrics``: mutual-NN
matches, the homography fit, its corner error). Per camera it counts the pairs registered
within 10 px.

With ``--rig ROADSCENE`` one more column: RoadScene's 18 validation pairs as a two-camera rig
(``rig_variants.py``'s ``rig`` variant: visible camera at 1.6x, thermal at 0.8x over the central
80 % of its field, roll within +-3 degrees), registered by ``register``'s defaults (scale search)
within 10 thermal px at the thermal corners: a default must keep the rigs of issue 29 too.

The rule: a candidate replaces the reference only if, on every camera and geometry, it
registers at least as many pairs as the reference minus ``--slack`` (one pair), and more pairs
in total. The table and the verdict are printed and written to ``OUT/selection.{md,json}``.

``--seed 3,4,5`` draws every validation pair's homographies once per seed and sums the counts
(one fixed draw moves a reading by several pairs between checkpoints; the slack is then one pair
per draw). ``--candidate-floors 0,1,4`` measures each candidate at each contrast floor (one row
each), so a candidate is judged at the floor it would ship with (it travels in its conf), while the
reference runs as shipped.

    D=../shared/data
    python benchmarks/select_model.py --reference default --models s2fast,s2xfeat,runs/x/best.pt \
        --data roadscene=$D/roadscene --data visnir=$D/visnir --val-data folder=$D/llvip/train --out runs/select
"""
from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

import torch
from tqdm import tqdm

import rig_variants
from s2cv.evaluation.datasets import list_pairs
from s2cv.feature.feature2d import S2NetFeature2D
from s2cv.models.checkpoint import load_model
from s2cv.training.augment import GEOMETRIES
from s2cv.training.loop import camera_metrics, camera_of, source_of, validation_set


def validation_groups(sources: list, held: list, n: int, seed: int) -> dict[str, list]:
    """The validation items of every camera under the paper's and the hard homography range."""
    return {"paper": validation_set(sources, n, seed, held_out=held),
            "hard": validation_set(sources, n, seed, GEOMETRIES["hard"], held)}


def validation_detector(model: str, k: int, **params: float) -> S2NetFeature2D:
    """The detector every validation count uses: the checkpoint on torch, K keypoints (``params``:
    the detector's, e.g. ``contrast_floor``)."""
    return S2NetFeature2D(load_model(model)[0], backend="torch", nfeatures=k, **params)


def measure(det: S2NetFeature2D, groups: dict[str, list]) -> dict[str, dict[str, float]]:
    """Per 'geometry/camera': pairs registered within 10 px and mean mutual-NN correct matches."""
    out = {}
    for geometry, items in groups.items():
        feats = [(det.detectAndCompute(a, None), det.detectAndCompute(b, None))
                 for _, a, b, _ in tqdm(items, desc=geometry, leave=False)]
        metrics = camera_metrics(items, feats, geometry)
        for cam, n in sorted(Counter(camera_of(name) for name, *_ in items).items()):
            out[f"{geometry}/{cam}"] = {"reg10": int(round(metrics[f"{geometry}_{cam}_reg10"] * n)),
                                        "ncm": metrics[f"{geometry}_{cam}_ncm"]}
    return out


def rig_registered(det: S2NetFeature2D, roadscene: Path) -> int:
    """RoadScene validation pairs as a 2x rig registered within 10 thermal px by ``register``."""
    rows = rig_variants.run(roadscene, "val", ["rig"], det, {"auto"})
    return sum(bool(r["success"] and r["error_tir"] is not None and r["error_tir"] <= 10) for r in rows)


def registered(model: str, draws: list[dict[str, list]], k: int, rig: Path | None = None,
               **params: float) -> dict[str, int]:
    """Pairs within 10 px per 'geometry/camera', summed over the homography ``draws`` (one
    ``validation_groups`` per seed), and 'rig/roadscene' with ``rig``, for one model (``params``:
    ``validation_detector``'s)."""
    det = validation_detector(model, k, **params)
    counts: Counter = Counter()
    for groups in draws:
        counts.update({key: int(v["reg10"]) for key, v in measure(det, groups).items()})
    counts = dict(counts)
    if rig is not None:
        counts["rig/roadscene"] = rig_registered(det, rig)
    return counts


def verdict(candidate: dict[str, int], reference: dict[str, int], slack: dict[str, int]) -> tuple[bool, str]:
    """The rule: no camera loses more than its ``slack`` pairs, and the total rises."""
    losses = [f"{key} {candidate[key]} vs {reference[key]}" for key in reference
              if candidate[key] < reference[key] - slack[key]]
    gain = sum(candidate.values()) - sum(reference.values())
    if losses:
        return False, "loses on " + ", ".join(losses)
    if gain <= 0:
        return False, f"no gain overall ({gain:+d} pairs)"
    return True, f"wins overall by {gain} pairs and loses on no camera"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--reference", default="default", help="the model a candidate must beat (zoo name or checkpoint)")
    p.add_argument("--models", required=True, help="comma list of candidates (zoo names or checkpoints)")
    p.add_argument("--data", action="append", required=True, metavar="KIND=PATH", help="training cameras")
    p.add_argument("--val-data", action="append", default=[], metavar="KIND=PATH", help="held-out cameras")
    p.add_argument("--val-pairs", type=int, default=12)
    p.add_argument("--seed", type=lambda v: [int(x) for x in v.split(",")], default=[3],
                   help="the validation homographies' seed (the run's --seed); a comma list draws each pair's "
                        "homographies once per seed and sums the counts (the slack grows with them)")
    p.add_argument("--k", type=int, default=4096)
    p.add_argument("--slack", type=int, default=1)
    p.add_argument("--contrast-floor", type=float, help="the detector's contrast floor for every model, in grey levels "
                   "of 255 (default: the detector's own, 4)")
    p.add_argument("--candidate-floors", type=lambda v: [float(x) for x in v.split(",")],
                   help="comma list of contrast floors (grey levels) to measure every candidate at, one row each; "
                        "the reference runs as shipped (or at --contrast-floor): a candidate's own floor is chosen here")
    p.add_argument("--rig", type=Path, metavar="ROADSCENE", help="add the rig column (RoadScene root)")
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args()
    torch.set_num_threads(1)
    sources = [source_of(d, "roadscene") for d in args.data]
    held = [source_of(d, "folder") for d in args.val_data]
    draws = [validation_groups(sources, held, args.val_pairs, seed) for seed in args.seed]
    params = {} if args.contrast_floor is None else {"contrast_floor": args.contrast_floor / 255}
    entries = [(args.reference, args.reference, params)]  # (row label, model, detector params)
    for m in (m for m in args.models.split(",") if m):
        entries += ([(f"{m} @ floor {g:g}", m, {"contrast_floor": g / 255}) for g in args.candidate_floors]
                    if args.candidate_floors else [(m, m, params)])
    models = [label for label, *_ in entries]
    counts = {label: registered(m, draws, args.k, args.rig, **kw) for label, m, kw in entries}
    keys = list(counts[args.reference])
    totals = {key: len(draws) * sum(1 for name, *_ in draws[0][key.split("/")[0]] if camera_of(name) == key.split("/")[1])
              for key in keys if not key.startswith("rig/")}
    if args.rig is not None:
        totals["rig/roadscene"] = len(list_pairs("roadscene", args.rig, "val"))
    lines = ["| model | " + " | ".join(f"{k} (of {totals[k]})" for k in keys) + " | total | rule |",
             "|---" * (len(keys) + 3) + "|"]
    result = {}
    slack = {key: args.slack * (1 if key.startswith("rig/") else len(draws)) for key in keys}  # one pair per draw
    for m in models:
        ok, why = (None, "reference") if m == args.reference else verdict(counts[m], counts[args.reference], slack)
        result[m] = {"registered_10px": counts[m], "passes": ok, "why": why}
        lines.append(f"| {m} | " + " | ".join(str(counts[m][k]) for k in keys)
                     + f" | {sum(counts[m].values())} | {why} |")
    args.out.mkdir(parents=True, exist_ok=True)
    table = "\n".join(lines)
    floor = "default" if args.contrast_floor is None else args.contrast_floor
    (args.out / "selection.md").write_text(f"Pairs registered within 10 px at K = {args.k}, homography seeds "
                                           f"{args.seed}, contrast floor {floor} (a row '@ floor G': G)\n\n{table}\n")
    (args.out / "selection.json").write_text(json.dumps({"k": args.k, "seeds": args.seed, "contrast_floor": floor,
                                                         "pairs": totals, "models": result}, indent=2))
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
