"""Benchmark local features on cross-modality pairs with known homographies.

Run ``s2cv evaluate --help``. Every method sees the images as a user would pass
them (BGR uint8 visible, single-channel thermal/NIR) and is scored with :mod:`s2cv.evaluation.metrics`.

Dataset layouts (``--dataset KIND --data DIR``): ``s2cv.evaluation.datasets``.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from s2cv.evaluation.benchmark import evaluate
from s2cv.evaluation.datasets import BENCHMARK_LAYOUTS, load_benchmark
from s2cv.evaluation.metrics import REG_THRESHOLDS, aggregate
from s2cv.evaluation.report import (
    SCENE_COLUMNS,
    TABLE_COLUMNS,
    VERDICT_COLUMNS,
    add_verdict_columns,
    markdown_table,
    scene_summary,
    write_report,
)


def _positive_ints(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from e
    if not values or min(values) <= 0:
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values


def _names(text: str) -> list[str]:
    values = [v.strip() for v in text.split(",") if v.strip()]
    if not values:
        raise argparse.ArgumentTypeError("expected at least one method")
    return values


def build_parser(prog: str = "s2cv evaluate") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog,
        description="Evaluate local features on cross-modality pairs with known homographies.",
    )
    p.add_argument("--dataset", choices=BENCHMARK_LAYOUTS, required=True)
    p.add_argument(
        "--data",
        help="dataset folder; default: $S2CV_DATA/<dataset> if it exists, else $S2CV_DATA",
    )
    p.add_argument(
        "--methods",
        type=_names,
        default=["s2net"],
        help="comma-separated: s2net[:MODEL], sift, orb, akaze, brisk (default: s2net)",
    )
    p.add_argument("--k", type=_positive_ints, default=[1024, 2048, 4096], help="keypoint budgets")
    p.add_argument("--threshold", type=float, default=3.0, help="correctness threshold (px)")
    p.add_argument("--limit", type=int, help="evaluate only the first N pairs")
    p.add_argument("-o", "--output", "--out", dest="out", default="eval_out", help="output folder (default: eval_out/)")
    p.add_argument("--plots", type=int, default=3, help="pairs with match pictures (default 3)")
    p.add_argument("--device", help="device of s2net's torch, ONNX Runtime or TensorRT backend: auto, cpu, cuda, "
                                    "cuda:N (default: the detector's, auto)")
    p.add_argument("--contrast-floor", type=float, help="s2net's contrast_floor (default: the detector's, 4/255)")
    p.add_argument("--refine", action="store_true",
                   help="also report s2net registration with the homography refined on the dense maps")
    p.add_argument("--matcher", choices=("mnn", "glue"), default="mnn",
                   help="where the scored matches come from: mnn = mutual nearest neighbours (default); glue = the "
                        "learned matcher S2Glue (s2cv.S2Glue_create, torch-free); its rows are labelled <method>+glue, "
                        "a bare s2net means its detector (s2net:s2xfeat for the default), methods with other descriptors are skipped")
    p.add_argument("--glue-model", default="default",
                   help="S2Glue zoo name or graph (.onnx) for --matcher glue (default: default)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def _resolve_data(parser: argparse.ArgumentParser, dataset: str, data: str | None) -> Path:
    if data:
        return Path(data)
    env = os.environ.get("S2CV_DATA")
    if not env:
        parser.error("no data: pass --data DIR or set S2CV_DATA")
    root = Path(env)
    return root / dataset if (root / dataset).is_dir() else root


def main(argv: Sequence[str] | None = None, prog: str = "s2cv evaluate") -> int:
    """CLI entry point; returns the process exit status."""
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    if args.limit is not None and args.limit <= 0:
        parser.error("--limit must be positive")
    if args.threshold <= 0:
        parser.error("--threshold must be positive")
    data = _resolve_data(parser, args.dataset, args.data)
    if not data.is_dir():
        parser.error(f"data folder {data} does not exist")
    pairs = load_benchmark(args.dataset, data)[: args.limit]

    t0 = time.perf_counter()
    results = evaluate(
        pairs,
        args.methods,
        args.k,
        args.threshold,
        device=args.device,
        contrast_floor=args.contrast_floor,
        out_dir=args.out,
        n_plots=args.plots,
        refine=args.refine,
        matcher=args.matcher,
        glue_model=args.glue_model,
        progress=not args.quiet,
    )
    if not results:
        print("error: no method could be evaluated", file=sys.stderr)
        return 1
    summary = add_verdict_columns(aggregate(results), results)
    config = {
        "dataset": args.dataset,
        "data": str(data),
        "methods": args.methods,
        "k": args.k,
        "threshold": args.threshold,
        "pairs": len(pairs),
        "device": args.device,
        "contrast_floor": args.contrast_floor,
        "refine": args.refine,
        "matcher": args.matcher,
        "glue_model": args.glue_model if args.matcher == "glue" else None,
        "reg_thresholds": list(REG_THRESHOLDS),
        "seconds": time.perf_counter() - t0,
    }
    write_report(args.out, results, summary, config)
    print(markdown_table(summary, TABLE_COLUMNS + VERDICT_COLUMNS))
    scenes = scene_summary(results)
    if len({row["scene"] for row in scenes}) > 1:
        print("\nper scene:\n" + markdown_table(scenes, SCENE_COLUMNS))
    return 0
