"""Choose and check the thresholds of ``s2cv.registration.verdict`` on pairs built from training images only.

True pairs: the held-out validation pairs of RoadScene, VIS-NIR and LLVIP (``s2cv.training.loop.
validation_set``: aligned pair, second image warped by a random homography), each with
``--seeds`` different homographies. Mismatched pairs: the visible image of training frame i with
the thermal/NIR image of frame i+5 (RoadScene train split, VIS-NIR ``train/country``), prepared the
same way (downscaled to 640 px, random homography). LLVIP gives no mismatched pairs: its frames are
consecutive video frames of one fixed camera, so frame i+5 shows the same scene.

For every model (``--models``: zoo names, checkpoint paths or ``sift``) and keypoint budget
(``--k``) ``s2cv.registration.register.register`` runs on every pair; its matches and fit are stored in
``CACHE/<model>@<K>.npz``, so a later run with another model (a new default) adds to them, and
``--report-only`` recomputes the verdict's signals from every stored fit with the current
``s2cv.registration.verdict`` code. The report: the combined verdict per model and K (correct true fits kept,
mismatched pairs refused, wrong true fits refused), each statistical test alone over a range of
thresholds (pooled and per model: the trade-off table), the weakest correct fit and the strongest
mismatched fit per signal, ``OUT/roc.png`` and ``OUT/signals_<model>@<K>.json``.

    python benchmarks/verdict_roc.py --data ../shared/data --models default,vis-ir,sift --k 1024,2048,4096
    python benchmarks/verdict_roc.py --data ../shared/data --models r2d2 --k 4096   # slow on CPU (full resolution)
    python benchmarks/verdict_roc.py --report-only
    python benchmarks/verdict_roc.py --data ../shared/data --test-mismatches --k 4096   # REPORT only

``--test-mismatches`` registers the visible image of RoadScene *test* frame i with the thermal
image of test frame i+5 and prints how many each model reports as registered, naming them; those
pairs are never used to choose anything.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from tqdm import tqdm

from s2cv.evaluation.datasets import list_pairs
from s2cv.registration.geometry import corner_error
from s2cv.feature.image import read_gray, read_image
from s2cv.registration.register import register
from s2cv.registration.verdict import DEFAULT_THRESHOLDS, VerdictThresholds, judge, measure
from s2cv.training.augment import random_homography, warp

CORRECT_PX = 10.0  # a true pair's fit within this corner error is a correct registration
MAX_SIDE = 640     # validation_set's working size
SOURCES = (("roadscene", "roadscene"), ("visnir", "visnir"), ("folder", "llvip/train"))
MISMATCH_SOURCES = (("roadscene", "roadscene"), ("visnir", "visnir"))
# the statistical tests and the direction in which each threshold is strict
SWEEPS = {
    "min_evidence": ("evidence", ">=", np.array([1.0, 2.0, 3.0, 3.5, 4.0, 4.5, 5.0, 6.0, 8.0, 10.0])),
    "min_inlier_share": ("inlier_share", ">=", np.array([0.0, 0.01, 0.02, 0.025, 0.03, 0.035, 0.04, 0.05, 0.06, 0.08])),
    "min_uniqueness": ("uniqueness", ">=", np.array([1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0])),
    "min_hull_share": ("hull_share", ">=", np.array([0.0, 0.01, 0.02, 0.03, 0.05, 0.08, 0.1, 0.15, 0.2, 0.3])),
    "max_halves_disagreement": ("halves_disagreement", "<=",
                                np.array([1.0, 0.2, 0.1, 0.08, 0.05, 0.03, 0.02, 0.01, 0.005])),
}


def _shrunk(image: np.ndarray) -> np.ndarray:
    scale = min(1.0, MAX_SIDE / max(image.shape))
    if scale == 1:
        return image
    return cv2.resize(image, (round(image.shape[1] * scale), round(image.shape[0] * scale)))


def true_pairs(data: Path, seeds: int) -> list[dict[str, Any]]:
    """Validation pairs with a known homography (vis -> IR), ``seeds`` warps of each."""
    from s2cv.training.loop import validation_set  # the trainer's own held-out pairs

    sources = [(kind, data / sub) for kind, sub in SOURCES if (data / sub).is_dir()]
    out = []
    for seed in range(seeds):
        for name, a, b, H in validation_set(sources, 10**6, seed):
            out.append({"name": f"{name}#{seed}", "kind": "true", "a": a, "b": b, "H": H})
    return out


def mismatched_pairs(data: Path, count: int, offset: int = 5, seed: int = 0) -> list[dict[str, Any]]:
    """Visible of training frame i with IR/NIR of frame i + offset, IR warped like a true pair."""
    rng = np.random.default_rng(seed + 777)
    lists = [(kind, list_pairs(kind, data / sub, "train")) for kind, sub in MISMATCH_SOURCES if (data / sub).is_dir()]
    total = sum(len(p) for _, p in lists)
    out = []
    for kind, pairs in lists:
        n = min(len(pairs) - offset, max(1, round(count * len(pairs) / total)))
        for i in np.linspace(0, len(pairs) - offset - 1, n).round().astype(int):
            a, b = _shrunk(read_gray(pairs[i].path_a)), _shrunk(read_gray(pairs[i + offset].path_b))
            b, _ = warp(b, random_homography(b.shape, rng))
            out.append({"name": f"{kind}/{pairs[i].name}+{pairs[i + offset].name}", "kind": "mismatched",
                        "a": a, "b": b, "H": None})
    return out


def _json_safe(value: Any) -> Any:
    if isinstance(value, float):
        return float(f"{value:.5g}") if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value


def _safe(model: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in Path(model).name)


def _detector(model: str, k: int) -> cv2.Feature2D:
    if model == "sift":
        return cv2.SIFT_create(k)
    from s2cv import S2Net_create

    return S2Net_create(nfeatures=k, model=model)


def detect_and_fit(model: str, pairs: list[dict[str, Any]], k: int) -> dict[str, np.ndarray]:
    """register() on every pair; what the verdict looks at, as arrays for ``np.savez``.

    Stored per pair: the matched points (IR, visible), the fit's inlier mask and H (IR ->
    visible, NaN when register gave up before judging) as the verdict judged them (before a guided
    refit: ``result.judged``), the image shapes and, for true pairs, that fit's corner error against
    the known homography (inf for mismatched pairs), and register's answer (``success``).
    """
    det = _detector(model, k)
    out: dict[str, list] = {key: [] for key in ("name", "kind", "src", "dst", "inliers", "H", "src_shape",
                                                  "dst_shape", "corner_error", "reported_error", "success")}
    for p in tqdm(pairs, desc=model, file=sys.stderr):
        r = register(p["a"], p["b"], det)
        H, _, mask = r.judged_fit  # what the verdict judged (not a guided refit)
        pv, pi = r.matched_points(judged=True)
        judged = r.verdict is not None
        err = reported = math.inf
        if judged and p["H"] is not None:
            err = corner_error(np.linalg.inv(H), p["H"], p["a"].shape)
            reported = corner_error(np.linalg.inv(r.H), p["H"], p["a"].shape)
        for key, value in (("name", p["name"]), ("kind", p["kind"]), ("src", pi), ("dst", pv),
                           ("inliers", mask), ("H", H if judged else np.full((3, 3), np.nan)),
                           ("src_shape", p["b"].shape[:2]), ("dst_shape", p["a"].shape[:2]), ("corner_error", err),
                           ("reported_error", reported), ("success", bool(r.success and not r.implausible_accepted))):
            out[key].append(value)
    return {"name": np.array(out["name"]), "kind": np.array(out["kind"]),
            "H": np.array(out["H"]), "src_shape": np.array(out["src_shape"]), "dst_shape": np.array(out["dst_shape"]),
            "corner_error": np.array(out["corner_error"]), "reported_error": np.array(out["reported_error"]),
            "success": np.array(out["success"]),
            "counts": np.array([len(x) for x in out["src"]]),
            "src": np.concatenate(out["src"]).reshape(-1, 2), "dst": np.concatenate(out["dst"]).reshape(-1, 2),
            "inliers": np.concatenate(out["inliers"]).astype(bool)}


def signal_rows(cache: dict[str, np.ndarray]) -> list[dict[str, Any]]:
    """The verdict's signals for every stored fit (``s2cv.registration.verdict.measure``, as register calls it)."""
    rows, start = [], 0
    for i, n in enumerate(cache["counts"]):
        sl = slice(start, start + n)
        start += n
        H = cache["H"][i]
        signals = None
        if np.isfinite(H).all():
            signals = measure(H, cache["src"][sl], cache["dst"][sl], tuple(cache["src_shape"][i]),
                              tuple(cache["dst_shape"][i]), inliers=cache["inliers"][sl])
        err = float(cache["corner_error"][i])
        reported = float(cache["reported_error"][i]) if "reported_error" in cache else err  # older caches: one fit
        rows.append({"name": str(cache["name"][i]), "kind": str(cache["kind"][i]), "fitted": signals is not None,
                     "signals": signals, "corner_error": err if math.isfinite(err) else None,
                     "reported_error": reported if math.isfinite(reported) else None,
                     "success": bool(cache["success"][i]) if "success" in cache else None})
    return rows


# ---------------------------------------------------------------- report


def _accepts(row: dict[str, Any], thresholds: VerdictThresholds) -> bool:
    return row["fitted"] and judge(row["signals"], thresholds).ok


def _groups(rows: list[dict[str, Any]]) -> tuple[list, list, list]:
    """(correct true fits, wrong true fits, mismatched pairs)."""
    correct = [r for r in rows if r["kind"] == "true" and r["corner_error"] is not None
               and r["corner_error"] <= CORRECT_PX]
    wrong = [r for r in rows if r["kind"] == "true" and r not in correct]
    return correct, wrong, [r for r in rows if r["kind"] == "mismatched"]


def rates(rows: list[dict[str, Any]], thresholds: VerdictThresholds) -> dict[str, float]:
    correct, wrong, mism = _groups(rows)
    share = lambda group, keep: sum(_accepts(r, thresholds) == keep for r in group) / max(len(group), 1)
    return {"kept": share(correct, True), "refused_mismatched": share(mism, False),
            "refused_wrong": share(wrong, False), "n_correct": len(correct), "n_wrong": len(wrong),
            "n_mismatched": len(mism)}


def alone(base: VerdictThresholds, attr: str, value: float) -> VerdictThresholds:
    """``base``'s geometric limits with one statistical test at ``value`` and the others off."""
    off = {"min_evidence": 0.0, "min_inlier_share": 0.0, "min_uniqueness": 0.0, "min_hull_share": 0.0,
           "max_halves_disagreement": math.inf}
    return replace(base, **{**off, attr: float(value)})


def sweep_table(all_rows: dict[str, list], base: VerdictThresholds) -> str:
    """Markdown: per model, kept / mismatched refused for each value of each statistical test
    alone (with the geometric tests)."""
    models = list(all_rows)
    head = "| test | threshold | " + " | ".join(f"{m}: kept / refused" for m in models) + " |"
    lines = [head, "|" + "---|" * (2 + len(models))]
    for attr, (_, op, values) in SWEEPS.items():
        default = getattr(base, attr)
        for v in sorted(set(values.tolist()) | {default}, reverse=(op == "<=")):
            t = alone(base, attr, v)
            cells = []
            for m in models:
                r = rates(all_rows[m], t)
                cells.append(f"{100 * r['kept']:.0f} % / {100 * r['refused_mismatched']:.0f} %")
            mark = " (default)" if math.isclose(v, default) else ""
            lines.append(f"| {attr} | {v:g}{mark} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


GEOMETRY = ("orientation", "corner_angle", "scale")


def _passes_geometry(row: dict[str, Any], base: VerdictThresholds) -> bool:
    return row["fitted"] and not set(judge(row["signals"], base).failed) & set(GEOMETRY)


def separation(all_rows: dict[str, list], base: VerdictThresholds) -> str:
    """Per model (and all pooled) and statistical signal: the weakest correct true fit and the
    strongest mismatched fit among those the geometric tests let through."""
    lines = ["| model | signal | weakest correct true fit | strongest mismatched fit past geometry |",
             "|---|---|---|---|"]
    pooled = {"all models and K": [r for rows in all_rows.values() for r in rows]}
    for m, rows in {**all_rows, **pooled}.items():
        correct, _, mism = _groups(rows)
        mism = [r for r in mism if _passes_geometry(r, base)]
        for _, (sig, op, _) in SWEEPS.items():
            weakest, strongest = (min, max) if op == ">=" else (max, min)
            t = [r["signals"][sig] for r in correct]
            f = [r["signals"][sig] for r in mism]
            lines.append(f"| {m} | {sig} | " + (f"{weakest(t):.3g}" if t else "none") + " | "
                         + (f"{strongest(f):.3g}" if f else "none") + " |")
    return "\n".join(lines)


STYLES = {"1024": ":", "2048": "--", "4096": "-"}
CHANCE_TESTS = ("min_evidence", "min_inlier_share", "min_uniqueness")


def suggest(all_rows: dict[str, list], base: VerdictThresholds, margin: float, spare: int) -> VerdictThresholds:
    """The selection rule for the tests against accidental agreement (evidence, share,
    uniqueness). First each threshold at ``margin`` x the value of the weakest correct true fit,
    pooled over models and K, past the ``spare`` weakest: as strict as the training fits allow,
    less a margin for true pairs weaker than any seen here. Then, while a mismatched training pair
    of any model still passes, the one test whose raise (in steps of 5 %) refuses them all at the
    smallest cost in correct fits is raised. (Spread and stability guard against degenerate
    supports with loose limits, see s2cv.registration.verdict.)"""
    correct = [r for rows in all_rows.values() for r in _groups(rows)[0]]
    mismatched = [r for rows in all_rows.values() for r in _groups(rows)[2] if r["fitted"]]
    picked = {}
    for attr in CHANCE_TESTS:
        values = sorted(r["signals"][SWEEPS[attr][0]] for r in correct)
        picked[attr] = values[min(spare, len(values) - 1)] * margin
    rule = replace(base, **picked)
    passing = [r for r in mismatched if judge(r["signals"], rule).ok]
    if passing:
        options = []
        for attr in CHANCE_TESTS:
            t = rule
            while any(judge(r["signals"], t).ok for r in passing):
                t = replace(t, **{attr: getattr(t, attr) * 1.05})
            options.append((sum(not judge(r["signals"], t).ok for r in correct), t))
        rule = min(options, key=lambda o: o[0])[1]
    return rule


def plot_roc(all_rows: dict[str, list], base: VerdictThresholds, path: Path) -> None:
    """One panel per test: mismatched accepted (x) vs correct true fits kept (y), per model."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    colours: dict[str, str] = {}  # one colour per model, one line style per K
    fig = Figure(figsize=(13, 7.5), dpi=100)
    FigureCanvasAgg(fig)
    for i, (attr, (_, op, values)) in enumerate(SWEEPS.items()):
        ax = fig.add_subplot(2, 3, i + 1)
        for m, rows in all_rows.items():
            pts = [rates(rows, alone(base, attr, v)) for v in values]
            x = [1 - p["refused_mismatched"] for p in pts]
            y = [p["kept"] for p in pts]
            model, _, k = m.partition("@")
            colour = colours.setdefault(model, f"C{len(colours) % 10}")
            line, = ax.plot(x, y, marker="o", markersize=3, label=m, color=colour,
                            linestyle=STYLES.get(k, "-"))
            d = rates(rows, alone(base, attr, getattr(base, attr)))
            ax.plot([1 - d["refused_mismatched"]], [d["kept"]], marker="*", markersize=12, color=line.get_color())
        ax.set_xlabel("mismatched pairs accepted")
        ax.set_ylabel("correct true fits kept")
        ax.set_xlim(-0.01, 0.3)
        ax.set_ylim(0.5, 1.02)
        ax.grid(alpha=0.3)
        ax.set_title(f"{attr} alone + geometry (* = default)", fontsize=9)
        if i == 0:
            ax.legend(fontsize=8, loc="lower right")
    fig.suptitle(f"verdict tests on training-image pairs: correct true fits (<= {CORRECT_PX:g} px) kept vs "
                 "mismatched pairs accepted", fontsize=10)
    fig.tight_layout()
    fig.savefig(str(path))


def combined_table(all_rows: dict[str, list], thresholds: VerdictThresholds) -> str:
    lines = ["| model@K | correct true fits kept | mismatched refused | wrong true fits refused |", "|---|---|---|---|"]
    for m, rows in all_rows.items():
        r = rates(rows, thresholds)
        lines.append(f"| {m} | {round(r['kept'] * r['n_correct'])}/{r['n_correct']} | "
                     f"{round(r['refused_mismatched'] * r['n_mismatched'])}/{r['n_mismatched']} | "
                     f"{round(r['refused_wrong'] * r['n_wrong'])}/{r['n_wrong']} |")
    return "\n".join(lines)


def success_table(all_rows: dict[str, list[dict[str, Any]]]) -> str:
    """What ``register`` reported as registered, per model and K: true pairs (and how many of
    them, as reported, are more than CORRECT_PX off) and mismatched pairs, named."""
    lines = ["| model@K | true pairs reported | of them wrong | mismatched reported | which |", "|---|---|---|---|---|"]
    for key, rows in all_rows.items():
        if any(r["success"] is None for r in rows):
            continue
        correct, wrong, mismatched = _groups(rows)
        bad = [r["name"] for r in mismatched if r["success"]]
        off = [r for r in correct + wrong if r["success"] and not (r["reported_error"] is not None
                                                                    and r["reported_error"] <= CORRECT_PX)]
        lines.append(f"| {key} | {sum(r['success'] for r in correct + wrong)}/{len(correct) + len(wrong)} | "
                     f"{len(off)} | {len(bad)}/{len(mismatched)} | {', '.join(bad) or '-'} |")
    return "\n".join(lines)


def report(all_rows: dict[str, list[dict[str, Any]]], out: Path, base: VerdictThresholds,
           margin: float, spare: int) -> None:
    """Print the tables and write ``out/roc.png``."""
    rule = suggest(all_rows, base, margin, spare)
    print(f"selection rule (margin {margin:g}, sparing the {spare} weakest correct fit(s)): "
          + ", ".join(f"{a} {getattr(rule, a):.4g}" for a in CHANCE_TESTS) + "\n")
    print(combined_table(all_rows, rule) + "\n")
    print(f"shipped thresholds (s2cv.registration.verdict.DEFAULT_THRESHOLDS): {asdict(base)}\n")
    print("combined verdict (all tests at the shipped thresholds):\n")
    print(combined_table(all_rows, base))
    print("\nregister's answer (plausible and within max_error; caches written since it was stored):\n")
    print(success_table(all_rows))
    pooled = {"all models and K": [r for rows in all_rows.values() for r in rows]}
    print("\neach statistical test alone, with the geometric tests (correct true fits kept / mismatched refused):\n")
    print(sweep_table(pooled, base))
    print("\nthe same per model and K:\n")
    print(sweep_table(all_rows, base))
    print("\nseparation of the signals:\n")
    print(separation(all_rows, base))
    plot_roc(all_rows, base, out / "roc.png")
    print(f"\nwrote {out / 'roc.png'}")


# ---------------------------------------------------------------- test mismatches (report only)


def test_mismatches(data: Path, models: list[str], k: int, offset: int = 5) -> None:
    """Register visible test frame i with thermal test frame i + offset; count reported successes
    and name each one with the verdict's signals."""
    test = data / "roadscene" / "test"
    names = sorted(json.loads((test / "homographies.json").read_text()))
    print(f"{len(names) - offset} mismatched RoadScene test pairs (visible i, thermal i+{offset}), K = {k}\n")
    print("| model | reported registered | refused by the verdict | refused before (< 12 inliers / no fit) |")
    print("|---|---|---|---|")
    accepted = []
    for model in models:
        det = _detector(model, k)
        counts = [0, 0, 0]
        for i in tqdm(range(len(names) - offset), desc=model, file=sys.stderr):
            r = register(read_image(test / f"{names[i]}_vis.png"), read_image(test / f"{names[i + offset]}_ir.png"), det)
            counts[0 if r.success else 1 if r.verdict is not None else 2] += 1
            if r.success:
                s = r.verdict.signals
                accepted.append(f"{model}: {names[i]} visible + {names[i + offset]} thermal, {r.num_inliers} inliers, "
                                + ", ".join(f"{key} {s[key]:.3g}" for key in
                                            ("matches", "inlier_share", "evidence", "uniqueness", "hull_share",
                                             "halves_disagreement",
                                             "min_corner_angle_deg", "scale")))
        print(f"| {model} | {counts[0]} | {counts[1]} | {counts[2]} |")
    for line in accepted:
        print(f"\nreported registered: {line}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, help="folder holding roadscene/, visnir/, llvip/")
    p.add_argument("--models", default="default,vis-ir,r2d2,sift", help="comma-separated (default: %(default)s)")
    p.add_argument("--k", default="4096",
                   help="comma-separated keypoint budgets per image (default: %(default)s, register's default)")
    p.add_argument("--seeds", type=int, default=3, help="random homographies per validation pair (default: %(default)s)")
    p.add_argument("--mismatched", type=int, default=200,
                   help="mismatched pairs, at most one per training frame (default: %(default)s)")
    p.add_argument("--out", type=Path, default=Path("docs/verdict"), help="tables, signals JSON, roc.png")
    p.add_argument("--cache", type=Path, default=Path("runs/verdict_cache"),
                   help="matches and fits per model, reused by --report-only (default: %(default)s)")
    p.add_argument("--report-only", action="store_true", help="only report on the stored signals")
    p.add_argument("--margin", type=float, default=0.85, help="selection rule's safety margin (default: %(default)s)")
    p.add_argument("--spare", type=int, default=1,
                   help="weakest correct true fits the selection rule may lose (default: %(default)s)")
    p.add_argument("--test-mismatches", action="store_true",
                   help="report how many mismatched RoadScene TEST pairs each model registers (no selection)")
    args = p.parse_args()
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    ks = [int(k) for k in args.k.split(",") if k.strip()]
    if args.test_mismatches:
        if args.data is None:
            p.error("--test-mismatches needs --data")
        for k in ks:
            test_mismatches(args.data, models, k)
        return
    args.out.mkdir(parents=True, exist_ok=True)
    args.cache.mkdir(parents=True, exist_ok=True)
    if not args.report_only:
        if args.data is None:
            p.error("--data is required unless --report-only")
        pairs = true_pairs(args.data, args.seeds) + mismatched_pairs(args.data, args.mismatched)
        print(f"{sum(p['kind'] == 'true' for p in pairs)} true pairs, "
              f"{sum(p['kind'] == 'mismatched' for p in pairs)} mismatched pairs", file=sys.stderr)
        for model in models:
            for k in ks:
                np.savez_compressed(args.cache / f"{_safe(model)}@{k}.npz", **detect_and_fit(model, pairs, k))
    all_rows = {}
    paths = sorted(args.cache.glob("*@*.npz"), key=lambda q: (q.stem.split("@")[0], int(q.stem.split("@")[1])))
    for path in paths:  # signals from the stored matches, with today's verdict code
        all_rows[path.stem] = signal_rows(dict(np.load(path)))
        (args.out / f"signals_{path.stem}.json").write_text(
            json.dumps({"model@K": path.stem, "rows": _json_safe(all_rows[path.stem])}))
    if not all_rows:
        p.error(f"nothing stored in {args.cache}: run with --data and --models first")
    report(all_rows, args.out, DEFAULT_THRESHOLDS, args.margin, args.spare)


if __name__ == "__main__":
    main()
