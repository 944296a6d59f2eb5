"""Checkpoints: write, read and validate, and load into a network.

A checkpoint is a plain dict (loadable with ``torch.load(weights_only=True)``):
``{"format": "s2cv/1", "arch": str, "conf": dict, "state_dict": ..., "meta": dict}`` plus, for
training checkpoints, ``optimizer`` and ``step``. Needs the ``[train]`` extra and says so when it
is missing.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from s2cv.feature.extras import import_torch
from s2cv.feature.zoo import resolve

if TYPE_CHECKING:
    from torch import nn


FORMAT = "s2cv/1"


def save_checkpoint(path: str | Path, model: nn.Module, arch: str, meta: dict[str, Any] | None = None,
                    **extra: Any) -> None:
    """Write atomically so an interrupted run never leaves a truncated checkpoint behind."""
    state = {"format": FORMAT, "arch": arch, "conf": dict(model.conf), "state_dict": model.state_dict(),
             "meta": meta or {}, **extra}
    write_atomically(path, state)


def write_atomically(path: str | Path, state: dict[str, Any]) -> None:
    """``torch.save`` through a temporary file (parents created), so an interrupted run never
    leaves a truncated checkpoint behind (also S2Glue's, ``s2cv.models.glue_checkpoint``)."""
    torch = import_torch("writing a checkpoint")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(state, tmp)
    tmp.replace(path)


def read_tagged(path: str | Path, tag: str, kind: str) -> dict[str, Any]:
    """A checkpoint dict whose format tag is ``tag`` (weights only: no code from the file is run);
    ValueError naming the ``kind`` ("s2cv", "S2Glue") when it cannot be read or is another file."""
    torch = import_torch(f"reading the checkpoint {path}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for truncated / foreign files
        raise ValueError(f"cannot read {kind} checkpoint {path}: {type(exc).__name__}: {exc}") from exc
    if not isinstance(ckpt, dict) or ckpt.get("format") != tag:
        raise ValueError(f"{path} is not an {kind} checkpoint (missing format tag {tag!r})")
    return ckpt


def load_weights(net: nn.Module, state_dict: dict[str, Any], path: str | Path, fits: str) -> None:
    """Load a checkpoint's ``state_dict`` into ``net`` (weights below ``common.TINY`` set to zero);
    ValueError naming ``path`` when the weights do not fit (``fits``: what they must fit, e.g.
    "architecture 'xfeat'") or hold NaN/Inf values."""
    torch = import_torch(f"loading {path}")
    try:
        net.load_state_dict(state_dict)
    except RuntimeError as exc:
        raise ValueError(f"{path}: weights do not fit {fits}: {exc}") from exc
    for name, value in state_dict.items():
        if value.is_floating_point() and not torch.isfinite(value).all():
            raise ValueError(f"{path}: tensor {name} holds NaN/Inf values (corrupt weights)")
    from s2cv.models.common import flush_tiny

    flush_tiny(net)   # subnormal weights are zero in effect and slow on CPUs


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load and validate a checkpoint dict (weights only: no code from the file is run)."""
    ckpt = read_tagged(path, FORMAT, "s2cv")
    from s2cv.models import ARCHITECTURES

    if ckpt.get("arch") not in ARCHITECTURES:
        raise ValueError(f"{path}: unknown architecture {ckpt.get('arch')!r}")
    return ckpt


def load_model(model: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    """Zoo name or path -> (network in eval mode, checkpoint metadata)."""
    path = resolve(model)
    ckpt = read_checkpoint(path)
    from s2cv.models import build_model

    net = build_model(ckpt["arch"], **ckpt.get("conf", {}))
    load_weights(net, ckpt["state_dict"], path, f"architecture {ckpt['arch']!r}")
    # the file itself says where it is: a "path" stored in the meta (copied from another checkpoint) must not win
    meta = {**ckpt.get("meta", {}), "arch": ckpt["arch"], "path": str(path)}
    return net.eval(), meta


def convert_released(src: str | Path, out: str | Path) -> Path:
    """Write XFeat's released weights (``src``, read by ``s2cv.models.xfeat.load_released``) as an
    s2cv checkpoint that names its source and hash."""
    from s2cv.models.xfeat import load_released

    net = load_released(src)
    digest = hashlib.sha256(Path(src).read_bytes()).hexdigest()
    meta = {"source": "XFeat released weights (Potje et al., CVPR 2024; verlab/accelerated_features), "
                      "Apache-2.0; trained on visible images only", "source_sha256": digest}
    save_checkpoint(out, net, "xfeat", meta)
    return Path(out)
