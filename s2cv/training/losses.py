"""Losses L_f(I, I', U) and the S2 loss L = L_SL + λ (L_SSL_vis + L_SSL_ir).

Every L_f takes the dense outputs of a model for two images and the homography U (B,3,3)
mapping pixels of the first image to the second, plus validity masks of both images.
R2D2's loss = reliability-weighted AP + cosim repeatability + peaky; D2-Net's = score-weighted
triplet margin ranking; XFeat's = dual-softmax descriptors + reliability + keypoint distillation. Each term is a small module, combined by ``DetectDescribeLoss``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from s2cv.models.xfeat import CELL, XFeat

Maps = dict[str, torch.Tensor]


def warp_points(points: torch.Tensor, H: torch.Tensor) -> torch.Tensor:
    """(B,N,2) pixel coordinates -> H applied, (B,N,2)."""
    ones = torch.ones_like(points[..., :1])
    p = torch.cat([points, ones], -1) @ H.transpose(1, 2)
    z = p[..., 2:]
    return p[..., :2] / torch.where(z.abs() < 1e-8, torch.full_like(z, 1e-8), z)


def sample(maps: torch.Tensor, points: torch.Tensor, stride: float, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear values of (B,C,h,w) maps at image pixels (B,N,2) -> (B,N,C).

    A map of stride s covers an image of ``size`` = (H, W); pixel x sits at map coordinate
    (x + 0.5) / s - 0.5, the align_corners=False convention used everywhere in s2cv.
    """
    h_img, w_img = size
    grid = torch.stack([(points[..., 0] + 0.5) / w_img * 2 - 1, (points[..., 1] + 0.5) / h_img * 2 - 1], -1)
    out = F.grid_sample(maps, grid[:, :, None], mode="bilinear", padding_mode="border", align_corners=False)
    return out[..., 0].transpose(1, 2)


def grid_points(size: tuple[int, int], step: int, batch: int, device: torch.device, offset: float = 0.0) -> torch.Tensor:
    h, w = size
    ys, xs = torch.meshgrid(torch.arange(offset, h, step, device=device), torch.arange(offset, w, step, device=device),
                            indexing="ij")
    return torch.stack([xs, ys], -1).reshape(1, -1, 2).float().expand(batch, -1, -1)


def inside(points: torch.Tensor, size: tuple[int, int], margin: float = 0.0) -> torch.Tensor:
    h, w = size
    x, y = points[..., 0], points[..., 1]
    return (x >= margin) & (y >= margin) & (x <= w - 1 - margin) & (y <= h - 1 - margin)


class APLoss(nn.Module):
    """Differentiable average precision of descriptor matching (R2D2), plus the reliability term.

    For query pixels on a grid of image 1, the candidates in image 2 are a local neighbourhood
    of the ground-truth location (positives within ``pos_radius`` px, hard negatives beyond
    ``neg_radius``) plus a coarse grid of the whole image (distant negatives), as in R2D2's
    neighbourhood sampler. AP comes from a soft histogram of similarities with ``nq`` bins.
    """

    def __init__(self, nq: int = 20, query_step: int = 12, cand_step: int = 12, ngh: int = 6, ngh_step: int = 2,
                 pos_radius: float = 2.0, neg_radius: float = 5.0, base: float = 0.5) -> None:
        super().__init__()
        self.nq, self.query_step, self.cand_step = nq, query_step, cand_step
        self.pos_radius, self.neg_radius, self.base = pos_radius, neg_radius, base
        r = torch.arange(-ngh, ngh + 1, ngh_step, dtype=torch.float32)
        self.register_buffer("offsets", torch.stack(torch.meshgrid(r, r, indexing="xy"), -1).reshape(-1, 2),
                             persistent=False)

    def histogram(self, sim: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        """Soft histogram (…,nq) of similarities (…,M) in [0,1], bins from high to low similarity.

        Each value splits linearly between its two nearest bin centres (R2D2's triangular
        quantiser), accumulated with scatter_add: O(M) instead of O(M·nq) memory and time.
        """
        x = sim.clamp(0, 1) * (self.nq - 1)
        lo = x.detach().floor().clamp(max=self.nq - 2)
        frac = x - lo
        lo = lo.long()
        hist = sim.new_zeros(*sim.shape[:-1], self.nq)
        hist = hist.scatter_add(-1, lo, (1 - frac) * weight).scatter_add(-1, lo + 1, frac * weight)
        return hist.flip(-1)

    def forward(self, out1: Maps, out2: Maps, U: torch.Tensor, valid1: torch.Tensor, valid2: torch.Tensor,
                stride: int) -> torch.Tensor:
        desc1, desc2 = out1["descriptors"], out2["descriptors"]
        b, size = desc1.shape[0], valid1.shape[-2:]
        offset = float(torch.randint(self.query_step, ()).item())
        q1 = grid_points(size, self.query_step, b, desc1.device, offset)
        q2 = warp_points(q1, U)
        ok = inside(q2, size, 2) & (sample(valid1, q1, 1, size)[..., 0] > 0.99) & (sample(valid2, q2, 1, size)[..., 0] > 0.99)
        n = q1.shape[1]
        d1 = F.normalize(sample(desc1, q1, stride, size), dim=-1)                       # (B,N,D)
        local = (q2[:, :, None] + self.offsets).reshape(b, -1, 2)                        # (B,N*L,2)
        dl = F.normalize(sample(desc2, local, stride, size), dim=-1).reshape(b, n, -1, d1.shape[-1])
        sim_local = (dl * d1[:, :, None]).sum(-1)                                        # (B,N,L)
        dist_local = self.offsets.norm(dim=-1).expand(b, n, -1)
        local_ok = inside(local, size).reshape(b, n, -1) & (sample(valid2, local, 1, size)[..., 0] > 0.5).reshape(b, n, -1)
        cands = grid_points(size, self.cand_step, b, desc1.device, self.cand_step / 2)
        sim_grid = d1 @ F.normalize(sample(desc2, cands, stride, size), dim=-1).transpose(1, 2)  # (B,N,M)
        dist_grid = torch.cdist(q2, cands)
        grid_ok = (sample(valid2, cands, 1, size)[..., 0] > 0.5)[:, None].expand_as(dist_grid)
        sim = torch.cat([sim_local, sim_grid], -1)
        dist = torch.cat([dist_local, dist_grid], -1)
        pos = (dist <= self.pos_radius) & torch.cat([local_ok, grid_ok], -1)
        use = torch.cat([local_ok, grid_ok], -1) & ((dist <= self.pos_radius) | (dist > self.neg_radius))
        rec = self.histogram(sim, (pos & use).float())                                  # (B,N,nq)
        nbs = self.histogram(sim, use.float())
        prec = rec.cumsum(-1) / (nbs.cumsum(-1) + 1e-8)
        ap = (prec * rec / (rec.sum(-1, keepdim=True) + 1e-8)).sum(-1)                 # (B,N)
        loss = 1 - ap
        if "reliability" in out1:
            # R2D2 trains descriptors and reliability through one term, 1 - AP·rel - base·(1 - rel).
            # Cross-modal AP starts below ``base`` almost everywhere, so that term is minimised by
            # rel -> 0, which also cuts the descriptors' gradient (∝ rel): training collapses. We
            # keep R2D2's term for the reliability head only (AP detached) and train descriptors
            # on the plain AP.
            rel = sample(out1["reliability"], q1, 1, size)[..., 0]
            loss = loss + 1 - ap.detach() * rel - self.base * (1 - rel)
        return (loss * ok).sum() / ok.sum().clamp_min(1)


class CosimLoss(nn.Module):
    """Repeatability: the score map of image 2, warped to image 1, should match it patch-wise."""

    def __init__(self, patch: int = 16) -> None:
        super().__init__()
        self.patch = patch

    def forward(self, out1: Maps, out2: Maps, U: torch.Tensor, valid1: torch.Tensor, valid2: torch.Tensor,
                stride: int) -> torch.Tensor:
        rep1, rep2 = out1["repeatability"], out2["repeatability"]
        b, _, h, w = rep1.shape
        pix = grid_points((h, w), 1, b, rep1.device)
        pix2 = warp_points(pix, U)
        ok = (inside(pix2, (h, w)) & (sample(valid2, pix2, 1, (h, w))[..., 0] > 0.5)).float().view(b, 1, h, w) * valid1
        rep2w = sample(rep2, pix2, 1, (h, w)).transpose(1, 2).reshape(b, 1, h, w)
        n = self.patch
        p1 = F.unfold(rep1 * ok, n, stride=n // 2)
        p2 = F.unfold(rep2w * ok, n, stride=n // 2)
        keep = F.unfold(ok, n, stride=n // 2).mean(1) > 0.5
        cos = (F.normalize(p1, dim=1) * F.normalize(p2, dim=1)).sum(1)
        return 1 - (cos * keep).sum() / keep.sum().clamp_min(1)


class PeakyLoss(nn.Module):
    """Repeatability maps should peak: local max minus local mean close to 1 in every patch."""

    def __init__(self, patch: int = 16) -> None:
        super().__init__()
        self.patch = patch

    def forward(self, out1: Maps, out2: Maps, U: torch.Tensor, valid1: torch.Tensor, valid2: torch.Tensor,
                stride: int) -> torch.Tensor:
        n = self.patch
        terms = []
        for rep in (out1["repeatability"], out2["repeatability"]):
            # Separable (1,k) then (k,1) pooling: same result as a k x k window, k/2 times cheaper.
            k, p = (1, n + 1), (0, n // 2)
            mx = F.max_pool2d(F.max_pool2d(rep, k, 1, p), k[::-1], 1, p[::-1])
            av = F.avg_pool2d(F.avg_pool2d(rep, k, 1, p, count_include_pad=False), k[::-1], 1, p[::-1],
                              count_include_pad=False)
            terms.append(1 - (mx - av).mean())
        return sum(terms) / 2


class D2Loss(nn.Module):
    """D2-Net: triplet margin ranking loss, each correspondence weighted by both detection scores."""

    def __init__(self, margin: float = 1.0, safe_radius: float = 4.0) -> None:
        super().__init__()
        self.margin, self.safe_radius = margin, safe_radius

    def forward(self, out1: Maps, out2: Maps, U: torch.Tensor, valid1: torch.Tensor, valid2: torch.Tensor,
                stride: int) -> torch.Tensor:
        desc1, desc2 = out1["descriptors"], out2["descriptors"]
        b, _, h, w = desc1.shape
        size = valid1.shape[-2:]
        cells = grid_points((h, w), 1, b, desc1.device)
        p1 = (cells + 0.5) * stride - 0.5                               # cell centres in pixels
        p2 = warp_points(p1, U)
        ok = inside(p2, size) & (sample(valid1, p1, 1, size)[..., 0] > 0.5) & (sample(valid2, p2, 1, size)[..., 0] > 0.5)
        d1 = desc1.flatten(2).transpose(1, 2)                           # (B,N,D)
        d2 = F.normalize(sample(desc2, p2, stride, size), dim=-1)
        s1 = out1["dense_scores"].flatten(1)
        s2 = sample(out2["dense_scores"], p2, stride, size)[..., 0]
        pos = ((d1 - d2) ** 2).sum(-1).add(1e-8).sqrt()
        all2 = desc2.flatten(2).transpose(1, 2)
        far2 = torch.cdist(p2 / stride, cells) > self.safe_radius       # (B,N,M) in cells
        neg2 = ((2 - 2 * (d1 @ all2.transpose(1, 2))).clamp_min(1e-8).sqrt() + (~far2) * 10).amin(-1)
        far1 = torch.cdist(cells, cells) > self.safe_radius              # (B,N,N) in cells
        neg1 = ((2 - 2 * (d2 @ d1.transpose(1, 2))).clamp_min(1e-8).sqrt() + (~far1) * 10).amin(-1)
        hinge = F.relu(self.margin + pos - torch.minimum(neg1, neg2))
        weight = s1 * s2 * ok
        return ((weight * hinge).sum(1) / weight.sum(1).clamp_min(1e-8)).mean()


def cell_correspondences(U: torch.Tensor, valid1: torch.Tensor, valid2: torch.Tensor, grid: tuple[int, int],
                         stride: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Centres of the (h, w) cells of image 1 in pixels (B,N,2), their positions in image 2 under U,
    and which of them are valid on both sides (B,N)."""
    b, size = U.shape[0], valid1.shape[-2:]
    p1 = (grid_points(grid, 1, b, U.device) + 0.5) * stride - 0.5
    p2 = warp_points(p1, U)
    ok = inside(p2, size) & (sample(valid1, p1, 1, size)[..., 0] > 0.99) & (sample(valid2, p2, 1, size)[..., 0] > 0.99)
    return p1, p2, ok


class DualSoftmaxLoss(nn.Module):
    """XFeat's descriptor loss, plus a reliability term (returned as two named parts).

    Among the cells of image 1 that are visible in image 2, each descriptor must pick its own
    correspondence (sampled in image 2) over every other one, in both directions (log dual softmax,
    temperature ``temperature`` on cosine similarities). The reliability head learns, by binary
    cross-entropy, whether that cell's mutual nearest neighbour is its true correspondence: what
    mutual-NN matching will get right. (XFeat regresses the best match's confidence by L1; across
    modalities most cells' confidence is near 0, the L1 median, so that target drives reliability
    towards 0 everywhere and it stops ranking keypoints: docs/models.md, s2xfeat.)
    """

    def __init__(self, temperature: float = 0.1, min_cells: int = 16) -> None:
        super().__init__()
        self.temperature, self.min_cells = temperature, min_cells

    def forward(self, out1: Maps, out2: Maps, U: torch.Tensor, valid1: torch.Tensor, valid2: torch.Tensor,
                stride: int) -> dict[str, torch.Tensor]:
        desc1, desc2 = out1["descriptors"], out2["descriptors"]
        size = valid1.shape[-2:]
        _, p2, ok = cell_correspondences(U, valid1, valid2, desc1.shape[-2:], stride)
        d1 = desc1.flatten(2).transpose(1, 2)                              # (B,N,D) at cell centres
        d2 = F.normalize(sample(desc2, p2, stride, size), dim=-1)
        r1 = out1["reliability"].flatten(1)
        r2 = sample(out2["reliability"], p2, stride, size)[..., 0]
        losses, rel_losses = [], []
        for i in range(d1.shape[0]):
            m = ok[i]
            if int(m.sum()) < self.min_cells:
                continue
            logits = d1[i, m] @ d2[i, m].T / self.temperature
            target = torch.arange(logits.shape[0], device=logits.device)
            losses.append(F.nll_loss(F.log_softmax(logits, 1), target) + F.nll_loss(F.log_softmax(logits, 0).T, target))
            with torch.no_grad():
                correct = ((logits.argmax(1) == target) & (logits.argmax(0) == target)).float()
            rel = torch.cat([r1[i, m], r2[i, m]]).clamp(1e-6, 1 - 1e-6)
            rel_losses.append(F.binary_cross_entropy(rel, torch.cat([correct, correct])))
        if not losses:                  # no crop with enough overlap: zero, still in the graph
            zero = desc1.sum() * 0
            return {"dual_softmax": zero, "reliability": zero}
        return {"dual_softmax": torch.stack(losses).mean(), "reliability": torch.stack(rel_losses).mean()}


def _cell_labels(points: torch.Tensor, score: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """(N,2) integer pixel points -> (h*w,) class per cell: position in the cell, or 64 (none).
    The strongest point wins a cell that holds several."""
    labels = torch.full((grid[0] * grid[1],), CELL * CELL, dtype=torch.long, device=points.device)
    x, y = points[:, 0].long(), points[:, 1].long()
    order = score.argsort()                    # index_put keeps the last write: strongest last
    labels[((y // CELL) * grid[1] + x // CELL)[order]] = ((y % CELL) * CELL + x % CELL)[order]
    return labels


def keypoint_targets(teacher_logits: torch.Tensor, U: torch.Tensor, valid1: torch.Tensor, valid2: torch.Tensor,
                     threshold: float = 0.05, nms: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
    """65-class cell targets (B,h,w) for both images from a teacher's keypoints in image 1.

    Image 1 gets the teacher's detections (self-distillation: keep what the pretrained detector
    knows); image 2 gets the same points moved by U (repeatability: fire where image 1's points
    are, in the other modality or geometry). A cell without a point is the dustbin (64); cells with
    invalid pixels, and cells of image 2 not seen in image 1, are ignored (-1).
    """
    heat = XFeat.heatmap(teacher_logits)                                   # (B,1,H,W)
    b, _, h_img, w_img = heat.shape
    grid = (h_img // CELL, w_img // CELL)
    peak = (heat == F.max_pool2d(heat, nms, 1, nms // 2)) & (heat > threshold) & (valid1 > 0.99)
    ok1 = F.avg_pool2d(valid1, CELL).flatten(1) > 0.99
    _, _, seen = cell_correspondences(torch.linalg.inv(U), valid2, valid1, grid, CELL)
    ok2 = (F.avg_pool2d(valid2, CELL).flatten(1) > 0.99) & seen
    t1, t2 = [], []
    for i in range(b):
        ys, xs = peak[i, 0].nonzero(as_tuple=True)
        score = heat[i, 0, ys, xs]
        p1 = torch.stack([xs, ys], -1).float()
        p2 = warp_points(p1[None], U[i:i + 1])[0].round()
        keep = inside(p2[None], (h_img, w_img))[0]
        t1.append(_cell_labels(p1, score, grid))
        t2.append(_cell_labels(p2[keep], score[keep], grid))
    return (torch.stack(t1).masked_fill(~ok1, -1).view(b, *grid),
            torch.stack(t2).masked_fill(~ok2, -1).view(b, *grid))


class KeypointDistillLoss(nn.Module):
    """Cross-entropy of the 65 keypoint logits per cell against ``keypoint_targets``, every valid
    cell weighing the same, so the student keeps the teacher's share of "no keypoint" cells.

    (XFeat down-weights dustbin cells to 1/32 of the positives for its ALIKE distillation; from a
    sparser teacher that makes the heatmap fire everywhere: docs/models.md, s2xfeat.) The teacher's logits come in
    ``out1["teacher_logits"]`` (added by the trainer).
    """

    def forward(self, out1: Maps, out2: Maps, U: torch.Tensor, valid1: torch.Tensor, valid2: torch.Tensor,
                stride: int) -> torch.Tensor:
        t1, t2 = keypoint_targets(out1["teacher_logits"], U, valid1, valid2)
        total = out1["keypoint_logits"].sum() * 0
        for logits, target in ((out1["keypoint_logits"], t1), (out2["keypoint_logits"], t2)):
            logits = logits.permute(0, 2, 3, 1).reshape(-1, logits.shape[1])
            target = target.reshape(-1)
            if bool((target >= 0).any()):
                total = total + F.cross_entropy(logits, target, ignore_index=-1)
        return total


class DetectDescribeLoss(nn.Module):
    """L_f: the weighted sum of one architecture's loss terms; returns (total, {term: value})."""

    def __init__(self, kind: str, neg_radius: float = 5.0) -> None:
        super().__init__()
        if kind == "r2d2":
            self.terms = nn.ModuleDict({"ap": APLoss(neg_radius=neg_radius), "cosim": CosimLoss(), "peaky": PeakyLoss()})
        elif kind == "d2net":
            self.terms = nn.ModuleDict({"triplet": D2Loss()})
        elif kind == "xfeat":
            self.terms = nn.ModuleDict({"dual_softmax": DualSoftmaxLoss(), "keypoint": KeypointDistillLoss()})
        else:
            raise ValueError(f"unknown loss kind {kind!r}; expected 'r2d2', 'd2net' or 'xfeat'")

    def forward(self, out1: Maps, out2: Maps, U: torch.Tensor, valid1: torch.Tensor, valid2: torch.Tensor,
                stride: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        parts: dict[str, torch.Tensor] = {}
        for name, term in self.terms.items():
            value = term(out1, out2, U, valid1, valid2, stride)   # a tensor, or named parts
            parts.update(value if isinstance(value, dict) else {name: value})
        return sum(parts.values()), parts


class S2Loss(nn.Module):
    """L = L_SL + λ (L_SSL_vis + L_SSL_ir); λ = 0 is plain supervised training."""

    def __init__(self, kind: str, ssl_weight: float, neg_radius: float = 5.0) -> None:
        super().__init__()
        self.lf = DetectDescribeLoss(kind, neg_radius)
        self.ssl_weight = ssl_weight

    def forward(self, branches: dict[str, tuple[Maps, Maps, torch.Tensor, torch.Tensor, torch.Tensor]],
                stride: int) -> tuple[torch.Tensor, dict[str, float]]:
        """``branches``: {"sl": ..., "ssl_vis": ..., "ssl_ir": ...} of (out1, out2, U, valid1, valid2)."""
        log: dict[str, float] = {}
        total = torch.zeros((), device=next(iter(branches.values()))[2].device)
        for name, args in branches.items():
            value, parts = self.lf(*args, stride)
            weight = 1.0 if name == "sl" else self.ssl_weight
            if weight:
                total = total + weight * value
            log[name] = float(value.detach())
            log.update({f"{name}/{k}": float(v.detach()) for k, v in parts.items()})
        log["loss"] = float(total.detach())
        return total, log
