"""Benchmark local features on cross-modality pairs with known homographies.

Run ``python -m s2cv.evaluate --help``. Every method sees the images as a user would pass
them (BGR uint8 visible, single-channel thermal/NIR) and is scored with :mod:`s2cv.metrics`.

Dataset layouts (``--data DIR``):

* ``roadscene``: ``DIR/test/NAME_vis.png``, ``NAME_ir.png`` and ``DIR/test/homographies.json``.
* ``visnir``: ``DIR/test/<scene>/NNNN_rgb.jpg``, ``NNNN_nir.jpg`` and ``DIR/test/homographies.json``
  with keys ``"<scene>/NNNN"``.
* ``pairs`` (generic): ``DIR/NAME_a.<ext>``, ``DIR/NAME_b.<ext>`` (ext png, jpg, jpeg, tif or
  tiff) and either ``DIR/homographies.json`` ``{NAME: 3x3}`` or ``DIR/pairs.txt`` with one line
  per pair, ``NAME h11 h12 h13 h21 h22 h23 h31 h32 h33`` (``#`` starts a comment).

For roadscene and visnir, ``DIR`` may also be the ``test`` folder itself. In every layout H maps a
pixel (x, y, 1) of image a (visible) to image b (thermal / NIR).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Protocol

from s2cv.extras import require_train_extra

require_train_extra("s2cv evaluate")  # a torch-free install is told which extra to add

import cv2
import numpy as np
from tqdm import tqdm

from s2cv import viz
from s2cv.backends import DenseMaps
from s2cv.feature2d import S2Net_create, S2NetFeature2D
from s2cv.refine import refine_homography
from s2cv.register import read_image as read_file
from s2cv.verdict import plausibility
from s2cv.metrics import (
    MMA_THRESHOLDS,
    REG_THRESHOLDS,
    PairResult,
    aggregate,
    corner_error,
    estimate_homography,
    match_errors,
    mutual_nn_matches,
    score_pair,
)

IMAGE_EXTS = ("png", "jpg", "jpeg", "tif", "tiff")
PEERS = ("sift", "orb", "akaze", "brisk")
GRAY_TOLERANCE = 2  # max channel difference still treated as gray (JPEG chroma noise)


@dataclass(frozen=True)
class Pair:
    """Two images of one scene and the homography mapping pixels of a to pixels of b."""

    name: str
    path_a: Path
    path_b: Path
    H: np.ndarray


class Feature2D(Protocol):
    """The part of cv2.Feature2D the benchmark uses."""

    def detectAndCompute(  # noqa: N802 - OpenCV naming
        self, image: np.ndarray, mask: np.ndarray | None
    ) -> tuple[Sequence[cv2.KeyPoint], np.ndarray | None]: ...


class MethodUnavailable(RuntimeError):
    """The requested method cannot be built here (unknown name, missing module or model)."""


@dataclass
class JudgedPairResult(PairResult):
    """A pair's numbers plus ``s2cv.verdict``'s decision on its protocol fit (the metrics are
    unchanged: a refused fit still has its corner error)."""

    verdict: str = "no fit"    # "plausible", "refused" or "no fit"
    verdict_reason: str = ""   # the failed tests, when refused


def judged(result: PairResult, ma: np.ndarray, mb: np.ndarray, shape_a: Sequence[int],
           shape_b: Sequence[int]) -> JudgedPairResult:
    """``result`` with the verdict on the protocol fit of the matched points ``ma -> mb``
    (``estimate_homography``, as ``score_pair`` fits; inliers: residual <= 3 px)."""
    H_ab = estimate_homography(ma, mb)
    if H_ab is None or abs(np.linalg.det(H_ab)) < 1e-12:
        return JudgedPairResult(**asdict(result))
    v = plausibility(H_ab, ma, mb, shape_a, shape_b)
    return JudgedPairResult(**asdict(result), verdict="plausible" if v.ok else "refused", verdict_reason=v.reason)


# ---------------------------------------------------------------- datasets


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
    for ext in IMAGE_EXTS:
        for candidate in (d / f"{stem}.{ext}", d / f"{stem}.{ext.upper()}"):
            if candidate.is_file():
                return candidate
    raise FileNotFoundError(f"no image {d / stem}.{{{','.join(IMAGE_EXTS)}}}")


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


LOADERS: dict[str, Callable[[str | Path], list[Pair]]] = {
    "roadscene": load_roadscene,
    "visnir": load_visnir,
    "pairs": load_pairs,
}


def read_image(path: str | Path) -> np.ndarray:
    """Image as a user would hand it to a detector: BGR for colour, 2-D for gray, depth kept.

    Alpha is dropped, and 3-channel files whose channels are equal (thermal/NIR saved as RGB)
    become single-channel.
    """
    img = read_file(path)
    if img.ndim == 3 and img.shape[2] == 4:
        img = img[:, :, :3]
    if img.ndim == 3:
        spread = np.abs(img.astype(np.int32) - img[:, :, :1].astype(np.int32)).max()
        if spread <= GRAY_TOLERANCE:
            img = np.ascontiguousarray(img[:, :, 0])
    return img


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


def _detect(det: Feature2D, img: np.ndarray, maps: bool = False
            ) -> tuple[np.ndarray, np.ndarray | None, float, DenseMaps | None]:
    """Keypoint coordinates (N, 2), descriptors, wall time in seconds and, with ``maps`` (s2cv
    detectors), the dense maps detection ran on (same work, so the time is comparable)."""
    t0 = time.perf_counter()
    kps, desc, *dense = det.detectAndComputeMaps(img, None) if maps else det.detectAndCompute(img, None)
    dt = time.perf_counter() - t0
    pts = np.array([kp.pt for kp in kps], dtype=np.float64).reshape(-1, 2)
    return pts, desc, dt, (dense[0] if dense else None)


def _refined_corner_error(ma: np.ndarray, mb: np.ndarray, H: np.ndarray, shape_a: Sequence[int],
                          shape_b: Sequence[int], maps_a: DenseMaps, maps_b: DenseMaps) -> float:
    """Corner error after ``refine_homography`` polishes the protocol fit of the matched points
    ``ma``/``mb`` (``score_pair``'s fit: the deterministic MAGSAC gives the same starting model)."""
    H_ab = estimate_homography(ma, mb)
    if H_ab is None or abs(np.linalg.det(H_ab)) < 1e-12:
        return math.inf
    H_ba = refine_homography(np.linalg.inv(H_ab), maps_a, maps_b, tuple(shape_a), tuple(shape_b))
    return corner_error(np.linalg.inv(H_ba), H, shape_a)


def _norm_of(det: Feature2D) -> int | None:
    get = getattr(det, "defaultNorm", None)
    return get() if get is not None else None


# ---------------------------------------------------------------- evaluation


def evaluate(
    pairs: Sequence[Pair],
    methods: Sequence[str],
    ks: Sequence[int],
    threshold: float = 3.0,
    *,
    device: str | None = None,
    contrast_floor: float | None = None,
    out_dir: str | Path | None = None,
    n_plots: int = 0,
    refine: bool = False,
    progress: bool = True,
    log: Callable[[str], None] = lambda msg: print(msg, file=sys.stderr),
) -> list[JudgedPairResult]:
    """Score every available method at every K on every pair, and judge each fit (``s2cv.verdict``).

    Unavailable methods are reported through `log` and skipped. If `out_dir` is given, match
    pictures of the first `n_plots` pairs are written there for the first available method at
    the largest K. Detectors get one untimed warm-up call so lazy initialisation is not timed.
    With `refine`, every s2cv method also gets a ``<spec>+refine`` row: the same features and
    fit, the homography then polished on the dense maps (``s2cv.refine``; only its corner error differs).
    """
    if not ks or min(ks) <= 0:
        raise ValueError(f"keypoint budgets must be positive integers, got {list(ks)}")
    detectors: dict[tuple[str, int], Feature2D] = {}
    for spec in methods:
        try:
            for k in ks:
                detectors[(spec, k)] = create_method(spec, k, device, contrast_floor)
        except MethodUnavailable as e:
            log(f"skipping {spec}: {e}")
            detectors = {key: d for key, d in detectors.items() if key[0] != spec}
    if not detectors or not pairs:
        return []
    plot_key = next((spec, max(ks)) for spec, _ in detectors)
    if out_dir is not None:
        Path(out_dir).mkdir(parents=True, exist_ok=True)

    warm = read_image(pairs[0].path_a)
    for det in detectors.values():
        det.detectAndCompute(warm, None)

    results: list[JudgedPairResult] = []
    for i, pair in enumerate(tqdm(pairs, desc="pairs", disable=not progress)):
        img_a, img_b = read_image(pair.path_a), read_image(pair.path_b)
        dense: dict[str, tuple[DenseMaps, DenseMaps]] = {}  # per model: the maps do not depend on K
        for (spec, k), det in detectors.items():
            keep = refine and isinstance(det, S2NetFeature2D) and spec not in dense
            pts_a, desc_a, ta, maps_a = _detect(det, img_a, keep)
            pts_b, desc_b, tb, maps_b = _detect(det, img_b, keep)
            if keep:
                dense[spec] = (maps_a, maps_b)
            idx = mutual_nn_matches(desc_a, desc_b, _norm_of(det))
            ma, mb = pts_a[idx[:, 0]], pts_b[idx[:, 1]]
            result = score_pair(
                pts_a, desc_a, pts_b, desc_b, pair.H, img_a.shape, img_b.shape, threshold,
                name=pair.name, method=spec, k=k, ms=(ta + tb) / 2 * 1000, matches=idx,
            )
            result = judged(result, ma, mb, img_a.shape, img_b.shape)
            results.append(result)
            if spec in dense:
                err = _refined_corner_error(ma, mb, pair.H, img_a.shape, img_b.shape, *dense[spec])
                results.append(replace(result, method=f"{spec}+refine", corner_error=err))
            if out_dir is not None and i < n_plots and (spec, k) == plot_key:
                ok = match_errors(ma, mb, pair.H) <= threshold
                canvas = viz.draw_matches(img_a, img_b, ma, mb, ok)
                fname = f"matches_{_safe(spec)}_k{k}_{_safe(pair.name)}.png"
                cv2.imwrite(str(Path(out_dir) / fname), canvas)
    return results


def _safe(name: str) -> str:
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


def write_outputs(
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
        viz.plot_mma(curves, out / f"mma_k{k}.png", MMA_THRESHOLDS, title=f"MMA, K = {k}")


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


def _build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m s2cv.evaluate",
        description="Evaluate local features on cross-modality pairs with known homographies.",
    )
    p.add_argument("--dataset", choices=sorted(LOADERS), required=True)
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
    p.add_argument("--out", default="eval_out", help="output folder (default: eval_out/)")
    p.add_argument("--plots", type=int, default=3, help="pairs with match pictures (default 3)")
    p.add_argument("--device", help="torch device for s2net (e.g. cpu, cuda)")
    p.add_argument("--contrast-floor", type=float, help="s2net's contrast_floor (default: the detector's, 4/255)")
    p.add_argument("--refine", action="store_true",
                   help="also report s2net registration with the homography refined on the dense maps")
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


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point; returns the process exit status."""
    parser = _build_parser()
    args = parser.parse_args(argv)
    if args.limit is not None and args.limit <= 0:
        parser.error("--limit must be positive")
    if args.threshold <= 0:
        parser.error("--threshold must be positive")
    data = _resolve_data(parser, args.dataset, args.data)
    if not data.is_dir():
        parser.error(f"data folder {data} does not exist")
    pairs = LOADERS[args.dataset](data)[: args.limit]

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
        "reg_thresholds": list(REG_THRESHOLDS),
        "seconds": time.perf_counter() - t0,
    }
    write_outputs(args.out, results, summary, config)
    print(markdown_table(summary, TABLE_COLUMNS + VERDICT_COLUMNS))
    scenes = scene_summary(results)
    if len({row["scene"] for row in scenes}) > 1:
        print("\nper scene:\n" + markdown_table(scenes, SCENE_COLUMNS))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
