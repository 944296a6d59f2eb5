"""The SSL ablation of S2-Net (its Fig. 3) on our protocol: NCM vs λ at K = 1024/2048/4096.

Expects one training run per λ under RUNS/lambda<λ>/ (same architecture, steps and seed; made with
``python -m s2cv.train ... --ssl-weight λ --out RUNS/lambda<λ>``) and evaluates each run's final
checkpoint (``last.pt``: equal steps, no checkpoint selection) on both test sets with
``s2cv.evaluate``. Writes a Markdown table to stdout, ``ablation.json`` and ``ablation.png``.
``--visnir-every N`` keeps every N-th VIS-NIR pair (all 8 scenes still covered) to bound the
CPU time of four models x three K.

    python benchmarks/ssl_ablation.py --runs runs/ablation --roadscene DATA/roadscene \
        --visnir DATA/visnir --visnir-every 4 --out docs/ablation
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from s2cv.evaluation.benchmark import evaluate
from s2cv.evaluation.datasets import load_benchmark
from s2cv.evaluation.metrics import aggregate

KS = (1024, 2048, 4096)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=Path, required=True)
    p.add_argument("--roadscene", type=Path, required=True)
    p.add_argument("--visnir", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--visnir-every", type=int, default=1, help="evaluate every N-th VIS-NIR pair")
    args = p.parse_args()
    runs = sorted(args.runs.glob("lambda*/last.pt"), key=lambda c: float(c.parent.name[len("lambda"):]))
    if not runs:
        raise SystemExit(f"no RUNS/lambda*/last.pt under {args.runs}")
    rows: dict[str, dict[str, dict[str, float]]] = {}
    for dataset, root in (("roadscene", args.roadscene), ("visnir", args.visnir)):
        pairs = load_benchmark(dataset, root)
        if dataset == "visnir":
            pairs = pairs[:: args.visnir_every]
        for ckpt in runs:
            lam = ckpt.parent.name[len("lambda"):]
            summary = aggregate(evaluate(pairs, [f"s2net:{ckpt}"], KS))
            for row in summary:
                rows.setdefault(lam, {}).setdefault(dataset, {})[str(row["k"])] = {
                    "ncm": row["ncm"], "cmr": row["cmr"], "reg@10": row["reg@10"]}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "ablation.json").write_text(json.dumps(rows, indent=1))
    head = "| λ | " + " | ".join(f"{d} NCM@{k}" for d in ("RoadScene", "VIS-NIR") for k in KS) + " |"
    print(head + "\n|" + "---|" * (1 + 2 * len(KS)))
    for lam, by_set in rows.items():
        cells = [f"{by_set[d][str(k)]['ncm']:.1f}" for d in ("roadscene", "visnir") for k in KS]
        print(f"| {lam} | " + " | ".join(cells) + " |")
    plot(rows, args.out / "ablation.png")


def plot(rows: dict, path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 3.6), dpi=100)
    FigureCanvasAgg(fig)
    lams = list(rows)
    for i, (dataset, title) in enumerate((("roadscene", "RoadScene (VIS-TIR)"), ("visnir", "VIS-NIR"))):
        ax = fig.add_subplot(1, 2, i + 1)
        for k in KS:
            ax.plot([float(x) for x in lams], [rows[x][dataset][str(k)]["ncm"] for x in lams], marker="o", label=f"K={k}")
        ax.set_xlabel("λ (SSL weight)")
        ax.set_ylabel("NCM (3 px)")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(str(path))


if __name__ == "__main__":
    main()
