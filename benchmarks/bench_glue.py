"""S2Glue (the learned matcher) against mutual nearest neighbours on the same s2xfeat features.

Three parts:

- ``speed``: ms per 640x480 pair at K = 1024 / 2048 / 4096 on this machine (the bundled RoadScene
  pair resized to 640x480), and its ratio to cv2.SIFT detectAndCompute (2048 features) on the same
  image timed in the same run (a reference that moves with the machine's load): the matcher with onnxruntime and with OpenCV's cv2.LightGlueMatcher,
  and mutual NN (``mutual_nn_matches``), median of ``--repeats`` after one warm-up. Detection is not
  included (it is the same for both).
- ``eval``: the public benchmark pairs (RoadScene 39 VIS-TIR pairs, VIS-NIR 160 pairs), K = 2048:
  MAGSAC++ (3 px) homography from each matcher's matches, share of pairs within 3 / 5 / 10 px mean
  corner error, median matches and inlier ratio. Test pairs: for the final table only, never for
  choices (those were made on held-out training pairs, ``s2cv train-glue --val``).

    OMP_NUM_THREADS=1 python benchmarks/bench_glue.py speed
    OMP_NUM_THREADS=1 python benchmarks/bench_glue.py eval --roadscene /d/roadscene --visnir /d/visnir

- ``depth``: the speed / accuracy trade-off of running fewer layers (the first L layers and their
  own assignment head, every layer's head being supervised in training) and of stronger point
  pruning (``width_confidence``), chosen on VALIDATION cases only: the trainer's 110 hard-geometry
  cases (``s2cv.training.glue_loop.validation_cases``: held-out RoadScene / VIS-NIR training pairs
  and LLVIP), K = 1024 as in training, plus the time of each variant's exported graph (onnxruntime
  and cv2.LightGlueMatcher) on the 640x480 pair at K = 2048, as a ratio to cv2.SIFT
  detectAndCompute on the same image, timed in the same run.

    OMP_NUM_THREADS=1 python benchmarks/bench_glue.py depth --data /d   # folder with roadscene/, visnir/, llvip/train
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
    sift = cv2.SIFT_create(2048)
    print("ratios: to SIFT detectAndCompute (2048 features) on the same 640x480 visible image, timed in the same run")
    print("| K | keypoints (vis / IR) | SIFT detectAndCompute ms | mutual NN ms | S2Glue onnxruntime ms (x SIFT) "
          "| S2Glue cv2.LightGlueMatcher ms (x SIFT) | glue matches | MNN matches |")
    print("|---|---|---|---|---|---|---|---|")
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
        t_sift = median_ms(lambda: sift.detectAndCompute(vis, None), args.repeats)
        print(f"| {k} | {len(ka)} / {len(kb)} | {t_sift:.0f} | {t_mnn:.1f} | {t_glue:.0f} ({t_glue / t_sift:.1f}x) "
              f"| {t_cv:.0f} ({t_cv / t_sift:.1f}x) | {len(glue.match(da, db))} | {len(mutual_nn_matches(da, db))} |")


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


def _variant(path: Path, layers: int, width: float):
    """The checkpoint's first ``layers`` layers (their own assignment head last) with pruning ``width``."""
    from s2cv.models.glue import GlueConfig, GlueMatcher
    from s2cv.models.glue_checkpoint import load_glue

    full, meta = load_glue(path)
    cfg = GlueConfig.from_dict({**full.config.to_dict(), "n_layers": layers, "width_confidence": width})
    net = GlueMatcher(cfg)
    keep = {k: v for k, v in full.state_dict().items()
            if not k.split(".")[0] in ("self_attn", "cross_attn", "assign") or int(k.split(".")[1]) < layers}
    net.load_state_dict(keep)
    return net.eval(), meta


def depth(args: argparse.Namespace) -> None:
    import tempfile

    from s2cv.deploy.export_glue import export_glue
    from s2cv.feature.glue import resolve_glue_checkpoint
    from s2cv.training.glue_loop import validate, validation_cases

    path = resolve_glue_checkpoint(args.matcher)
    variants = [(int(v.split(":")[0]), float(v.split(":")[1])) for v in args.variants.split(",")]
    d = Path(args.data)
    cases = validation_cases([("roadscene", str(d / "roadscene"), "val"), ("visnir", str(d / "visnir"), "val"),
                              ("folder", str(d / "llvip" / "train"), "all")])
    _, meta = _variant(path, *variants[0])
    val_det = s2cv.S2Net_create(1024, model=meta["det_model"])
    det = s2cv.S2Net_create(2048, model=meta["det_model"])
    vis, ir = (cv2.resize(cv2.imread(str(p)), (640, 480), interpolation=cv2.INTER_AREA) for p in SAMPLES["roadscene"][:2])
    ka, da = det.detectAndCompute(vis, None)
    kb, db = det.detectAndCompute(ir, None)
    sift = cv2.SIFT_create(2048)
    cache: dict = {}
    print(f"{path.name}: {len(cases)} validation cases (K=1024, hard geometry, within 10 px); speed: 640x480 pair, "
          f"K=2048 ({len(ka)} / {len(kb)} keypoints), median of {args.repeats}, ratio to SIFT detectAndCompute "
          f"(2048 features) on the same 640x480 visible image, timed just before each")
    print("| layers | width_confidence | registered (glue) | RoadScene / VIS-NIR / LLVIP | mutual NN registered "
          "| onnxruntime ms (x SIFT; SIFT ms) | cv2.LightGlueMatcher ms (x SIFT; SIFT ms) | matches |")
    print("|---|---|---|---|---|---|---|---|")
    for layers, width in variants:
        net, meta = _variant(path, layers, width)
        v = validate(net, val_det, cases, cache)
        with tempfile.TemporaryDirectory() as tmp:
            graph = Path(tmp) / "variant.onnx"
            export_glue(net, graph, det_model=meta["det_model"], validate_graph=False)
            times = []
            for backend in ("onnxruntime", "opencv"):
                if backend == "opencv" and not hasattr(cv2, "LightGlueMatcher_create"):
                    times.append("n/a")
                    continue
                g = s2cv.S2Glue_create(graph, backend=backend)
                g.setPairInfo(ka, kb, (640, 480), (640, 480))
                t_ref = median_ms(lambda: sift.detectAndCompute(vis, None), args.repeats)
                t = median_ms(lambda: g.match(da, db), args.repeats)
                times.append(f"{t:.0f} ({t / t_ref:.1f}x; SIFT {t_ref:.0f})")
                n = len(g.match(da, db))
        per = " / ".join(f"{100 * v.get(f'val_glue_{k}', float('nan')):.1f}" for k in ("roadscene", "visnir", "folder"))
        print(f"| {layers} | {width} | {100 * v['val_glue']:.1f} % | {per} | {100 * v['val_mnn']:.1f} % | "
              f"{times[0]} | {times[1]} | {n} |", flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="part", required=True)
    s = sub.add_parser("speed")
    s.add_argument("--repeats", type=int, default=5)
    e = sub.add_parser("eval")
    e.add_argument("--roadscene", help="RoadScene root (its test/ benchmark pairs are read)")
    e.add_argument("--visnir", help="VIS-NIR root (its test/ benchmark pairs are read)")
    e.add_argument("--k", type=int, default=2048)
    dp = sub.add_parser("depth")
    dp.add_argument("--data", required=True, help="folder with roadscene/, visnir/, llvip/train (../shared/data)")
    dp.add_argument("--variants", default="6:0.95,5:0.95,4:0.95,3:0.95,6:0.9,6:0.8",
                    help="comma-separated LAYERS:WIDTH_CONFIDENCE")
    dp.add_argument("--repeats", type=int, default=5)
    for q in (s, e, dp):
        q.add_argument("--matcher", default="default", help="glue zoo name, graph or checkpoint")
    args = p.parse_args()
    {"speed": speed, "eval": evaluate, "depth": depth}[args.part](args)


if __name__ == "__main__":
    main()
