"""S2Glue checkpoints, and the converter from XFeat's released LighterGlue weights.

A glue checkpoint is a plain dict (``torch.load(weights_only=True)``):
``{"format": "s2cv-glue/1", "conf": GlueConfig dict, "state_dict": ..., "meta": {"det_model": ...}}``
plus ``optimizer``/``step`` for training checkpoints. ``meta["det_model"]`` names the detector
(``S2Net_create(model=...)``) whose keypoints and descriptors the matcher was trained on: a matcher
is only meaningful on its own detector's descriptors.

LighterGlue (XFeat, Potje et al. CVPR 2024; Apache-2.0) is LightGlue with input_dim 64, width 96,
6 layers and 1 head. Its state dict (keys ``matcher.*``) uses LightGlue's module names and packs
the self-attention's q, k, v interleaved per channel ((head, channel, q/k/v) order); S2Glue keeps
them as three blocks, so the converter reorders those rows. Token-confidence heads (LightGlue's
early stopping, off in LighterGlue) are dropped.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch

from .checkpoint import load_weights, read_tagged, write_atomically
from .glue import GlueConfig, GlueMatcher

FORMAT = "s2cv-glue/1"
LIGHTERGLUE_CONFIG = GlueConfig(input_dim=64, dim=96, n_layers=6, n_heads=1, width_confidence=0.95,
                                filter_threshold=0.1)
_RENAMES = (  # LightGlue module names -> S2Glue's, applied after the layer index is moved
    (r"^posenc\.Wr\.", "posenc.freqs."),
    (r"^self_attn\.(\d+)\.Wqkv\.", r"self_attn.\1.qkv."),
    (r"^self_attn\.(\d+)\.out_proj\.", r"self_attn.\1.out."),
    (r"^(self_attn|cross_attn)\.(\d+)\.ffn\.", r"\1.\2.mlp."),
    (r"^cross_attn\.(\d+)\.to_qk\.", r"cross_attn.\1.qk."),
    (r"^cross_attn\.(\d+)\.to_v\.", r"cross_attn.\1.v."),
    (r"^cross_attn\.(\d+)\.to_out\.", r"cross_attn.\1.out."),
    (r"^log_assignment\.(\d+)\.final_proj\.", r"assign.\1.proj."),
    (r"^log_assignment\.(\d+)\.matchability\.", r"assign.\1.matchability."),
)


def _deinterleave_qkv(t: torch.Tensor, heads: int) -> torch.Tensor:
    """Rows ordered (head, channel, q/k/v) -> (q/k/v, head, channel)."""
    rows = t.shape[0]
    return t.reshape(heads, rows // (3 * heads), 3, *t.shape[1:]).movedim(2, 0).reshape(t.shape)


def convert_lightglue_state(state: dict[str, torch.Tensor], config: GlueConfig = LIGHTERGLUE_CONFIG
                            ) -> dict[str, torch.Tensor]:
    """LightGlue/LighterGlue state dict (with or without the ``matcher.`` prefix; ``extractor.*``
    ignored) -> S2Glue state dict. ValueError when tensors are missing or do not fit ``config``."""
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if key.startswith("extractor."):
            continue
        key = key.removeprefix("matcher.")
        if key.startswith("token_confidence."):
            continue
        key = re.sub(r"^transformers\.(\d+)\.(self_attn|cross_attn)\.", r"\2.\1.", key)
        for pattern, repl in _RENAMES:
            key = re.sub(pattern, repl, key)
        if re.match(r"^self_attn\.\d+\.qkv\.", key):
            value = _deinterleave_qkv(value, config.n_heads)
        out[key] = value.detach().clone().float()
    expected = GlueMatcher(config).state_dict()
    missing, extra = sorted(set(expected) - set(out)), sorted(set(out) - set(expected))
    if missing or extra:
        raise ValueError(f"not a LightGlue state dict for {config}: missing {missing[:6]}, unexpected {extra[:6]}")
    for key, ref in expected.items():
        if out[key].shape != ref.shape:
            raise ValueError(f"{key}: shape {tuple(out[key].shape)}, the matcher expects {tuple(ref.shape)}")
        if not torch.isfinite(out[key]).all():
            raise ValueError(f"{key} holds NaN/Inf values (corrupt weights)")
    return out


def load_lighterglue(path: str | Path, input_dim: int = 64, seed: int = 0) -> GlueMatcher:
    """XFeat's ``xfeat-lighterglue.pt`` -> GlueMatcher. With ``input_dim`` != 64 (e.g. 128-d s2fast
    descriptors) every weight but the input projection comes from LighterGlue; the projection is
    new (seeded), so the result needs training before it is any use."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated or foreign files raise many types
        raise ValueError(f"cannot read LighterGlue weights {path}: {type(exc).__name__}: {exc}") from exc
    if not isinstance(state, dict):
        raise ValueError(f"{path} is not a state dict")
    converted = convert_lightglue_state(state)
    net = GlueMatcher(LIGHTERGLUE_CONFIG if input_dim == 64 else
                      GlueConfig(**{**LIGHTERGLUE_CONFIG.to_dict(), "input_dim": input_dim}))
    if input_dim != 64:
        torch.manual_seed(seed)
        fresh = GlueMatcher(net.config).input_proj.state_dict()
        converted = {**converted, **{f"input_proj.{k}": v for k, v in fresh.items()}}
    net.load_state_dict(converted)
    return net.eval()


def save_glue(path: str | Path, net: GlueMatcher, meta: dict[str, Any], **extra: Any) -> None:
    """Write atomically (``s2cv.models.checkpoint.write_atomically``)."""
    if "det_model" not in meta:
        raise ValueError("glue checkpoints must name their detector: meta['det_model']")
    write_atomically(path, {"format": FORMAT, "conf": net.config.to_dict(), "state_dict": net.state_dict(),
                            "meta": dict(meta), **extra})


def read_glue(path: str | Path) -> dict[str, Any]:
    """Load and validate a glue checkpoint dict (weights only)."""
    return read_tagged(path, FORMAT, "S2Glue")


def load_glue(path: str | Path) -> tuple[GlueMatcher, dict[str, Any]]:
    """Glue checkpoint -> (matcher in eval mode, metadata with ``det_model``)."""
    ckpt = read_glue(path)
    net = GlueMatcher(GlueConfig.from_dict(ckpt["conf"]))
    load_weights(net, ckpt["state_dict"], path, f"the matcher config {ckpt['conf']}")
    return net.eval(), {"path": str(path), **ckpt.get("meta", {})}
