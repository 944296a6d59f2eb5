"""A simulated visible/thermal rig: how close ``s2cv calibrate`` gets to its known homography
from N frame pairs, against ``s2cv register`` on single pairs.

The rig is built from held-out frames: RoadScene's validation pairs (every tenth aligned pair of
the training split, ``s2cv.evaluation.datasets.list_pairs(..., "val")``; no test pair), each centre-cropped to
3:2 and resized to 540x360 (one frame size, as a rig has), every thermal frame then moved by
the same known homography ``RIG``. Both commands run through their CLI entry points on the
rig's folders; the corner error is the benchmark's (mean distance of the visible frame's four
corners under the estimate and under the truth). N = 1 calibrates each frame alone; N > 1 draws
``--draws`` random subsets of N frames. Cost per frame pair is the commands' own timing (model
loading and output pictures excluded), register and calibrate alternated round by round on the
same frames, so the ratio holds on a loaded machine.

    python benchmarks/calibrate_rig.py --data ../shared/data/roadscene --out docs/eval/calibrate-rig --work /tmp/rig
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import cv2
import numpy as np

from s2cv.cli import calibrate as calibrate_cli
from s2cv.cli import register as register_cli
from s2cv.evaluation.datasets import list_pairs
from s2cv.registration import register as reg
from s2cv.registration.geometry import corner_error

# The rig's homography, visible -> thermal (the benchmark's direction): a few degrees of
# rotation, 3-4 % scale, 10-12 px shift and a mild perspective, like RoadScene's benchmark warps.
RIG = np.array([[0.96, 0.06, -12.0], [-0.05, 0.97, 10.0], [-1.2e-4, 9e-5, 1.0]])
SIZE = (540, 360)  # (w, h)


def _crop_resize(image: np.ndarray, size: tuple[int, int] = SIZE) -> np.ndarray:
    """Centre crop to the aspect of ``size``, then resize to it (both images of a pair alike)."""
    h, w = image.shape[:2]
    aspect = size[0] / size[1]
    cw, ch = (w, round(w / aspect)) if w / h < aspect else (round(h * aspect), h)
    x, y = (w - cw) // 2, (h - ch) // 2
    return cv2.resize(image[y:y + ch, x:x + cw], size, interpolation=cv2.INTER_AREA)


def build_rig(data: Path, out: Path) -> list[str]:
    """Write the rig's frames to out/vis and out/ir (same names); returns the names."""
    (out / "vis").mkdir(parents=True, exist_ok=True)
    (out / "ir").mkdir(parents=True, exist_ok=True)
    names = []
    for pair in list_pairs("roadscene", data, "val"):
        vis = _crop_resize(reg.read_image(pair.path_a))
        ir = cv2.warpPerspective(_crop_resize(reg.read_image(pair.path_b)), RIG, SIZE)
        name = Path(pair.name).stem
        cv2.imwrite(str(out / "vis" / f"{name}.png"), vis)
        cv2.imwrite(str(out / "ir" / f"{name}.png"), ir)
        names.append(name)
    (out / "truth.json").write_text(json.dumps({"H_vis_to_ir": RIG.tolist(), "size": SIZE, "frames": names}))
    return names


def _subset(rig: Path, names: list[str], out: Path) -> tuple[Path, Path]:
    """Folders of links to a subset of the rig's frames."""
    for side in ("vis", "ir"):
        (out / side).mkdir(parents=True, exist_ok=True)
        for name in names:
            (out / side / f"{name}.png").symlink_to((rig / side / f"{name}.png").resolve())
    return out / "vis", out / "ir"


def _error(H_file: Path) -> float:
    """Corner error of an H.txt (IR -> visible) against the rig; inf when it was not written."""
    if not H_file.is_file():
        return math.inf
    return corner_error(np.linalg.inv(np.loadtxt(H_file)), RIG, SIZE[::-1])


def _register(rig: Path, name: str, out: Path, model: str, refine: bool) -> tuple[float, float]:
    """``s2cv register`` on one frame pair: (corner error, ms without model loading)."""
    register_cli.main([str(rig / "vis" / f"{name}.png"), str(rig / "ir" / f"{name}.png"), "-o", str(out), "--model", model,
              *_flags("register", refine)])
    t = json.loads((out / "summary.json").read_text())["timings_ms"]
    return _error(out / "H.txt"), t["total"] - t.get("load", 0.0)


def _calibrate(rig: Path, names: list[str], out: Path, model: str, refine: bool) -> tuple[float, float]:
    """``s2cv calibrate`` on the folders of a subset: (corner error, ms per frame pair)."""
    vis, ir = _subset(rig, names, out / "frames")
    calibrate_cli.main([str(vis), str(ir), "-o", str(out), "--model", model, *_flags("calibrate", refine)])
    return _error(out / "H.txt"), json.loads((out / "summary.json").read_text())["ms_per_frame"]


def _flags(command: str, refine: bool) -> list[str]:
    """The refinement's flag: ``register`` refines on ``--refine``, ``calibrate`` unless ``--no-refine``."""
    if command == "register":
        return ["--refine"] if refine else []
    return [] if refine else ["--no-refine"]


def _tag(command: str, refine: bool) -> str:
    return " ".join(["s2cv", command, *_flags(command, refine)])


def accuracy(rig: Path, names: list[str], out: Path, ns: list[int], draws: int, model: str) -> list[dict]:
    """Corner errors: register on every single pair, calibrate on every frame alone (N = 1) and on
    ``draws`` random subsets of N frames (all frames when N >= their number)."""
    rows = []
    rng = np.random.default_rng(0)
    for refine in (False, True):
        errors = [_register(rig, m, out / _tag("register", refine).replace(" ", "_") / m, model, refine)[0]
                  for m in names]
        rows.append({"method": _tag("register", refine), "n": 1, "errors": errors})
        print(_line(rows[-1]), flush=True)
        for n in ns:
            subsets = [[m] for m in names] if n == 1 else (
                [names] if n >= len(names) else [sorted(rng.choice(names, n, replace=False)) for _ in range(draws)])
            errors = [_calibrate(rig, subset, out / f"{_tag('calibrate', refine).replace(' ', '_')}-n{n}" / f"draw{k}",
                                 model, refine)[0] for k, subset in enumerate(subsets)]
            rows.append({"method": _tag("calibrate", refine), "n": n, "errors": errors})
            print(_line(rows[-1]), flush=True)
    return rows


def cost(rig: Path, names: list[str], out: Path, model: str, rounds: int) -> list[dict]:
    """ms per frame pair of register (each pair alone) and calibrate (all ``names`` at once),
    alternated round by round so both see the same machine load; medians over rounds."""
    rows = []
    for refine in (False, True):
        per_round = []
        for r in range(rounds):
            single = [_register(rig, m, out / f"cost-{r}" / _tag("register", refine).replace(" ", "_") / m, model,
                                refine)[1] for m in names]
            pooled = _calibrate(rig, names, out / f"cost-{r}" / _tag("calibrate", refine).replace(" ", "_"), model,
                                refine)[1]
            per_round.append((float(np.mean(single)), pooled))
        reg_ms, cal_ms = np.median(np.array(per_round), axis=0)
        rows.append({"refine": refine, "frames": len(names), "rounds": rounds, "register_ms": float(reg_ms),
                     "calibrate_ms": float(cal_ms)})
        print(f"cost per frame pair{' (refined)' if refine else ''}: register {reg_ms:.0f} ms, "
              f"calibrate {cal_ms:.0f} ms ({cal_ms / reg_ms:.2f}x)", flush=True)
    return rows


def _stats(errors: list[float]) -> tuple[float, float, float, int]:
    e = np.asarray(errors)
    ok = e[np.isfinite(e)]
    if not ok.size:
        return math.inf, math.inf, math.inf, len(e)
    return float(ok.mean()), float(np.median(ok)), float(ok.max()), int((~np.isfinite(e)).sum())


def _line(row: dict) -> str:
    mean, median, worst, failed = _stats(row["errors"])
    return (f"{row['method']:<24} N={row['n']:<3} runs={len(row['errors']):<3} mean {mean:6.2f} px  "
            f"median {median:6.2f}  max {worst:6.2f}  failed {failed}")


def tables(rows: list[dict], costs: list[dict]) -> str:
    lines = ["| command | frames N | runs | mean corner error px | median | max | failed |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        mean, median, worst, failed = _stats(r["errors"])
        lines.append(f"| `{r['method']}` | {r['n']} | {len(r['errors'])} | {mean:.2f} | {median:.2f} | {worst:.2f} | "
                     f"{failed} |")
    lines += ["", "| per frame pair | `s2cv register` (each pair) ms | `s2cv calibrate` (all at once) ms | ratio |",
              "|---|---|---|---|"]
    for c in costs:
        lines.append(f"| {c['frames']} frames{', refined' if c['refine'] else ''} (median of {c['rounds']} rounds) | "
                     f"{c['register_ms']:.0f} | {c['calibrate_ms']:.0f} | {c['calibrate_ms'] / c['register_ms']:.2f} |")
    return "\n".join(lines)


def plot(rows: list[dict], path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 4), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for refine, colour in ((False, "tab:blue"), (True, "tab:orange")):
        cal_rows = [r for r in rows if r["method"] == _tag("calibrate", refine)]
        xs = [r["n"] for r in cal_rows]
        ax.plot(xs, [_stats(r["errors"])[0] for r in cal_rows], "o-", color=colour,
                label=f"{_tag('calibrate', refine)[5:]} (mean)")
        for r in cal_rows:
            e = np.asarray(r["errors"])
            ax.plot(np.full(np.isfinite(e).sum(), r["n"]), e[np.isfinite(e)], ".", color=colour, alpha=0.4)
        single = next(r for r in rows if r["method"] == _tag("register", refine))
        ax.axhline(_stats(single["errors"])[0], color=colour, ls=":",
                   label=f"{_tag('register', refine)[5:]}, single pairs (mean)")
    ax.axhline(2.0, color="0.4", lw=0.8, label="target 2 px")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_yticks([0.5, 1, 2, 5, 10, 20, 50], ["0.5", "1", "2", "5", "10", "20", "50"])
    ax.set_xticks(sorted({r["n"] for r in rows}), [str(n) for n in sorted({r["n"] for r in rows})])
    ax.set_xlabel("frame pairs pooled (N)")
    ax.set_ylabel("corner error (px)")
    ax.set_title("simulated RoadScene rig (validation frames)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(str(path))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True, help="RoadScene root (aligned/, train.txt)")
    p.add_argument("--out", required=True, help="results folder (results.json, corner_error.png, table.md)")
    p.add_argument("--work", required=True, help="empty folder for the rig (WORK/rig/vis, WORK/rig/ir) and the "
                                                "commands' outputs")
    p.add_argument("--n", default="1,4,12", help="frame counts N (default: %(default)s)")
    p.add_argument("--draws", type=int, default=6, help="random subsets per N > 1 (default: %(default)s)")
    p.add_argument("--model", default="default")
    p.add_argument("--cost-frames", type=int, default=12, help="frames of the timing pass (default: %(default)s)")
    p.add_argument("--rounds", type=int, default=3, help="timing rounds (default: %(default)s)")
    args = p.parse_args(argv)
    out = Path(args.out)
    work = Path(args.work)
    if work.exists() and any(work.iterdir()):
        p.error(f"{work} is not empty (the commands' outputs go there)")
    names = build_rig(Path(args.data), work / "rig")
    print(f"rig: {len(names)} validation frames, {SIZE[0]}x{SIZE[1]}, thermal moved by RIG", flush=True)
    rows = accuracy(work / "rig", names, work, [int(n) for n in args.n.split(",")], args.draws, args.model)
    costs = cost(work / "rig", names[:args.cost_frames], work, args.model, args.rounds)
    out.mkdir(parents=True, exist_ok=True)
    finite = [{**r, "errors": [e if math.isfinite(e) else None for e in r["errors"]]} for r in rows]  # None: failed
    (out / "results.json").write_text(json.dumps({"model": args.model, "frames": names, "H_vis_to_ir": RIG.tolist(),
                                                  "rows": finite, "cost": costs}, indent=1))
    plot(rows, out / "corner_error.png")
    (out / "table.md").write_text(tables(rows, costs) + "\n")
    print(tables(rows, costs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
