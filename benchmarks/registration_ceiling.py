"""How many benchmark pairs *could* register within t px from a detector's correct matches.

For each pair it takes the mutual-nearest-neighbour matches of each method (as ``s2cv.evaluate``
does) and fits three homographies: the protocol's (USAC/MAGSAC on all matches, 3 px), and two
oracles that know the ground truth and fit plain least squares to only the matches within 3 px,
or within 1 px, of it. When even the oracles miss the corners by more than t px, the pair is out
of reach for that detector's keypoints: either the matches cover too little of the image to pin
down the corners, or the ground-truth homography does not describe the scene (parallax,
imperfectly aligned source pairs) — then no detector can do much better.

    python benchmarks/registration_ceiling.py --dataset visnir --data ../shared/data/visnir --methods s2net,sift --k 4096
"""
from __future__ import annotations

import argparse

import cv2
import numpy as np
from tqdm import tqdm

from s2cv.evaluate import LOADERS, _detect, _norm_of, create_method, read_image
from s2cv.metrics import corner_error, estimate_homography, mutual_nn_matches, warp_points

MIN_MATCHES = 8  # least squares on fewer points is too unstable to call an oracle


def oracle(ma: np.ndarray, mb: np.ndarray, H: np.ndarray, shape: tuple[int, ...], tol: float) -> float:
    """Corner error of the least-squares homography on the matches within ``tol`` px of the truth."""
    ok = np.linalg.norm(warp_points(ma, H) - mb, axis=1) <= tol
    if ok.sum() < MIN_MATCHES:
        return np.inf
    H_ls, _ = cv2.findHomography(ma[ok], mb[ok], 0)
    return corner_error(H_ls, H, shape)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", choices=["roadscene", "visnir"], required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--methods", default="s2net,sift")
    p.add_argument("--k", type=int, default=4096)
    p.add_argument("--thresholds", default="3,5,10", help="corner-error thresholds, px")
    args = p.parse_args()
    thresholds = [float(t) for t in args.thresholds.split(",")]
    pairs = LOADERS[args.dataset](args.data)
    methods = args.methods.split(",")
    errors = {m: {"protocol": [], "oracle 3 px": [], "oracle 1 px": []} for m in methods}
    for method in methods:
        det = create_method(method, args.k)
        for pair in tqdm(pairs, desc=f"{method} K={args.k}", dynamic_ncols=True):
            a, b = read_image(pair.path_a), read_image(pair.path_b)
            pa, da, _ = _detect(det, a)
            pb, db, _ = _detect(det, b)
            idx = mutual_nn_matches(da, db, _norm_of(det))
            ma, mb = pa[idx[:, 0]], pb[idx[:, 1]]
            e = errors[method]
            e["protocol"].append(corner_error(estimate_homography(ma, mb), pair.H, a.shape))
            e["oracle 3 px"].append(oracle(ma, mb, pair.H, a.shape, 3.0))
            e["oracle 1 px"].append(oracle(ma, mb, pair.H, a.shape, 1.0))
    print(f"\n{args.dataset}, {len(pairs)} pairs, K={args.k}: share of pairs registered within t px")
    print("| method | homography | " + " | ".join(f"≤ {t:g} px" for t in thresholds) + " |")
    print("|---|---|" + "---|" * len(thresholds))
    for method, rows in errors.items():
        for name, values in rows.items():
            v = np.asarray(values)
            print(f"| {method} | {name} | " + " | ".join(f"{np.mean(v <= t):.1%}" for t in thresholds) + " |")
    best = np.min([np.minimum(rows["oracle 3 px"], rows["oracle 1 px"]) for rows in errors.values()], axis=0)
    print("| any method | best oracle | " + " | ".join(f"{np.mean(best <= t):.1%}" for t in thresholds) + " |")


if __name__ == "__main__":
    main()
