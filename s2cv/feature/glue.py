"""S2Glue at run time: a learned matcher shaped like OpenCV's ``cv2.LightGlueMatcher``, torch-free.

    det = s2cv.S2Net_create(2048, model=matcher.det_model)
    matcher = s2cv.S2Glue_create()                       # zoo "default"
    kp1, des1 = det.detectAndCompute(vis, None)
    kp2, des2 = det.detectAndCompute(ir, None)
    matcher.setPairInfo(kp1, kp2, (w1, h1), (w2, h2))  # keypoints + image sizes, as cv2.LightGlueMatcher
    matches = matcher.match(des1, des2)                # cv2.DMatch, distance = 1 - confidence

Why not a ``cv2.DescriptorMatcher`` subclass: a Python subclass carries an empty C++ object, and
OpenCV's C++ code that receives it crashes; this is a plain class with the same method names.

A matcher only makes sense on the descriptors of the detector it was trained with: ``det_model``
names it (``S2Net_create(model=matcher.det_model)``). The graph (``s2cv.deploy.export_glue``)
runs with OpenCV's own ``cv2.LightGlueMatcher`` (``backend="opencv"``, cv::dnn inside; what "auto"
picks when OpenCV has it) or with onnxruntime (``backend="onnxruntime"``): the same file.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import cv2
import numpy as np

from s2cv.feature.graph import read_graph_info

GLUE_FORMAT = "s2cv-glue/1"
GLUE_INPUTS = ("kpts0", "kpts1", "desc0", "desc1")
GLUE_OUTPUTS = ("matches0", "matches1", "mscores0", "mscores1")
WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"
# Glue zoo: name -> checkpoint in s2cv/weights (its graph is the .onnx beside it).
GLUE_ZOO: dict[str, str] = {
    "default": "s2glue-s2xfeat.pt",   # for S2Net_create(model="s2xfeat"); see docs/models.md
}
BACKENDS = ("auto", "onnxruntime", "opencv")


def available_matchers() -> list[str]:
    """Glue zoo names whose graph is actually shipped."""
    return [n for n, f in GLUE_ZOO.items() if (WEIGHTS_DIR / f).with_suffix(".onnx").is_file()]


def resolve_glue_checkpoint(model: str | Path) -> Path:
    """A glue zoo name or checkpoint path -> the checkpoint file (for export and training)."""
    path = WEIGHTS_DIR / GLUE_ZOO[model] if isinstance(model, str) and model in GLUE_ZOO else Path(model)
    if not path.is_file():
        raise FileNotFoundError(f"matcher {str(model)!r} is neither a glue zoo name ({sorted(GLUE_ZOO)}) "
                                f"nor a checkpoint file")
    return path


def resolve_glue_graph(model: str | Path) -> Path:
    """A glue zoo name, a graph (.onnx) or a checkpoint with its exported graph beside it -> the graph."""
    if isinstance(model, str) and model in GLUE_ZOO:
        path = (WEIGHTS_DIR / GLUE_ZOO[model]).with_suffix(".onnx")
        if not path.is_file():
            raise FileNotFoundError(f"the glue zoo model {model!r} is not shipped in this build (expected {path}); "
                                    f"available: {available_matchers() or 'none'}")
        return path
    path = Path(model)
    if path.suffix.lower() != ".onnx":
        graph = path.with_suffix(".onnx")
        if not graph.is_file():
            raise FileNotFoundError(f"no graph beside the matcher checkpoint {path}; write one with "
                                    f"`s2cv export {path} --format cv-lightglue -o {graph}`")
        path = graph
    if not path.is_file():
        raise FileNotFoundError(f"matcher {str(model)!r} is neither a glue zoo name ({sorted(GLUE_ZOO)}) nor a file")
    return path


def read_glue_metadata(path: str | Path) -> dict[str, Any]:
    """The s2cv metadata of a matcher graph; ValueError when the file is not one."""
    info = read_graph_info(path)
    props = info.metadata
    if props.get("s2cv.format") != GLUE_FORMAT or set(GLUE_INPUTS) - set(info.inputs) \
            or set(GLUE_OUTPUTS) - set(info.outputs):
        raise ValueError(f"{path} is not an S2Glue matcher graph ({info.describe()}); write one with "
                         f"`s2cv export MATCHER --format cv-lightglue -o {Path(path).name}`")
    try:
        return {"det_model": props["s2cv.det_model"], "descriptor_dim": int(props["s2cv.descriptor_dim"]),
                "filter_threshold": float(props.get("s2cv.filter_threshold", "0.1")),
                "weights_sha256": props.get("s2cv.weights_sha256", ""), "onnx": str(path)}
    except (KeyError, ValueError) as exc:
        raise ValueError(f"{path}: malformed S2Glue metadata ({exc})") from None


def normalize_keypoints(kpts: np.ndarray, size: Sequence[float]) -> np.ndarray:
    """Pixel (x, y) -> (p - size/2) / (max(w, h)/2), LightGlue's (and cv2.LG_NORM_MAX_SIDE's) mapping."""
    size = np.asarray(size, np.float32)
    return ((np.asarray(kpts, np.float32) - size / 2) / (size.max() / 2)).astype(np.float32)


def _points(kp: Any, name: str) -> np.ndarray:
    """cv2.KeyPoint sequence or (N, 2) array -> float32 (N, 2)."""
    if kp is None:
        raise TypeError(f"{name} keypoints are None")
    if len(kp) == 0:
        return np.zeros((0, 2), np.float32)
    if isinstance(kp[0], cv2.KeyPoint):
        pts = cv2.KeyPoint_convert(list(kp)).reshape(-1, 2)
    else:
        pts = np.asarray(kp, np.float32).reshape(-1, 2)
        if np.asarray(kp).ndim != 2 or np.asarray(kp).shape[1] != 2:
            raise ValueError(f"{name} keypoints: expected cv2.KeyPoint objects or an (N, 2) array, "
                             f"got shape {np.asarray(kp).shape}")
    if not np.isfinite(pts).all():
        raise ValueError(f"{name} keypoints hold NaN/Inf coordinates")
    return np.ascontiguousarray(pts, np.float32)


def _size(size: Any, name: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in size)
    except (TypeError, ValueError):
        raise TypeError(f"{name} image size must be (width, height), got {size!r}") from None
    if w <= 0 or h <= 0:
        raise ValueError(f"{name} image size must be positive (width, height), got {size!r}")
    return w, h


class S2GlueMatcher:
    """A learned matcher with ``cv2.LightGlueMatcher``'s Python surface (duck-typed, see module doc)."""

    def __init__(self, model: str | Path = "default", threshold: float | None = None, backend: str = "auto") -> None:
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        self.path = resolve_glue_graph(model)
        meta = read_glue_metadata(self.path)
        self.det_model: str = meta["det_model"]
        self.descriptor_dim: int = meta["descriptor_dim"]
        self.weights_sha256: str = meta["weights_sha256"]
        # the graph already drops matches below its own filter; a higher threshold filters more
        self.threshold = float(meta["filter_threshold"] if threshold is None else threshold)
        if not 0.0 <= self.threshold < 1.0:
            raise ValueError(f"threshold must be in [0, 1), got {threshold!r}")
        # auto: OpenCV's own matcher when this OpenCV has it (one runtime less to load; as fast as
        # onnxruntime or faster in benchmarks/bench_glue.py), else onnxruntime
        if backend == "auto":
            backend = "opencv" if hasattr(cv2, "LightGlueMatcher_create") else "onnxruntime"
        self.backend = backend
        self._pair: tuple[np.ndarray, np.ndarray, tuple[int, int], tuple[int, int]] | None = None
        if self.backend == "onnxruntime":
            from s2cv.feature.backend_onnx import onnx_session

            self._session = onnx_session(self.path)
        else:
            if not hasattr(cv2, "LightGlueMatcher_create"):
                raise ImportError(f"backend='opencv' needs OpenCV >= 5.1 with cv2.LightGlueMatcher (this is {cv2.__version__})")
            self._cv = cv2.LightGlueMatcher_create(str(self.path), self.threshold, type=cv2.LG_DISK)
            self._cv.setKeypointNormalization(cv2.LG_NORM_MAX_SIDE)

    # -- what cv2.LightGlueMatcher has
    def setPairInfo(self, kp_query: Any, kp_train: Any, size_query: Any, size_train: Any) -> None:
        """Keypoints (cv2.KeyPoint list or (N, 2) pixels) and image sizes (width, height) for the next match."""
        self._pair = (_points(kp_query, "query"), _points(kp_train, "train"), _size(size_query, "query"),
                      _size(size_train, "train"))

    def clearPairInfo(self) -> None:
        self._pair = None

    def getDefaultName(self) -> str:
        return "s2cv.S2Glue"

    def isMaskSupported(self) -> bool:
        return False

    def empty(self) -> bool:
        return False

    def match(self, des_query: np.ndarray, des_train: np.ndarray, mask: Any = None) -> list[cv2.DMatch]:
        """One cv2.DMatch per matched query keypoint, distance = 1 - confidence."""
        m0, s0 = self.matchArrays(des_query, des_train, mask)
        return [cv2.DMatch(int(i), int(m0[i]), float(1.0 - s0[i])) for i in np.flatnonzero(m0 >= 0)]

    def knnMatch(self, des_query: np.ndarray, des_train: np.ndarray, k: int = 1, mask: Any = None,
                 compactResult: bool = False) -> list[list[cv2.DMatch]]:
        """k = 1 only (the assignment gives one partner per point): one list per query keypoint,
        empty when it has no match (dropped with ``compactResult``)."""
        if k != 1:
            raise ValueError(f"S2Glue gives one match per keypoint: knnMatch needs k=1, got k={k}")
        m0, s0 = self.matchArrays(des_query, des_train, mask)
        out = [[cv2.DMatch(i, int(m0[i]), float(1.0 - s0[i]))] if m0[i] >= 0 else [] for i in range(len(m0))]
        return [r for r in out if r] if compactResult else out

    def radiusMatch(self, *args: Any, **kwargs: Any) -> None:
        raise NotImplementedError("radiusMatch is not supported by S2Glue (nor by cv2.LightGlueMatcher): "
                                  "use match() or knnMatch(k=1)")

    # -- arrays
    def matchArrays(self, des_query: np.ndarray, des_train: np.ndarray, mask: Any = None
                    ) -> tuple[np.ndarray, np.ndarray]:
        """(matches0, mscores0): the train index of each query keypoint (-1: none) and its confidence."""
        if mask is not None:
            raise ValueError("S2Glue does not take a mask (isMaskSupported() is False)")
        if self._pair is None:
            raise RuntimeError("call setPairInfo(kp_query, kp_train, size_query, size_train) before match(): "
                               "S2Glue needs the keypoints and image sizes, not only the descriptors")
        k0, k1, s0, s1 = self._pair
        d0, d1 = self._descriptors(des_query, "query", len(k0)), self._descriptors(des_train, "train", len(k1))
        if len(k0) == 0 or len(k1) == 0:
            return np.full(len(k0), -1, np.int64), np.zeros(len(k0), np.float32)
        if self.backend == "opencv":
            self._cv.setPairInfo(k0, k1, s0, s1)
            m0, sc = np.full(len(k0), -1, np.int64), np.zeros(len(k0), np.float32)
            for m in self._cv.match(d0, d1):
                m0[m.queryIdx], sc[m.queryIdx] = m.trainIdx, 1.0 - m.distance
        else:
            feed = {"kpts0": normalize_keypoints(k0, s0)[None], "kpts1": normalize_keypoints(k1, s1)[None],
                    "desc0": d0[None], "desc1": d1[None]}
            m0, sc = self._session.run(["matches0", "mscores0"], feed)
            m0, sc = m0.reshape(-1).astype(np.int64), sc.reshape(-1).astype(np.float32)
        keep = (m0 >= 0) & (sc > self.threshold)
        return np.where(keep, m0, -1), np.where(keep, sc, 0.0).astype(np.float32)

    def _descriptors(self, des: np.ndarray, name: str, n: int) -> np.ndarray:
        if des is None:
            raise TypeError(f"{name} descriptors are None")
        des = np.asarray(des)
        if des.dtype.kind != "f":
            raise TypeError(f"{name} descriptors must be float (the detector's float32 descriptors), got {des.dtype}")
        if n == 0 and des.size == 0:
            return np.zeros((0, self.descriptor_dim), np.float32)
        if des.ndim != 2 or des.shape[1] != self.descriptor_dim:
            raise ValueError(f"{name} descriptors have shape {des.shape}; this matcher takes (N, {self.descriptor_dim}) "
                             f"descriptors of S2Net_create(model={self.det_model!r})")
        if len(des) != n:
            raise ValueError(f"{name}: {len(des)} descriptors for {n} keypoints given to setPairInfo")
        if not np.isfinite(des).all():
            raise ValueError(f"{name} descriptors hold NaN/Inf values")
        return np.ascontiguousarray(des, np.float32)

    def __repr__(self) -> str:
        return f"S2GlueMatcher({str(self.path.name)!r}, det_model={self.det_model!r}, backend={self.backend!r})"


def S2Glue_create(model: str | Path = "default", threshold: float | None = None, backend: str = "auto") -> S2GlueMatcher:
    """OpenCV-style factory, like ``cv2.LightGlueMatcher_create``: a glue zoo name
    (``available_matchers()``), a graph from ``s2cv export --format cv-lightglue``, or a matcher
    checkpoint with its graph beside it. ``threshold``: minimum confidence (default: the graph's 0.1)."""
    return S2GlueMatcher(model, threshold, backend)
