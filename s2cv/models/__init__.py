"""Network registry: one name per architecture, all with the same dense-map outputs.

Every model maps a (B,1,H,W) float image in [0,1] (H, W multiples of ``pad_multiple``) to a
dict with ``descriptors`` (B,D,H/stride,W/stride, L2-normalised) and ``scores`` (B,1,H,W).
"""
from __future__ import annotations

from s2cv.feature.extras import require_train_extra

require_train_extra("s2cv models")

from torch import nn  # noqa: E402

from .d2net import D2Net  # noqa: E402
from .fast import S2Fast  # noqa: E402
from .r2d2 import R2D2  # noqa: E402
from .xfeat import XFeat  # noqa: E402

ARCHITECTURES: dict[str, type[nn.Module]] = {"fast": S2Fast, "r2d2": R2D2, "d2net": D2Net, "xfeat": XFeat}


def build_model(arch: str, **conf) -> nn.Module:
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {arch!r}; expected one of {sorted(ARCHITECTURES)}")
    return ARCHITECTURES[arch](**conf)


__all__ = ["ARCHITECTURES", "build_model", "S2Fast", "R2D2", "D2Net", "XFeat"]
