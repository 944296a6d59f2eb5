"""D2-Net-style network (Dusmanu et al., CVPR 2019): VGG16 up to conv4_3 + soft detection.

Descriptors are the conv4_3 features at 1/8 resolution; the detection score is D2-Net's
soft local-max x channel-ratio score, upsampled to full resolution so every s2cv model
exposes the same dense-map layout. ImageNet weights can only come from a local file
(``load_vgg16``): nothing is ever downloaded.
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .common import l2_normalize

default_conf = {"descriptor_dim": 512}

_VGG = [(3, 64), (64, 64), "M", (64, 128), (128, 128), "M", (128, 256), (256, 256), (256, 256), "A",
        (256, 512), (512, 512), (512, 512)]
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


class D2Net(nn.Module):
    """(B,1,H,W) in [0,1] -> 512-d descriptors at 1/8 and a full-resolution soft-detection score."""

    loss = "d2net"
    pad_multiple = 8
    stride = 8

    def __init__(self, **conf) -> None:
        super().__init__()
        self.conf = {**default_conf, **conf}
        self.descriptor_dim = 512
        layers: list[nn.Module] = []
        for spec in _VGG:
            if spec == "M":
                layers.append(nn.MaxPool2d(2, 2))
            elif spec == "A":
                layers.append(nn.AvgPool2d(2, 2))
            else:
                layers += [nn.Conv2d(*spec, 3, padding=1), nn.ReLU(inplace=True)]
        layers.pop()  # D2-Net uses conv4_3 before its ReLU
        self.features = nn.Sequential(*layers)
        self.register_buffer("mean", torch.tensor(_IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(_IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        x = (image.expand(-1, 3, -1, -1) - self.mean) / self.std
        feat = F.relu(self.features(x))
        score = soft_detection(feat)
        full = F.interpolate(score, size=image.shape[-2:], mode="bilinear", align_corners=False)
        return {"descriptors": l2_normalize(feat), "dense_scores": score, "scores": full}


def soft_detection(feat: torch.Tensor) -> torch.Tensor:
    """D2-Net soft detection: beta (channel ratio) x alpha (soft local max), max over channels."""
    b = feat.shape[0]
    feat = feat / (feat.reshape(b, -1).amax(dim=1).view(b, 1, 1, 1) + 1e-8)
    exp = torch.exp(feat)
    local_sum = F.avg_pool2d(F.pad(exp, [1] * 4, mode="constant", value=1.0), 3, stride=1) * 9
    alpha = exp / (local_sum + 1e-8)
    beta = feat / (feat.amax(dim=1, keepdim=True) + 1e-8)
    return (alpha * beta).amax(dim=1, keepdim=True)


def load_vgg16(model: D2Net, path: str | Path) -> None:
    """Copy ImageNet VGG16 weights (a local torchvision-style state dict) into the backbone."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    convs = [m for m in model.features if isinstance(m, nn.Conv2d)]
    keys = [k for k in state if k.startswith("features.") and k.endswith(".weight")]
    if len(keys) < len(convs):
        raise ValueError(f"{path}: expected >= {len(convs)} VGG conv weights, found {len(keys)}")
    keys.sort(key=lambda k: int(k.split(".")[1]))
    for conv, key in zip(convs, keys):
        if state[key].shape != conv.weight.shape:
            raise ValueError(f"{path}: {key} has shape {tuple(state[key].shape)}, expected {tuple(conv.weight.shape)}")
        conv.weight.data.copy_(state[key])
        conv.bias.data.copy_(state[key.replace(".weight", ".bias")])
