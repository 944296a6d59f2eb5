"""Do two views of a pair agree by chance? The evidence behind ``VerdictThresholds.max_view_disagreement_px``.

When ``register``'s view search accepts no view, ``search.Detections.corroborate`` judges a fit
refused on the verdict's inlier share or uniqueness alone once more with another view's fit made
from other detections of both images (``search.agreements``). This script records,
for every pair whose search accepted nothing before that step, the closest such agreement
(``accuracy.view_disagreement``, coarser camera's px) and what ``register`` finally reported, on:

* ``val-rig``: the validation rig cases of ``rig_variants.py --draws 4`` (true pairs: how far the
  corroborated fit lies from the truth, in thermal px at the thermal corners);
* ``mismatched``: the mismatched training pairs of ``verdict_roc.py`` (two different scenes);
* ``mismatched-rig``: the same pairs made into rig variants (``rig_variants.make_variant``).

Training and validation images only. Writes OUT/table.md, OUT/results.json and OUT/closest.png.

    python benchmarks/view_agreement.py --data ../shared/data --out docs/eval/view-agreement
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

import s2cv
from s2cv.registration import search
from s2cv.registration.accuracy import view_disagreement
from s2cv.registration.register import register
from s2cv.registration.verdict import DEFAULT_THRESHOLDS

sys.path.insert(0, str(Path(__file__).resolve().parent))
import rig_variants  # noqa: E402
import verdict_roc  # noqa: E402

SETS = ("val-rig", "mismatched", "mismatched-rig")
LIMITS = (3.0, 6.0, 10.0, 15.0, 20.0)


def closest_agreement(tried: list[tuple[search.View, Any]], ir_shape: tuple[int, int], vis_shape: tuple[int, int]
                      ) -> tuple[float, Any]:
    """(px, fit) of the closest agreement ``corroborate`` would judge with, at any distance; (inf, None) if none."""
    closest = search.agreements(tried, lambda H1, H2: view_disagreement(H1, H2, ir_shape, vis_shape))
    if not closest:
        return math.inf, None
    view = min(closest, key=lambda v: closest[v][0])
    return closest[view][0], dict(tried)[view]


def cases(data: Path, which: str) -> list[tuple[str, np.ndarray, np.ndarray, np.ndarray | None]]:
    """(name, visible, IR, true IR -> visible homography or None) of one set."""
    if which == "val-rig":
        rng = rig_variants.roll_rng("rig")
        out = []
        for name, a, b, H in rig_variants.pairs_of(data / "roadscene", "val", 4):
            a2, b2, S, A, _ = rig_variants.make_variant(a, b, "rig", rng)
            out.append((name, a2, b2, S @ np.linalg.inv(H) @ np.linalg.inv(A)))
        return out
    rng = rig_variants.roll_rng("rig")
    out = []
    for p in verdict_roc.mismatched_pairs(data, 200):
        a, b = p["a"], p["b"]
        if which == "mismatched-rig":
            a, b, *_ = rig_variants.make_variant(a, b, "rig", rng)
        out.append((p["name"], a, b, None))
    return out


def thermal_px(H_est: np.ndarray | None, G: np.ndarray, ir_shape: tuple[int, ...]) -> float:
    """Mean error at the thermal corners in thermal px (``rig_variants.thermal_corner_errors``'s)."""
    if H_est is None:
        return math.inf
    return rig_variants.thermal_corner_errors(H_est, np.linalg.inv(G), np.eye(3), np.eye(3), ir_shape)[1]


def run(data: Path, which: str, det: Any, count: int | None = None) -> list[dict[str, Any]]:
    seen: list[list] = []
    original = search.Detections.corroborate

    def recording(self: search.Detections, result: Any, view: search.View, tried: list, *args: Any) -> Any:
        seen.append([] if result.success and not result.implausible_accepted else list(tried))  # register's accepted
        return original(self, result, view, tried, *args)

    search.Detections.corroborate = recording
    rows = []
    try:
        for name, a, b, G in tqdm(cases(data, which)[:count], desc=which, unit="pair"):
            seen.clear()
            res = register(a, b, det)
            tried = seen[0] if seen else []
            d, fit = closest_agreement(tried, b.shape[:2], a.shape[:2]) if tried else (math.inf, None)
            fin = lambda e: e if math.isfinite(e) else None  # noqa: E731
            row = {"set": which, "pair": name, "searched_unaccepted": bool(tried), "closest_px": fin(d),
                   "reported": bool(res.success and not res.implausible_accepted),
                   "corroborated": res.verdict is not None and math.isfinite(res.verdict.view_disagreement_px)}
            if G is not None:
                row["closest_fit_error"] = fin(thermal_px(fit.H if fit is not None else None, G, b.shape[:2]))
                row["reported_error"] = fin(thermal_px(res.H, G, b.shape[:2])) if row["reported"] else None
            rows.append(row)
    finally:
        search.Detections.corroborate = original
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    lines = ["| set | pairs | searched, nothing accepted | closest independent agreement ≤ " +
             " / ".join(f"{x:g}" for x in LIMITS) + " px | corroborated and reported | of them > 10 px from the truth |",
             "|---|---|---|---|---|---|"]
    for which in SETS:
        rs = [r for r in rows if r["set"] == which]
        if not rs:
            continue
        s = [r for r in rs if r["searched_unaccepted"]]
        counts = " / ".join(str(sum(r["closest_px"] is not None and r["closest_px"] <= x for r in s)) for x in LIMITS)
        corr = [r for r in rs if r["corroborated"] and r["reported"]]
        wrong = ("" if which != "val-rig" else
                 str(sum(r["reported_error"] is None or r["reported_error"] > 10 for r in corr)))
        lines.append(f"| {which} | {len(rs)} | {len(s)} | {counts} | {len(corr)} | {wrong or '(no truth: all wrong)'} |")
    close = sorted((r["closest_px"], r["set"], r["pair"], r.get("closest_fit_error")) for r in rows
                   if r["closest_px"] is not None and r["closest_px"] <= 15)
    lines += ["", "| closest agreement px | set | pair | that fit's error, thermal px (true pairs) |", "|---|---|---|---|"]
    lines += [f"| {d:.1f} | {s} | {p} | {'' if e is None else f'{e:.1f}'} |" for d, s, p, e in close]
    return "\n".join(lines) + "\n"


def plot(rows: list[dict[str, Any]], path: Path, limit: float) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.5))
    bins = np.linspace(0, 60, 31)
    for which, colour in zip(SETS, ("tab:green", "tab:red", "tab:orange")):
        d = [min(r["closest_px"], 60) for r in rows if r["set"] == which and r["closest_px"] is not None]
        ax.hist(d, bins=bins, alpha=0.6, color=colour, label=f"{which} ({len(d)})")
    ax.axvline(limit, color="k", ls="--", label=f"max_view_disagreement_px = {limit:g}")
    ax.set_xlabel("closest agreement of two independent refused fits (px, 60 = 60 or more)")
    ax.set_ylabel("pairs")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, required=True, help="folder holding roadscene/, visnir/")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--sets", default=",".join(SETS), help="comma-separated subset of %(default)s")
    p.add_argument("--pairs", type=int, help="only the first N pairs of each set (a quick look)")
    args = p.parse_args(argv)
    sets = [s for s in args.sets.split(",") if s]
    if unknown := set(sets) - set(SETS):
        p.error(f"unknown sets {sorted(unknown)}; choose from {SETS}")
    args.out.mkdir(parents=True, exist_ok=True)
    det = s2cv.S2Net_create()
    rows = [r for which in sets for r in run(args.data, which, det, args.pairs)]
    (args.out / "results.json").write_text(json.dumps({"rows": rows}, indent=1))
    (args.out / "table.md").write_text(table(rows))
    plot(rows, args.out / "closest.png", DEFAULT_THRESHOLDS.max_view_disagreement_px)
    print(table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
