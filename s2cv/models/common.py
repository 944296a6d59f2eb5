"""Layers shared by the s2cv networks."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def conv_bn_relu(cin: int, cout: int, kernel: int = 3, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    pad = dilation * (kernel - 1) // 2
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel, stride=stride, padding=pad, dilation=dilation, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


def normalize_image(image: torch.Tensor) -> torch.Tensor:
    """Per-image standardisation: thermal and visible differ wildly in gain and offset."""
    mean = image.mean(dim=(2, 3), keepdim=True)
    std = image.std(dim=(2, 3), keepdim=True)
    return (image - mean) / (std + 1e-3)


def squash(x: torch.Tensor) -> torch.Tensor:
    """R2D2's score activation: softplus(x) / (1 + softplus(x)), in [0, 1)."""
    x = F.softplus(x)
    return x / (1 + x)
