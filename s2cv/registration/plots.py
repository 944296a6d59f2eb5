"""The registration's one picture drawn with matplotlib (``calibrate``'s residuals.png).

matplotlib is not a runtime dependency (it comes with the ``[train]`` extra, like the other plots in
``s2cv.evaluation.plots``): it is imported inside the function, on its Agg canvas, so the
registration works without it and the caller's plotting backend never changes; without it the
function raises ImportError, which ``calibrate.write_calibration`` reports in summary.json.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from s2cv.registration.calibrate import CalibrationResult


def plot_residuals(result: CalibrationResult, path: str | Path) -> None:
    """Per frame: matches, own-fit and rig inliers (top), median residual under the rig H (bottom)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    frames = result.frames
    x = np.arange(len(frames))
    fig = Figure(figsize=(max(6.0, min(16.0, 0.25 * len(frames) + 4)), 5.5), dpi=100)
    FigureCanvasAgg(fig)
    top, bottom = fig.add_subplot(2, 1, 1), fig.add_subplot(2, 1, 2)
    top.bar(x, [f.matches for f in frames], color="0.85", label="matches")
    top.plot(x, [f.own_inliers for f in frames], "k_", markersize=10, label="inliers of its own fit")
    top.bar(x, [f.inliers for f in frames], width=0.5, label="inliers of the rig homography",
            color=["tab:red" if f.flags else "tab:green" for f in frames])
    top.set_ylabel("matches")
    top.legend(fontsize=8)
    top.set_title(f"{len(frames)} frame pairs, {len(result.flagged)} flagged (red)")
    bottom.plot(x, [f.median_residual for f in frames], "o-", markersize=3)
    bottom.axhline(result.ransac_threshold, color="0.5", ls=":", label="inlier threshold")
    bottom.set_ylim(0, result.ransac_threshold * 1.1)
    bottom.set_ylabel("median inlier residual (px)")
    bottom.set_xlabel("frame")
    bottom.legend(fontsize=8)
    if len(frames) <= 30:
        bottom.set_xticks(x, [f.name for f in frames], rotation=60, fontsize=7, ha="right")
    for ax in (top, bottom):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(str(path))
