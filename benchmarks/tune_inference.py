"""Check inference knobs on held-out *training* pairs (never the test split).

On the validation pairs that ``python -m s2cv.train`` holds out (each warped by its fixed random
homography) it sweeps: the map keypoints are ranked by (``keypoint_score`` in the model conf;
NCM and ``s2cv.register`` corner error at K = 1024 and 4096), the NMS radius (NCM at K = 1024, as
the trainer computes it), the RANSAC threshold and Lowe's ratio test of ``s2cv.register`` (corner
error at K = 4096), multi-scale detection (NCM and corner error at K = 1024 and 4096, beside
single-scale), the detector's contrast floor (keypoints on featureless images against NCM and
corner error on the validation pairs), other
OpenCV robust estimators in place of ``register``'s MAGSAC (corner error at K = 4096) and, last,
``register(refine=True)``'s featuremetric refinement with a few optimiser settings (corner error
at K = 4096). Each setting detects every pair once; matching and fitting settings reuse those
features. ``--knobs`` runs a subset; ``--geometry hard`` warps the validation pairs by the
hard-geometry range (±30°, scale 0.7-1.3) instead of the paper's.

    python benchmarks/tune_inference.py --model default \
        --data roadscene=../shared/data/roadscene --data visnir=../shared/data/visnir
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import cv2
import numpy as np
from torch import nn
from tqdm import tqdm

from s2cv.models.checkpoint import load_model
from s2cv.models.common import KEYPOINT_SCORES
from s2cv.feature.feature2d import S2NetFeature2D
from s2cv.registration.geometry import corner_error
from s2cv.feature.image import to_gray_float
from s2cv.registration.refine import RefineParams, refine_homography
from s2cv.registration.register import register_features
from s2cv.training.augment import GEOMETRIES
from s2cv.training.loop import validation_metrics, validation_set

KNOBS = ("ranking", "nms", "ransac", "ratio", "multiscale", "contrast", "estimator", "refine")
CONTRAST_FLOORS = tuple(v / 255 for v in (0, 1, 2, 3, 4, 6))   # grey-level standard deviations


def featureless_images(size: tuple[int, int] = (480, 640)) -> dict[str, np.ndarray]:
    """Images with nothing to match: a detector should return (almost) no keypoints on them."""
    h, w = size
    rng = np.random.default_rng(0)

    def noise(sigma: float) -> np.ndarray:
        return np.clip(128 + rng.normal(0, sigma, size), 0, 255).astype(np.uint8)

    return {"black": np.zeros(size, np.uint8), "grey 128": np.full(size, 128, np.uint8),
            "white": np.full(size, 255, np.uint8), "noise σ=1": noise(1), "noise σ=3": noise(3),
            "gradient": np.tile(np.linspace(60, 200, w, dtype=np.float32), (h, 1)).astype(np.uint8)}


REFINE_SETTINGS = (RefineParams(), RefineParams(dims=0), RefineParams(dims=32), RefineParams(dims=16),
                   RefineParams(iters=10), RefineParams(max_points=4096), RefineParams(max_points=65536),
                   RefineParams(levels=2), RefineParams(levels=3))


BASE_PARAMS: dict[str, float] = {}   # detector parameters every setting starts from (--contrast-floor)


def detect(net: nn.Module, items: list, k: int, **params) -> tuple[int, list]:
    """The detector's norm and ((kp, desc) of a, (kp, desc) of b) for every validation pair."""
    det = S2NetFeature2D(net, backend="torch", nfeatures=k, **{**BASE_PARAMS, **params})
    feats = [(det.detectAndCompute(a, None), det.detectAndCompute(b, None))
             for _, a, b, _ in tqdm(items, desc=f"detect K={k}", leave=False)]
    return det.defaultNorm(), feats


def summary(errors: list[float]) -> str:
    e = np.array(errors)
    return f"median corner error {np.median(e):.1f} px, <= 5 px {np.mean(e <= 5):.0%}, <= 10 px {np.mean(e <= 10):.0%}"


def registration(items: list, detected: tuple[int, list], threshold: float = 3.0, ratio: float | None = None) -> str:
    """Corner errors of ``s2cv.registration.register``'s match -> fit on the detected features, summarised."""
    norm, feats = detected
    errors = []
    for (_, a, _, H), ((ka, da), (kb, db)) in zip(items, feats):
        res = register_features(ka, da, kb, db, norm=norm, vis_shape=a.shape, ratio=ratio,
                                ransac_threshold=threshold)  # res.H: b -> a; H: a -> b
        errors.append(corner_error(None if res.H is None else np.linalg.inv(res.H), H, a.shape))
    return summary(errors)


def matched_points(items: list, detected: tuple[int, list]) -> list[tuple[np.ndarray, np.ndarray]]:
    """``register``'s matches per pair as (points in a, points in b), best descriptor distance first."""
    norm, feats = detected
    out = []
    for (_, a, _, _), ((ka, da), (kb, db)) in zip(items, feats):
        res = register_features(ka, da, kb, db, norm=norm, vis_shape=a.shape)
        order = np.argsort([m.distance for m in res.matches], kind="stable")  # best first, as PROSAC needs
        out.append(tuple(p[order] for p in res.matched_points()))
    return out


def estimator(items: list, matches: list[tuple[np.ndarray, np.ndarray]], method: int) -> str:
    """Corner errors when the matches are fitted by another cv2.findHomography method (3 px)."""
    errors = []
    for (_, a, _, H), (pts_a, pts_b) in zip(items, matches):
        H_ba = cv2.findHomography(pts_b, pts_a, method, 3.0)[0] if len(pts_a) >= 4 else None
        errors.append(corner_error(None if H_ba is None else np.linalg.inv(H_ba), H, a.shape))
    return summary(errors)


def dense_maps(items: list, net: nn.Module) -> list:
    """Both images' dense maps for every validation pair (what ``refine_homography`` works on)."""
    det = S2NetFeature2D(net, backend="torch")
    return [(det.denseMaps(to_gray_float(a)), det.denseMaps(to_gray_float(b))) for _, a, b, _ in items]


def refinement(items: list, maps: list, detected: tuple[int, list], params: RefineParams) -> str:
    """Corner errors of ``register``'s fit polished by ``refine_homography``, and its time per pair."""
    norm, feats = detected
    errors, seconds = [], 0.0
    for (_, a, b, H), (maps_a, maps_b), ((ka, da), (kb, db)) in zip(items, maps, feats):
        H_ba = register_features(ka, da, kb, db, norm=norm, vis_shape=a.shape).H
        if H_ba is not None:
            t = time.perf_counter()
            H_ba = refine_homography(H_ba, maps_a, maps_b, a.shape, b.shape, params)
            seconds += time.perf_counter() - t
        errors.append(corner_error(None if H_ba is None else np.linalg.inv(H_ba), H, a.shape))
    return f"{summary(errors)}; {seconds / len(items):.1f} s/pair"


def ncm(items: list, detected: tuple[int, list]) -> float:
    return validation_metrics(items, detected[1])["val_ncm"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="default")
    p.add_argument("--data", action="append", required=True, metavar="KIND=PATH")
    p.add_argument("--val-pairs", type=int, default=12)
    p.add_argument("--geometry", choices=("paper", "hard"), default="paper",
                   help="range of the validation pairs' homographies")
    p.add_argument("--contrast-floor", type=float, default=None,
                   help="detector contrast floor for every setting but the contrast sweep (default: the detector's)")
    p.add_argument("--knobs", default=",".join(KNOBS), help=f"comma-separated subset of {','.join(KNOBS)}")
    args = p.parse_args()
    knobs = set(args.knobs.split(","))
    if not knobs <= set(KNOBS):
        p.error(f"unknown knobs: {sorted(knobs - set(KNOBS))}")
    if args.contrast_floor is not None:
        BASE_PARAMS["contrast_floor"] = args.contrast_floor
    cv2.setRNGSeed(0)  # MAGSAC's sampling
    sources = [(kind, Path(path)) for kind, _, path in (d.partition("=") for d in args.data)]
    items = validation_set(sources, args.val_pairs, seed=0, geometry=GEOMETRIES[args.geometry])
    print(f"{len(items)} validation pairs ({args.geometry} geometry), model {args.model}")
    net, _ = load_model(args.model)
    shipped = net.conf.get("keypoint_score")
    shipped_4096 = None
    for mode in KEYPOINT_SCORES if shipped is not None and "ranking" in knobs else ():
        net.conf["keypoint_score"] = mode
        for k in (1024, 4096):
            found = detect(net, items, k)
            shipped_4096 = found if (mode, k) == (shipped, 4096) else shipped_4096
            print(f"keypoint_score {mode}, K={k}: NCM {ncm(items, found):.2f}; {registration(items, found)}",
                  flush=True)
    net.conf["keypoint_score"] = shipped
    for radius in (2, 3, 4) if "nms" in knobs else ():
        print(f"nms_radius {radius}: NCM@1024 {ncm(items, detect(net, items, 1024, nms_radius=radius)):.2f}",
              flush=True)
    if knobs & {"ransac", "ratio", "estimator", "refine"}:
        shipped_4096 = shipped_4096 or detect(net, items, 4096)
    for threshold in (2.0, 3.0, 5.0, 8.0) if "ransac" in knobs else ():
        print(f"ransac_threshold {threshold:g}: {registration(items, shipped_4096, threshold)}", flush=True)
    for ratio in (0.95, 0.9, 0.85) if "ratio" in knobs else ():
        print(f"ratio test {ratio:g} (on top of mutual NN), K=4096: {registration(items, shipped_4096, ratio=ratio)}",
              flush=True)
    for k in (1024, 4096) if "multiscale" in knobs else ():
        for multiscale in (False, True):
            found = detect(net, items, k, multiscale=multiscale)
            name = "multiscale (scales 1, 0.71, 0.5)" if multiscale else "single scale"
            print(f"{name}, K={k}: NCM {ncm(items, found):.2f}; {registration(items, found)}", flush=True)
    blank = featureless_images()
    for floor in CONTRAST_FLOORS if "contrast" in knobs else ():
        det = S2NetFeature2D(net, backend="torch", nfeatures=4096, contrast_floor=floor)
        counts = ", ".join(f"{name} {len(det.detect(img))}" for name, img in blank.items())
        found_1024, found_4096 = (detect(net, items, k, contrast_floor=floor) for k in (1024, 4096))
        print(f"contrast_floor {floor * 255:g}/255: keypoints on featureless 640x480 images: {counts}; "
              f"NCM@1024 {ncm(items, found_1024):.2f}; K=4096: {registration(items, found_4096)}", flush=True)
    matches = matched_points(items, shipped_4096) if "estimator" in knobs else []
    for name in ("USAC_ACCURATE", "USAC_PROSAC", "USAC_DEFAULT", "RANSAC", "LMEDS") if matches else ():
        print(f"estimator {name} instead of USAC_MAGSAC, K=4096: {estimator(items, matches, getattr(cv2, name))}",
              flush=True)
    if "refine" in knobs:
        print(f"refine off (K=4096): {registration(items, shipped_4096)}", flush=True)
        maps = dense_maps(items, net)
        for params in REFINE_SETTINGS:
            print(f"refine {params} (K=4096): {refinement(items, maps, shipped_4096, params)}", flush=True)


if __name__ == "__main__":
    main()
