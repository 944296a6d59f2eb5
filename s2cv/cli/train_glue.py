"""``s2cv train-glue`` / ``python -m s2cv.train_glue``: S2 training of the S2Glue matcher
(``s2cv.training.glue_loop``) on a detector's features (frozen, or fine-tuned jointly: ``--joint-lr``).

    s2cv train-glue --det-model s2xfeat --lighterglue /d/pretrained/xfeat-lighterglue.pt \\
        --data roadscene=/d/roadscene --data visnir=/d/visnir \\
        --ssl-data ir=/d/metu_vistir_unpaired/thermal --ssl-data ir=/d/hit_uav_thermal/thermal \\
        --val roadscene=/d/roadscene --val visnir=/d/visnir -o runs/glue

Writes ``last.pt``, ``best.pt`` (best share of held-out training pairs registered within 10 px)
and ``log.csv``; ``--resume`` continues ``last.pt``. Test pairs are never read.
"""
from __future__ import annotations

import argparse
import sys
from typing import Sequence

from s2cv.evaluation.datasets import TRAINING_LAYOUTS
from s2cv.training.augment import GEOMETRIES
from s2cv.training.glue_loop import GlueTrainConfig, train_glue


def _kind_path(text: str) -> tuple[str, str]:
    kind, sep, path = text.partition("=")
    if not sep or kind not in TRAINING_LAYOUTS:
        raise argparse.ArgumentTypeError(f"expected KIND=PATH with KIND in {list(TRAINING_LAYOUTS)}, got {text!r}")
    return kind, path


def _modality_path(text: str) -> tuple[str, str]:
    kind, sep, path = text.partition("=")
    if not sep or kind not in ("vis", "ir"):
        raise argparse.ArgumentTypeError(f"expected vis=PATH or ir=PATH, got {text!r}")
    return kind, path


def build_parser(prog: str = "s2cv train-glue") -> argparse.ArgumentParser:
    d = GlueTrainConfig()
    p = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--det-model", default=d.det_model, help="the detector whose features the matcher learns (S2Net_create(model=...))")
    p.add_argument("--nfeatures", type=int, default=d.nfeatures, help="keypoints per 320x240 training crop")
    p.add_argument("--init", default=d.init, help="lighterglue, scratch, or a glue checkpoint")
    p.add_argument("--lighterglue", default="", help="path of XFeat's xfeat-lighterglue.pt (for --init lighterglue)")
    p.add_argument("--data", type=_kind_path, action="append", required=True, help="aligned pairs KIND=PATH")
    p.add_argument("--ssl-data", type=_modality_path, action="append", default=[],
                   help="single-modality frames for one SSL branch: vis=PATH or ir=PATH (repeatable)")
    p.add_argument("--val", type=_kind_path, action="append", default=[],
                   help="validation: held-out training pairs (split 'val') of KIND=PATH")
    p.add_argument("--val-camera", type=_kind_path, action="append", default=[],
                   help="validation on a camera held out of training entirely (every pair, split 'all')")
    p.add_argument("--ssl-weight", type=float, default=d.ssl_weight, help="lambda")
    p.add_argument("--steps", type=int, default=d.steps)
    p.add_argument("--lr", type=float, default=d.lr)
    p.add_argument("--joint-lr", type=float, default=d.joint_lr,
                   help="> 0: fine-tune the detector's network jointly at this lr (saved as detector_*.pt); 0: frozen")
    p.add_argument("--geometry", choices=sorted(GEOMETRIES), default=d.geometry)
    p.add_argument("--val-every", type=int, default=d.val_every)
    p.add_argument("--max-minutes", type=float, default=d.max_minutes, help="stop after this long (0: no limit)")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("-o", "--output", "--out", required=True, help="run folder")
    p.add_argument("--resume", action="store_true")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    return p


def main(argv: Sequence[str] | None = None, prog: str = "s2cv train-glue") -> int:
    args = build_parser(prog).parse_args(argv)
    if args.ssl_weight < 0 or args.steps < 1 or args.joint_lr < 0:
        print("error: --ssl-weight and --joint-lr must be >= 0 and --steps >= 1", file=sys.stderr)
        return 2
    cfg = GlueTrainConfig(det_model=args.det_model, nfeatures=args.nfeatures, init=args.init,
                          lighterglue_path=args.lighterglue, ssl_weight=args.ssl_weight, steps=args.steps, lr=args.lr,
                          joint_lr=args.joint_lr, geometry=args.geometry, val_every=args.val_every, max_minutes=args.max_minutes,
                          seed=args.seed, data=list(args.data),
                          val_data=[(k, p, "val") for k, p in args.val] + [(k, p, "all") for k, p in args.val_camera],
                          ssl_vis=[p for m, p in args.ssl_data if m == "vis"],
                          ssl_ir=[p for m, p in args.ssl_data if m == "ir"])
    try:
        result = train_glue(cfg, args.output, resume=args.resume, progress=not args.quiet)
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(" ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in result.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
