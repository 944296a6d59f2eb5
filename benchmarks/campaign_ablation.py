"""What each pseudo-modality family and each unpaired data source adds on the held-out camera (issue 25).

Every arm fine-tunes the same start (``--init``) with the campaign's recipe for the same number of
steps and the same seed (same crops, same homographies); arms differ only in ``--pseudo`` (no
family, all, one family alone, or any list given by ``--extra-arm``) or in the unpaired SSL folders (all, without HIT-UAV, without
METU, without either). Each arm's final checkpoint (``last.pt``: equal steps, no selection) is
then measured like ``select_model.py``: validation pairs of the training cameras and every LLVIP
pair (never trained on), warped by fixed homographies of the paper and the hard range, at K
keypoints; per camera the pairs registered within 10 px and the mean mutual-NN correct matches
(``OUT/ablation.{json,md,png}``; the plot shows the held-out camera's matches per arm).
Training runs resume (``--resume``), so the script can be stopped and restarted.

    D=../shared/data
    python benchmarks/campaign_ablation.py --data-root $D --out runs/ablation25 --arch xfeat --init xfeat --steps 1000 --crop 192
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from select_model import measure, validation_detector, validation_groups  # noqa: E402

from s2cv.training.pseudo import FAMILIES  # noqa: E402

UNPAIRED = {"metu": ["vis=metu_vistir_unpaired/visible", "ir=metu_vistir_unpaired/thermal"],
            "hituav": ["ir=hit_uav_thermal/thermal"]}


def arms() -> dict[str, tuple[str, list[str]]]:
    """name -> (--pseudo spec, unpaired sources kept)."""
    every = list(UNPAIRED)
    out = {"none": ("none", every), "all": ("all", every)}
    out.update({f"only-{f}": (f, every) for f in FAMILIES})
    out.update({"all-no-hituav": ("all", ["metu"]), "all-no-metu": ("all", ["hituav"]), "all-no-unpaired": ("all", [])})
    return out


def train_arm(name: str, pseudo: str, unpaired: list[str], args: argparse.Namespace) -> Path:
    out = args.out / name
    if (out / "done").exists():
        return out / "last.pt"
    d = args.data_root
    cmd = [sys.executable, "-m", "s2cv.train", "--arch", args.arch, "--init", args.init,
           "--data", f"roadscene={d / 'roadscene'}", "--data", f"visnir={d / 'visnir'}",
           "--pseudo", pseudo, "--p-pseudo", "0.5", "--geometry", "mixed", "--crop", str(args.crop),
           "--ssl-weight", "0.4", "--lr", str(args.lr), "--lr-final", str(args.lr_final), "--steps", str(args.steps),
           "--seed", str(args.seed), "--val-every", str(args.steps), "--threads", "1", "--out", str(out), "--resume"]
    for src in unpaired:
        for spec in UNPAIRED[src]:
            kind, rel = spec.split("=")
            cmd += ["--ssl-data", f"{kind}={d / rel}"]
    print(f"== {name}: --pseudo {pseudo}, unpaired {unpaired or 'none'}", flush=True)
    subprocess.run(cmd, check=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    (out / "done").write_text("")
    return out / "last.pt"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-root", type=Path, required=True, help="../shared/data")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--arch", default="xfeat", help="the campaign's architecture (s2cv train --arch)")
    p.add_argument("--init", default="xfeat", help="the start of every arm (zoo name or checkpoint)")
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--lr-final", type=float, default=1e-6)
    p.add_argument("--steps", type=int, default=500)
    p.add_argument("--crop", type=int, default=192)
    p.add_argument("--seed", type=int, default=3)
    p.add_argument("--k", type=int, default=4096)
    p.add_argument("--arms", default="", help="comma list of arm names (default: all)")
    p.add_argument("--extra-arm", action="append", default=[], metavar="NAME=FAMILIES",
                   help="one more arm: --pseudo FAMILIES with every unpaired source (e.g. sel3=optics,temperature,tone)")
    args = p.parse_args()
    torch.set_num_threads(1)
    extra = {name: (spec, list(UNPAIRED)) for name, _, spec in (a.partition("=") for a in args.extra_arm)}
    chosen = {k: v for k, v in {**arms(), **extra}.items() if not args.arms or k in args.arms.split(",")}
    checkpoints = {name: train_arm(name, *spec, args) for name, spec in chosen.items()}
    d = args.data_root
    groups = validation_groups([("roadscene", d / "roadscene"), ("visnir", d / "visnir")],
                               [("folder", d / "llvip" / "train")], 12, args.seed)
    results_path = args.out / "ablation.json"
    results = json.loads(results_path.read_text()) if results_path.exists() else {}
    for name, ckpt in {"start": args.init, **checkpoints}.items():
        if name not in results:
            results[name] = measure(validation_detector(str(ckpt), args.k), groups)
            results_path.write_text(json.dumps(results, indent=1))
    keys = list(results["start"])
    lines = ["| arm | " + " | ".join(f"{k} reg10 / NCM" for k in keys) + " | total reg10 |", "|---" * (len(keys) + 2) + "|"]
    for name, r in results.items():  # every arm measured into OUT so far, in the order measured
        lines.append(f"| {name} | " + " | ".join(f"{r[k]['reg10']} / {r[k]['ncm']:.1f}" for k in keys)
                     + f" | {sum(r[k]['reg10'] for k in keys)} |")
    table = "\n".join(lines)
    (args.out / "ablation.md").write_text(f"Pairs within 10 px / mean NCM at K = {args.k}, {args.steps} steps per arm\n\n{table}\n")
    print(table)
    plot(results, "llvip", args.out / "ablation.png")
    return 0


def plot(results: dict[str, dict], camera: str, path: Path) -> None:
    """Held-out camera NCM per arm, paper and hard range, with the no-family arm as the line to beat."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    names = list(results)
    fig = Figure(figsize=(7, 0.35 * len(names) + 1.2), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    y = range(len(names))
    for k, (geometry, colour) in enumerate((("paper", "tab:blue"), ("hard", "tab:orange"))):
        values = [results[n][f"{geometry}/{camera}"]["ncm"] for n in names]
        ax.barh([i + 0.2 * (1 - 2 * k) for i in y], values, height=0.4, color=colour, label=f"{geometry} range")
        if "none" in results:
            ax.axvline(results["none"][f"{geometry}/{camera}"]["ncm"], color=colour, ls=":", lw=1)
    ax.set_yticks(list(y), names)
    ax.invert_yaxis()
    ax.set_xlabel(f"mean correct mutual-NN matches on {camera} (held out), K = 4096")
    ax.legend(fontsize=8)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    fig.savefig(str(path))


if __name__ == "__main__":
    raise SystemExit(main())
