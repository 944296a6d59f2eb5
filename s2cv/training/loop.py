"""The S2-Net training loop (supervised cross-modal + self-supervised branches).

Each step draws a batch of aligned crops; the supervised branch sees (vis, augmented ir) with
their known correspondence U, and, when λ > 0, each modality is also paired with its own
random S2 transform T(I). One forward pass over all images, then
L = L_SL + λ (L_SSL_vis + L_SSL_ir). Checkpoints are plain dicts loadable with
``S2Net_create(model=PATH)``; ``best.pt`` is chosen on held-out training pairs, never on test data.
Multi-process: ``torchrun --nproc_per_node N -m s2cv.train ...`` (gloo on CPU, nccl on GPU).

"""
from __future__ import annotations

import argparse
import csv
import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import cv2
import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Sampler
from tqdm import tqdm

from s2cv.evaluation.datasets import TRAINING_LAYOUTS, list_pairs
from s2cv.evaluation.metrics import score_pair
from s2cv.evaluation.plots import plot_training
from s2cv.models import build_model
from s2cv.models.checkpoint import load_model, read_checkpoint, save_checkpoint
from s2cv.models.common import flush_tiny
from s2cv.feature.image import list_images, read_gray, shrink_to
from s2cv.training.augment import GEOMETRIES, TRAINING_GEOMETRIES, GeometricParams, random_homography, warp
from s2cv.training.data import S2PairDataset
from s2cv.training.losses import S2Loss

DEFAULT_SSL_WEIGHT = {"fast": 0.4, "r2d2": 0.4, "d2net": 0.8, "xfeat": 0.4}
DEFAULT_WEIGHT_DECAY = {"fast": 5e-4, "r2d2": 5e-4, "d2net": 1e-5, "xfeat": 1e-5}
DEFAULT_CROP = {"fast": 192, "r2d2": 192, "d2net": 256, "xfeat": 256}
DEFAULT_BATCH = {"fast": 2, "r2d2": 2, "d2net": 1, "xfeat": 2}
DEFAULT_GEOMETRY = {"fast": "paper", "r2d2": "paper", "d2net": "paper", "xfeat": "wide"}
BRANCHES = (("sl", "sl"), ("ssl_vis", "vis"), ("ssl_ir", "ir"))


class StreamSampler(Sampler[int]):
    """Endless item indices, strided over ranks; restarting at ``start`` makes resume exact."""

    def __init__(self, start: int, rank: int, world: int) -> None:
        self.start, self.rank, self.world = start, rank, world

    def __iter__(self) -> Iterator[int]:
        i = self.start * self.world + self.rank
        while True:
            yield i
            i += self.world


def source_of(item: str, default_kind: str) -> tuple[str, Path]:
    """``KIND=PATH`` or a bare ``PATH`` (of ``default_kind``'s layout) -> (kind, path)."""
    kind, sep, path = item.partition("=")
    return (kind, Path(path)) if sep and kind in TRAINING_LAYOUTS else (default_kind, Path(item))


def data_sources(args: argparse.Namespace) -> list[tuple[str, Path]]:
    return [source_of(item, args.dataset) for item in args.data]


def unpaired_frames(args: argparse.Namespace) -> dict[str, list[Path]]:
    frames: dict[str, list[Path]] = {}
    for item in args.ssl_data:
        kind, _, path = item.partition("=")
        frames.setdefault(kind, []).extend(list_images(path))
    return frames


def camera_label(kind: str, root: Path) -> str:
    """The name a validation camera is logged under: the layout, or for a plain folder its data
    set's name (``.../llvip/train`` -> ``llvip``)."""
    if kind != "folder":
        return kind
    parts = [q for q in root.resolve().parts if q not in ("train", "val", "test", "aligned")]
    return parts[-1] if parts else kind


def validation_set(sources: list[tuple[str, Path]], n: int, seed: int,
                   geometry: GeometricParams = GeometricParams(),
                   held_out: list[tuple[str, Path]] = ()) -> list[tuple[str, np.ndarray, np.ndarray, np.ndarray]]:
    """Held-out aligned pairs with a fixed random homography (of ``geometry``'s range) applied to
    the second image: ``n`` validation pairs of each training source, and every pair of each
    ``held_out`` camera (one never trained on: what generalisation is judged by). Item names
    are ``camera/pair``."""
    items = []
    rng = np.random.default_rng(seed + 12345)
    chosen = [(kind, root, list_pairs(kind, root, "val")[:n]) for kind, root in sources]
    chosen += [(kind, root, list_pairs(kind, root, "all")) for kind, root in held_out]
    for kind, root, pairs in chosen:
        for pair in pairs:
            a, b = (shrink_to(read_gray(path), 640, cv2.INTER_LINEAR)[0] for path in (pair.path_a, pair.path_b))
            H = random_homography(b.shape, rng, geometry)
            b, _ = warp(b, H)
            items.append((f"{camera_label(kind, root)}/{pair.name}", a, b, H))
    return items


@torch.no_grad()
def validate(net: torch.nn.Module, items: list, device: str, k: int = 1024, hard_items: list | None = None,
             **params: Any) -> dict[str, float]:
    """Matching quality of the real inference path (S2NetFeature2D, detector ``params``) on
    held-out pairs, and on their hard-geometry variants (``val_hard_*``) when given: over all
    items (``val_ncm``...) and per camera (``val_<camera>_reg10``...).
    ``net`` is not modified: the torch backend runs its own inference copy."""
    from s2cv.feature.feature2d import S2NetFeature2D

    det = S2NetFeature2D(net, backend="torch", device=device, nfeatures=k, **params)
    out = {}
    for prefix, group in (("val", items), ("val_hard", hard_items or [])):
        if group:
            feats = [(det.detectAndCompute(a, None), det.detectAndCompute(b, None)) for _, a, b, _ in group]
            out.update(validation_metrics(group, feats, prefix))
            if len({camera_of(name) for name, *_ in group}) > 1:
                out.update(camera_metrics(group, feats, prefix))
    return out


def camera_of(name: str) -> str:
    """The camera of a validation item named ``camera/pair`` (``validation_set``)."""
    return name.split("/")[0]


def camera_metrics(items: list, features: list, prefix: str = "val") -> dict[str, float]:
    """``validation_metrics`` of each camera's items apart, keyed ``{prefix}_{camera}_ncm``..."""
    out = {}
    for cam in sorted({camera_of(name) for name, *_ in items}):
        idx = [i for i, (name, *_) in enumerate(items) if camera_of(name) == cam]
        out.update(validation_metrics([items[i] for i in idx], [features[i] for i in idx], f"{prefix}_{cam}"))
    return out


def validation_metrics(items: list, features: list, prefix: str = "val") -> dict[str, float]:
    """NCM, CMR, NC and shares registered within 5 and 10 px from ((kp_a, desc_a), (kp_b, desc_b)) per item."""
    res = []
    for (_, a, b, H), ((ka, da), (kb, db)) in zip(items, features, strict=True):
        pa = np.array([p.pt for p in ka]).reshape(-1, 2)
        pb = np.array([p.pt for p in kb]).reshape(-1, 2)
        res.append(score_pair(pa, da, pb, db, H, a.shape, b.shape, 3.0))
    errors = np.array([r.corner_error for r in res])
    return {f"{prefix}_ncm": float(np.mean([r.ncm for r in res])), f"{prefix}_cmr": float(np.mean([r.cmr for r in res])),
            f"{prefix}_reg5": float(np.mean(errors <= 5)), f"{prefix}_reg10": float(np.mean(errors <= 10)),
            f"{prefix}_nc": float(np.mean([r.nc for r in res]))}


def learning_rate(step: int, steps: int, lr: float, lr_final: float | None) -> float:
    """Cosine decay as a pure function of the step, so a resumed run continues the same curve."""
    if lr_final is None:
        return lr
    return lr_final + (lr - lr_final) * 0.5 * (1 + math.cos(math.pi * min(step, steps) / steps))


def split_outputs(out: dict[str, torch.Tensor], n: int) -> list[dict[str, torch.Tensor]]:
    chunks = {k: v.chunk(n) for k, v in out.items()}
    return [{k: v[i] for k, v in chunks.items()} for i in range(n)]


@dataclass(frozen=True)
class Process:
    """This process's place in a (torchrun) job; only rank 0 logs, validates and writes checkpoints."""

    rank: int
    world: int
    device: torch.device

    @property
    def main(self) -> bool:
        return self.rank == 0


def start_process(args: argparse.Namespace) -> Process:
    """Rank and device from torchrun's environment, the process group, threads and a per-rank seed.

    ``--device auto`` is resolved into ``args`` so that config.json records the device used.
    """
    rank, world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    if args.device == "auto":
        args.device = f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}" if torch.cuda.is_available() else "cpu"
    device = torch.device(args.device)
    if world > 1:
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed + rank)
    return Process(rank, world, device)


def build_network(args: argparse.Namespace) -> torch.nn.Module:
    """The starting weights: ``--init``'s model with its own conf (ranking map, width), widened or
    its descriptors shortened on request, else a fresh ``--arch`` (d2net: VGG16 from ``--pretrained``)."""
    if args.init:
        net, init_meta = load_model(args.init)
        if init_meta["arch"] != args.arch:
            raise ValueError(f"--init {args.init} is a {init_meta['arch']} model, not --arch {args.arch}")
        if args.width is not None and args.width != net.conf["width"]:
            net = net.widened(args.width, seed=args.seed)
        if args.descriptor_dim is not None and args.descriptor_dim != net.conf["descriptor_dim"]:
            net = net.shortened(args.descriptor_dim)
        return net
    conf = {k: v for k, v in (("width", args.width), ("descriptor_dim", args.descriptor_dim)) if v is not None}
    net = build_model(args.arch, **conf)
    if args.pretrained:
        from s2cv.models.d2net import load_vgg16
        load_vgg16(net, args.pretrained)
    return net


def load_teacher(model: str, device: torch.device) -> torch.nn.Module:
    """The xfeat model whose keypoint logits are distillation targets, frozen so that its targets
    do not drift with the student."""
    teacher, meta = load_model(model)
    if meta["arch"] != "xfeat":
        raise ValueError(f"--keypoint-teacher {model} is a {meta['arch']} model, not xfeat")
    return teacher.to(device).eval().requires_grad_(False)


@dataclass
class Progress:
    """Where a run stands; stored in every checkpoint so that ``--resume`` continues it."""

    step: int = 0
    best: float = -1.0     # best val_ncm so far
    elapsed: float = 0.0   # seconds spent in training steps, over all resumed runs


def network_input(batch: dict[str, torch.Tensor], branches: tuple[tuple[str, str], ...]) -> torch.Tensor:
    """Every branch's (a, b) crops stacked for one forward pass; ``split_outputs`` undoes the order."""
    return torch.cat([batch[f"{key}_{side}"] for _, key in branches for side in "ab"])


class Trainer:
    """The network, its loss and optimiser: one optimiser step at a time, checkpoints on request."""

    def __init__(self, args: argparse.Namespace, process: Process) -> None:
        self.arch, self.device = args.arch, process.device
        self.net = build_network(args).to(process.device)
        self.teacher = load_teacher(args.keypoint_teacher, process.device) if args.keypoint_teacher else None
        self.criterion = S2Loss(self.net.loss, args.ssl_weight, args.neg_radius).to(process.device)
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=args.lr, weight_decay=args.weight_decay)
        self.progress = Progress()
        last = args.out / "last.pt"
        if args.resume and last.is_file():
            self.resume(last)
            if process.main:
                print(f"resuming from {last} at step {self.progress.step}")
        # Wrapped after resuming: DDP broadcasts rank 0's weights when it is built.
        self.model = torch.nn.parallel.DistributedDataParallel(self.net) if process.world > 1 else self.net
        self.branches = BRANCHES if args.ssl_weight > 0 else BRANCHES[:1]

    def resume(self, last: Path) -> None:
        """Weights, optimiser state and progress of ``last`` (a checkpoint of the same arch)."""
        ckpt = read_checkpoint(last)
        if ckpt["arch"] != self.arch:
            raise ValueError(f"{last} was trained with --arch {ckpt['arch']}, not {self.arch}")
        self.net.load_state_dict(ckpt["state_dict"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.progress = Progress(int(ckpt["step"]), float(ckpt["meta"].get("best_val_ncm", -1.0)),
                                 float(ckpt["meta"].get("train_seconds", 0.0)))

    def step(self, batch: dict[str, torch.Tensor], lr: float) -> dict[str, float]:
        """One optimiser step of the S2 loss at learning rate ``lr``; returns the loss terms."""
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        batch = {k: v.to(self.device) for k, v in batch.items()}
        images = network_input(batch, self.branches)
        maps = self.model(images)
        if self.teacher is not None:
            with torch.no_grad():
                maps["teacher_logits"] = self.teacher.keypoint_logits(images)
        outputs = split_outputs(maps, 2 * len(self.branches))
        ones = torch.ones_like(batch["sl_a"])
        parts = {name: (outputs[2 * i], outputs[2 * i + 1], batch[f"{key}_U"], ones, batch[f"{key}_valid_b"])
                 for i, (name, key) in enumerate(self.branches)}
        loss, log = self.criterion(parts, self.net.stride)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"non-finite loss at step {self.progress.step + 1}: {log}")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.progress.step += 1
        return log

    def checkpoint(self, out: Path, meta: dict[str, Any], val: dict[str, float], keep: bool = False) -> bool:
        """``last.pt`` always, ``best.pt`` too when val_ncm improved, ``steps/NNNNNN.pt`` when
        ``keep`` (every validated step stays selectable later); returns whether val_ncm improved.
        Weights that decayed below ``common.TINY`` are zeroed first: subnormal floats slow every
        later step and every inference on a CPU (``common.flush_tiny``)."""
        flush_tiny(self.net)
        p = self.progress
        improved = val["val_ncm"] > p.best
        p.best = max(p.best, val["val_ncm"])
        info = {**meta, "step": p.step, "best_val_ncm": p.best, "train_seconds": round(p.elapsed, 1), **val}
        save_checkpoint(out / "last.pt", self.net, self.arch, info, optimizer=self.optimizer.state_dict(),
                        step=p.step)
        if improved:
            save_checkpoint(out / "best.pt", self.net, self.arch, info, step=p.step)
        if keep:
            (out / "steps").mkdir(exist_ok=True)
            save_checkpoint(out / "steps" / f"{p.step:06d}.pt", self.net, self.arch, info, step=p.step)
        return improved


def run_meta(args: argparse.Namespace, sources: list[tuple[str, Path]], world: int) -> dict[str, Any]:
    """The settings stored in every checkpoint (the whole job's batch size, not one process's)."""
    return {"arch": args.arch, "ssl_weight": args.ssl_weight, "data": [f"{k}={p.name}" for k, p in sources],
            "crop": args.crop, "batch_size": args.batch_size * world, "lr": args.lr,
            "lr_final": args.lr_final, "init": args.init, "geometry": args.geometry,
            "ssl_data": args.ssl_data, "keypoint_teacher": args.keypoint_teacher,
            "pseudo": ",".join(args.pseudo), "p_pseudo": args.p_pseudo,
            "pair_pseudo": ",".join(args.pair_pseudo), "p_pair_pseudo": args.p_pair_pseudo, "val_data": args.val_data,
            "weight_decay": args.weight_decay, "seed": args.seed, "neg_radius": args.neg_radius}


class TrainLog:
    """What rank 0 tells a person: a progress bar, ``train_log.csv`` (one row per step),
    ``val_log.jsonl`` and the ``training.png`` curves after each validation."""

    def __init__(self, out: Path, arch: str, steps: int, start: int) -> None:
        self.out = out
        self.file = open(out / "train_log.csv", "a", newline="")
        self.writer: csv.DictWriter | None = None
        self.bar = tqdm(total=steps, initial=start, desc=f"train {arch}", dynamic_ncols=True)

    def step(self, step: int, losses: dict[str, float], lr: float, seconds: float) -> None:
        row = {"step": step, **{k: round(v, 5) for k, v in losses.items()}, "lr": f"{lr:.3g}",
               "sec_per_step": round(seconds, 3)}
        if self.writer is None:
            # A resumed run keeps the columns its log already has (λ or the schedule may differ).
            header = ""
            if self.file.tell():
                with open(self.out / "train_log.csv") as f:
                    header = f.readline().rstrip("\n")
            self.writer = csv.DictWriter(self.file, fieldnames=header.split(",") if header else list(row),
                                         extrasaction="ignore", restval="")
            if not header:
                self.writer.writeheader()
        self.writer.writerow(row)
        self.bar.update(1)
        self.bar.set_postfix({k: f"{v:.3f}" for k, v in losses.items() if "/" not in k} | {"s/it": f"{seconds:.2f}"})

    def validation(self, step: int, val: dict[str, float], improved: bool) -> None:
        self.file.flush()  # the curves read the CSV
        with open(self.out / "val_log.jsonl", "a") as f:
            f.write(json.dumps({"step": step, **val}) + "\n")
        plot_training(self.out)
        self.bar.write(f"step {step}: " + ", ".join(f"{k}={v:.3f}" for k, v in val.items())
                       + (" (best)" if improved else "") + f"; curves in {self.out / 'training.png'}")

    def close(self) -> None:
        self.bar.close()
        self.file.close()


def write_config(args: argparse.Namespace, steps: int) -> None:
    """``config.json``: every argument as run, so a run can be repeated."""
    (args.out / "config.json").write_text(json.dumps({**vars(args), "out": str(args.out), "data": args.data,
                                                      "pretrained": str(args.pretrained), "steps": steps}, indent=2))


def train(args: argparse.Namespace) -> Path:
    """``s2cv train``: set up, resume, step, validate and checkpoint; returns the path of ``best.pt``."""
    process = start_process(args)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    sources = data_sources(args)
    groups = [list_pairs(kind, root, "train") for kind, root in sources]
    n_pairs = sum(len(g) for g in groups)
    steps = args.steps or math.ceil((args.epochs or 25) * n_pairs / (args.batch_size * process.world))
    dataset = S2PairDataset(groups, crop=args.crop, seed=args.seed, geometry=TRAINING_GEOMETRIES[args.geometry],
                            unpaired=unpaired_frames(args), pseudo=args.pseudo, p_pseudo=args.p_pseudo,
                            pair_pseudo=args.pair_pseudo, p_pair_pseudo=args.p_pair_pseudo)
    trainer = Trainer(args, process)
    start = trainer.progress.step
    sampler = StreamSampler(start * args.batch_size, process.rank, process.world)
    loader = DataLoader(dataset, batch_size=args.batch_size, sampler=sampler, num_workers=args.workers)
    held_out = [source_of(item, args.dataset) for item in args.val_data]
    val_items = validation_set(sources, args.val_pairs, args.seed, held_out=held_out) if process.main else []
    hard_items = (validation_set(sources, args.val_pairs, args.seed, GEOMETRIES["hard"], held_out)
                  if process.main else [])
    meta = run_meta(args, sources, process.world)
    log = None
    if process.main:
        write_config(args, steps)
        print(f"training {args.arch} for {steps} steps on {n_pairs} pairs ({', '.join(meta['data'])}), "
              f"λ={args.ssl_weight}, batch {args.batch_size}x{process.world}, crop {args.crop}, "
              f"device {process.device}")
        log = TrainLog(out, args.arch, steps, start)
    trainer.net.train()
    batches = iter(loader)
    for step in range(start + 1, steps + 1):
        t0 = time.perf_counter()
        lr = learning_rate(step - 1, steps, args.lr, args.lr_final)
        losses = trainer.step(next(batches), lr)
        seconds = time.perf_counter() - t0
        trainer.progress.elapsed += seconds
        if log is None:
            continue
        log.step(step, losses, lr, seconds)
        if step % args.val_every == 0 or step == steps:
            val = validate(trainer.net, val_items, str(process.device), k=args.val_k, hard_items=hard_items)
            log.validation(step, val, trainer.checkpoint(out, meta, val, keep=args.keep_checkpoints))
    if log is not None:
        log.close()
    if process.world > 1:  # rank 0 may still be validating: tearing gloo down under it aborts the process
        dist.barrier()
        dist.destroy_process_group()
    return out / "best.pt"
