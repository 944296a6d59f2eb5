"""Benchmark results as a person reads them: markdown tables, per-scene summaries, JSON, CSV and MMA plots.
"""
from __future__ import annotations

import csv
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from s2cv.evaluation.metrics import MMA_THRESHOLDS, JudgedPairResult, PairResult, aggregate
from s2cv.evaluation.plots import plot_mma


def safe_name(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


# ---------------------------------------------------------------- reporting

TABLE_COLUMNS: tuple[tuple[str, str, Callable[[Any], str]], ...] = (
    ("method", "method", str),
    ("K", "k", str),
    ("NC", "nc", lambda v: f"{v:.1f}"),
    ("NCM", "ncm", lambda v: f"{v:.1f}"),
    ("CMR", "cmr", lambda v: f"{v:.3f}"),
    ("MMA@3", "mma@3", lambda v: f"{v:.3f}"),
    ("reg@3 %", "reg@3", lambda v: f"{100 * v:.1f}"),
    ("reg@5 %", "reg@5", lambda v: f"{100 * v:.1f}"),
    ("reg@10 %", "reg@10", lambda v: f"{100 * v:.1f}"),
    ("AUC@5", "auc@5", lambda v: f"{v:.3f}"),
    ("ms/img", "ms", lambda v: f"{v:.1f}"),
    ("#kp", "kp", lambda v: f"{v:.0f}"),
)


VERDICT_COLUMNS: tuple[tuple[str, str, Callable[[Any], str]], ...] = (
    ("refused %", "refused", lambda v: f"{100 * v:.1f}"),
    ("refused ≤10 px", "refused@10", str),
    ("kept >10 px", "kept_wrong@10", str),
)
"""The verdict's columns: share of pairs whose fit it refuses, fits within 10 px it refuses
(true registrations lost) and fits beyond 10 px it lets through (wrong ones still reported)."""


def add_verdict_columns(summary: Sequence[dict[str, Any]], results: Sequence[JudgedPairResult]) -> list[dict[str, Any]]:
    """Summary rows (``metrics.aggregate``) with the ``VERDICT_COLUMNS`` keys added per (method, K)."""
    rows = []
    for row in summary:
        rs = [r for r in results if r.method == row["method"] and r.k == row["k"]]
        refused = [r for r in rs if r.verdict == "refused"]
        rows.append({**row, "refused": len(refused) / max(len(rs), 1),
                     "refused@10": sum(r.corner_error <= 10 for r in refused),
                     "kept_wrong@10": sum(r.verdict == "plausible" and not r.corner_error <= 10 for r in rs)})
    return rows


SCENE_COLUMNS: tuple[tuple[str, str, Callable[[Any], str]], ...] = (
    ("scene", "scene", str), ("method", "method", str), ("K", "k", str), ("pairs", "pairs", str),
    ("NCM", "ncm", lambda v: f"{v:.1f}"), ("CMR", "cmr", lambda v: f"{v:.3f}"),
    ("reg@5 %", "reg@5", lambda v: f"{100 * v:.1f}"), ("reg@10 %", "reg@10", lambda v: f"{100 * v:.1f}"),
)


def scene_summary(results: Sequence[PairResult]) -> list[dict[str, Any]]:
    """Summary rows per scene (the ``scene/`` prefix of pair names, e.g. VIS-NIR's ``field/0001``).

    Why: a model trained on one scene type (VIS-NIR ``country``) should be judged on the others
    separately; empty when pairs carry no scene prefix.
    """
    scenes = sorted({r.name.split("/", 1)[0] for r in results if "/" in r.name})
    return [{"scene": scene, **row}
            for scene in scenes
            for row in aggregate([r for r in results if r.name.startswith(scene + "/")])]


def markdown_table(summary: Sequence[dict[str, Any]],
                   columns: Sequence[tuple[str, str, Callable[[Any], str]]] = TABLE_COLUMNS) -> str:
    """Summary rows (from metrics.aggregate or scene_summary) as a Markdown table."""
    lines = [
        "| " + " | ".join(title for title, _, _ in columns) + " |",
        "|" + "|".join("---" for _ in columns) + "|",
    ]
    for row in summary:
        lines.append("| " + " | ".join(fmt(row[key]) for _, key, fmt in columns) + " |")
    return "\n".join(lines)


def _json_safe(value: Any) -> Any:
    """JSON has no inf/nan: write them as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def write_report(
    out_dir: str | Path,
    results: Sequence[PairResult],
    summary: Sequence[dict[str, Any]],
    config: dict[str, Any],
) -> None:
    """results.json (config, summary, per-pair), results.csv (summary) and mma_k<K>.png."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    payload = {"config": config, "summary": list(summary), "scenes": scene_summary(results),
               "pairs": [asdict(r) for r in results]}
    with open(out / "results.json", "w") as f:
        json.dump(_json_safe(payload), f, indent=1)
    with open(out / "results.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(summary[0]))
        writer.writeheader()
        writer.writerows(summary)
    for k in sorted({row["k"] for row in summary}):
        curves = {
            row["method"]: [row[f"mma@{t}"] for t in MMA_THRESHOLDS]
            for row in summary
            if row["k"] == k
        }
        plot_mma(curves, out / f"mma_k{k}.png", MMA_THRESHOLDS, title=f"MMA, K = {k}")


write_outputs = write_report  # its name until 0.1: one of three write_outputs
