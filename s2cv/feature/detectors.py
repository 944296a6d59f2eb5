"""Detectors by name: the one "model name -> detector" of every command and of the benchmark.

A name is an s2cv model (a zoo name such as ``default``, a checkpoint or an ``.onnx`` path, or
``s2net[:MODEL]``, the benchmark's spelling: ``s2net`` alone is the default model) or one of
OpenCV's detectors (``sift``, ``orb``, ``akaze``, ``brisk``: baselines, limited to the same
number of keypoints).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from s2cv.feature.feature2d import S2Net_create

PEERS = ("sift", "orb", "akaze", "brisk")


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


def opencv_factory(name: str) -> Callable[..., Any]:
    """cv2.<Name>_create from cv2 (4.x) or cv2.xfeatures2d (5.x contrib); ValueError when absent."""
    attr = f"{name}_create"
    for module in (cv2, getattr(cv2, "xfeatures2d", None)):
        if module is not None and hasattr(module, attr):
            return getattr(module, attr)
    raise ValueError(f"{attr} not found in cv2 or cv2.xfeatures2d (opencv-contrib?)")


def is_peer(name: str | Path) -> bool:
    """``name`` names one of OpenCV's detectors rather than an s2cv model."""
    return isinstance(name, str) and name.strip().lower() in PEERS


def make_detector(name: str | Path, nfeatures: int, backend: str = "auto", device: str | None = "auto",
                  contrast_floor: float | None = None) -> Any:
    """The detector ``name`` names (module docstring), keeping ``nfeatures`` keypoints.

    ``backend``, ``device`` and ``contrast_floor`` apply to s2cv models (``S2Net_create``; None:
    its default). Unknown models raise what ``S2Net_create`` raises (FileNotFoundError, KeyError,
    ValueError).
    """
    if is_peer(name):
        peer = str(name).strip().lower()
        if peer in ("sift", "orb"):
            return opencv_factory(peer.upper())(nfeatures=nfeatures)
        return TopK(opencv_factory(peer.upper())(), nfeatures)
    head, sep, model = str(name).partition(":")
    if sep and head.strip().lower() == "s2net" or str(name).strip().lower() == "s2net":
        name = model or "default"
    kwargs: dict[str, Any] = {"model": name, "nfeatures": nfeatures, "backend": backend}
    if device is not None:
        kwargs["device"] = device
    if contrast_floor is not None:
        kwargs["contrast_floor"] = contrast_floor
    return S2Net_create(**kwargs)
