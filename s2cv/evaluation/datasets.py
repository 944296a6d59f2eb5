"""Where each data set keeps its pairs: one table (``DATASETS``) for training and benchmarks.

A data set has aligned pairs for training (``list_pairs``: no homography, the pixels correspond)
and/or warped benchmark pairs with known homographies (``load_benchmark``). In every benchmark
H maps a pixel (x, y, 1) of image a (visible) to image b (thermal / NIR).

* ``roadscene``: training ``DIR/train.txt`` names ``DIR/aligned/{vis,ir}/NAME``; benchmark
  ``DIR/test/NAME_vis.png``, ``NAME_ir.png`` and ``DIR/test/homographies.json``.
* ``visnir``: training ``DIR/train/country/NNNN_rgb.*`` with ``NNNN_nir.*``; benchmark
  ``DIR/test/<scene>/NNNN_rgb.jpg``, ``NNNN_nir.jpg`` and ``DIR/test/homographies.json`` with keys
  ``"<scene>/NNNN"``.
* ``folder`` (training only): ``DIR/vis/NAME.<ext>`` with ``DIR/ir/NAME.<ext>`` (or ``a/`` and ``b/``).
* ``pairs`` (benchmark only): ``DIR/NAME_a.<ext>``, ``DIR/NAME_b.<ext>`` and either
  ``DIR/homographies.json`` ``{NAME: 3x3}`` or ``DIR/pairs.txt`` with one line per pair,
  ``NAME h11 h12 h13 h21 h22 h23 h31 h32 h33`` (``#`` starts a comment).

For roadscene and visnir benchmarks, ``DIR`` may also be the ``test`` folder itself. Validation
during training takes every tenth training pair (``split="val"``), never a benchmark pair.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from s2cv.feature.image import IMAGE_EXTENSIONS


@dataclass(frozen=True)
class AlignedPair:
    """Two aligned images of one scene (training data: pixel (x, y) of a is pixel (x, y) of b)."""

    name: str
    path_a: Path  # visible
    path_b: Path  # thermal / near-infrared


@dataclass(frozen=True)
class Pair:
    """Two images of one scene and the homography mapping pixels of a to pixels of b."""

    name: str
    path_a: Path
    path_b: Path
    H: np.ndarray


def _check_dir(path: Path) -> Path:
    if not path.is_dir():
        raise FileNotFoundError(f"data folder not found: {path}")
    return path


# ---------------------------------------------------------------- aligned training pairs


def list_roadscene(root: Path) -> list[AlignedPair]:
    root = _check_dir(root)
    names = (root / "train.txt").read_text().split()
    return [AlignedPair(n, root / "aligned" / "vis" / n, root / "aligned" / "ir" / n) for n in names]


def list_visnir(root: Path) -> list[AlignedPair]:
    folder = _check_dir(root / "train" / "country")
    return [AlignedPair(p.name[:-8], p, p.with_name(p.name.replace("_rgb", "_nir")))
            for p in sorted(folder.glob("*_rgb.*"))]


def list_folder(root: Path) -> list[AlignedPair]:
    root = _check_dir(root)
    for a, b in (("vis", "ir"), ("a", "b")):
        if (root / a).is_dir() and (root / b).is_dir():
            files = {p.stem: p for p in (root / b).iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS}
            return [AlignedPair(p.stem, p, files[p.stem]) for p in sorted((root / a).iterdir())
                    if p.suffix.lower() in IMAGE_EXTENSIONS and p.stem in files]
    raise FileNotFoundError(f"{root}: expected sub-folders vis/ and ir/ (or a/ and b/) of aligned images")


# ---------------------------------------------------------------- benchmark pairs


def _read_homographies(path: Path) -> dict[str, np.ndarray]:
    with open(path) as f:
        raw = json.load(f)
    return {name: _as_homography(h, f"{path}:{name}") for name, h in raw.items()}


def _as_homography(values: Any, where: str) -> np.ndarray:
    H = np.asarray(values, dtype=np.float64)
    if H.size != 9:
        raise ValueError(f"{where}: expected 9 homography values, got {H.size}")
    return H.reshape(3, 3)


def _test_dir(root: Path) -> Path:
    return root / "test" if (root / "test" / "homographies.json").is_file() else root


def _checked(pairs: list[Pair]) -> list[Pair]:
    missing = [str(p) for pair in pairs for p in (pair.path_a, pair.path_b) if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"{len(missing)} image(s) missing, e.g. {missing[0]}")
    return sorted(pairs, key=lambda p: p.name)


def load_roadscene(root: str | Path) -> list[Pair]:
    """RoadScene VIS-TIR benchmark: ``test/NAME_vis.png`` -> ``test/NAME_ir.png``."""
    d = _test_dir(Path(root))
    hs = _read_homographies(d / "homographies.json")
    return _checked([Pair(n, d / f"{n}_vis.png", d / f"{n}_ir.png", H) for n, H in hs.items()])


def load_visnir(root: str | Path) -> list[Pair]:
    """EPFL VIS-NIR benchmark: ``test/<scene>/NNNN_rgb.jpg`` -> ``NNNN_nir.jpg``."""
    d = _test_dir(Path(root))
    hs = _read_homographies(d / "homographies.json")
    return _checked([Pair(n, d / f"{n}_rgb.jpg", d / f"{n}_nir.jpg", H) for n, H in hs.items()])


def _find_image(d: Path, stem: str) -> Path:
    for ext in IMAGE_EXTENSIONS:
        for candidate in (d / f"{stem}{ext}", d / f"{stem}{ext.upper()}"):
            if candidate.is_file():
                return candidate
    raise FileNotFoundError(f"no image {d / stem}{{{','.join(IMAGE_EXTENSIONS)}}}")


def load_pairs(root: str | Path) -> list[Pair]:
    """Generic layout: ``NAME_a.<ext>``, ``NAME_b.<ext>`` plus homographies.json or pairs.txt."""
    d = Path(root)
    if (d / "homographies.json").is_file():
        hs = _read_homographies(d / "homographies.json")
    elif (d / "pairs.txt").is_file():
        hs = {}
        for lineno, line in enumerate((d / "pairs.txt").read_text().splitlines(), 1):
            fields = line.split("#", 1)[0].split()
            if fields:
                hs[fields[0]] = _as_homography(fields[1:], f"{d / 'pairs.txt'}:{lineno}")
    else:
        raise FileNotFoundError(f"{d} has neither homographies.json nor pairs.txt")
    pairs = [Pair(n, _find_image(d, f"{n}_a"), _find_image(d, f"{n}_b"), H) for n, H in hs.items()]
    return _checked(pairs)


@dataclass(frozen=True)
class Layout:
    """How one data set is laid out on disk; either side may be missing."""

    aligned: Callable[[Path], list[AlignedPair]] | None    # training pairs
    benchmark: Callable[[Path], list[Pair]] | None          # pairs with ground-truth homographies


DATASETS: dict[str, Layout] = {
    "roadscene": Layout(list_roadscene, load_roadscene),
    "visnir": Layout(list_visnir, load_visnir),
    "folder": Layout(list_folder, None),
    "pairs": Layout(None, load_pairs),
}
TRAINING_LAYOUTS = tuple(sorted(k for k, v in DATASETS.items() if v.aligned))
BENCHMARK_LAYOUTS = tuple(sorted(k for k, v in DATASETS.items() if v.benchmark))


def _layout(kind: str, side: str) -> Callable[[Path], list[Any]]:
    names = TRAINING_LAYOUTS if side == "aligned" else BENCHMARK_LAYOUTS
    if kind not in names:
        what = "training" if side == "aligned" else "benchmark"
        raise ValueError(f"unknown {what} dataset {kind!r}; expected one of {list(names)}")
    return getattr(DATASETS[kind], side)


def list_pairs(kind: str, root: str | Path, split: str = "train") -> list[AlignedPair]:
    """The aligned pairs of one data set's training data; ``split`` 'train', 'val' (every tenth
    pair) or 'all' (both: a camera held out of training entirely, validated on every pair)."""
    if split not in ("train", "val", "all"):
        raise ValueError(f"split must be 'train', 'val' or 'all', got {split!r}")
    pairs = sorted(_layout(kind, "aligned")(Path(root)), key=lambda p: p.name)
    if not pairs:
        raise FileNotFoundError(f"no aligned pairs found for dataset {kind!r} in {root}")
    if split == "all":
        return pairs
    val = [p for i, p in enumerate(pairs) if i % 10 == 5]
    return val if split == "val" else [p for p in pairs if p not in val]


def load_benchmark(kind: str, root: str | Path) -> list[Pair]:
    """The benchmark pairs (with homographies) of one data set, sorted by name."""
    return _layout(kind, "benchmark")(Path(root))
