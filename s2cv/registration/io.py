"""What the registration commands read and write: images, H.txt, summary.json, progress, errors.

One place for the files ``register``, ``calibrate`` and the registered video share: the H.txt
format (IR -> visible, ``np.loadtxt`` reads it back), JSON summaries with numpy numbers, image
writing that reports failure, and the optional tqdm bar (tqdm is part of the ``[train]`` extra).
"""
from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TypeVar

import cv2
import numpy as np

from s2cv.registration.geometry import invertible

T = TypeVar("T")
H_HEADER = "3x3 homography mapping IR pixels (x, y, 1) onto the visible image"


class RegistrationError(RuntimeError):
    """The inputs could not be registered or read; the message is meant for the user."""


def imwrite(path: Path, image: np.ndarray) -> None:
    ok, data = cv2.imencode(path.suffix, image)
    if not ok:
        raise RegistrationError(f"cannot encode {path}")
    data.tofile(str(path))


def json_default(value: Any) -> Any:
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def write_summary(path: Path, summary: dict[str, Any]) -> None:
    """summary.json: indented, no NaN, numpy scalars as numbers."""
    path.write_text(json.dumps(summary, indent=2, allow_nan=False, default=json_default))


def implausible_note(result: Any) -> str:
    """The H.txt header line of a fit kept by ``accept_implausible`` ("" otherwise)."""
    if not result.implausible_accepted:
        return ""
    return f"IMPLAUSIBLE, kept by --accept-implausible: {result.verdict.reason}"


def save_homography(path: Path, H: np.ndarray, note: str = "") -> None:
    """H.txt as ``s2cv register`` writes it (IR -> visible, ``np.loadtxt`` reads it back); ``note``
    adds a header line (e.g. that the fit was kept although implausible)."""
    np.savetxt(path, H, fmt="%.10g", header=H_HEADER + (f"\n{note}" if note else ""))


def load_homography(path: str | Path) -> np.ndarray:
    """A 3x3 IR -> visible homography from an H.txt; clear errors for anything else."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"homography file not found: {path}")
    try:
        H = np.loadtxt(path, dtype=np.float64)
    except ValueError as exc:
        raise ValueError(f"homography file {path}: not a table of numbers ({exc})") from None
    if H.shape != (3, 3) or not np.isfinite(H).all() or not invertible(H):
        raise ValueError(f"homography file {path}: expected a finite, invertible 3x3 matrix, got shape {H.shape}")
    return H


def progress_bar(items: Iterable[T], total: int | None, desc: str, unit: str, enabled: bool | None) -> Iterable[T]:
    """A tqdm bar over ``items`` (``enabled`` None: on a terminal only); the items alone where
    tqdm, part of the [train] extra, is not installed."""
    try:
        from tqdm import tqdm
    except ImportError:
        return items
    return tqdm(items, total=total, desc=desc, unit=unit, disable=None if enabled is None else not enabled)
