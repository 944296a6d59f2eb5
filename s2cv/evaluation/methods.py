"""The methods a benchmark compares: s2cv models by zoo name or path, and OpenCV's detectors
(SIFT, ORB, AKAZE, BRISK) limited to the same K keypoints.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import cv2
import numpy as np

from s2cv.feature.detectors import PEERS, TopK, make_detector  # noqa: F401 - TopK: its old home


class Feature2D(Protocol):
    """The part of cv2.Feature2D the benchmark uses."""

    def detectAndCompute(  # noqa: N802 - OpenCV naming
        self, image: np.ndarray, mask: np.ndarray | None
    ) -> tuple[Sequence[cv2.KeyPoint], np.ndarray | None]: ...


class MethodUnavailable(RuntimeError):
    """The requested method cannot be built here (unknown name, missing module or model)."""


# ---------------------------------------------------------------- methods


def create_method(spec: str, k: int, device: str | None = None, contrast_floor: float | None = None) -> Feature2D:
    """Build the detector named by `spec` with a budget of `k` keypoints.

    `spec` is sift, orb, akaze, brisk, or ``s2net[:MODEL]`` (s2cv.S2Net_create), built by the
    commands' ``s2cv.feature.detectors.make_detector``.
    """
    name = spec.partition(":")[0].strip().lower()
    if name not in (*PEERS, "s2net"):
        raise MethodUnavailable(f"unknown method {spec!r}; known: {', '.join(PEERS)}, s2net[:MODEL]")
    try:
        return make_detector(spec, k, device=device, contrast_floor=contrast_floor)
    except (FileNotFoundError, KeyError, ValueError) as e:
        raise MethodUnavailable(f"cannot create {spec}: {e}") from e
