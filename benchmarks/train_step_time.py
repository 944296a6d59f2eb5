"""Seconds per training step of each architecture on this machine (S2 loss, paper batch/crop).

Runs ``s2cv.train`` for a few steps per architecture into a temporary folder and reports the
median of the logged ``sec_per_step`` (the first step, with lazy initialisation, is dropped).

    python benchmarks/train_step_time.py --data roadscene=DATA/roadscene --steps 4
"""
from __future__ import annotations

import argparse
import csv
import statistics
import tempfile
from pathlib import Path

from s2cv.train import main as train_main
from s2cv.training.loop import DEFAULT_BATCH, DEFAULT_CROP


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True, help="[KIND=]PATH as for s2cv train")
    p.add_argument("--archs", default="fast,r2d2,d2net")
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--threads", type=int, default=0)
    args = p.parse_args()
    rows = []
    for arch in args.archs.split(","):
        with tempfile.TemporaryDirectory() as tmp:
            train_main(["--arch", arch, "--data", args.data, "--steps", str(args.steps), "--val-every", "1000000",
                        "--val-pairs", "1", "--out", tmp, "--threads", str(args.threads)])
            log = list(csv.DictReader(open(Path(tmp) / "train_log.csv")))
        times = [float(r["sec_per_step"]) for r in log[1:]]
        rows.append((arch, DEFAULT_BATCH[arch], DEFAULT_CROP[arch], statistics.median(times)))
    print("| arch | batch (pairs) | crop | s/step |\n|---|---|---|---|")
    for arch, batch, crop, sec in rows:
        print(f"| {arch} | {batch} | {crop} | {sec:.2f} |")


if __name__ == "__main__":
    main()
