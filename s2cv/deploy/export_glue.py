"""Export an S2Glue matcher to ONNX: the graph ``s2cv.S2Glue_create`` runs (onnxruntime or cv2.dnn),
which is also the graph OpenCV's own ``cv2.LightGlueMatcher`` runs (``--format cv-lightglue``).

The contract (OpenCV 5.1 ``cv::LightGlueMatcher`` with ``LG_DISK`` outputs, found by probing its
reader: it feeds inputs by name and reads outputs by name, one index per keypoint):

    inputs   kpts0 (1, M, 2), kpts1 (1, N, 2) float32, normalised: (p - size/2) / (max(w, h)/2)
             desc0 (1, M, D), desc1 (1, N, D)   float32, the detector's descriptors
    outputs  matches0 (1, M), matches1 (1, N)   int64, index into the other set or -1
             mscores0 (1, M), mscores1 (1, N)   float32, match probability (0 when unmatched)

so ``m = cv2.LightGlueMatcher_create(path, 0.1, type=cv2.LG_DISK)`` plus
``m.setKeypointNormalization(cv2.LG_NORM_MAX_SIDE)`` (LightGlue's own normalisation) gives the
same matches as S2Glue_create. Point pruning is inside the graph (a data-dependent gather), so it
saves time in every runtime. Every export is checked against PyTorch before the file is written:
onnxruntime, and cv2.LightGlueMatcher where OpenCV has it, on the detector's features of the
bundled sample pair.
"""
from __future__ import annotations

import io
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from s2cv.deploy.export import (
    DEFAULT_OPSET,
    ExportReport,
    frozen_copy,
    raise_if_failed,
    weights_sha256,
    write_graph,
)
from s2cv.feature.backend_onnx import onnx_session
from s2cv.feature.glue import GLUE_FORMAT, GLUE_INPUTS, GLUE_OUTPUTS, normalize_keypoints
from s2cv.models.glue import GlueMatcher

MIN_SAME_MATCHES = 0.99   # share of keypoints whose match (or non-match) must agree with PyTorch
SCORES_ATOL = 1e-3


@dataclass(frozen=True)
class GlueCheck:
    name: str
    same: float        # share of query keypoints with the same match as PyTorch
    scores_diff: float
    matches: int

    @property
    def passed(self) -> bool:
        return self.same >= MIN_SAME_MATCHES and self.scores_diff <= SCORES_ATOL

    def line(self) -> str:
        return (f"{self.name:<34} same matches {self.same:7.2%}  max|score diff| {self.scores_diff:.1e}  "
                f"({self.matches} matches)  {'ok' if self.passed else 'FAIL'}")


@dataclass
class GlueExportReport(ExportReport):
    checks: list[GlueCheck] = field(default_factory=list)


class _GlueGraph(torch.nn.Module):
    """The matcher with the contract's output order."""

    def __init__(self, net: GlueMatcher) -> None:
        super().__init__()
        self.net = net

    def forward(self, kpts0: torch.Tensor, kpts1: torch.Tensor, desc0: torch.Tensor, desc1: torch.Tensor
                ) -> tuple[torch.Tensor, ...]:
        out = self.net(kpts0, kpts1, desc0, desc1)
        return tuple(out[name] for name in GLUE_OUTPUTS)


def _trace(net: GlueMatcher, opset: int) -> bytes:
    g = torch.Generator().manual_seed(0)
    dim = net.config.input_dim
    dummy = (torch.rand(1, 300, 2, generator=g) * 2 - 1, torch.rand(1, 280, 2, generator=g) * 2 - 1,
             torch.nn.functional.normalize(torch.randn(1, 300, dim, generator=g), dim=-1),
             torch.nn.functional.normalize(torch.randn(1, 280, dim, generator=g), dim=-1))
    axes = {"kpts0": {1: "M"}, "desc0": {1: "M"}, "matches0": {1: "M"}, "mscores0": {1: "M"},
            "kpts1": {1: "N"}, "desc1": {1: "N"}, "matches1": {1: "N"}, "mscores1": {1: "N"}}
    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # tracer chatter about the data-dependent pruning
        torch.onnx.export(_GlueGraph(net).eval(), dummy, buffer, dynamo=False, opset_version=opset,
                          do_constant_folding=True, input_names=list(GLUE_INPUTS), output_names=list(GLUE_OUTPUTS),
                          dynamic_axes=axes)
    return buffer.getvalue()


def validation_features(det_model: str, n: int = 1024) -> list[tuple[str, tuple[np.ndarray, ...]]]:
    """The detector's keypoints (pixels), descriptors and image sizes (w, h) on the bundled sample
    pairs: real inputs, so the check covers pruning and matching as users will run them."""
    import cv2

    from s2cv.feature.feature2d import S2Net_create
    from s2cv.feature.image import SAMPLES_DIR

    det = S2Net_create(n, model=det_model)
    out = []
    for name, (vis, ir) in {"roadscene": ("roadscene_vis.png", "roadscene_ir.png"),
                            "visnir": ("visnir_vis.jpg", "visnir_ir.jpg")}.items():
        a, b = cv2.imread(str(SAMPLES_DIR / vis)), cv2.imread(str(SAMPLES_DIR / ir))
        ka, da = det.detectAndCompute(a, None)
        kb, db = det.detectAndCompute(b, None)
        out.append((f"sample {name} K={n}", (cv2.KeyPoint_convert(ka), cv2.KeyPoint_convert(kb), da, db,
                                              (a.shape[1], a.shape[0]), (b.shape[1], b.shape[0]))))
    return out


def _compare(name: str, ref: dict[str, np.ndarray], m0: np.ndarray, s0: np.ndarray) -> GlueCheck:
    same = float((m0.reshape(-1) == ref["matches0"].reshape(-1)).mean())
    both = (m0.reshape(-1) >= 0) & (ref["matches0"].reshape(-1) >= 0)
    diff = float(np.abs(s0.reshape(-1) - ref["mscores0"].reshape(-1))[both].max(initial=0.0))
    return GlueCheck(name, same, diff, int((m0 >= 0).sum()))


def validate(net: GlueMatcher, model: bytes, inputs: list[tuple[str, tuple[np.ndarray, ...]]],
             threshold: float) -> list[GlueCheck]:
    """onnxruntime (and cv2.LightGlueMatcher where OpenCV has it) against PyTorch."""
    import cv2

    session = onnx_session(model)
    checks = []
    for name, (k0, k1, d0, d1, s0, s1) in inputs:
        feed = {"kpts0": normalize_keypoints(k0, s0)[None], "kpts1": normalize_keypoints(k1, s1)[None],
                "desc0": d0[None].astype(np.float32), "desc1": d1[None].astype(np.float32)}
        with torch.inference_mode():
            ref = {k: v.numpy() for k, v in net(*(torch.from_numpy(feed[i]) for i in GLUE_INPUTS)).items()}
        got = dict(zip(GLUE_OUTPUTS, session.run(list(GLUE_OUTPUTS), feed)))
        checks.append(_compare(f"onnxruntime {name}", ref, got["matches0"], got["mscores0"]))
        if hasattr(cv2, "LightGlueMatcher_createFromMemory"):
            matcher = cv2.LightGlueMatcher_createFromMemory(np.frombuffer(model, np.uint8), threshold,
                                                            type=cv2.LG_DISK)
            matcher.setKeypointNormalization(cv2.LG_NORM_MAX_SIDE)
            matcher.setPairInfo(k0.astype(np.float32), k1.astype(np.float32), tuple(s0), tuple(s1))
            m0, sc0 = np.full(len(k0), -1, np.int64), np.zeros(len(k0), np.float32)
            for m in matcher.match(d0.astype(np.float32), d1.astype(np.float32)):
                m0[m.queryIdx], sc0[m.queryIdx] = m.trainIdx, 1.0 - m.distance
            checks.append(_compare(f"cv2.LightGlueMatcher {name}", ref, m0, sc0))
    return checks


def export_glue(net: GlueMatcher, path: str | Path, *, det_model: str, opset: int = DEFAULT_OPSET,
                source_sha256: str = "", validate_graph: bool = True,
                inputs: list[tuple[str, tuple[np.ndarray, ...]]] | None = None) -> GlueExportReport:
    """Write ``path``: the matcher's graph with its detector named in the metadata;
    ExportValidationError (and nothing written) if a runtime disagrees with PyTorch."""
    import onnx

    from s2cv import __version__

    if opset < 17:
        raise ValueError(f"opset {opset} is too old; s2cv exports need opset >= 17")
    net = frozen_copy(net)
    model = onnx.load_from_string(_trace(net, opset))
    cfg = net.config
    metadata = {"s2cv.format": GLUE_FORMAT, "s2cv.version": __version__, "s2cv.det_model": str(det_model),
                "s2cv.descriptor_dim": str(cfg.input_dim), "s2cv.keypoint_normalization": "max_side",
                "s2cv.filter_threshold": str(cfg.filter_threshold), "s2cv.width_confidence": str(cfg.width_confidence),
                "s2cv.n_layers": str(cfg.n_layers), "s2cv.source_sha256": source_sha256,
                "s2cv.weights_sha256": weights_sha256(net), "s2cv.opset": str(opset)}
    onnx.helper.set_model_props(model, metadata)
    model.doc_string = (f"S2Glue matcher for s2cv detector {det_model!r} ({cfg.input_dim}-d descriptors): kpts0/kpts1 "
                        "(1,N,2) normalised (p - size/2)/(max(w,h)/2), desc0/desc1 (1,N,D) -> matches0/matches1 "
                        "(1,N) int64 (-1 unmatched), mscores0/mscores1. OpenCV: cv2.LightGlueMatcher_create(path, "
                        "0.1, type=cv2.LG_DISK) then setKeypointNormalization(cv2.LG_NORM_MAX_SIDE).")
    model.producer_name = "s2cv"
    onnx.checker.check_model(model, full_check=True)
    data = model.SerializeToString()
    report = GlueExportReport(Path(path), metadata)
    if validate_graph:
        inputs = validation_features(str(det_model)) if inputs is None else inputs
        report.checks = validate(net, data, inputs, cfg.filter_threshold)
        raise_if_failed(report.checks, f"S2Glue export disagrees with PyTorch; {path} was not written")
    write_graph(report.path, data)
    return report


def export_matcher(model: str, output: str | Path, opset: int = DEFAULT_OPSET, *, validate_graph: bool = True
                   ) -> GlueExportReport:
    """A glue zoo name or glue checkpoint -> its graph (what ``s2cv export --format cv-lightglue`` runs)."""
    from s2cv.feature.glue import resolve_glue_checkpoint
    from s2cv.feature.graph import file_sha256
    from s2cv.models.glue_checkpoint import load_glue

    path = resolve_glue_checkpoint(model)
    net, meta = load_glue(path)
    return export_glue(net, output, det_model=meta["det_model"], opset=opset, source_sha256=file_sha256(path),
                       validate_graph=validate_graph)
