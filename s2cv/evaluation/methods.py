"""The methods a benchmark compares: s2cv models by zoo name or path, and OpenCV's detectors
(SIFT, ORB, AKAZE, BRISK) limited to the same K keypoints.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

import cv2
import numpy as np

from s2cv.runtime.feature2d import S2Net_create

PEERS = ("sift", "orb", "akaze", "brisk")


class Feature2D(Protocol):
    """The part of cv2.Feature2D the benchmark uses."""

    def detectAndCompute(  # noqa: N802 - OpenCV naming
        self, image: np.ndarray, mask: np.ndarray | None
    ) -> tuple[Sequence[cv2.KeyPoint], np.ndarray | None]: ...


class MethodUnavailable(RuntimeError):
    """The requested method cannot be built here (unknown name, missing module or model)."""


# ---------------------------------------------------------------- methods


class TopK:
    """Detector without an nfeatures option, limited to the K strongest keypoints."""

    def __init__(self, detector: Any, k: int) -> None:
        self.detector, self.k = detector, k

    def detectAndCompute(  # noqa: N802 - OpenCV naming
        self, image: np.ndarray, mask: np.ndarray | None
    ) -> tuple[Sequence[cv2.KeyPoint], np.ndarray | None]:
        kps = self.detector.detect(image, mask)
        kps = sorted(kps, key=lambda kp: kp.response, reverse=True)[: self.k]
        return self.detector.compute(image, kps)

    def defaultNorm(self) -> int:  # noqa: N802 - OpenCV naming
        return self.detector.defaultNorm()


def _opencv_factory(name: str) -> Callable[[], Any]:
    """cv2.<Name>_create from cv2 (4.x) or cv2.xfeatures2d (5.x contrib)."""
    attr = f"{name}_create"
    for module in (cv2, getattr(cv2, "xfeatures2d", None)):
        if module is not None and hasattr(module, attr):
            return getattr(module, attr)
    raise MethodUnavailable(f"{attr} not found in cv2 or cv2.xfeatures2d (opencv-contrib?)")


def create_method(spec: str, k: int, device: str | None = None, contrast_floor: float | None = None) -> Feature2D:
    """Build the detector named by `spec` with a budget of `k` keypoints.

    `spec` is sift, orb, akaze, brisk, or ``s2net[:MODEL]`` (s2cv.S2Net_create).
    """
    name, _, model = spec.partition(":")
    name = name.strip().lower()
    if name == "sift":
        return _opencv_factory("SIFT")(nfeatures=k)
    if name == "orb":
        return _opencv_factory("ORB")(nfeatures=k)
    if name == "akaze":
        return TopK(_opencv_factory("AKAZE")(), k)
    if name == "brisk":
        return TopK(_opencv_factory("BRISK")(), k)
    if name == "s2net":
        kwargs: dict[str, Any] = {"model": model or "default", "nfeatures": k}
        if device is not None:
            kwargs["device"] = device
        if contrast_floor is not None:
            kwargs["contrast_floor"] = contrast_floor
        try:
            return S2Net_create(**kwargs)
        except (FileNotFoundError, KeyError, ValueError) as e:
            raise MethodUnavailable(f"cannot create {spec}: {e}") from e
    raise MethodUnavailable(f"unknown method {spec!r}; known: {', '.join(PEERS)}, s2net[:MODEL]")
