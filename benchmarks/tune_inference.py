"""Check inference knobs on held-out *training* pairs (never the test split).

Sweeps the NMS radius (validation NCM at K = 1024, as the trainer computes it) and the RANSAC threshold of
``s2cv.register`` (corner error at K = 4096) on the validation pairs that
``python -m s2cv.train`` holds out, each warped by its fixed random homography.

    python benchmarks/tune_inference.py --model default \
        --data roadscene=../shared/data/roadscene --data visnir=../shared/data/visnir
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

import s2cv
from s2cv.metrics import corner_error
from s2cv.register import register
from s2cv.train import validate, validation_set
from s2cv.zoo import load_model


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="default")
    p.add_argument("--data", action="append", required=True, metavar="KIND=PATH")
    p.add_argument("--val-pairs", type=int, default=12)
    args = p.parse_args()
    sources = [(kind, Path(path)) for kind, _, path in (d.partition("=") for d in args.data)]
    items = validation_set(sources, args.val_pairs, seed=0)
    print(f"{len(items)} validation pairs, model {args.model}")
    net, _ = load_model(args.model)
    for radius in (2, 3, 4):
        ncm = validate(net, items, "cpu", k=1024, nms_radius=radius)["val_ncm"]
        print(f"nms_radius {radius}: NCM@1024 {ncm:.2f}", flush=True)
    det = s2cv.S2Net_create(model=args.model, nfeatures=4096)
    for threshold in (2.0, 3.0, 5.0, 8.0):
        errors = []
        for _, a, b, H in items:
            res = register(a, b, det, ransac_threshold=threshold)  # res.H: b -> a; H: a -> b
            errors.append(corner_error(None if res.H is None else np.linalg.inv(res.H), H, a.shape))
        e = np.array(errors)
        print(f"ransac_threshold {threshold:g}: median corner error {np.median(e):.1f} px, "
              f"<= 5 px {np.mean(e <= 5):.0%}, <= 10 px {np.mean(e <= 10):.0%}", flush=True)


if __name__ == "__main__":
    main()
