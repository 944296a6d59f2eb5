"""Curves for checking results by eye (MMA per threshold, training losses), drawn with matplotlib.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np


def plot_mma(
    curves: dict[str, Sequence[float]],
    path: str | Path,
    thresholds: Sequence[float] | None = None,
    title: str = "Mean matching accuracy",
) -> None:
    """Save MMA-vs-threshold curves (one line per method) as a PNG.

    matplotlib is imported here, on its Agg canvas, so the package works without it and never
    changes the caller's plotting backend.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5, 4), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for name, values in curves.items():
        xs = list(thresholds) if thresholds is not None else list(range(1, len(values) + 1))
        ax.plot(xs, list(values), marker="o", markersize=3, label=name)
    ax.set_xlabel("threshold (px)")
    ax.set_ylabel("MMA")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.set_title(title)
    if curves:
        ax.legend()
    fig.tight_layout()
    fig.savefig(str(path))


def logged_cameras(validation: dict) -> list[str]:
    """The cameras of one ``val_log.jsonl`` line (``val_<camera>_reg10``), hard-range ones as ``hard_<camera>``."""
    return sorted({k[len("val_"):-len("_reg10")] for k in validation if k.startswith("val_") and k.endswith("_reg10")
                   and k not in ("val_reg10", "val_hard_reg10")})


def plot_training(run_dir: str | Path, path: str | Path | None = None, smooth: int = 100) -> Path:
    """PNG of a training run: loss per branch (running mean over ``smooth`` steps), learning rate
    and validation NCM, from the run's ``train_log.csv`` and ``val_log.jsonl``; with per-camera
    validation (``--val-data``, several sources) a third panel shows each camera's share of pairs
    registered within 10 px, plain and hard geometry, so the curve shows which camera still improves."""
    import csv
    import json

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    run = Path(run_dir)
    with open(run / "train_log.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    val_file = run / "val_log.jsonl"
    val = [json.loads(line) for line in val_file.read_text().splitlines() if line.strip()] if val_file.is_file() else []
    cameras = logged_cameras(val[0]) if val else []
    panels = 3 if cameras else 2
    fig = Figure(figsize=(5 * panels, 3.6), dpi=100)
    FigureCanvasAgg(fig)
    ax_loss, ax_val = fig.add_subplot(1, panels, 1), fig.add_subplot(1, panels, 2)
    steps = np.array([int(r["step"]) for r in rows])
    window = max(1, min(smooth, len(rows)))
    kernel = np.full(window, 1.0 / window)
    for key in ("loss", "sl", "ssl_vis", "ssl_ir"):
        if rows and rows[0].get(key):
            values = np.array([float(r[key]) for r in rows])
            ax_loss.plot(steps[window - 1:], np.convolve(values, kernel, "valid"), label=key, lw=1)
    ax_loss.set_xlabel("step")
    ax_loss.set_ylabel(f"loss (mean of {window} steps)")
    ax_loss.grid(alpha=0.3)
    ax_loss.legend(fontsize=8)
    if rows and rows[0].get("lr"):
        ax_lr = ax_loss.twinx()
        ax_lr.plot(steps, [float(r["lr"]) if r.get("lr") else np.nan for r in rows], color="gray", ls=":", lw=1)
        ax_lr.set_ylabel("learning rate (dotted)")
    if val:
        ax_val.plot([v["step"] for v in val], [v["val_ncm"] for v in val], marker="o", markersize=3)
    ax_val.set_xlabel("step")
    ax_val.set_ylabel("validation NCM (3 px)")
    ax_val.grid(alpha=0.3)
    if cameras:
        ax_cam = fig.add_subplot(1, panels, 3)
        plain = [c for c in cameras if not c.startswith("hard_")]
        for cam in cameras:
            hard = cam.startswith("hard_")
            colour = f"C{plain.index(cam.removeprefix('hard_')) % 10}" if cam.removeprefix("hard_") in plain else None
            ax_cam.plot([v["step"] for v in val], [v[f"val_{cam}_reg10"] for v in val], "--" if hard else "-",
                        color=colour, marker="o", markersize=3, label=cam.replace("hard_", "hard "))
        ax_cam.set_xlabel("step")
        ax_cam.set_ylabel("share registered within 10 px")
        ax_cam.set_ylim(0, 1)
        ax_cam.grid(alpha=0.3)
        ax_cam.legend(fontsize=7)
    fig.suptitle(f"training run {run.name}")
    fig.tight_layout()
    out = Path(path) if path is not None else run / "training.png"
    fig.savefig(str(out))
    return out
