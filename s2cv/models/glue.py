"""S2Glue: a LightGlue-style learned matcher (Lindenberger et al., "LightGlue: Local Feature Matching
at Light Speed", ICCV 2023), written for s2cv so XFeat's released LighterGlue weights load into it
(``s2cv.models.glue_convert``) and S2-Net can train it on visible/thermal pairs.

Why a learned matcher: mutual nearest neighbours look at one descriptor pair at a time; across
modalities many true pairs are not each other's nearest neighbour. Attention lets every keypoint
look at its own image (self) and at the other image (cross) before it is matched, and the
assignment may say "no match" (the dustbin) instead of forcing one.

The parts, in order (all in ``GlueMatcher.forward``):

- input projection: the detector's descriptors (``input_dim``: 64 for XFeat-layout models, 128 for
  s2cv's fast/r2d2 nets) -> the model width ``dim``;
- keypoint positions, normalised by the image's longer side (``normalize_keypoints``), become a
  rotary positional encoding (learned Fourier frequencies), applied to queries and keys of the
  self-attention only: attention then depends on relative position;
- ``n_layers`` x (self-attention in each image, then cross-attention between the two, each with a
  residual MLP on [x, message]);
- assignment (``MatchAssignment``): similarity of projected descriptors, a softmax over rows and
  one over columns (dual softmax) plus a per-point matchability (sigmoid), combined in the log
  domain into an (M+1) x (N+1) log partial assignment whose last row/column is the dustbin;
- point pruning (inference only): after each layer but the last, points whose matchability falls
  below ``1 - width_confidence`` leave the computation (they cannot match anyway);
- match filtering: mutual argmax of the assignment with probability above ``filter_threshold``.

Training supervises the log assignment of every layer (``all_log_assignments``), as LightGlue does.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class GlueConfig:
    """Shape and inference settings of the matcher (LighterGlue's values by default)."""

    input_dim: int = 64            # descriptor dimension of the detector it matches
    dim: int = 96                  # model width
    n_layers: int = 6
    n_heads: int = 1
    width_confidence: float = 0.95  # prune points with matchability < 1 - this (-1: no pruning)
    filter_threshold: float = 0.1   # minimum match probability

    def __post_init__(self) -> None:
        for name in ("input_dim", "dim", "n_layers", "n_heads"):
            if int(getattr(self, name)) != getattr(self, name) or getattr(self, name) < 1:
                raise ValueError(f"GlueConfig.{name} must be a positive integer, got {getattr(self, name)!r}")
        if self.dim % self.n_heads or (self.dim // self.n_heads) % 2:
            raise ValueError(f"dim {self.dim} must split into {self.n_heads} heads of even size (rotary pairs)")
        if not 0.0 <= self.filter_threshold < 1.0:
            raise ValueError(f"filter_threshold must be in [0, 1), got {self.filter_threshold!r}")

    @classmethod
    def from_dict(cls, conf: dict[str, Any]) -> GlueConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(conf) - known
        if unknown:
            raise ValueError(f"unknown GlueConfig keys {sorted(unknown)}; expected {sorted(known)}")
        return cls(**conf)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def normalize_keypoints(kpts: torch.Tensor, size: torch.Tensor) -> torch.Tensor:
    """Pixel (x, y) -> centred coordinates divided by half the longer image side (LightGlue's
    convention; ``cv2.LG_NORM_MAX_SIDE`` in OpenCV). ``size`` is (..., 2) = (width, height)."""
    size = size.to(kpts)
    return (kpts - size[..., None, :] / 2) / (size.max(-1).values[..., None, None] / 2)


def _rotate_pairs(x: torch.Tensor) -> torch.Tensor:
    """(x0, x1, x2, x3, ...) -> (-x1, x0, -x3, x2, ...): a 90 degree turn of each adjacent pair.
    Written as a constant channel gather and a sign (no reshapes), which ONNX runtimes take as is."""
    d = int(x.shape[2])   # the head width: static, so the tracer may keep these as constants
    swap = torch.tensor([i ^ 1 for i in range(d)], device=x.device)
    sign = torch.tensor([(i % 2) * 2.0 - 1.0 for i in range(d)], dtype=x.dtype, device=x.device)
    return x.index_select(2, swap) * sign


def apply_rotary(rot: tuple[torch.Tensor, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """Rotate each adjacent channel pair of ``x`` (B, N, head_dim) by the position's angle."""
    cos, sin = rot
    return x * cos + _rotate_pairs(x) * sin


class FourierPosition(nn.Module):
    """Normalised (x, y) -> per-pair angles w_k . (x, y) (learned frequencies), as (cos, sin) of
    shape (B, N, head_dim), each angle repeated for its channel pair (shared by all heads)."""

    def __init__(self, head_dim: int) -> None:
        super().__init__()
        self.freqs = nn.Linear(2, head_dim // 2, bias=False)

    def forward(self, kpts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        angles = self.freqs(kpts).repeat_interleave(2, dim=2)
        return torch.cos(angles), torch.sin(angles)


def _mlp(dim: int) -> nn.Sequential:
    """The update MLP on [x, message] (2*dim -> dim), shared by both images."""
    return nn.Sequential(nn.Linear(2 * dim, 2 * dim), nn.LayerNorm(2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))


def _heads(t: torch.Tensor, heads: int) -> list[torch.Tensor]:
    """(B, N, heads*head_dim) -> one (B, N, head_dim) slice per head (slices, not reshapes: the
    head count is small and static, and the graph stays free of shape arithmetic)."""
    return list(t.chunk(heads, dim=2)) if heads > 1 else [t]


def _attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    return torch.softmax(q @ k.transpose(1, 2) * q.shape[2] ** -0.5, dim=2) @ v


class SelfAttention(nn.Module):
    """Every point attends to the points of its own image, with rotary position on queries and keys."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)   # [q; k; v], each heads x head_dim
        self.out = nn.Linear(dim, dim)
        self.mlp = _mlp(dim)

    def forward(self, x: torch.Tensor, rot: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        q, k, v = (_heads(t, self.heads) for t in self.qkv(x).chunk(3, dim=2))
        ctx = [_attend(apply_rotary(rot, qh), apply_rotary(rot, kh), vh) for qh, kh, vh in zip(q, k, v)]
        message = self.out(torch.cat(ctx, 2) if len(ctx) > 1 else ctx[0])
        return x + self.mlp(torch.cat([x, message], 2))


class CrossAttention(nn.Module):
    """Each image's points attend to the other image's; one similarity matrix serves both
    directions (softmax over its rows for image 0, over its columns for image 1)."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qk = nn.Linear(dim, dim)
        self.v = nn.Linear(dim, dim)
        self.out = nn.Linear(dim, dim)
        self.mlp = _mlp(dim)

    def forward(self, x0: torch.Tensor, x1: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        qk0, qk1 = _heads(self.qk(x0), self.heads), _heads(self.qk(x1), self.heads)
        v0, v1 = _heads(self.v(x0), self.heads), _heads(self.v(x1), self.heads)
        ctx0, ctx1 = [], []
        for a, b, va, vb in zip(qk0, qk1, v0, v1):
            sim = a @ b.transpose(1, 2) * a.shape[2] ** -0.5   # (B, M, N)
            ctx0.append(torch.softmax(sim, dim=2) @ vb)
            ctx1.append(torch.softmax(sim.transpose(1, 2), dim=2) @ va)
        m0 = self.out(torch.cat(ctx0, 2) if len(ctx0) > 1 else ctx0[0])
        m1 = self.out(torch.cat(ctx1, 2) if len(ctx1) > 1 else ctx1[0])
        return x0 + self.mlp(torch.cat([x0, m0], 2)), x1 + self.mlp(torch.cat([x1, m1], 2))


class MatchAssignment(nn.Module):
    """Descriptors of both images -> (B, M+1, N+1) log partial assignment (dustbin last)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.matchability = nn.Linear(dim, 1)
        self.proj = nn.Linear(dim, dim)

    def logit(self, x: torch.Tensor) -> torch.Tensor:
        return self.matchability(x).squeeze(-1)

    def forward(self, x0: torch.Tensor, x1: torch.Tensor) -> torch.Tensor:
        d = x0.shape[-1]
        sim = (self.proj(x0) @ self.proj(x1).transpose(1, 2)) / d ** 0.5
        z0, z1 = self.logit(x0), self.logit(x1)
        inner = (F.log_softmax(sim, dim=2) + F.log_softmax(sim, dim=1)
                 + F.logsigmoid(z0)[:, :, None] + F.logsigmoid(z1)[:, None, :])
        dust0 = F.logsigmoid(-z0)[:, :, None]                    # row i unmatched
        dust1 = F.logsigmoid(-z1)[:, None, :]                    # column j unmatched
        corner = torch.zeros_like(dust1[:, :, :1])  # (B, 1, 1); sets are never empty
        return torch.cat([torch.cat([inner, dust0], 2), torch.cat([dust1, corner], 2)], 1)


def filter_matches(log_assignment: torch.Tensor, threshold: float
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Mutual argmax of the inner assignment with probability > threshold.
    Returns matches0 (B, M), matches1 (B, N) (index or -1) and their probabilities (0 if unmatched)."""
    inner = log_assignment[:, :-1, :-1]
    best0, best1 = inner.max(2), inner.max(1)
    m0, m1 = best0.indices, best1.indices
    rows = torch.arange(m0.shape[1], device=m0.device)[None]
    cols = torch.arange(m1.shape[1], device=m1.device)[None]
    mutual0 = rows == m1.gather(1, m0)
    mutual1 = cols == m0.gather(1, m1)
    score0 = torch.where(mutual0, best0.values.exp(), torch.zeros_like(best0.values))
    score1 = torch.where(mutual1, score0.gather(1, m1), torch.zeros_like(best1.values))
    valid0 = mutual0 & (score0 > threshold)
    valid1 = mutual1 & valid0.gather(1, m1)
    minus = torch.full_like(m0[:1, :1], -1)
    return (torch.where(valid0, m0, minus), torch.where(valid1, m1, minus),
            torch.where(valid0, score0, torch.zeros_like(score0)), torch.where(valid1, score1, torch.zeros_like(score1)))


class GlueMatcher(nn.Module):
    """Normalised keypoints (B, M, 2), (B, N, 2) and descriptors (B, M, D), (B, N, D) -> matches.

    ``forward`` returns a dict: ``matches0`` (B, M) / ``matches1`` (B, N) indices or -1,
    ``mscores0`` / ``mscores1`` probabilities, and in training mode ``log_assignments``: one
    (B, M+1, N+1) log assignment per layer (no pruning while training).
    """

    def __init__(self, config: GlueConfig | dict[str, Any] | None = None) -> None:
        super().__init__()
        config = config if isinstance(config, GlueConfig) else GlueConfig.from_dict(dict(config or {}))
        self.config = config
        self.conf = config.to_dict()   # what s2cv checkpoints store
        self.input_proj = nn.Linear(config.input_dim, config.dim) if config.input_dim != config.dim else nn.Identity()
        self.posenc = FourierPosition(config.dim // config.n_heads)
        self.self_attn = nn.ModuleList(SelfAttention(config.dim, config.n_heads) for _ in range(config.n_layers))
        self.cross_attn = nn.ModuleList(CrossAttention(config.dim, config.n_heads) for _ in range(config.n_layers))
        self.assign = nn.ModuleList(MatchAssignment(config.dim) for _ in range(config.n_layers))

    def _keep(self, logit: torch.Tensor) -> torch.Tensor:
        """Indices of the points that stay: matchability above 1 - width_confidence. The most
        matchable point always stays, so no set ever becomes empty (LightGlue stops with no
        matches then; that point's match probability is below the filter threshold, same result)."""
        keep = (torch.sigmoid(logit) > 1 - self.config.width_confidence) | (logit == logit.max())
        return torch.nonzero(keep)[:, 0]

    def forward(self, kpts0: torch.Tensor, kpts1: torch.Tensor, desc0: torch.Tensor, desc1: torch.Tensor
                ) -> dict[str, torch.Tensor | list[torch.Tensor]]:
        cfg = self.config
        if desc0.shape[-1] != cfg.input_dim or desc1.shape[-1] != cfg.input_dim:
            raise ValueError(f"descriptors have {desc0.shape[-1]} and {desc1.shape[-1]} dimensions; "
                             f"this matcher takes {cfg.input_dim}")
        m, n = kpts0.shape[1], kpts1.shape[1]
        x0, x1 = self.input_proj(desc0), self.input_proj(desc1)
        rot0, rot1 = self.posenc(kpts0), self.posenc(kpts1)
        prune = not self.training and cfg.width_confidence > 0
        idx0 = torch.arange(m, device=kpts0.device)
        idx1 = torch.arange(n, device=kpts1.device)
        log_assignments: list[torch.Tensor] = []
        for i in range(cfg.n_layers):
            x0, x1 = self.self_attn[i](x0, rot0), self.self_attn[i](x1, rot1)
            x0, x1 = self.cross_attn[i](x0, x1)
            if self.training:
                log_assignments.append(self.assign[i](x0, x1))
            elif prune and i < cfg.n_layers - 1:   # batch 1 at inference: keep the matchable points
                keep0, keep1 = self._keep(self.assign[i].logit(x0)[0]), self._keep(self.assign[i].logit(x1)[0])
                x0, idx0 = x0.index_select(1, keep0), idx0.index_select(0, keep0)
                x1, idx1 = x1.index_select(1, keep1), idx1.index_select(0, keep1)
                rot0 = (rot0[0].index_select(1, keep0), rot0[1].index_select(1, keep0))
                rot1 = (rot1[0].index_select(1, keep1), rot1[1].index_select(1, keep1))
        scores = log_assignments[-1] if self.training else self.assign[-1](x0, x1)
        m0, m1, s0, s1 = filter_matches(scores, cfg.filter_threshold)
        if prune:   # back to the indices of all input points
            m0 = torch.where(m0 >= 0, idx1[None].expand_as(x1[..., 0]).gather(1, m0.clamp(min=0)), m0)
            m1 = torch.where(m1 >= 0, idx0[None].expand_as(x0[..., 0]).gather(1, m1.clamp(min=0)), m1)
            m0 = torch.full((kpts0.shape[0], m), -1, dtype=m0.dtype, device=m0.device).index_copy(1, idx0, m0)
            m1 = torch.full((kpts1.shape[0], n), -1, dtype=m1.dtype, device=m1.device).index_copy(1, idx1, m1)
            s0 = torch.zeros((kpts0.shape[0], m), dtype=s0.dtype, device=s0.device).index_copy(1, idx0, s0)
            s1 = torch.zeros((kpts1.shape[0], n), dtype=s1.dtype, device=s1.device).index_copy(1, idx1, s1)
        out: dict[str, Any] = {"matches0": m0, "matches1": m1, "mscores0": s0, "mscores1": s1}
        if self.training:
            out["log_assignments"] = log_assignments
        return out


def build_glue(conf: dict[str, Any] | None = None) -> GlueMatcher:
    return GlueMatcher(GlueConfig.from_dict(dict(conf or {})))
