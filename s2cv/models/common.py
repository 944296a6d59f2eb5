"""Layers shared by the s2cv networks."""
from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn


def conv_bn_relu(cin: int, cout: int, kernel: int = 3, stride: int = 1, dilation: int = 1,
                 affine: bool = True) -> nn.Sequential:
    pad = dilation * (kernel - 1) // 2
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel, stride=stride, padding=pad, dilation=dilation, bias=False),
        nn.BatchNorm2d(cout, affine=affine),
        nn.ReLU(inplace=True),
    )


def normalize_image(image: torch.Tensor) -> torch.Tensor:
    """Per-image standardisation: thermal and visible differ wildly in gain and offset.

    Mean and (unbiased) variance are reduced over rows, then over columns: the same values, but
    a single ReduceMean over a whole 640x480 image in ONNX Runtime (float32 running sum) loses
    enough accuracy that exported scores differ from torch by more than the export tolerance.
    """
    n = image.shape[2] * image.shape[3]
    mean = image.mean(dim=3, keepdim=True).mean(dim=2, keepdim=True)
    centred = image - mean
    var = (centred * centred).mean(dim=3, keepdim=True).mean(dim=2, keepdim=True) * (n / (n - 1))
    return centred / (var.sqrt() + 1e-3)


def l2_normalize(x: torch.Tensor, dim: int = 1, eps: float = 1e-12) -> torch.Tensor:
    """``F.normalize`` as x * rsqrt(sum x^2): same values, faster on CPU (no strided norm kernel)."""
    return x * torch.rsqrt((x * x).sum(dim, keepdim=True).clamp_min(eps * eps))


TINY = 1e-30  # far below any weight that matters; float32's normal range ends at 1.2e-38


@torch.no_grad()
def flush_tiny(net: nn.Module) -> int:
    """Set parameters and buffers of magnitude below ``TINY`` to exactly zero; returns how many.

    Why: such values are zero in effect, but at or near float32's subnormal range every multiply
    that touches them takes a slow microcode path on x86 CPUs, in PyTorch and ONNX Runtime alike.
    The shipped S2Fast networks' score heads held 780 of them (dead channels): zeroing them changes
    the maps by ~1e-5 and cuts the CPU forward from ~46 to ~17 ms at 640x480
    (docs/results.md, "Subnormal weights").
    """
    count = 0
    for value in (*net.parameters(), *net.buffers()):
        if value.is_floating_point():
            tiny = (value.abs() < TINY) & (value != 0)
            count += int(tiny.sum())
            value[tiny] = 0
    return count


def fold_batchnorm(net: nn.Module) -> nn.Module:
    """Inference copy of ``net`` with every Conv2d -> BatchNorm2d pair merged into one conv.

    Exact in eval mode (BN is then an affine map per channel); saves a full pass over every
    feature map. The original network is left untouched so it can keep training.
    """
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    folded = copy.deepcopy(net).eval()
    for module in folded.modules():
        if isinstance(module, nn.Sequential):
            layers = list(module)
            for i in range(len(layers) - 1):
                if isinstance(layers[i], nn.Conv2d) and isinstance(layers[i + 1], nn.BatchNorm2d):
                    module[i] = fuse_conv_bn_eval(layers[i], layers[i + 1])
                    module[i + 1] = nn.Identity()
    return folded


KEYPOINT_SCORES = ("product", "reliability")


def check_keypoint_score(mode: str) -> None:
    if mode not in KEYPOINT_SCORES:
        raise ValueError(f"keypoint_score must be one of {KEYPOINT_SCORES}, got {mode!r}")


def keypoint_score(repeatability: torch.Tensor, reliability: torch.Tensor, mode: str) -> torch.Tensor:
    """The map keypoints are ranked by.

    ``"product"`` is R2D2's repeatability x reliability and the default. ``"reliability"`` ranks
    by predicted matchability alone: on the validation pairs it finds more correct matches at
    K = 1024 but clusters them, and registers fewer pairs (benchmarks/tune_inference.py).
    Checked here as well as at construction: a conf edited afterwards must not fall back silently.
    """
    check_keypoint_score(mode)
    return reliability if mode == "reliability" else repeatability * reliability


def squash(x: torch.Tensor) -> torch.Tensor:
    """R2D2's score activation: softplus(x) / (1 + softplus(x)), in [0, 1)."""
    x = F.softplus(x)
    return x / (1 + x)
