"""``S2Net_create(model=..., native=True)``: a genuine OpenCV ``cv2.XFeat`` running s2cv's weights.

``S2NetFeature2D`` is a Python class, so OpenCV's C++ functions that take a ``cv::Feature2D``
(``cv2.detail.computeImageFeatures2``, ``cv2.slam.VisualOdometry.create``, ...) refuse it
(``s2cv.feature.pyalgorithm``). For the models whose layout OpenCV has a native class for (today
``cv::XFeat``, OpenCV >= 5.1: the XFeat-layout zoo models in ``zoo.CV_XFEAT``), ``native=True``
returns ``cv2.XFeat_create(graph, maxKeypoints=nfeatures, scoreThreshold=threshold,
inputSize=(S, S))`` on the model's shipped ``--format cv-xfeat`` graph: no torch, no onnxruntime.

What it gives up (numbers: docs/results.md, "native=True"): cv::XFeat resizes every image to its
fixed S x S input (640 x 640; the aspect ratio is not kept) and selects keypoints itself (its
softmax/heatmap score, its own NMS, top-K), without s2cv's post-processing: no contrast floor,
no border or NMS radius setting, no sub-pixel refinement, no multi-scale pyramid, no uint16
robust normalisation (cv::XFeat takes 8-bit images), 64-d descriptors. Those arguments are
therefore refused when set to anything but their defaults.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2

from s2cv.feature.graph import read_graph_info
from s2cv.feature.zoo import CV_XFEAT, WEIGHTS_DIR

MIN_OPENCV = "5.1"
# S2Net_create's arguments cv::XFeat cannot honour -> the values that mean "nothing asked for".
_NEUTRAL: dict[str, tuple[Any, ...]] = {
    "backend": ("auto", "opencv"),  # cv::XFeat runs cv::dnn itself
    "device": ("auto", "cpu"),
    "nms_radius": (2,),             # cv::XFeat's own NMS (5 x 5 window)
    "border": (4,),
    "multiscale": (False,),
    "contrast_floor": (0, 0.0),     # only when passed explicitly (the Python detector's default is 4/255)
    "noise_floor": (0, 0.0),
}


def native_models() -> list[str]:
    """Zoo names ``native=True`` accepts (their cv::XFeat graph is shipped)."""
    return [name for name, file in CV_XFEAT.items() if (WEIGHTS_DIR / file).is_file()]


def native_graph(model: Any) -> Path:
    """The shipped cv::XFeat graph of a zoo model; ValueError naming the models that have one."""
    models = native_models()
    if isinstance(model, str) and model in models:
        return WEIGHTS_DIR / CV_XFEAT[model]
    what = f"model {model!r}" if isinstance(model, (str, Path)) else f"a {type(model).__name__} model"
    raise ValueError(
        f"native=True needs a model whose layout OpenCV has a native class for (cv::XFeat): "
        f"{', '.join(repr(m) for m in models) or 'none shipped'}; {what} is not one of them. Without native=True "
        f"S2Net_create runs any model; an XFeat-layout checkpoint of your own runs natively after "
        f"`s2cv export CKPT --format cv-xfeat -o OUT.onnx` as cv2.XFeat_create('OUT.onnx', maxKeypoints, 0.0)")


def create_native(model: Any = "default", *, nfeatures: int = 4096, threshold: float = 0.0, **given: Any) -> Any:
    """``cv2.XFeat`` for ``S2Net_create(model=..., native=True, ...)`` (see the module docstring)."""
    graph = native_graph(model)
    refused = [f"{k}={v!r}" for k, v in given.items() if v not in _NEUTRAL.get(k, ())]
    if refused:
        raise ValueError(
            f"native=True returns OpenCV's cv2.XFeat, which cannot honour {', '.join(refused)} (it selects "
            f"keypoints itself at a fixed input size); accepted: nfeatures, threshold (its scoreThreshold), "
            f"backend 'auto'/'opencv', device 'auto'/'cpu'. Drop native=True for s2cv's own post-processing")
    if int(nfeatures) != nfeatures or nfeatures < 0:
        raise ValueError(f"nfeatures must be an integer >= 0, got {nfeatures!r}")
    if not hasattr(cv2, "XFeat_create"):
        raise RuntimeError(f"native=True needs OpenCV >= {MIN_OPENCV} (cv2.XFeat); this is OpenCV {cv2.__version__}. "
                           f"Upgrade opencv-contrib-python, or drop native=True")
    size = int(read_graph_info(graph).metadata.get("s2cv.input_size", "640"))
    return cv2.XFeat_create(str(graph), maxKeypoints=int(nfeatures) or -1, scoreThreshold=float(threshold),
                            inputSize=(size, size))
