"""XFeat-layout network (Potje et al., "XFeat: Accelerated Features for Lightweight Image Matching",
CVPR 2024), written for s2cv so XFeat's released weights load into it and S2-Net can fine-tune it.

Why this layout: its backbone is cheap enough for a CPU (channels stay narrow at high resolution,
the depth sits at 1/8-1/32), it was trained on real geometry (MegaDepth), and OpenCV >= 5.1 runs
the same graph natively (``cv2.XFeat_create``). The parts, as in the paper:

- grey input, instance-normalised (visible and thermal gains differ wildly);
- a backbone to 1/32 whose 1/8, 1/16 and 1/32 features are summed at 1/8 and fused: the 64-d
  descriptors (B,64,H/8,W/8);
- a reliability head on those features: how matchable each 1/8 cell is, in [0, 1];
- a keypoint head that reads only the raw 8x8 pixels of each cell (pixel-unshuffled) and gives
  65 logits: one per position inside the cell plus a "no keypoint" dustbin.

The keypoint score is XFeat's: softmax over the 65 logits, dustbin dropped, shuffled back to a
full-resolution heatmap, times the bilinearly upsampled reliability.
"""
from __future__ import annotations

from functools import partial
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .common import check_keypoint_score, conv_bn_relu, l2_normalize

default_conf = {
    "keypoint_score": "product",  # "product": heatmap x reliability (XFeat's); "reliability": reliability alone
}
CELL = 8


def _layers(*specs: tuple[int, int, int, int]) -> nn.Sequential:
    """(cin, cout, kernel, stride) per layer; conv + BatchNorm without affine (XFeat's BasicLayer) + ReLU."""
    return nn.Sequential(*(conv_bn_relu(cin, cout, kernel, stride, affine=False) for cin, cout, kernel, stride in specs))


class XFeat(nn.Module):
    """(B,1,H,W) grey in [0,1] -> descriptors at 1/8, keypoint logits, reliability, full-res scores."""

    loss = "xfeat"
    pad_multiple = 32   # the backbone reaches 1/32; sizes divisible by 32 keep the 1/8 grid exact
    stride = CELL
    descriptor_dim = 64

    def __init__(self, **conf) -> None:
        super().__init__()
        self.conf = {**default_conf, **conf}
        check_keypoint_score(self.conf["keypoint_score"])
        self.skip = nn.Sequential(nn.AvgPool2d(4, stride=4), nn.Conv2d(1, 24, 1))
        self.block1 = _layers((1, 4, 3, 1), (4, 8, 3, 2), (8, 8, 3, 1), (8, 24, 3, 2))
        self.block2 = _layers((24, 24, 3, 1), (24, 24, 3, 1))
        self.block3 = _layers((24, 64, 3, 2), (64, 64, 3, 1), (64, 64, 1, 1))
        self.block4 = _layers((64, 64, 3, 2), (64, 64, 3, 1), (64, 64, 3, 1))
        self.block5 = _layers((64, 128, 3, 2), (128, 128, 3, 1), (128, 128, 3, 1), (128, 64, 1, 1))
        self.fusion = nn.Sequential(*_layers((64, 64, 3, 1), (64, 64, 3, 1)), nn.Conv2d(64, 64, 1))
        self.reliability_head = nn.Sequential(*_layers((64, 64, 1, 1), (64, 64, 1, 1)), nn.Conv2d(64, 1, 1))
        self.keypoint_head = nn.Sequential(*_layers((64, 64, 1, 1), (64, 64, 1, 1), (64, 64, 1, 1)),
                                           nn.Conv2d(64, CELL * CELL + 1, 1))

    @staticmethod
    def normalize(image: torch.Tensor) -> torch.Tensor:
        """Instance normalisation with XFeat's eps (1e-5 on the biased variance), reduced by rows
        then columns: a single ReduceMean over a whole image loses float32 accuracy in ONNX Runtime."""
        mean = image.mean(dim=3, keepdim=True).mean(dim=2, keepdim=True)
        centred = image - mean
        var = (centred * centred).mean(dim=3, keepdim=True).mean(dim=2, keepdim=True)
        return centred * torch.rsqrt(var + 1e-5)

    def raw(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """XFeat's own outputs: (feats (B,64,h,w) unnormalised, keypoint logits (B,65,h,w),
        reliability (B,1,h,w) in [0,1]) with h, w = H/8, W/8 — the cv::XFeat graph contract."""
        x = self.normalize(image)
        x2 = self.block2(self.block1(x) + self.skip(x))
        x3 = self.block3(x2)
        x4 = self.block4(x3)
        x5 = self.block5(x4)
        up = partial(F.interpolate, size=x3.shape[-2:], mode="bilinear", align_corners=False)
        feats = self.fusion(x3 + up(x4) + up(x5))
        reliability = torch.sigmoid(self.reliability_head(feats))
        return feats, self._keypoint_logits(x), reliability

    def _keypoint_logits(self, normalized: torch.Tensor) -> torch.Tensor:
        return self.keypoint_head(F.pixel_unshuffle(normalized, CELL))

    def keypoint_logits(self, image: torch.Tensor) -> torch.Tensor:
        """The keypoint head alone (it reads only the pixels): what a distillation teacher needs."""
        return self._keypoint_logits(self.normalize(image))

    @staticmethod
    def heatmap(logits: torch.Tensor) -> torch.Tensor:
        """(B,65,h,w) logits -> (B,1,8h,8w) probability of a keypoint at each pixel."""
        return F.pixel_shuffle(F.softmax(logits, dim=1)[:, : CELL * CELL], CELL)

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        feats, logits, reliability = self.raw(image)
        heat = self.heatmap(logits)
        rel_full = F.interpolate(reliability, size=heat.shape[-2:], mode="bilinear", align_corners=False)
        scores = rel_full if self.conf["keypoint_score"] == "reliability" else heat * rel_full
        return {"descriptors": l2_normalize(feats), "keypoint_logits": logits, "reliability": reliability,
                "heatmap": heat, "scores": scores}


# Released XFeat (verlab/accelerated_features) state-dict prefix -> this module's prefix.
_RELEASED_PREFIXES = {"skip1.": "skip.", "block_fusion.": "fusion.", "heatmap_head.": "reliability_head."}


def convert_released_state_dict(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """XFeat's released ``XFeatModel`` state dict -> an ``XFeat`` state dict.

    Its ``BasicLayer`` wraps conv/BN in ``.layer``; the semi-dense ``fine_matcher`` MLP has no use
    here and is dropped. Anything else that does not map is an error, not silently ignored.
    """
    out = {}
    for key, value in state.items():
        if key.startswith("fine_matcher."):
            continue
        new = key.replace(".layer.", ".")
        for old, repl in _RELEASED_PREFIXES.items():
            if new.startswith(old):
                new = repl + new[len(old):]
        out[new] = value
    expected = set(XFeat().state_dict())
    if set(out) != expected:
        missing, extra = sorted(expected - set(out)), sorted(set(out) - expected)
        raise ValueError(f"not an XFeat state dict: missing {missing[:5]}, unexpected {extra[:5]}")
    return out


def load_released(path: str | Path) -> XFeat:
    """An ``XFeat`` with the released weights of ``path`` (e.g. shared/pretrained/xfeat.pt), behaving
    exactly as released."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ValueError(f"cannot read XFeat weights {path}: {type(exc).__name__}: {exc}") from exc
    if not isinstance(state, dict):
        raise ValueError(f"{path} does not hold a state dict")
    net = XFeat()
    net.load_state_dict(convert_released_state_dict(state))
    return net.eval()
