"""``s2cv export MODEL --format cv-xfeat -o OUT.onnx``: a graph OpenCV's own ``cv::XFeat`` runs.

OpenCV >= 5.1 ships a learned detector, ``cv2.XFeat_create(onnx_path)`` / ``cv::XFeat::create``
(cv::dnn inside), so C++ and Python users can run it with nothing but OpenCV. Its graph contract:
one input (1, 1, S, S), gray / 255 (cv::XFeat resizes the image to its ``inputSize``, 640x640 by
default), and three outputs by name: ``output_feats`` (1, 64, S/8, S/8) descriptors before
normalisation, ``output_keypoints`` (1, 65, S/8, S/8) keypoint logits (the 64 positions of each
8x8 cell and a "no keypoint" dustbin) and ``output_heatmap`` (1, 1, S/8, S/8) reliability in
[0, 1]. cv::XFeat does the rest itself (softmax, score, NMS, top-K, descriptor sampling). Only an
XFeat-layout network (arch ``xfeat``: ``s2cv.models.xfeat.XFeat.raw``) computes those maps.

The shape is fixed (S x S): cv::XFeat feeds exactly ``inputSize``, so the graph is exported for
one size and ``cv2.XFeat_create(path, inputSize=(S, S))`` must be given the same. The file is only
written once onnxruntime and cv2.dnn both reproduce PyTorch's three maps (the bundled sample
resized to S x S, and a random image).
"""
from __future__ import annotations

import io
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from s2cv.deploy.export import (
    DEFAULT_OPSET,
    ExportValidationError,
    arch_name,
    frozen_copy,
    raise_if_failed,
    stable_softplus,
    weights_sha256,
    write_graph,
)
from s2cv.feature.backend_onnx import onnx_session
from s2cv.feature.graph import XFEAT_INPUT as INPUT_NAME
from s2cv.feature.graph import XFEAT_OUTPUTS, file_sha256
from s2cv.feature.image import sample_image, to_gray_float

FORMAT = "s2cv-cv-xfeat/1"
DEFAULT_SIZE = 640      # cv::XFeat's default inputSize
MAX_RELATIVE_DIFF = 1e-3  # |runtime - torch| / max(1, max |torch|), per output


@dataclass(frozen=True)
class MapCheck:
    """One runtime's outputs against PyTorch's on one input."""

    name: str
    worst: dict[str, float]   # output -> relative max |diff|
    passed: bool

    def line(self) -> str:
        diffs = "  ".join(f"{k} {v:.1e}" for k, v in self.worst.items())
        return f"{self.name:<28} max|diff|/scale  {diffs}  {'ok' if self.passed else 'FAIL'}"


@dataclass
class XFeatExportReport:
    path: Path
    size: int
    metadata: dict[str, str]
    checks: list[MapCheck] = field(default_factory=list)


class _CvXFeatGraph(torch.nn.Module):
    """What the graph computes: XFeat's three raw maps, in cv::XFeat's output order."""

    def __init__(self, net: torch.nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.net.raw(image)


def check_xfeat_layout(net: Any, arch: str, model: str = "the model") -> None:
    """ValueError unless ``net`` is an XFeat-layout network (the only one with cv::XFeat's maps)."""
    if arch != "xfeat" or not callable(getattr(net, "raw", None)):
        from s2cv.feature.zoo import ZOO, model_meta

        xfeat = [name for name in ZOO if _is_xfeat(name, model_meta)]
        raise ValueError(
            f"--format cv-xfeat needs an XFeat-layout model (arch 'xfeat'): cv::XFeat reads 64-d features, "
            f"65 keypoint logits and a reliability map at 1/8 resolution, which {model} (arch {arch!r}) does "
            f"not compute. XFeat-layout zoo models: {', '.join(xfeat) or 'none shipped'}")


def _is_xfeat(name: str, model_meta: Any) -> bool:
    try:
        return model_meta(name).get("arch") == "xfeat"
    except (FileNotFoundError, ValueError):
        return False


def _trace(net: torch.nn.Module, size: int, opset: int) -> bytes:
    dummy = torch.rand(1, 1, size, size, generator=torch.Generator().manual_seed(0))
    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # legacy-exporter deprecation and tracer chatter
        torch.onnx.export(_CvXFeatGraph(net).eval(), (dummy,), buffer, dynamo=False, opset_version=opset,
                          do_constant_folding=True, input_names=[INPUT_NAME], output_names=list(XFEAT_OUTPUTS))
    return buffer.getvalue()


def _validation_inputs(image: np.ndarray | None, size: int) -> list[tuple[str, np.ndarray]]:
    gray = to_gray_float(sample_image() if image is None else image)
    resized = cv2.resize(gray, (size, size), interpolation=cv2.INTER_AREA)
    rng = np.random.default_rng(0)
    return [(f"image {size}x{size}", np.ascontiguousarray(resized[None, None], np.float32)),
            (f"random {size}x{size}", rng.random((1, 1, size, size), dtype=np.float32))]


def _compare(name: str, ref: tuple[np.ndarray, ...], got: tuple[np.ndarray, ...]) -> MapCheck:
    worst = {}
    for out, r, g in zip(XFEAT_OUTPUTS, ref, got):
        if r.shape != g.shape:
            raise ExportValidationError(f"{name}: {out} has shape {g.shape}, PyTorch's is {r.shape}")
        diff = float(np.abs(g.astype(np.float64) - r).max()) / max(1.0, float(np.abs(r).max()))
        worst[out] = diff if np.isfinite(diff) else float("inf")
    return MapCheck(name, worst, all(v <= MAX_RELATIVE_DIFF for v in worst.values()))


def validate(net: torch.nn.Module, model: bytes, image: np.ndarray | None, size: int) -> list[MapCheck]:
    """onnxruntime and cv2.dnn against PyTorch on each validation input."""
    session = onnx_session(model)
    dnn = cv2.dnn.readNetFromONNX(np.frombuffer(model, np.uint8))
    checks = []
    for name, batch in _validation_inputs(image, size):
        with torch.inference_mode():
            ref = tuple(t.numpy() for t in net.raw(torch.from_numpy(batch)))
        checks.append(_compare(f"onnxruntime {name}", ref, tuple(session.run(list(XFEAT_OUTPUTS), {INPUT_NAME: batch}))))
        dnn.setInput(batch, INPUT_NAME)
        checks.append(_compare(f"cv2.dnn {name}", ref, tuple(np.array(o) for o in dnn.forward(list(XFEAT_OUTPUTS)))))
    return checks


def export_cv_xfeat(net: torch.nn.Module, path: str | Path, size: int = DEFAULT_SIZE, opset: int = DEFAULT_OPSET,
                    *, arch: str, source_sha256: str = "", validate_graph: bool = True,
                    image: np.ndarray | None = None) -> XFeatExportReport:
    """Write ``path``: ``net``'s cv::XFeat graph for S = ``size``; ExportValidationError if a runtime disagrees."""
    import onnx

    from s2cv import __version__

    check_xfeat_layout(net, arch)
    if size <= 0 or size % int(net.pad_multiple):
        raise ValueError(f"--size {size}: must be a positive multiple of {int(net.pad_multiple)} "
                         f"(the network reaches 1/{int(net.pad_multiple)} resolution)")
    if opset < 17:
        raise ValueError(f"opset {opset} is too old; s2cv exports need opset >= 17")
    net = frozen_copy(net)
    model = stable_softplus(onnx.load_from_string(_trace(net, size, opset)))
    metadata = {"s2cv.format": FORMAT, "s2cv.version": __version__, "s2cv.arch": arch, "s2cv.input_size": str(size),
                "s2cv.stride": str(int(net.stride)), "s2cv.descriptor_dim": str(int(net.descriptor_dim)),
                "s2cv.source_sha256": source_sha256, "s2cv.weights_sha256": weights_sha256(net),
                "s2cv.opset": str(opset)}
    onnx.helper.set_model_props(model, metadata)
    model.doc_string = (f"s2cv {arch} for cv::XFeat: {INPUT_NAME} float32 (1,1,{size},{size}) gray/255 -> "
                        f"output_feats (1,64,{size // 8},{size // 8}), output_keypoints (1,65,{size // 8},{size // 8}) "
                        f"logits, output_heatmap (1,1,{size // 8},{size // 8}) reliability. "
                        f"cv2.XFeat_create(path, inputSize=({size}, {size})).")
    model.producer_name = "s2cv"
    onnx.checker.check_model(model, full_check=True)
    data = model.SerializeToString()
    report = XFeatExportReport(Path(path), size, metadata)
    if validate_graph:
        report.checks = validate(net, data, image, size)
        raise_if_failed(report.checks, f"cv-xfeat export of {arch} disagrees with PyTorch (relative max |diff| > "
                                       f"{MAX_RELATIVE_DIFF:g}); {path} was not written")
    write_graph(report.path, data)
    return report


def export_model(model: str, output: str | Path, size: int, opset: int, *, validate_graph: bool = True,
                 image: np.ndarray | None = None) -> XFeatExportReport:
    """A zoo name or checkpoint -> its cv::XFeat graph (what ``s2cv export --format cv-xfeat`` runs)."""
    from s2cv.models.checkpoint import load_model
    from s2cv.feature.zoo import resolve

    net, meta = load_model(model)
    arch = arch_name(net, meta)
    check_xfeat_layout(net, arch, repr(model))
    return export_cv_xfeat(net, output, size, opset, arch=arch, source_sha256=file_sha256(resolve(model)),
                           validate_graph=validate_graph, image=image)
