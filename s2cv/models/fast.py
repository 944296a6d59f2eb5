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

    def features(self, image: torch.Tensor) -> torch.Tensor:
        """The fused 1/4-resolution features both heads read."""
        x = normalize_image(image)
        f4 = self.block4(self.stem(x))
        f8 = self.block8(f4)
        return self.fuse(torch.cat([f4, F.interpolate(f8, size=f4.shape[-2:], mode="bilinear", align_corners=False)], 1))

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        f = self.features(image)
        desc = l2_normalize(self.desc_head(f))
        rep, rel = F.pixel_shuffle(self.score_head(f), 4).split(1, dim=1)
        rep, rel = squash(rep), squash(rel)
        scores = keypoint_score(rep, rel, self.conf["keypoint_score"])
        return {"descriptors": desc, "repeatability": rep, "reliability": rel, "scores": scores}

    @torch.no_grad()
    def shortened(self, descriptor_dim: int) -> S2Fast:
        """A copy with ``descriptor_dim``-long descriptors that match as this one's do.

        Why: the descriptor length drives the CPU time (64-d runs ``detectAndCompute`` in about
        half the time of 128-d: ``benchmarks/bench_backends.py``), and the head is a 1x1 linear map
        of the ``2 * width`` fused channels, so its raw output (W f + b) lies in a subspace of at most
        ``2 * width + 1`` dimensions. Projecting it on the leading left singular vectors of [W | b]
        (orthonormal rows) keeps every dot product and norm inside that subspace, hence the L2-normalised
        descriptors' cosine similarities: exact when ``descriptor_dim > 2 * width``, and for
        ``2 * width`` (the shipped 64) up to the last singular value (cosines within ~2e-4 on the
        shipped networks, ``tests/test_models.py``).
        """
        d = self.conf["descriptor_dim"]
        if not isinstance(descriptor_dim, int) or isinstance(descriptor_dim, bool) or not 0 < descriptor_dim <= d:
            raise ValueError(f"descriptor_dim must be an int in 1..{d}, got {descriptor_dim!r}")
        w, b = self.desc_head.weight[:, :, 0, 0], self.desc_head.bias
        basis = torch.linalg.svd(torch.cat([w, b[:, None]], 1), full_matrices=False)[0][:, :descriptor_dim].T
        out = S2Fast(**{**self.conf, "descriptor_dim": descriptor_dim}).to(w.device)
        missing = out.load_state_dict({n: v for n, v in self.state_dict().items() if not n.startswith("desc_head.")},
                                      strict=False).missing_keys
        assert sorted(missing) == ["desc_head.bias", "desc_head.weight"], missing
        out.desc_head.weight.copy_((basis @ w)[:, :, None, None])
        out.desc_head.bias.copy_(basis @ b)
        return out.train(self.training)

    @torch.no_grad()
    def widened(self, width: int, seed: int = 0) -> S2Fast:
        """A copy with ``width`` channels at 1/4 resolution (2x at 1/8) that computes the same maps.

        Why: training a wider network from scratch costs hours on a CPU; starting it from a trained
        narrow one (Net2WiderNet, Chen et al. 2016) keeps what was learned. Each new channel copies
        a random old one (filter and BatchNorm); a consumer's weights on a copied channel are split
        among the copies with random positive shares, so the sum (the function) is unchanged while
        the copies get different gradients and can diverge in training.
        """
        c = self.conf["width"]
        if not isinstance(width, int) or isinstance(width, bool):
            raise TypeError(f"width must be an int, got {width!r}")
        if width < c:
            raise ValueError(f"widened() only adds channels: width {width} < the current {c}")
        g = torch.Generator().manual_seed(seed)

        def mapping(old: int) -> tuple[torch.Tensor, torch.Tensor]:
            """Source channel of each widened channel, and the share of its consumers' weight."""
            new = old * width // c
            src = torch.cat([torch.arange(old), torch.randint(old, (new - old,), generator=g)])
            share = torch.rand(new, generator=g) + 0.5
            return src, share / torch.zeros(old).index_add_(0, src, share)[src]

        def weight(old: torch.Tensor, out: torch.Tensor | None, inp: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
            w = old if out is None else old[out]
            return w[:, inp[0]] * inp[1].view(1, -1, 1, 1).to(w)

        def block(dst: nn.Sequential, src: nn.Sequential, inp: tuple | None, out: tuple) -> None:
            dst[0].weight.copy_(src[0].weight[out[0]] if inp is None else weight(src[0].weight, out[0], inp))
            for name in ("weight", "bias", "running_mean", "running_var"):
                getattr(dst[1], name).copy_(getattr(src[1], name)[out[0]])
            dst[1].num_batches_tracked.copy_(src[1].num_batches_tracked)

        wide = S2Fast(**{**self.conf, "width": width}).to(next(self.parameters()).device)
        wide.stem.load_state_dict(self.stem.state_dict())
        m4a, m4b, m8a, m8b, m8c, mf = (mapping(n) for n in (c, c, 2 * c, 2 * c, 2 * c, 2 * c))
        block(wide.block4[0], self.block4[0], None, m4a)
        block(wide.block4[1], self.block4[1], m4a, m4b)
        block(wide.block8[0], self.block8[0], m4b, m8a)
        block(wide.block8[1], self.block8[1], m8a, m8b)
        block(wide.block8[2], self.block8[2], m8b, m8c)
        # fuse reads [f4 | upsampled f8], each half widened with its own map.
        block(wide.fuse, self.fuse, (torch.cat([m4b[0], c + m8c[0]]), torch.cat([m4b[1], m8c[1]])), mf)
        for dst, src in ((wide.desc_head, self.desc_head), (wide.score_head, self.score_head)):
            dst.weight.copy_(weight(src.weight, None, mf))
            dst.bias.copy_(src.bias)
        return wide
