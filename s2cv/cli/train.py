"""``python -m s2cv.train`` / ``s2cv train``: train a network with S2-Net (``s2cv.training.loop``).

Checkpoints are plain dicts loadable with ``S2Net_create(model=PATH)``; ``best.pt`` is chosen on
held-out training pairs, never on test data. Multi-process: ``torchrun --nproc_per_node N -m
s2cv.train ...`` (gloo on CPU, nccl on GPU).
"""
from __future__ import annotations

import argparse
import math
import os
from pathlib import Path
from typing import Sequence

from s2cv.evaluation.datasets import TRAINING_LAYOUTS
from s2cv.models import ARCHITECTURES
from s2cv.training.augment import TRAINING_GEOMETRIES
from s2cv.training.pseudo import FAMILIES, parse_families
from s2cv.training.loop import (
    DEFAULT_BATCH,
    DEFAULT_CROP,
    DEFAULT_GEOMETRY,
    DEFAULT_SSL_WEIGHT,
    DEFAULT_WEIGHT_DECAY,
    train,
)


def build_parser(prog: str = "s2cv train") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--arch", choices=sorted(ARCHITECTURES), default="fast")
    p.add_argument("--dataset", choices=TRAINING_LAYOUTS, default="roadscene",
                   help="layout of --data folders given without a KIND= prefix")
    p.add_argument("--data", action="append", required=True, metavar="[KIND=]PATH",
                   help="training data folder; repeat to train on several sets, e.g. "
                        "--data roadscene=/d/roadscene --data visnir=/d/visnir")
    p.add_argument("--ssl-data", action="append", default=[], metavar="vis=PATH|ir=PATH",
                   help="a folder of unaligned single-modality frames for one SSL branch only (L_SSL needs no "
                        "correspondence), e.g. --ssl-data ir=/d/metu_vistir_unpaired/thermal; repeatable")
    p.add_argument("--geometry", choices=sorted(TRAINING_GEOMETRIES), default=None,
                   help="range of the S2 transform and pair augmentation: paper (±10°, scale 1-1.2), wide "
                        "(±30°, scale 0.5-2, stronger perspective), hard, or mixed (each transform paper or "
                        "wide with equal chance) (default: per arch)")
    p.add_argument("--pseudo", default="none", metavar="FAMILIES",
                   help="pseudo-modality families for one side of each SSL pair: all, none, or a comma list of "
                        f"{', '.join(FAMILIES)} (s2cv.training.pseudo)")
    p.add_argument("--p-pseudo", type=float, default=0.5,
                   help="probability that an SSL pair gets a pseudo-modality (with --pseudo)")
    p.add_argument("--pair-pseudo", default="none", metavar="FAMILIES",
                   help="pseudo-modality families for one side of each supervised (cross-modal) pair, as --pseudo; "
                        "e.g. optics: one camera coarser than the other, as in a rig")
    p.add_argument("--p-pair-pseudo", type=float, default=0.5,
                   help="probability that a supervised pair gets a pseudo-modality (with --pair-pseudo)")
    p.add_argument("--val-data", action="append", default=[], metavar="[KIND=]PATH",
                   help="a camera held out of training: all its aligned pairs are validated on (per-camera "
                        "metrics val_<camera>_*), none is trained on; repeatable")
    p.add_argument("--val-k", type=int, default=1024, help="keypoints per image in validation")
    p.add_argument("--keep-checkpoints", action="store_true",
                   help="also keep every validated step as OUT/steps/NNNNNN.pt (for selection after the run)")
    p.add_argument("--keypoint-teacher", default=None, metavar="MODEL",
                   help="xfeat only: the model whose keypoint head gives the distillation targets "
                        "(default: the zoo's 'xfeat', XFeat's released weights)")
    p.add_argument("--ssl-weight", type=float, default=None, help="λ; 0 = supervised only (default: per arch)")
    p.add_argument("--steps", type=int, default=None, help="optimiser steps (overrides --epochs)")
    p.add_argument("--epochs", type=float, default=None, help="passes over the training pairs (one crop per pair)")
    p.add_argument("--batch-size", type=int, default=None, help="pairs per step per process (default: per arch)")
    p.add_argument("--crop", type=int, default=None, help="crop size in px (default: 192, d2net 256)")
    p.add_argument("--neg-radius", type=float, default=5.0,
                   help="r2d2 loss: neighbours of the true match farther than this (px) are AP negatives "
                        "(R2D2's 5; smaller also penalises near-miss matches a few pixels off)")
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--lr-final", type=float, default=None,
                   help="cosine-decay the learning rate from --lr at step 0 to this at the last step "
                        "(default: constant --lr, the paper's setting)")
    p.add_argument("--weight-decay", type=float, default=None, help="default: per arch (paper settings)")
    p.add_argument("-o", "--output", "--out", dest="out", type=Path, required=True,
                   help="output folder (checkpoints, logs)")
    p.add_argument("--resume", action="store_true", help="continue from OUT/last.pt if it exists")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", help="torch device: auto, cpu, cuda, cuda:N")
    p.add_argument("--workers", type=int, default=0, help="data loader worker processes")
    p.add_argument("--val-every", type=int, default=250, help="validate and checkpoint every N steps")
    p.add_argument("--val-pairs", type=int, default=12, help="held-out pairs per data set used for validation")
    p.add_argument("--pretrained", type=Path, default=None, help="d2net only: local VGG16 ImageNet state dict")
    p.add_argument("--init", default=None, metavar="MODEL",
                   help="start from the weights of an s2cv checkpoint or zoo name (fine-tuning; fresh optimiser "
                        "and step count), e.g. --init default to specialise the shipped model")
    p.add_argument("--width", type=int, default=None,
                   help="fast only: channels at 1/4 resolution (model default 32); with --init from a narrower "
                        "model, that model is widened to this width without changing its output (S2Fast.widened)")
    p.add_argument("--descriptor-dim", type=int, default=None,
                   help="fast only: descriptor length (model default 128); with --init from a model with longer "
                        "descriptors, its head is shortened without changing its matches (S2Fast.shortened)")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch default)")
    return p


def parse_args(argv: Sequence[str] | None = None, prog: str = "s2cv train") -> argparse.Namespace:
    """The arguments, per-architecture defaults filled in and their combinations checked."""
    p = build_parser(prog)
    args = p.parse_args(argv)
    a = args.arch
    args.ssl_weight = DEFAULT_SSL_WEIGHT[a] if args.ssl_weight is None else args.ssl_weight
    args.weight_decay = DEFAULT_WEIGHT_DECAY[a] if args.weight_decay is None else args.weight_decay
    args.crop = args.crop or DEFAULT_CROP[a]
    args.batch_size = args.batch_size or DEFAULT_BATCH[a]
    args.geometry = args.geometry or DEFAULT_GEOMETRY[a]
    if a == "xfeat":
        args.keypoint_teacher = args.keypoint_teacher or "xfeat"
    elif args.keypoint_teacher:
        p.error("--keypoint-teacher is for --arch xfeat")
    for item in args.ssl_data:
        if item.partition("=")[0] not in ("vis", "ir") or not item.partition("=")[2]:
            p.error(f"--ssl-data takes vis=PATH or ir=PATH, got {item!r}")
    try:
        args.pseudo, args.pair_pseudo = parse_families(args.pseudo), parse_families(args.pair_pseudo)
    except ValueError as e:
        p.error(str(e))
    for flag, value in (("--p-pseudo", args.p_pseudo), ("--p-pair-pseudo", args.p_pair_pseudo)):
        if not 0.0 <= value <= 1.0:
            p.error(f"{flag} must be in [0, 1]")
    if args.val_k < 1:
        p.error("--val-k must be positive")
    if args.ssl_weight < 0:
        p.error("--ssl-weight must be >= 0")
    if not (args.neg_radius >= 2.0 and math.isfinite(args.neg_radius)):
        p.error("--neg-radius must be a number >= 2 (the positives' radius)")
    if args.lr_final is not None and not (math.isfinite(args.lr_final) and args.lr_final >= 0):
        p.error("--lr-final must be a finite number >= 0")
    if args.pretrained and a != "d2net":
        p.error("--pretrained is for --arch d2net")
    if args.pretrained and args.init:
        p.error("--pretrained and --init both set the starting weights; give one")
    if args.width is not None and (a != "fast" or args.width < 1):
        p.error("--width takes a positive channel count, for --arch fast")
    if args.descriptor_dim is not None and (a != "fast" or args.descriptor_dim < 1):
        p.error("--descriptor-dim takes a positive length, for --arch fast")
    return args


def main(argv: Sequence[str] | None = None, prog: str = "s2cv train") -> int:
    args = parse_args(argv, prog)
    path = train(args)
    if int(os.environ.get("RANK", 0)) == 0:
        print(f"done: {path} (load it with s2cv.S2Net_create(model={str(path)!r}))")
    return 0

