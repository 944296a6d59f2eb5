"""S2Fast: the default s2cv network, sized to beat cv2.SIFT on a 2-core CPU.

Why this shape: descriptors only need to be distinctive, so they live at 1/4 resolution
(sampled bilinearly at keypoints); localisation needs full resolution, so the score heads
predict a 4x4 block per 1/4-resolution cell and pixel-shuffle it back (as SuperPoint does
with its 65-channel head). A 1/8 branch adds context across modalities cheaply.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .common import check_keypoint_score, conv_bn_relu, keypoint_score, l2_normalize, normalize_image, squash

default_conf = {
    "descriptor_dim": 128,   # output descriptor length
    "width": 32,             # channels at 1/4 resolution; 1/8 uses twice as many
    "keypoint_score": "product",  # what ranks keypoints: R2D2's "product" or "reliability"
}


class S2Fast(nn.Module):
    """Detect-and-describe CNN: (B,1,H,W) in [0,1] -> dense maps.

    H and W must be multiples of ``pad_multiple`` (the feature extractor pads for you).
    """

    loss = "r2d2"
    pad_multiple = 8
    stride = 4

    def __init__(self, **conf) -> None:
        super().__init__()
        self.conf = {**default_conf, **conf}
        c, d = self.conf["width"], self.conf["descriptor_dim"]
        check_keypoint_score(self.conf["keypoint_score"])
        self.descriptor_dim = d
        self.stem = nn.Sequential(conv_bn_relu(1, 8), conv_bn_relu(8, 16, stride=2))
        self.block4 = nn.Sequential(conv_bn_relu(16, c, stride=2), conv_bn_relu(c, c))
        self.block8 = nn.Sequential(
            conv_bn_relu(c, 2 * c, stride=2),
            conv_bn_relu(2 * c, 2 * c),
            conv_bn_relu(2 * c, 2 * c, dilation=2),
        )
        self.fuse = conv_bn_relu(3 * c, 2 * c, kernel=1)
        self.desc_head = nn.Conv2d(2 * c, d, 1)
        # 16 = 4x4 sub-pixel block per cell, for repeatability and reliability.
        self.score_head = nn.Conv2d(2 * c, 2 * 16, 1)

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        x = normalize_image(image)
        f4 = self.block4(self.stem(x))
        f8 = self.block8(f4)
        f = self.fuse(torch.cat([f4, F.interpolate(f8, size=f4.shape[-2:], mode="bilinear", align_corners=False)], 1))
        desc = l2_normalize(self.desc_head(f))
        rep, rel = F.pixel_shuffle(self.score_head(f), 4).split(1, dim=1)
        rep, rel = squash(rep), squash(rel)
        scores = keypoint_score(rep, rel, self.conf["keypoint_score"])
        return {"descriptors": desc, "repeatability": rep, "reliability": rel, "scores": scores}
