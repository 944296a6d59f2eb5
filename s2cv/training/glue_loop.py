"""S2 training of the S2Glue matcher: L = L_SL + lambda (L_SSL_vis + L_SSL_ir).

L_f for each pair is the matcher's own loss, LightGlue's: the negative log-likelihood of the
ground-truth partial assignment (matched pairs, and unmatched points in the dustbin), averaged
over every layer's assignment (so early layers learn to be right too, which pruning relies on).
Features come from the detector (``S2Net_create(model=det_model)``), computed per crop on the
fly: frozen, or with ``joint_lr > 0`` fine-tuned jointly (keypoints from the current weights,
descriptors re-sampled from its torch descriptor map so the matcher's loss reaches the network; the
network is saved beside the matcher as ``detector_{last,best}.pt``). Validation: held-out training
pairs (``list_pairs(..., "val")``) under fixed "hard" homographies, the share registered within 10 px with the matcher against mutual nearest neighbours
on the same features: the number that decides whether a matcher ships.
"""
from __future__ import annotations

import csv
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import cv2
import numpy as np
import torch

from s2cv.evaluation.datasets import list_pairs
from s2cv.feature.image import pad_to_multiple, shrink_to, to_gray_float
from s2cv.models.checkpoint import load_model, save_checkpoint
from s2cv.models.common import l2_normalize
from s2cv.models.glue import GlueConfig, GlueMatcher, normalize_keypoints
from s2cv.models.glue_checkpoint import load_glue, load_lighterglue, read_glue, save_glue
from s2cv.registration.geometry import corner_error, mutual_nn_matches
from s2cv.training.augment import GEOMETRIES, random_homography, warp
from s2cv.training.glue_data import GluePair, GluePairSampler
from s2cv.training.losses import sample


@dataclass
class GlueTrainConfig:
    det_model: str = "s2xfeat"
    nfeatures: int = 512                  # keypoints per training crop
    init: str = "lighterglue"             # "lighterglue" (needs lighterglue_path), "scratch", or a glue checkpoint
    lighterglue_path: str = ""
    ssl_weight: float = 0.4               # lambda
    steps: int = 1000
    lr: float = 1e-4
    joint_lr: float = 0.0                 # > 0: fine-tune the detector's network jointly at this lr
    balance: float = 0.5                  # weight of matched vs dustbin terms in the NLL
    geometry: str = "wide"
    val_every: int = 250
    max_minutes: float = 0.0              # stop (and checkpoint) after this long; 0: no limit
    seed: int = 0
    data: list[tuple[str, str]] = field(default_factory=list)      # (kind, root) aligned pairs
    val_data: list[tuple[str, str, str]] = field(default_factory=list)  # (kind, root, split)
    ssl_vis: list[str] = field(default_factory=list)
    ssl_ir: list[str] = field(default_factory=list)


def assignment_nll(log_assignment: torch.Tensor, pair: GluePair, balance: float = 0.5) -> torch.Tensor:
    """NLL of the GT partial assignment under one (1, M+1, N+1) log assignment."""
    la = log_assignment[0]
    m, n = la.shape[0] - 1, la.shape[1] - 1
    terms = []
    if len(pair.matches):
        idx = torch.from_numpy(pair.matches)
        terms.append((balance, -la[idx[:, 0], idx[:, 1]].mean()))
    neg = []
    if len(pair.unmatched0):
        neg.append(-la[torch.from_numpy(pair.unmatched0), n])
    if len(pair.unmatched1):
        neg.append(-la[m, torch.from_numpy(pair.unmatched1)])
    if neg:
        terms.append((1 - balance, torch.cat(neg).mean()))
    if not terms:
        return la.sum() * 0
    total = sum(w for w, _ in terms)
    return sum(w * t for w, t in terms) / total


class JointDescriptors:
    """Descriptors of a trainable detector network at given keypoints, differentiable.

    Reproduces the runtime's path (``S2NetFeature2D.detectAndCompute``): the uint8 view to [0, 1],
    padded bottom/right to the network's multiple, the L2-normalised descriptor map sampled
    bilinearly at the keypoints (``losses.sample``: the runtime sampler's convention) and
    L2-normalised again. The network stays in eval mode (BatchNorm statistics frozen: one
    320x240 view per forward is no batch to estimate them from)."""

    def __init__(self, net: torch.nn.Module) -> None:
        self.net = net.eval()

    def __call__(self, image: np.ndarray, kpts: np.ndarray) -> torch.Tensor:
        x = pad_to_multiple(to_gray_float(image), int(self.net.pad_multiple))
        maps = self.net(torch.from_numpy(x)[None, None])["descriptors"]
        desc = sample(maps, torch.from_numpy(kpts)[None].float(), float(self.net.stride), x.shape)
        return l2_normalize(desc, dim=-1)

    def detector(self, nfeatures: int) -> Any:
        """A runtime detector on the current weights (its torch backend folds a private copy)."""
        from s2cv.feature.feature2d import S2Net_create

        return S2Net_create(nfeatures, model=self.net, backend="torch")


def pair_loss(net: GlueMatcher, pair: GluePair, balance: float, describe: JointDescriptors | None = None
              ) -> torch.Tensor | None:
    """L_f of one pair, averaged over the layers; None when a view has no keypoints. With
    ``describe`` the descriptors come from the trainable detector (joint training)."""
    if len(pair.kpts0) < 2 or len(pair.kpts1) < 2:
        return None
    if describe is not None and pair.images is not None:
        desc0, desc1 = describe(pair.images[0], pair.kpts0), describe(pair.images[1], pair.kpts1)
    else:
        desc0, desc1 = torch.from_numpy(pair.desc0)[None], torch.from_numpy(pair.desc1)[None]
    out = net(normalize_keypoints(torch.from_numpy(pair.kpts0)[None], torch.tensor(pair.size0)),
              normalize_keypoints(torch.from_numpy(pair.kpts1)[None], torch.tensor(pair.size1)),
              desc0, desc1)
    layers = out["log_assignments"]
    return sum(assignment_nll(la, pair, balance) for la in layers) / len(layers)


def initial_matcher(cfg: GlueTrainConfig, input_dim: int) -> GlueMatcher:
    if cfg.init == "lighterglue":
        if not cfg.lighterglue_path:
            raise ValueError("init 'lighterglue' needs the path of xfeat-lighterglue.pt (--lighterglue PATH)")
        return load_lighterglue(cfg.lighterglue_path, input_dim=input_dim, seed=cfg.seed)
    if cfg.init == "scratch":
        torch.manual_seed(cfg.seed)
        return GlueMatcher(GlueConfig(input_dim=input_dim))
    net, meta = load_glue(cfg.init)
    if net.config.input_dim != input_dim:
        raise ValueError(f"{cfg.init} matches {net.config.input_dim}-d descriptors; {cfg.det_model} gives {input_dim}")
    return net


# ----------------------------------------------------------------------------- validation
def validation_cases(val_data: Sequence[tuple[str, str, str]], seeds: Sequence[int] = (0, 1),
                     max_side: int = 640) -> list[tuple[str, np.ndarray, np.ndarray, np.ndarray]]:
    """(name, visible gray, warped IR gray, H visible -> warped IR) for every validation pair and
    seed, under the "hard" geometry (+-30 deg, scale 0.7-1.3): fixed, so runs are comparable."""
    cases = []
    for kind, root, split in val_data:
        for p in list_pairs(kind, root, split):
            vis, ir = cv2.imread(str(p.path_a), cv2.IMREAD_GRAYSCALE), cv2.imread(str(p.path_b), cv2.IMREAD_GRAYSCALE)
            vis, ir = (shrink_to(im, max_side)[0] for im in (vis, ir))
            for seed in seeds:
                rng = np.random.default_rng(1000 + seed)
                H = random_homography(ir.shape[:2], rng, GEOMETRIES["hard"])
                warped, _ = warp(ir.astype(np.float32), H)
                cases.append((f"{kind}/{p.name}#{seed}", vis, np.clip(warped, 0, 255).astype(np.uint8), H))
    return cases


def _registered(k0: np.ndarray, k1: np.ndarray, matches: np.ndarray, H: np.ndarray, shape: tuple[int, int],
                px: float = 10.0) -> bool:
    if len(matches) < 4:
        return False
    H_est, _ = cv2.findHomography(k0[matches[:, 0]], k1[matches[:, 1]], cv2.USAC_MAGSAC, 3.0)
    return H_est is not None and corner_error(H_est, H, shape) <= px


def validate(net: GlueMatcher, detector: Any, cases: list[tuple[str, np.ndarray, np.ndarray, np.ndarray]],
             cache: dict[str, Any] | None = None) -> dict[str, float]:
    """Share of validation cases registered within 10 px: matcher vs mutual NN (same features)."""
    net.eval()
    glue_ok = nn_ok = 0
    per_set: dict[str, list[int]] = {}
    for name, vis, ir, H in cases:
        if cache is not None and name in cache:
            k0, d0, k1, d1 = cache[name]
        else:
            kp0, d0 = detector.detectAndCompute(vis, None)
            kp1, d1 = detector.detectAndCompute(ir, None)
            k0, k1 = cv2.KeyPoint_convert(kp0).reshape(-1, 2), cv2.KeyPoint_convert(kp1).reshape(-1, 2)
            if cache is not None:
                cache[name] = (k0, d0, k1, d1)
        nn = _registered(k0, k1, mutual_nn_matches(d0, d1), H, vis.shape[:2])
        with torch.inference_mode():
            out = net(normalize_keypoints(torch.from_numpy(k0)[None], torch.tensor((vis.shape[1], vis.shape[0]))),
                      normalize_keypoints(torch.from_numpy(k1)[None], torch.tensor((ir.shape[1], ir.shape[0]))),
                      torch.from_numpy(d0)[None], torch.from_numpy(d1)[None])
        m0 = out["matches0"][0].numpy()
        glue = _registered(k0, k1, np.c_[np.flatnonzero(m0 >= 0), m0[m0 >= 0]], H, vis.shape[:2])
        glue_ok += glue
        nn_ok += nn
        counts = per_set.setdefault(name.split("/")[0], [0, 0, 0])
        counts[0] += glue
        counts[1] += nn
        counts[2] += 1
    n = max(1, len(cases))
    result = {"val_glue": glue_ok / n, "val_mnn": nn_ok / n, "val_cases": float(len(cases))}
    for kind, (g, m, c) in per_set.items():
        result[f"val_glue_{kind}"], result[f"val_mnn_{kind}"] = g / c, m / c
    return result


def _summary(history: dict[str, float]) -> str:
    """One line: validation registration share, glue vs mutual NN, overall and per data set."""
    sets = sorted(k.removeprefix("val_glue_") for k in history if k.startswith("val_glue_"))
    per_set = ", ".join(f"{s} {history[f'val_glue_{s}']:.0%}/{history[f'val_mnn_{s}']:.0%}" for s in sets)
    return f"val registered glue {history['val_glue']:.1%}, mutual NN {history['val_mnn']:.1%} ({per_set})"


# ----------------------------------------------------------------------------- the loop
def train_glue(cfg: GlueTrainConfig, out_dir: str | Path, resume: bool = False, progress: bool = True
               ) -> dict[str, Any]:
    """Train; writes ``last.pt``, ``best.pt`` (best validation registration share) and ``log.csv``."""
    from tqdm import tqdm

    from s2cv.feature.feature2d import S2Net_create

    torch.manual_seed(cfg.seed)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    resuming = resume and (out_dir / "last.pt").is_file()
    joint = None
    if cfg.joint_lr > 0:
        det_net, det_meta = load_model(out_dir / "detector_last.pt" if resuming else cfg.det_model)
        joint = JointDescriptors(det_net)
        detector = joint.detector(cfg.nfeatures)
    else:
        detector = S2Net_create(cfg.nfeatures, model=cfg.det_model)
    sampler = GluePairSampler(detector, cfg.data, cfg.ssl_vis, cfg.ssl_ir, GEOMETRIES[cfg.geometry], seed=cfg.seed)
    step, best = 0, -1.0
    if resuming:
        ckpt = read_glue(out_dir / "last.pt")
        net, _ = load_glue(out_dir / "last.pt")
        step, best = int(ckpt.get("step", 0)), float(ckpt.get("best", -1.0))
        sampler.rng = np.random.default_rng(cfg.seed + step)
    else:
        net = initial_matcher(cfg, detector.descriptorSize())
    groups = [{"params": net.parameters(), "lr": cfg.lr}]
    if joint is not None:
        groups.append({"params": joint.net.parameters(), "lr": cfg.joint_lr})
    optimizer = torch.optim.Adam(groups)
    if resuming and "optimizer" in ckpt:
        optimizer.load_state_dict(ckpt["optimizer"])
    meta = {"det_model": cfg.det_model, "train": asdict(cfg)}
    cases = validation_cases(cfg.val_data) if cfg.val_data else []
    cache: dict[str, Any] | None = {} if joint is None else None   # joint: the features change

    frozen_val_detector = S2Net_create(1024, model=cfg.det_model) if joint is None else None

    def val_detector() -> Any:
        """The frozen detector, built once; in joint training one on the current weights."""
        return frozen_val_detector if joint is None else joint.detector(1024)
    log_path = out_dir / "log.csv"
    fields = ["step", "time_s", "loss", "l_sl", "l_ssl_vis", "l_ssl_ir", "val_glue", "val_mnn"]
    new_log = not (resume and log_path.is_file())
    log = open(log_path, "w" if new_log else "a", newline="")
    writer = csv.DictWriter(log, fieldnames=fields, extrasaction="ignore")
    if new_log:
        writer.writeheader()
    start = time.time()
    history: dict[str, Any] = {}
    bar = tqdm(total=cfg.steps, initial=step, disable=not progress, desc="s2glue")

    def checkpoint(name: str) -> None:
        """The matcher; in joint training also its detector, which the matcher's meta then names."""
        if joint is not None:
            det_path = out_dir / f"detector_{name}"
            save_checkpoint(det_path, joint.net, det_meta["arch"],
                            {"source": f"{cfg.det_model} fine-tuned jointly with S2Glue", "train_glue": asdict(cfg)})
            meta["det_model"] = str(det_path)
        save_glue(out_dir / name, net, meta, optimizer=optimizer.state_dict(), step=step, best=best)

    if cases and step == 0:
        history = validate(net, val_detector(), cases, cache)
        best = history["val_glue"]
        writer.writerow({"step": 0, "time_s": 0.0, **history})
        checkpoint("best.pt")
        bar.write(f"step 0: {_summary(history)}")
    while step < cfg.steps:
        net.train()
        if joint is not None:
            sampler.detector = joint.detector(cfg.nfeatures)   # keypoints from the current weights
        losses = {"l_sl": pair_loss(net, sampler.supervised(), cfg.balance, joint),
                  "l_ssl_vis": pair_loss(net, sampler.self_supervised("vis"), cfg.balance, joint)
                  if cfg.ssl_weight else None,
                  "l_ssl_ir": pair_loss(net, sampler.self_supervised("ir"), cfg.balance, joint)
                  if cfg.ssl_weight else None}
        total = sum((v if k == "l_sl" else cfg.ssl_weight * v) for k, v in losses.items() if v is not None)
        step += 1
        if isinstance(total, torch.Tensor) and torch.isfinite(total):
            optimizer.zero_grad()
            total.backward()
            torch.nn.utils.clip_grad_norm_([p for g in optimizer.param_groups for p in g["params"]], 1.0)
            optimizer.step()
        loss = float(total.detach()) if isinstance(total, torch.Tensor) else float("nan")
        row = {"step": step, "time_s": round(time.time() - start, 1), "loss": loss,
               **{k: (float(v.detach()) if v is not None else "") for k, v in losses.items()}}
        bar.update(1)
        bar.set_postfix(loss=f"{loss:.3f}")
        out_of_time = cfg.max_minutes > 0 and time.time() - start > cfg.max_minutes * 60
        if cases and (step % cfg.val_every == 0 or step == cfg.steps or out_of_time):
            history = validate(net, val_detector(), cases, cache)
            row.update(history)
            if history["val_glue"] > best:
                best = history["val_glue"]
                checkpoint("best.pt")
            bar.write(f"step {step}: {_summary(history)}")
        writer.writerow(row)
        log.flush()
        if step % 50 == 0 or step == cfg.steps or out_of_time:
            checkpoint("last.pt")
        if out_of_time:
            break
    bar.close()
    log.close()
    checkpoint("last.pt")
    return {"step": step, "best_val_glue": best, "minutes": (time.time() - start) / 60, **history}
