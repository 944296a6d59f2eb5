"""What ``native=True`` gives up: ``S2Net_create(model=M)`` (s2cv's post-processing) against
``S2Net_create(model=M, native=True)`` (OpenCV's own cv::XFeat on the same weights) on a public
benchmark's test pairs.

Run: ``python benchmarks/native_xfeat.py --data /path/to/roadscene [--dataset roadscene]
[--model s2xfeat] [--k 1024 2048 4096]``.

The evaluation protocol of ``s2cv evaluate`` (``s2cv.evaluation.metrics.score_pair``): mutual
nearest-neighbour matches, NCM (correct within 3 px), the homography fitted to all matches
(USAC/MAGSAC, 3 px) and its mean corner error; per detector and K: mean keypoints, NCM, the
share of pairs registered within 5 and 10 px, the median corner error and the mean
``detectAndCompute`` time per image. Both detectors get the same images (``read_image``, 8-bit
for this data set) and one untimed warm-up call. cv::XFeat resizes each image to its 640 x 640
input (aspect not kept) and selects keypoints itself; S2Net_create runs the image at its own size
with s2cv's NMS, border, contrast floor and sub-pixel refinement.
"""
from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import s2cv  # noqa: E402
from s2cv.evaluation.datasets import load_benchmark  # noqa: E402
from s2cv.evaluation.metrics import score_pair  # noqa: E402
from s2cv.feature.image import read_image  # noqa: E402


def detect(det, img: np.ndarray) -> tuple[np.ndarray, np.ndarray | None, float]:
    t0 = time.perf_counter()
    kps, desc = det.detectAndCompute(img, None)
    dt = time.perf_counter() - t0
    return np.array([k.pt for k in kps], np.float64).reshape(-1, 2), desc, dt


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True, help="data set root (e.g. /path/to/roadscene)")
    p.add_argument("--dataset", default="roadscene", help="layout for s2cv.evaluation.datasets.load_benchmark")
    p.add_argument("--model", default="s2xfeat", help="an XFeat-layout zoo model (default s2xfeat)")
    p.add_argument("--k", type=int, nargs="+", default=[1024, 2048, 4096], help="keypoint budgets")
    p.add_argument("--limit", type=int, default=0, help="first N pairs only (0 = all)")
    args = p.parse_args(argv)
    pairs = load_benchmark(args.dataset, args.data)
    pairs = pairs[: args.limit] if args.limit else pairs
    images = [(read_image(pair.path_a), read_image(pair.path_b)) for pair in pairs]
    print(f"{args.dataset}: {len(pairs)} test pairs, model {args.model}")
    print(f"| detector | K | #kp | NCM | reg@5 % | reg@10 % | median corner error px | ms/img |")
    print("|---|---|---|---|---|---|---|---|")
    for k in args.k:
        for label, det in ((f"S2Net_create(model={args.model!r})", s2cv.S2Net_create(nfeatures=k, model=args.model)),
                           ("native=True (cv2.XFeat 640x640)",
                            s2cv.S2Net_create(nfeatures=k, model=args.model, native=True))):
            det.detectAndCompute(images[0][0], None)  # warm-up
            kp, ncm, errors, times = [], [], [], []
            for pair, (img_a, img_b) in zip(pairs, images):
                pts_a, desc_a, ta = detect(det, img_a)
                pts_b, desc_b, tb = detect(det, img_b)
                r = score_pair(pts_a, desc_a, pts_b, desc_b, pair.H, img_a.shape, img_b.shape, 3.0,
                               norm=det.defaultNorm(), name=pair.name, k=k)
                kp.append((r.kp_a + r.kp_b) / 2)
                ncm.append(r.ncm)
                errors.append(r.corner_error if math.isfinite(r.corner_error) else math.inf)
                times += [ta, tb]
            err = np.array(errors)
            print(f"| {label} | {k} | {np.mean(kp):.0f} | {np.mean(ncm):.1f} | {100 * np.mean(err <= 5):.1f} | "
                  f"{100 * np.mean(err <= 10):.1f} | {statistics.median(errors):.2f} | "
                  f"{1e3 * statistics.mean(times):.0f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
