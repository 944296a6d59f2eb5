"""The validation table of a training run, per camera and geometry, read from its ``val_log.jsonl``.

Each line of the log is one validation (``s2cv train --val-every``): shares of each camera's pairs
registered within 10 px (``val_<camera>_reg10``; ``val_hard_<camera>_reg10`` under the hard
homography range) and mean mutual-NN correct matches. Prints a Markdown table (docs/results.md
carries it for the campaign of issue 25).

    python benchmarks/campaign_table.py runs/generalise-xfeat [--every 1000]
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from s2cv.evaluation.plots import logged_cameras


def table(rows: list[dict], every: int = 1) -> str:
    logged = logged_cameras(rows[0])
    cams = [c for c in logged if not c.startswith("hard_")]
    hard = [c for c in cams if f"hard_{c}" in logged]
    head = (["step"] + [f"{c} ≤10 px" for c in cams] + [f"hard {c} ≤10 px" for c in hard]
            + [f"{c} NCM" for c in cams] + ["NCM (all)"])
    lines = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    for r in rows:
        if r["step"] % every:
            continue
        cells = ([f"{r[f'val_{c}_reg10']:.0%}" for c in cams] + [f"{r[f'val_hard_{c}_reg10']:.0%}" for c in hard]
                 + [f"{r[f'val_{c}_ncm']:.1f}" for c in cams] + [f"{r['val_ncm']:.1f}"])
        lines.append(f"| {r['step']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("run", type=Path, help="a training output folder (holds val_log.jsonl)")
    p.add_argument("--every", type=int, default=1, help="only steps that are a multiple of this")
    args = p.parse_args()
    log = args.run / "val_log.jsonl"
    if not log.is_file():
        raise SystemExit(f"{log} does not exist: is {args.run} a training output folder that has validated?")
    rows = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    if not rows:
        raise SystemExit(f"{log} holds no validation yet")
    print(table(rows, args.every))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
