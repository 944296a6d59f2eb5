"""S2Glue (the learned matcher) against mutual nearest neighbours on the same s2xfeat features.

Two parts:

- ``speed``: ms per 640x480 pair at K = 1024 / 2048 / 4096 on this machine (the bundled RoadScene
  pair resized to 640x480): the matcher with onnxruntime and with OpenCV's cv2.LightGlueMatcher,
  and mutual NN (``mutual_nn_matches``), median of ``--repeats`` after one warm-up. Detection is not
  included (it is the same for both).
- ``eval``: the public benchmark pairs (RoadScene 39 VIS-TIR pairs, VIS-NIR 160 pairs), K = 2048:
  MAGSAC++ (3 px) homography from each matcher's matches, share of pairs within 3 / 5 / 10 px mean
  corner error, median matches and inlier ratio. Test pairs: for the final table only, never for
  choices (those were made on held-out training pairs, ``s2cv train-glue --val``).

    OMP_NUM_THREADS=1 python benchmarks/bench_glue.py speed
    OMP_NUM_THREADS=1 python benchmarks/bench_glue.py eval --roadscene /d/roadscene --visnir /d/visnir
"""
from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

import s2cv
from s2cv.evaluation.datasets import load_benchmark
from s2cv.registration.geometry import corner_error, mutual_nn_matches
from s2cv.registration.register import SAMPLES

from bench_postprocess import median_ms  # same folder: run as a script, as the docstring says


def speed(args: argparse.Namespace) -> None:
    glue = s2cv.S2Glue_create(args.matcher)
    cv_glue = s2cv.S2Glue_create(args.matcher, backend="opencv") if hasattr(cv2, "LightGlueMatcher_create") else None
    vis, ir = (cv2.resize(cv2.imread(str(p)), (640, 480), interpolation=cv2.INTER_AREA) for p in SAMPLES["roadscene"][:2])
    print(f"matcher {glue.path.name} (detector {glue.det_model}), 640x480 pair, median of {args.repeats}")
    print("| K | keypoints (vis / IR) | mutual NN ms | S2Glue onnxruntime ms | S2Glue cv2.LightGlueMatcher ms | glue matches | MNN matches |")
    print("|---|---|---|---|---|---|---|")
    for k in (1024, 2048, 4096):
        det = s2cv.S2Net_create(k, model=glue.det_model)
        ka, da = det.detectAndCompute(vis, None)
        kb, db = det.detectAndCompute(ir, None)
        glue.setPairInfo(ka, kb, (640, 480), (640, 480))
        t_mnn = median_ms(lambda: mutual_nn_matches(da, db), args.repeats)
        t_glue = median_ms(lambda: glue.match(da, db), args.repeats)
        t_cv = float("nan")
        if cv_glue is not None:
            cv_glue.setPairInfo(ka, kb, (640, 480), (640, 480))
            t_cv = median_ms(lambda: cv_glue.match(da, db), args.repeats)
        print(f"| {k} | {len(ka)} / {len(kb)} | {t_mnn:.1f} | {t_glue:.0f} | {t_cv:.0f} | {len(glue.match(da, db))} "
              f"| {len(mutual_nn_matches(da, db))} |")


def _fit(k0: np.ndarray, k1: np.ndarray, pairs: np.ndarray) -> tuple[np.ndarray | None, int]:
    if len(pairs) < 4:
        return None, 0
    H, inl = cv2.findHomography(k0[pairs[:, 0]], k1[pairs[:, 1]], cv2.USAC_MAGSAC, 3.0)
    return H, int(inl.sum()) if inl is not None else 0


def evaluate(args: argparse.Namespace) -> None:
    glue = s2cv.S2Glue_create(args.matcher)
    det = s2cv.S2Net_create(args.k, model=glue.det_model)
    sets = [(n, r) for n, r in (("roadscene", args.roadscene), ("visnir", args.visnir)) if r]
    print(f"matcher {glue.path.name} vs mutual NN, detector {glue.det_model}, K={args.k}, MAGSAC++ 3 px")
    print("| set | pairs | matcher | reg@3 | reg@5 | reg@10 | median matches | median inlier ratio |")
    print("|---|---|---|---|---|---|---|---|")
    for name, root in sets:
        pairs = load_benchmark(name, root)
        rows: dict[str, list[tuple[float, int, float]]] = {"mutual NN": [], "S2Glue": []}
        for p in tqdm(pairs, desc=name, leave=False):
            a, b = cv2.imread(str(p.path_a)), cv2.imread(str(p.path_b))
            ka, da = det.detectAndCompute(a, None)
            kb, db = det.detectAndCompute(b, None)
            k0, k1 = cv2.KeyPoint_convert(ka).reshape(-1, 2), cv2.KeyPoint_convert(kb).reshape(-1, 2)
            glue.setPairInfo(k0, k1, (a.shape[1], a.shape[0]), (b.shape[1], b.shape[0]))
            m0, _ = glue.matchArrays(da, db)
            for method, matches in (("mutual NN", mutual_nn_matches(da, db)),
                                    ("S2Glue", np.c_[np.flatnonzero(m0 >= 0), m0[m0 >= 0]])):
                H, n_in = _fit(k0, k1, matches)
                rows[method].append((corner_error(H, p.H, a.shape[:2]), len(matches), n_in / max(1, len(matches))))
        for method, r in rows.items():
            err = np.array([e for e, _, _ in r])
            print(f"| {name} | {len(r)} | {method} | " + " | ".join(f"{(err <= t).mean():.1%}" for t in (3, 5, 10))
                  + f" | {statistics.median(m for _, m, _ in r):.0f} | {statistics.median(q for _, _, q in r):.2f} |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="part", required=True)
    s = sub.add_parser("speed")
    s.add_argument("--repeats", type=int, default=5)
    e = sub.add_parser("eval")
    e.add_argument("--roadscene", help="RoadScene root (its test/ benchmark pairs are read)")
    e.add_argument("--visnir", help="VIS-NIR root (its test/ benchmark pairs are read)")
    e.add_argument("--k", type=int, default=2048)
    for q in (s, e):
        q.add_argument("--matcher", default="default", help="glue zoo name, graph or checkpoint")
    args = p.parse_args()
    speed(args) if args.part == "speed" else evaluate(args)


if __name__ == "__main__":
    main()
