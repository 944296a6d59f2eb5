"""Export an s2cv network to ONNX, checked against PyTorch before the file is written.

The graph takes ``image``: float32 (B, 1, H, W), gray in [0, 1], H and W multiples of the
network's ``pad_multiple`` (8; 32 for xfeat); per-image standardisation
happens inside the graph, so callers feed raw [0, 1] pixels. It returns ``scores``
(B, 1, H, W) and L2-normalised ``descriptors`` (B, D, H/stride, W/stride). Batch, height
and width are dynamic. Metadata (``metadata_props``, keys ``s2cv.*``) records what the
backends need to run the file without the checkpoint: arch, stride, pad_multiple,
descriptor_dim, conf, and the sha256 of the source checkpoint and of the weights.

Why validate on every export: the TorchScript exporter silently bakes shapes or training-mode
BatchNorm into graphs; a file that disagrees with PyTorch must never reach a user.

"""
from __future__ import annotations

import copy
import hashlib
import io
import json
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from s2cv.models import ARCHITECTURES
from s2cv.feature.backend_onnx import onnx_session
from s2cv.feature.graph import FORMAT, INPUT_NAME, OUTPUT_NAMES
from s2cv.feature.image import sample_image, to_gray_float

DEFAULT_OPSET = 17
DEFAULT_SIZES: tuple[tuple[int, int], ...] = ((256, 320), (480, 640))  # multiples of every pad_multiple (32)


class ExportValidationError(RuntimeError):
    """ONNX Runtime and PyTorch disagree beyond tolerance: the export is not trustworthy."""


@dataclass(frozen=True)
class Tolerance:
    """Largest accepted deviation of the ONNX graph from PyTorch."""

    scores_atol: float = 1e-3
    min_cosine: float = 0.999


FP32_TOLERANCE = Tolerance()
# Convolutions in half precision move the scores and rotate a few weak descriptors slightly.
FP16_TOLERANCE = Tolerance(scores_atol=1e-2, min_cosine=0.98)


@dataclass(frozen=True)
class CheckResult:
    """One ONNX-vs-PyTorch comparison."""

    name: str
    shape: tuple[int, ...]
    scores_max_abs: float
    cosine_min: float
    cosine_mean: float
    passed: bool

    def line(self) -> str:
        verdict = "ok" if self.passed else "FAIL"
        return (f"{self.name:<22} {'x'.join(map(str, self.shape)):<14} scores max|diff| {self.scores_max_abs:.2e}  "
                f"desc cos min {self.cosine_min:.6f} mean {self.cosine_mean:.6f}  {verdict}")


@dataclass
class ExportReport:
    """What an export wrote (``path``), its metadata and its checks (also the report of
    ``export_glue``, with that module's checks)."""

    path: Path
    metadata: dict[str, str]
    checks: list[CheckResult] = field(default_factory=list)


# ----------------------------------------------------------------------------- identity
def weights_sha256(net: nn.Module) -> str:
    """Digest of the state dict (names, dtypes, shapes, values) and of the model conf.

    Why not the checkpoint file hash alone: in-memory nets have no file, and the same weights
    re-saved (new metadata, other torch version) must still match their ONNX file and engine.
    The conf is included because it changes the outputs too (``keypoint_score``): the same
    weights with another conf must not reuse a cached ONNX file or engine.
    """
    digest = hashlib.sha256()
    digest.update(json.dumps(getattr(net, "conf", {}), sort_keys=True, default=str).encode())
    for name, tensor in net.state_dict().items():
        t = tensor.detach().cpu().contiguous()
        digest.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        digest.update(t.numpy().tobytes() if t.dtype != torch.bfloat16 else t.float().numpy().tobytes())
    return digest.hexdigest()


def arch_name(net: nn.Module, meta: dict[str, Any] | None = None) -> str:
    """Registry name ('fast', 'r2d2', ...) of a network, from checkpoint metadata or its class."""
    if meta and meta.get("arch") in ARCHITECTURES:
        return str(meta["arch"])
    for name, cls in ARCHITECTURES.items():
        if type(net) is cls:
            return name
    raise ValueError(f"{type(net).__name__} is not an s2cv architecture; expected one of "
                     f"{[c.__name__ for c in ARCHITECTURES.values()]}")


# ----------------------------------------------------------------------------- export
class _DenseMapsGraph(nn.Module):
    """What the ONNX graph computes: the two inference outputs, nothing from training."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.net(image)
        return out["scores"], out["descriptors"]


def frozen_copy(net: nn.Module) -> nn.Module:
    """Float32 CPU eval copy. Why a copy: the legacy exporter restores the wrapper's training
    flag afterwards, which would flip a caller's eval net into training mode (and move BN stats)."""
    return copy.deepcopy(net).float().cpu().eval()


def _trace_to_onnx(net: nn.Module, opset: int) -> bytes:
    graph = _DenseMapsGraph(net).eval()
    pm = int(net.pad_multiple)
    dummy = torch.rand(1, 1, 8 * pm, 8 * pm, generator=torch.Generator().manual_seed(0))
    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # legacy-exporter deprecation and tracer chatter
        torch.onnx.export(
            graph, (dummy,), buffer, dynamo=False, opset_version=opset, do_constant_folding=True,
            input_names=[INPUT_NAME], output_names=list(OUTPUT_NAMES),
            dynamic_axes={INPUT_NAME: {0: "batch", 2: "height", 3: "width"},
                          OUTPUT_NAMES[0]: {0: "batch", 2: "height", 3: "width"},
                          OUTPUT_NAMES[1]: {0: "batch", 2: "height_s", 3: "width_s"}},
        )
    return buffer.getvalue()


def stable_softplus(model: Any) -> Any:
    """Rewrite each ``Softplus(x)`` as ``Relu(x) + Softplus(-|x|)``: the same function, but the
    remaining Softplus only sees inputs <= 0.

    Why: OpenCV's cv2.dnn (5.1) computes Softplus as log(1 + exp(x)) in float32, which is inf for
    x > 88.7; the score activation softplus / (1 + softplus) then gives NaN exactly at the
    strongest keypoints. onnxruntime and TensorRT compute the same values either way.
    """
    from onnx import helper

    nodes = []
    for node in model.graph.node:
        if node.op_type != "Softplus":
            nodes.append(node)
            continue
        (x,), (y,) = node.input, node.output
        nodes += [helper.make_node("Relu", [x], [f"{y}/pos"], name=f"{node.name}/pos"),
                  helper.make_node("Abs", [x], [f"{y}/abs"], name=f"{node.name}/abs"),
                  helper.make_node("Neg", [f"{y}/abs"], [f"{y}/neg"], name=f"{node.name}/neg"),
                  helper.make_node("Softplus", [f"{y}/neg"], [f"{y}/tail"], name=f"{node.name}/tail"),
                  helper.make_node("Add", [f"{y}/pos", f"{y}/tail"], [y], name=f"{node.name}/sum")]
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    return model


def _metadata(net: nn.Module, arch: str, source_sha256: str, weights: str, precision: str, opset: int
              ) -> dict[str, str]:
    from s2cv import __version__

    return {
        "s2cv.format": FORMAT,
        "s2cv.version": __version__,
        "s2cv.arch": arch,
        "s2cv.stride": str(int(net.stride)),
        "s2cv.pad_multiple": str(int(net.pad_multiple)),
        "s2cv.descriptor_dim": str(int(net.descriptor_dim)),
        "s2cv.conf": json.dumps(dict(getattr(net, "conf", {})), sort_keys=True),
        "s2cv.source_sha256": source_sha256,
        "s2cv.weights_sha256": weights,
        "s2cv.precision": precision,
        "s2cv.opset": str(opset),
    }


def _annotate(model: Any, metadata: dict[str, str]) -> None:
    import onnx

    del model.metadata_props[:]
    onnx.helper.set_model_props(model, metadata)
    model.doc_string = (
        f"s2cv {metadata['s2cv.arch']}: image float32 (B,1,H,W) gray in [0,1], H and W multiples of "
        f"{metadata['s2cv.pad_multiple']} (standardised inside the graph) -> scores (B,1,H,W), "
        f"descriptors (B,{metadata['s2cv.descriptor_dim']},H/{metadata['s2cv.stride']},W/{metadata['s2cv.stride']}) "
        f"L2-normalised.")
    model.producer_name = "s2cv"


def export_onnx(net: nn.Module, path: str | Path, opset: int = DEFAULT_OPSET, *, arch: str | None = None,
                source_sha256: str = "", fp16: bool = False, validate: bool = True,
                image: np.ndarray | None = None, sizes: Sequence[tuple[int, int]] = DEFAULT_SIZES,
                tolerance: Tolerance | None = None, progress: bool = False) -> ExportReport:
    """Export ``net`` to ``path``; with ``validate`` the file is only written when ONNX Runtime
    matches PyTorch (random batch of 2 and ``image`` at each of ``sizes``).

    ``fp16`` stores convolutions in half precision (for TensorRT >= 11, which takes precision
    from the graph); inputs and outputs stay float32. Raises ExportValidationError on mismatch.
    """
    import onnx
    from tqdm import tqdm

    if opset < 17:
        raise ValueError(f"opset must be >= 17, got {opset}")
    net = frozen_copy(net)
    arch = arch or arch_name(net)
    pm = int(net.pad_multiple)
    sizes = [tuple(int(v) for v in s) for s in sizes]
    for h, w in sizes:
        if h <= 0 or w <= 0 or h % pm or w % pm:
            raise ValueError(f"validation size {h}x{w} must be positive multiples of pad_multiple={pm}")
    tolerance = tolerance or (FP16_TOLERANCE if fp16 else FP32_TOLERANCE)
    path = Path(path)
    steps = ["export", "check"] + (["fp16"] if fp16 else [])
    if validate:
        steps += [f"random b2 {sizes[0][0]}x{sizes[0][1]}"] + [f"image {h}x{w}" for h, w in sizes]
    steps.append("write")
    report = ExportReport(path=path, metadata={})
    with tqdm(total=len(steps), desc=f"export {arch}", unit="step", disable=not progress, leave=False) as bar:
        def step(name: str) -> None:
            bar.set_postfix_str(name)

        step("export")
        model = stable_softplus(onnx.load_from_string(_trace_to_onnx(net, opset)))
        bar.update()
        step("check")
        metadata = _metadata(net, arch, source_sha256, weights_sha256(net), "fp16" if fp16 else "fp32", opset)
        _annotate(model, metadata)
        onnx.checker.check_model(model, full_check=True)
        bar.update()
        if fp16:
            step("fp16")
            model = to_mixed_fp16(model)
            onnx.checker.check_model(model, full_check=True)
            bar.update()
        data = model.SerializeToString()
        report.metadata = metadata
        if validate:
            for result in _validation_runs(net, data, image, sizes, tolerance, on_start=step):
                report.checks.append(result)
                bar.update()
            raise_if_failed(report.checks, f"ONNX export of {arch} disagrees with PyTorch (tolerance: scores |diff| <= "
                                           f"{tolerance.scores_atol:g}, descriptor cosine >= {tolerance.min_cosine:g}); "
                                           f"{path} was not written")
        step("write")
        write_graph(path, data)
        bar.update()
    return report


def raise_if_failed(checks: Sequence[Any], message: str) -> None:
    """ExportValidationError (``message``, then each failed check's line) when a check (anything with
    ``passed`` and ``line()``: this module's, ``export_xfeat``'s and ``export_glue``'s) failed."""
    failed = [c for c in checks if not c.passed]
    if failed:
        raise ExportValidationError(f"{message}:\n  " + "\n  ".join(c.line() for c in failed))


def write_graph(path: Path, data: bytes) -> None:
    """Write a serialised graph through a temporary file (parents created): never a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
    tmp.write_bytes(data)
    tmp.replace(path)


# ----------------------------------------------------------------------------- validation
def export_model(model: str | Path, output: str | Path, opset: int = DEFAULT_OPSET, *, fp16: bool = False,
                 validate: bool = True, image: np.ndarray | None = None,
                 sizes: Sequence[tuple[int, int]] = DEFAULT_SIZES, tolerance: Tolerance | None = None,
                 progress: bool = False) -> ExportReport:
    """A zoo name or checkpoint -> its s2cv graph, recording the checkpoint's hash (what ``s2cv export`` runs)."""
    from s2cv.models.checkpoint import load_model
    from s2cv.feature.graph import file_sha256
    from s2cv.feature.zoo import resolve

    net, meta = load_model(model)
    return export_onnx(net, output, opset, arch=arch_name(net, meta), source_sha256=file_sha256(resolve(model)),
                       fp16=fp16, validate=validate, image=image, sizes=sizes, tolerance=tolerance, progress=progress)


def _onnx_outputs(session: Any, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    scores, desc = session.run(list(OUTPUT_NAMES), {INPUT_NAME: batch})
    return scores, desc


def compare(net_out: tuple[np.ndarray, np.ndarray], onnx_out: tuple[np.ndarray, np.ndarray], name: str,
            tolerance: Tolerance) -> CheckResult:
    """Scores by max abs difference; descriptors by per-location cosine (both L2-normalised)."""
    (s_ref, d_ref), (s, d) = net_out, onnx_out
    if s.shape != s_ref.shape or d.shape != d_ref.shape:
        raise ExportValidationError(f"{name}: ONNX output shapes scores {s.shape}, descriptors {d.shape} differ "
                                    f"from PyTorch's {s_ref.shape}, {d_ref.shape}")
    diff = float(np.max(np.abs(s.astype(np.float64) - s_ref))) if s.size else 0.0
    a, b = d.astype(np.float64), d_ref.astype(np.float64)
    na, nb = np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1)
    cos = (a * b).sum(1) / np.maximum(na * nb, 1e-12)
    cos = np.where((na < 1e-6) & (nb < 1e-6), 1.0, cos)  # both zero vectors: identical
    if not (np.isfinite(diff) and np.isfinite(cos).all()):
        diff, cmin, cmean = float("inf"), -1.0, -1.0
    else:
        cmin, cmean = float(cos.min()), float(cos.mean())
    ok = diff <= tolerance.scores_atol and cmin >= tolerance.min_cosine
    return CheckResult(name, tuple(s.shape), diff, cmin, cmean, ok)


def _validation_runs(net: nn.Module, model: bytes, image: np.ndarray | None, sizes: Sequence[tuple[int, int]],
                     tolerance: Tolerance, on_start: Callable[[str], None] = lambda name: None
                     ) -> Iterator[CheckResult]:
    session = onnx_session(model)
    gray = to_gray_float(sample_image() if image is None else image)
    rng = np.random.default_rng(0)
    h0, w0 = sizes[0]
    batches = [(f"random b2 {h0}x{w0}", rng.random((2, 1, h0, w0), dtype=np.float32))]
    for h, w in sizes:
        resized = cv2.resize(gray, (w, h), interpolation=cv2.INTER_AREA)
        batches.append((f"image {h}x{w}", np.ascontiguousarray(resized[None, None], np.float32)))
    for name, batch in batches:
        on_start(name)
        with torch.inference_mode():
            out = net(torch.from_numpy(batch))
        ref = (out["scores"].numpy(), out["descriptors"].numpy())
        yield compare(ref, _onnx_outputs(session, batch), name, tolerance)


def validate_onnx(net: nn.Module, path: str | Path, *, image: np.ndarray | None = None,
                  sizes: Sequence[tuple[int, int]] = DEFAULT_SIZES, tolerance: Tolerance = FP32_TOLERANCE
                  ) -> list[CheckResult]:
    """Compare an existing ONNX file with ``net``; raises ExportValidationError on mismatch."""
    results = list(_validation_runs(frozen_copy(net), Path(path).read_bytes(), image, sizes, tolerance))
    raise_if_failed(results, f"{path} disagrees with the PyTorch network")
    return results


# ----------------------------------------------------------------------------- fp16
# Ops that run in half precision and the inputs that carry activations or weights (None: all).
# Everything else (standardisation, L2 norm, softplus, softmax, reductions) stays float32:
# those are cheap, and sums over a 1080p image overflow float16.
_HALF_OPS: dict[str, tuple[int, ...] | None] = {
    "Conv": (0, 1, 2), "Relu": (0,), "LeakyRelu": (0,), "MaxPool": (0,), "AveragePool": (0,),
    "Concat": None, "Resize": (0,), "DepthToSpace": (0,), "Identity": (0,),
}
_SHAPE_ONLY = {"Shape", "Size"}  # read dims only: either precision will do, no Cast needed


def to_mixed_fp16(model: Any) -> Any:
    """Float32 ONNX -> same graph with convolutions (and the cheap ops between them) in float16.

    Graph inputs and outputs stay float32; Cast nodes are inserted at region borders. Why here
    and not ModelOpt: TensorRT >= 11 only builds what the graph's types say, and this keeps
    s2cv free of extra dependencies for one well-known family of conv nets.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    FLOAT, HALF = TensorProto.FLOAT, TensorProto.FLOAT16
    model = copy.deepcopy(model)
    graph = model.graph
    inferred = onnx.shape_inference.infer_shapes(model)
    types: dict[str, int] = {}
    for vi in list(inferred.graph.value_info) + list(inferred.graph.input) + list(inferred.graph.output):
        types[vi.name] = vi.type.tensor_type.elem_type
    inits = {t.name: t for t in graph.initializer}
    for name, t in inits.items():
        types[name] = t.data_type

    def data_inputs(node: Any) -> list[int]:
        idx = _HALF_OPS[node.op_type]
        return [i for i in (range(len(node.input)) if idx is None else idx) if i < len(node.input) and node.input[i]]

    def is_half(node: Any) -> bool:
        return (node.op_type in _HALF_OPS and all(types.get(node.input[i]) == FLOAT for i in data_inputs(node))
                and all(types.get(o) == FLOAT for o in node.output))

    have: dict[tuple[str, int], str] = {}
    for vi in graph.input:
        have[(vi.name, vi.type.tensor_type.elem_type)] = vi.name
    for name, t in inits.items():
        have[(name, t.data_type)] = name
    nodes: list[Any] = []
    new_inits: list[Any] = []

    def version(tensor: str, dtype: int) -> str:
        """Name of ``tensor`` in ``dtype``, adding a Cast (or a converted initializer) once."""
        if (tensor, dtype) in have:
            return have[(tensor, dtype)]
        name = tensor + "__fp16" if dtype == HALF else tensor
        if dtype == HALF and tensor in inits:
            new_inits.append(numpy_helper.from_array(numpy_helper.to_array(inits[tensor]).astype(np.float16), name))
        else:
            source = have[(tensor, HALF if dtype == FLOAT else FLOAT)]
            nodes.append(helper.make_node("Cast", [source], [name], to=dtype, name=f"cast_{name}"))
        have[(tensor, dtype)] = name
        return name

    for node in graph.node:
        if is_half(node):
            for i in data_inputs(node):
                node.input[i] = version(node.input[i], HALF)
            for j, out in enumerate(node.output):
                node.output[j] = out + "__fp16"
                have[(out, HALF)] = out + "__fp16"
        elif node.op_type in _SHAPE_ONLY:
            t = node.input[0]
            if (t, FLOAT) not in have and (t, HALF) in have:
                node.input[0] = have[(t, HALF)]
            for out in node.output:
                have[(out, types.get(out, TensorProto.INT64))] = out
        else:
            for t in node.input:
                if t and (t, HALF) in have and (t, FLOAT) not in have:
                    version(t, FLOAT)
            for out in node.output:
                have[(out, types.get(out, FLOAT))] = out
        nodes.append(node)
    for out in graph.output:
        if (out.name, FLOAT) not in have:
            version(out.name, FLOAT)
    used = {t for n in nodes for t in n.input}
    kept = [t for t in graph.initializer if t.name in used] + [t for t in new_inits if t.name in used]
    del graph.node[:]
    graph.node.extend(nodes)
    del graph.initializer[:]
    graph.initializer.extend(kept)
    del graph.value_info[:]
    props = {p.key: p.value for p in model.metadata_props}
    props["s2cv.precision"] = "fp16"
    del model.metadata_props[:]
    helper.set_model_props(model, props)
    return model
