"""A second, tighter fit after the coarse robust one: fewer near misses.

The coarse MAGSAC++ fit at 3 px accepts matches a few pixels off (a neighbouring keypoint picked
by the nearest neighbour) and lets them tilt the model. Local optimisation re-estimates the model
by least squares on the matches within a tighter radius of the current one, a few rounds, and
keeps the result only when it still has enough support. Measured on validation pairs
(``benchmarks/accuracy_estimate.py``; docs/results.md "Accuracy estimate and near misses"), it does
not help there (the near misses are consistent enough to survive a tighter consensus), so
``register`` does not use it; it stays for those measurements and for users who want to try it.
"""
from __future__ import annotations

import cv2
import numpy as np

from s2cv.registration.geometry import match_errors

MIN_SUPPORT = 12


def local_optimise(H: np.ndarray, src: np.ndarray, dst: np.ndarray, threshold: float, tight: float,
                   rounds: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """``H`` (src -> dst) refitted by least squares on the matches within ``tight`` px of the
    current model, ``rounds`` times; returns the model and its inlier mask at ``threshold``. The
    input model is returned unchanged when fewer than ``MIN_SUPPORT`` matches lie that close."""
    src = np.asarray(src, np.float64).reshape(-1, 2)
    dst = np.asarray(dst, np.float64).reshape(-1, 2)
    best = np.asarray(H, np.float64)
    for _ in range(rounds):
        close = match_errors(src, dst, best) <= tight
        if close.sum() < MIN_SUPPORT:
            break
        refit, _ = cv2.findHomography(src[close], dst[close], 0)
        if refit is None or not np.isfinite(refit).all() or abs(np.linalg.det(refit)) < 1e-8:
            break
        best = refit / refit[2, 2]
    return best, match_errors(src, dst, best) <= threshold
