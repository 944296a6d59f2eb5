"""S2NetFeature2D: the whole ``cv2.Feature2D`` surface backed by an S2-Net-trained network.

Data path, top to bottom: image -> ``image.to_gray_float`` -> backend (opencv | onnxruntime |
torch | tensorrt) -> dense maps -> ``postprocess`` (C++ or CUDA) -> ``cv2.KeyPoint`` + float32 rows.

It is a plain Python class with every public method of ``cv2.Feature2D`` (duck typing), not a
subclass of it (issue 28): a Python subclass carries an empty C++ object that OpenCV's C++
functions (``cv2.detail.computeImageFeatures2``, ...) dereference and crash on; a plain class is
refused by the bindings with a clear error instead (``s2cv.feature.pyalgorithm``). So
``isinstance(det, cv2.Feature2D)`` is False; ``S2Net_create(model=..., native=True)`` gives a
genuine ``cv2.XFeat`` for the XFeat-layout models (``s2cv.feature.native``).
"""
from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import cv2
import numpy as np

from s2cv.feature import postprocess
from s2cv.feature.backends import Backend, DenseMaps, make_backend
from s2cv.feature.extras import torch_if_loaded
from s2cv.feature.image import check_mask, contrast_mask, noise_sigma, pad_to_multiple, to_gray_float
from s2cv.feature.pyalgorithm import PythonAlgorithm
from s2cv.feature.zoo import model_meta

if TYPE_CHECKING:
    from torch import nn


# Detector parameters a model may carry in its conf (``net.conf``, saved in its checkpoint and its
# graph's metadata): chosen on validation with that network, they are its defaults; a value the
# caller passes still wins. A network that puts its keypoints on faint texture needs a lower floor.
MODEL_PARAMS = ("contrast_floor",)
NOISE_FLOOR_CAP = 4 / 255  # the noise term never lifts a floor above the shipped default


@dataclass(frozen=True)
class DetectorParams:
    """Detection knobs; every one is saved by ``write`` and restored by ``read``."""

    nfeatures: int = 4096           # keep the K best keypoints; 0 = all above threshold
    threshold: float = 0.0          # minimum score (repeatability x reliability)
    contrast_floor: float = 4 / 255  # no keypoint where the local grey std (8x8 px, [0, 1] units) is below this
    noise_floor: float = 2.0        # ... nor below this many times the image's noise std (estimated), up to 4/255
    nms_radius: int = 2             # non-maximum suppression window radius, px
    border: int = 4                 # ignore keypoints this close to the image edge, px
    multiscale: bool = False        # run an image pyramid (slower, wider scale range)
    scales: tuple[float, ...] = (1.0, 0.7071, 0.5)  # pyramid levels when multiscale
    subpixel: bool = True           # quadratic refinement of keypoint positions
    keypoint_size: float = 16.0     # cv2.KeyPoint.size at scale 1 (descriptor support, px)

    def __post_init__(self) -> None:
        if int(self.nfeatures) != self.nfeatures or self.nfeatures < 0:
            raise ValueError(f"nfeatures must be an integer >= 0, got {self.nfeatures!r}")
        if not np.isfinite(self.threshold):
            raise ValueError(f"threshold must be finite, got {self.threshold!r}")
        if not (np.isfinite(self.contrast_floor) and self.contrast_floor >= 0):
            raise ValueError(f"contrast_floor must be a finite number >= 0, got {self.contrast_floor!r}")
        if not (np.isfinite(self.noise_floor) and self.noise_floor >= 0):
            raise ValueError(f"noise_floor must be a finite number >= 0, got {self.noise_floor!r}")
        if int(self.nms_radius) != self.nms_radius or self.nms_radius < 0:
            raise ValueError(f"nms_radius must be an integer >= 0, got {self.nms_radius!r}")
        if int(self.border) != self.border or self.border < 0:
            raise ValueError(f"border must be an integer >= 0, got {self.border!r}")
        if not self.scales or any(not (0 < s <= 4) for s in self.scales):
            raise ValueError(f"scales must be a non-empty list of values in (0, 4], got {self.scales!r}")


def effective_floor(gray: np.ndarray, p: DetectorParams) -> float:
    """The contrast floor one image gets: ``contrast_floor``, raised to ``noise_floor`` times the
    image's estimated noise std but never by that above the shipped 4/255. Why: a network may carry
    a low floor (faint night thermal texture), and a noisy flat frame must still stay empty."""
    if p.noise_floor <= 0 or p.contrast_floor >= NOISE_FLOOR_CAP:
        return p.contrast_floor
    return max(p.contrast_floor, min(p.noise_floor * noise_sigma(gray), NOISE_FLOOR_CAP))


class S2NetFeature2D(PythonAlgorithm):
    """Cross-modal keypoint detector and descriptor (float32, L2 norm), usable wherever SIFT is
    used from Python (not a ``cv2.Feature2D`` subclass: see the module docstring)."""

    opencv_surface = "Feature2D"

    def __init__(self, model: str | Path | nn.Module = "default", backend: str = "auto", device: str = "auto",
                 **params: Any) -> None:
        DetectorParams(**params)  # bad values fail before a network is loaded
        self._backend_name, self._device = backend, device
        self._load(model)
        self._params = DetectorParams(**{**self._model_defaults(), **params})

    def _load(self, model: str | Path | nn.Module) -> None:
        """A torch module runs as given; a zoo name or path is resolved without torch (the
        backend loads the checkpoint only if it needs the network, see ``s2cv.feature.backends``)."""
        torch = torch_if_loaded()
        if torch is not None and isinstance(model, torch.nn.Module):
            net, meta = model, {"arch": type(model).__name__, "path": None, "conf": dict(getattr(model, "conf", {}))}
            self._model_name = "<in-memory>"
        else:
            if not isinstance(model, (str, Path)):
                raise TypeError(f"model must be a zoo name, a .pt/.onnx path or a torch module, "
                                f"got {type(model).__name__}")
            net, meta = None, model_meta(model)
            self._model_name = str(model)
        self.meta = meta
        self._net_backend: Backend = make_backend(self._backend_name, net, meta, self._device)

    def _model_defaults(self) -> dict[str, Any]:
        """The ``MODEL_PARAMS`` the loaded model's conf sets (its graph's metadata, or the
        checkpoint the torch backend loaded)."""
        conf = self.meta.get("conf") or getattr(getattr(self._net_backend, "net", None), "conf", None) or {}
        return {key: float(conf[key]) for key in MODEL_PARAMS if conf.get(key) is not None}

    # ------------------------------------------------------------------ parameters
    @property
    def params(self) -> DetectorParams:
        return self._params

    def setParams(self, **params: Any) -> None:
        self._params = replace(self._params, **params)

    def getNFeatures(self) -> int:
        return self._params.nfeatures

    def setNFeatures(self, nfeatures: int) -> None:
        self.setParams(nfeatures=nfeatures)

    def getThreshold(self) -> float:
        return self._params.threshold

    def setThreshold(self, threshold: float) -> None:
        self.setParams(threshold=threshold)

    # ------------------------------------------------------------------ cv2.Feature2D surface
    def getDefaultName(self) -> str:
        return "Feature2D.S2Net"

    def descriptorSize(self) -> int:
        return self._net_backend.descriptor_dim

    def descriptorType(self) -> int:
        return cv2.CV_32F

    def defaultNorm(self) -> int:
        return cv2.NORM_L2

    def empty(self) -> bool:
        return False

    def clear(self) -> None:
        """Nothing is cached between calls, so there is no state to clear."""

    def detect(self, image: np.ndarray | Sequence[np.ndarray], mask: Any = None):
        """Keypoints of one image (tuple of cv2.KeyPoint), or of each image of a list."""
        if isinstance(image, (list, tuple)):
            masks = self._per_image(mask, len(image), "masks")
            return tuple(self._detect(img, m)[0] for img, m in zip(image, masks))
        return self._detect(image, mask)[0]

    def compute(self, image: np.ndarray | Sequence[np.ndarray], keypoints: Any, descriptors: Any = None):
        """Descriptors at given keypoints (e.g. SIFT's); keypoints outside the image are dropped."""
        if isinstance(image, (list, tuple)):
            if not isinstance(keypoints, (list, tuple)) or len(keypoints) != len(image):
                raise ValueError("compute on a list of images needs a list of keypoint lists of the same length")
            out = [self._compute(img, kps) for img, kps in zip(image, keypoints)]
            return tuple(k for k, _ in out), tuple(d for _, d in out)
        return self._compute(image, keypoints)

    def detectAndCompute(self, image: np.ndarray, mask: Any = None, descriptors: Any = None,
                         useProvidedKeypoints: bool = False, keypoints: Any = None):
        """(keypoints, descriptors) like OpenCV; descriptors is None when no keypoint is found."""
        if useProvidedKeypoints:
            if keypoints is None:
                raise ValueError("useProvidedKeypoints=True needs keypoints=...")
            return self._compute(image, keypoints)
        return self._detect(image, mask)[:2]

    def detectAndComputeMaps(self, image: np.ndarray, mask: Any = None
                             ) -> tuple[tuple[cv2.KeyPoint, ...], np.ndarray | None, DenseMaps]:
        """``detectAndCompute`` plus the full-resolution dense maps it ran on, so a consumer of the
        maps (``s2cv.registration.refine``) does not run the network a second time."""
        kps, desc, maps = self._detect(image, mask)
        return kps, desc, maps if maps is not None else self.denseMaps(to_gray_float(image))

    def write(self, fs: cv2.FileStorage | str, name: str | None = None) -> None:
        """Save parameters and model reference to a cv2.FileStorage (or a file name)."""
        if isinstance(fs, (str, Path)):
            self.save(str(fs))
            return
        if name:
            fs.startWriteStruct(name, cv2.FileNode_MAP)
        fs.write("name", self.getDefaultName())
        fs.write("model", self._model_name)
        fs.write("backend", self._backend_name)
        for key, value in asdict(self._params).items():
            if isinstance(value, bool):
                fs.write(key, int(value))
            elif isinstance(value, tuple):
                fs.write(key, np.asarray(value, np.float64).reshape(1, -1))
            else:
                fs.write(key, value)
        if name:
            fs.endWriteStruct()

    def read(self, node: cv2.FileNode | str) -> None:
        """Restore what ``write`` stored; reloads the network when the model differs."""
        if isinstance(node, (str, Path)):
            fs = cv2.FileStorage(str(node), cv2.FILE_STORAGE_READ)
            if not fs.isOpened():
                raise FileNotFoundError(f"cannot open {node}")
            try:
                self.read(fs.getFirstTopLevelNode() if fs.getNode("name").empty() else fs.root())
            finally:
                fs.release()
            return
        if node.empty() or node.getNode("name").string() != self.getDefaultName():
            raise ValueError(f"FileNode does not hold {self.getDefaultName()} parameters")
        params: dict[str, Any] = {}
        for f in fields(DetectorParams):
            child = node.getNode(f.name)
            if child.empty():
                continue
            if f.name == "scales":
                params[f.name] = tuple(float(v) for v in child.mat().ravel())
            elif f.type in ("bool",):
                params[f.name] = bool(int(child.real()))
            elif f.type == "int":
                params[f.name] = int(child.real())
            else:
                params[f.name] = float(child.real())
        DetectorParams(**params)
        model = node.getNode("model").string()
        if model and model != "<in-memory>" and model != self._model_name:
            self._load(model)
        self._params = DetectorParams(**{**self._model_defaults(), **params})

    def save(self, filename: str) -> None:
        fs = cv2.FileStorage(str(filename), cv2.FILE_STORAGE_WRITE)
        if not fs.isOpened():
            raise OSError(f"cannot open {filename} for writing")
        try:
            self.write(fs, "S2Net")
        finally:
            fs.release()

    # ------------------------------------------------------------------ pipeline
    def denseMaps(self, image: np.ndarray) -> DenseMaps:
        """Dense maps of an image, scores cropped back to its (H, W). Takes what ``detectAndCompute``
        takes (uint8/uint16/float, gray/BGR/BGRA), normalised by the same ``image.to_gray_float``
        (an (H, W) float32 image in [0, 1] passes through unchanged)."""
        gray = to_gray_float(image)
        padded = pad_to_multiple(gray, self._net_backend.pad_multiple)
        maps = self._net_backend(padded[None, None])
        maps.scores = maps.scores[:, : gray.shape[0], : gray.shape[1]]
        return maps

    def _detect(self, image: np.ndarray, mask: Any
                ) -> tuple[tuple[cv2.KeyPoint, ...], np.ndarray | None, DenseMaps | None]:
        """Keypoints, descriptors and the scale-1 maps (None when the pyramid has no scale 1)."""
        gray = to_gray_float(image)
        mask = check_mask(mask, gray.shape)
        p = self._params
        if p.contrast_floor > 0:
            flat_free = contrast_mask(gray, effective_floor(gray, p))
            mask = flat_free if mask is None else mask & flat_free
        scales = p.scales if p.multiscale else (1.0,)
        rows, descs, full = [], [], None
        for octave, s in enumerate(scales):
            img_s, mask_s = gray, mask
            if s != 1.0:
                size = (max(1, round(gray.shape[1] * s)), max(1, round(gray.shape[0] * s)))
                img_s = cv2.resize(gray, size, interpolation=cv2.INTER_AREA)
                if mask is not None:
                    mask_s = cv2.resize(mask, size, interpolation=cv2.INTER_NEAREST)
            maps = self.denseMaps(img_s)
            full = maps if s == 1.0 else full
            kpts, desc = self._keypoints(maps, mask_s)
            sx, sy = gray.shape[1] / img_s.shape[1], gray.shape[0] / img_s.shape[0]
            xy = (kpts[:, :2] + 0.5) * (sx, sy) - 0.5
            rows.append(np.column_stack([xy, kpts[:, 2], np.full(len(kpts), octave), np.full(len(kpts), sx)]))
            descs.append(desc)
        table, desc = np.concatenate(rows), np.concatenate(descs)
        if len(scales) > 1:
            order = np.argsort(-table[:, 2], kind="stable")
            if p.nfeatures:
                order = order[: p.nfeatures]
            table, desc = table[order], desc[order]
        kps = tuple(cv2.KeyPoint(float(x), float(y), float(p.keypoint_size * s), -1.0, float(r), int(o))
                    for x, y, r, o, s in table.tolist())
        return kps, (np.ascontiguousarray(desc, np.float32) if len(kps) else None), full

    def _keypoints(self, maps: DenseMaps, mask: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """Postprocess stage: NMS/top-K + descriptor sampling, on the device that holds the maps."""
        p = self._params
        maps = _postprocessable(maps)
        if isinstance(maps.scores, np.ndarray):
            kpts = postprocess.detect(maps.scores[0], mask, p.nms_radius, p.threshold, p.border, p.nfeatures,
                                      p.subpixel)
            return kpts, self._sample(maps, kpts[:, :2])
        import torch  # CUDA path: maps are device tensors; only K rows come back to the host.

        cuda_mask = None if mask is None else torch.from_numpy(mask).to(maps.scores.device)
        kpts = postprocess.detect_cuda(maps.scores[0], cuda_mask, p.nms_radius, p.threshold, p.border,
                                       p.nfeatures, p.subpixel)
        desc = postprocess.sample_descriptors_cuda(maps.descriptors[0], kpts[:, :2].contiguous(), maps.stride)
        return kpts.cpu().numpy(), desc.cpu().numpy()

    def _compute(self, image: np.ndarray, keypoints: Any) -> tuple[tuple[cv2.KeyPoint, ...], np.ndarray | None]:
        gray = to_gray_float(image)
        if keypoints is None:
            raise TypeError("keypoints must be a sequence of cv2.KeyPoint, got None")
        kps = tuple(keypoints)
        if any(not isinstance(k, cv2.KeyPoint) for k in kps):
            raise TypeError("keypoints must be cv2.KeyPoint objects")
        h, w = gray.shape
        kps = tuple(k for k in kps if 0 <= k.pt[0] <= w - 1 and 0 <= k.pt[1] <= h - 1)
        if not kps:
            return kps, None
        maps = self.denseMaps(gray)
        xy = np.array([k.pt for k in kps], np.float32)
        desc = self._sample(maps, xy)
        return kps, desc

    def _sample(self, maps: DenseMaps, xy: np.ndarray) -> np.ndarray:
        maps = _postprocessable(maps)
        if isinstance(maps.descriptors, np.ndarray):
            return postprocess.sample_descriptors(maps.descriptors[0], xy, maps.stride)
        import torch

        pts = torch.from_numpy(xy).to(maps.descriptors.device)
        return postprocess.sample_descriptors_cuda(maps.descriptors[0], pts, maps.stride).cpu().numpy()

    @staticmethod
    def _per_image(value: Any, n: int, what: str) -> list[Any]:
        if value is None:
            return [None] * n
        if not isinstance(value, (list, tuple)) or len(value) != n:
            raise ValueError(f"{what} must be None or a list with one entry per image ({n})")
        return list(value)


def _postprocessable(maps: DenseMaps) -> DenseMaps:
    """Device maps come back to the host when ``s2cv._C_cuda`` is unusable (installed without
    nvcc): the C++ postprocess then runs on them, slower but the same keypoints."""
    if isinstance(maps.scores, np.ndarray) or postprocess.HAS_CUDA:
        return maps
    warnings.warn("s2cv._C_cuda is not usable here (reinstall with nvcc on PATH for the GPU postprocess); "
                  "copying the dense maps to the CPU for the C++ one", RuntimeWarning, stacklevel=3)
    return DenseMaps(maps.scores.cpu().numpy(), maps.descriptors.cpu().numpy(), maps.stride)


def S2Net_create(nfeatures: int = 4096, model: str | Path | nn.Module = "default", backend: str = "auto",
                 device: str = "auto", threshold: float = 0.0, nms_radius: int = 2, border: int = 4,
                 multiscale: bool = False, *, native: bool = False, **params: Any) -> S2NetFeature2D:
    """OpenCV-style factory, like ``cv2.SIFT_create(nfeatures)``.

    ``model`` is a zoo name (see ``s2cv.available_models()``) or a checkpoint written by
    ``s2cv train`` or a graph written by ``s2cv export``; ``backend`` is 'auto', 'opencv' (cv2.dnn),
    'onnxruntime', 'torch' (needs the ``[train]`` extra) or 'tensorrt'.

    ``native=True`` returns a genuine OpenCV ``cv2.XFeat`` (C++ object, OpenCV >= 5.1) running the
    model's shipped cv::XFeat graph, for the XFeat-layout zoo models only; OpenCV's C++ functions
    (``cv2.detail.computeImageFeatures2``, ...) take it, but cv::XFeat does its own keypoint selection
    at a fixed input size (``s2cv.feature.native``). Other models raise ValueError.
    """
    if native:
        from s2cv.feature.native import create_native

        return create_native(model, nfeatures=nfeatures, backend=backend, device=device, threshold=threshold,
                             nms_radius=nms_radius, border=border, multiscale=multiscale, **params)
    return S2NetFeature2D(model, backend, device, nfeatures=nfeatures, threshold=threshold,
                          nms_radius=nms_radius, border=border, multiscale=multiscale, **params)
