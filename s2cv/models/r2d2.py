"""R2D2-style network (Revaud et al., NeurIPS 2019): Quad-L2Net with confidence heads.

Full resolution throughout (strides replaced by dilations), 128-d descriptors, a
repeatability head and a reliability head fed with the squared features, as in the paper.
Input is one gray channel so visible and thermal images share one network.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .common import check_keypoint_score, keypoint_score, l2_normalize, normalize_image, squash

default_conf = {"descriptor_dim": 128, "keypoint_score": "product"}


def _conv(cin: int, cout: int, kernel: int = 3, dilation: int = 1, last: bool = False) -> list[nn.Module]:
    pad = dilation * (kernel - 1) // 2
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, kernel, padding=pad, dilation=dilation)]
    if not last:
        layers += [nn.BatchNorm2d(cout, affine=False), nn.ReLU(inplace=True)]
    return layers


class R2D2(nn.Module):
    """(B,1,H,W) in [0,1] -> full-resolution descriptors, repeatability, reliability."""

    loss = "r2d2"
    pad_multiple = 8
    stride = 1

    def __init__(self, **conf) -> None:
        super().__init__()
        self.conf = {**default_conf, **conf}
        d = self.conf["descriptor_dim"]
        check_keypoint_score(self.conf["keypoint_score"])
        self.descriptor_dim = d
        self.body = nn.Sequential(
            *_conv(1, 32), *_conv(32, 32),
            *_conv(32, 64, dilation=2), *_conv(64, 64, dilation=2),
            *_conv(64, 128, dilation=4), *_conv(128, 128, dilation=4),
            *_conv(128, 128, kernel=2, dilation=8), *_conv(128, 128, kernel=2, dilation=8),
            *_conv(128, d, kernel=2, dilation=8, last=True),
        )
        self.clf = nn.Conv2d(d, 2, 1)   # reliability
        self.sal = nn.Conv2d(d, 1, 1)   # repeatability

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        x = self.body(normalize_image(image))
        # 2x2 kernels with even dilation pad asymmetrically; crop back to the input size.
        x = x[..., : image.shape[-2], : image.shape[-1]]
        sq = x * x
        rel = F.softmax(self.clf(sq), dim=1)[:, 1:2]
        rep = squash(self.sal(sq))
        scores = keypoint_score(rep, rel, self.conf["keypoint_score"])
        return {"descriptors": l2_normalize(x), "repeatability": rep, "reliability": rel, "scores": scores}
