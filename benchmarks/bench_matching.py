"""Mutual nearest-neighbour matching: s2cv's matrix-product version vs cv2.BFMatcher(crossCheck).

``s2cv.register`` and ``s2cv.evaluate`` match float descriptors with
``s2cv.registration.geometry.mutual_nn_matches``. This times it against OpenCV's brute-force matcher with
cross-check (what users write) on the default model's descriptors of the
bundled VIS-NIR pair (1024×682) at several K, checks both return the same pairs, and prints the median
of the repeats in milliseconds and the speed ratio.

    python benchmarks/bench_matching.py [--repeats N]
"""
from __future__ import annotations

import argparse

import cv2
from bench_postprocess import median_ms  # same folder: run as a script, as the docstring says

import s2cv
from s2cv.registration.geometry import mutual_nn_matches
from s2cv.feature.image import read_image
from s2cv.registration.register import SAMPLES


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    vis, ir, _ = SAMPLES["visnir"]
    print("| keypoints (visible / NIR) | matches | cv2.BFMatcher(crossCheck) ms | mutual_nn_matches ms | speed-up |")
    print("|---|---|---|---|---|")
    for k in (1024, 4096, 8192):
        det = s2cv.S2Net_create(nfeatures=k)
        da, db = (det.detectAndCompute(read_image(p), None)[1] for p in (vis, ir))
        bf = cv2.BFMatcher(cv2.NORM_L2, crossCheck=True)
        ours = mutual_nn_matches(da, db, cv2.NORM_L2)
        theirs = {(m.queryIdx, m.trainIdx) for m in bf.match(da, db)}
        if set(map(tuple, ours.tolist())) != theirs:
            raise SystemExit(f"K={k}: the two matchers disagree ({len(ours)} vs {len(theirs)} pairs)")
        t_bf = median_ms(lambda: bf.match(da, db), args.repeats)
        t_ours = median_ms(lambda: mutual_nn_matches(da, db, cv2.NORM_L2), args.repeats)
        print(f"| {len(da)} / {len(db)} | {len(ours)} | {t_bf:.1f} | {t_ours:.1f} | {t_bf / t_ours:.1f}x |", flush=True)


if __name__ == "__main__":
    main()
