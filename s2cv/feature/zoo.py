"""Model zoo: the one place that knows about weight files.

Zoo names map to checkpoints shipped in ``s2cv/weights``, each with the ONNX graph exported from
it beside it; anything else is treated as a path. Resolving a model (``model_meta``) never
imports torch: the runtime runs the graph beside the checkpoint. Reading and writing the
checkpoints themselves is ``s2cv.models.checkpoint``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from s2cv.feature.graph import onnx_model_meta, prebuilt_onnx, read_onnx_metadata

WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"
ZOO: dict[str, str] = {
    "default": "s2fast-gen-vis-ir-nir.pt",       # visible <-> thermal and <-> NIR; = s2fast-gen
    "s2fast-gen": "s2fast-gen-vis-ir-nir.pt",    # S2Fast, 64-d, the generalisation campaign (8+ h of S2 steps, pseudo-modalities, LLVIP held out)
    "s2fast-wide": "s2fast-wide-vis-ir-nir.pt",  # S2Fast (124 k parameters) fine-tuned from s2fast on mixed geometry + LLVIP, METU
    "s2fast": "s2fast-vis-ir-nir.pt",            # S2Fast trained on RoadScene + VIS-NIR with the paper's geometry
    "s2xfeat": "s2xfeat-vis-ir-nir.pt",  # XFeat layout, S2-trained from XFeat's weights; holds better on hard geometry
    "vis-ir": "s2fast-vis-ir.pt",         # stage 1 of the default's training, fine-tuned on RoadScene (visible <-> thermal)
    "r2d2": "r2d2-vis-ir-nir.pt",         # full-resolution R2D2-style net trained on a GPU; slow on CPU
    "xfeat": "xfeat-released.pt",         # XFeat's released weights, converted (visible only; the S2 starting point)
}
# OpenCV's own cv::XFeat graphs of the XFeat-layout models (`s2cv export NAME --format cv-xfeat`,
# 640x640): what S2Net_create(model=NAME, native=True) hands to cv2.XFeat_create (s2cv.feature.native).
CV_XFEAT: dict[str, str] = {
    "s2xfeat": "s2xfeat-vis-ir-nir.cv-xfeat.onnx",
    "xfeat": "xfeat-released.cv-xfeat.onnx",
}


def available_models() -> list[str]:
    """Zoo names whose weight file is actually shipped."""
    return [name for name, file in ZOO.items() if (WEIGHTS_DIR / file).is_file()]


def resolve(model: str | Path) -> Path:
    """A zoo name or a checkpoint path -> an existing file (clear errors otherwise)."""
    if isinstance(model, str) and model in ZOO:
        path = WEIGHTS_DIR / ZOO[model]
        if not path.is_file():
            raise FileNotFoundError(
                f"the zoo model {model!r} is not shipped in this build of s2cv (expected {path}); "
                f"available: {available_models() or 'none'}. Train one with `python -m s2cv.train` "
                f"and pass model=PATH.")
        return path
    path = Path(model)
    if not path.is_file():
        raise FileNotFoundError(f"model {str(model)!r} is neither a zoo name ({sorted(ZOO)}) nor a checkpoint file")
    return path


def model_meta(model: str | Path) -> dict[str, Any]:
    """Zoo name, checkpoint or ``.onnx`` path -> what the backends need to run it, without torch:
    ``{"path": checkpoint or None, "onnx": graph or absent, **graph metadata}``.

    A checkpoint's graph is the ``.onnx`` beside it when it was exported from that very file
    (zoo models ship theirs); a stale one is skipped with a warning (``graph.prebuilt_onnx``).
    """
    if Path(str(model)).suffix.lower() == ".onnx" and not (isinstance(model, str) and model in ZOO):
        return onnx_model_meta(model)
    meta: dict[str, Any] = {"path": str(resolve(model))}
    graph = prebuilt_onnx(meta)
    if graph is not None:
        meta = {**read_onnx_metadata(graph), **meta}
    return meta
