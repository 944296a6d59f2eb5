"""cv2.XFeat (OpenCV's own detector) running an s2cv ``--format cv-xfeat`` export, against
S2Net_create on the same model, on the bundled visible/thermal and visible/NIR pairs.

Run: ``python benchmarks/cv_xfeat.py [--model xfeat] [--k 1024] [--size 640]``.

The model (an XFeat-layout zoo name or checkpoint) is exported into a temporary folder. Per pair
and detector: mutual-NN matches, those within 3 and 5 px of the pair's ground truth, and
``s2cv.registration.register``'s fit (MAGSAC++, 3 px; the verdict is reported, not applied) with its corner
error; per detector, the median ``detectAndCompute`` time on the visible image (5 calls after one
warm-up). cv::XFeat resizes every image to S x S (aspect not kept); S2Net_create runs the image at
its own size.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import cv2

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import s2cv  # noqa: E402
from s2cv.export import main as export_main
from s2cv.registration.geometry import match_errors, mutual_nn_matches
from s2cv.registration.register import SAMPLES, register, sample_corner_error, sample_ground_truth


def median_ms(fn, reps: int = 5) -> float:
    fn()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="xfeat", help="XFeat-layout zoo name or checkpoint (default xfeat)")
    p.add_argument("--k", type=int, default=1024, help="keypoints per image (default 1024)")
    p.add_argument("--size", type=int, default=640, help="cv-xfeat input size S (default 640)")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        graph = Path(tmp) / "cv-xfeat.onnx"
        if export_main([args.model, "--format", "cv-xfeat", "--size", str(args.size), "-o", str(graph), "-q"]):
            return 1
        detectors = {f"cv2.XFeat ({args.size}x{args.size})": cv2.XFeat_create(str(graph), args.k, 0.0,
                                                                                (args.size, args.size)),
                     "S2Net_create": s2cv.S2Net_create(model=args.model, nfeatures=args.k)}
        print(f"model {args.model}, K = {args.k}")
        print(f"{'pair':<10} {'detector':<22} {'matches':>7} {'<=3px':>6} {'<=5px':>6} {'inliers':>7} "
              f"{'corner err':>10}  verdict")
        for pair, (vis_path, ir_path, _) in SAMPLES.items():
            vis, ir = cv2.imread(str(vis_path)), cv2.imread(str(ir_path), cv2.IMREAD_UNCHANGED)
            H = sample_ground_truth(pair)
            for name, det in detectors.items():
                (kv, dv), (ki, di) = det.detectAndCompute(vis, None), det.detectAndCompute(ir, None)
                m = mutual_nn_matches(dv, di)
                err = match_errors(cv2.KeyPoint_convert(kv)[m[:, 0]], cv2.KeyPoint_convert(ki)[m[:, 1]], H)
                result = register(vis, ir, det, accept_implausible=True)
                verdict = "plausible" if result.success and not result.implausible_accepted else (
                    "implausible" if result.success else result.message.split(":")[0])
                print(f"{pair:<10} {name:<22} {len(m):7d} {int((err <= 3).sum()):6d} {int((err <= 5).sum()):6d} "
                      f"{result.num_inliers if result.success else 0:7d} {sample_corner_error(result, H):9.2f}  {verdict}")
        vis = cv2.imread(str(SAMPLES["roadscene"][0]))
        defaults = cv2.XFeat_create(str(graph), inputSize=(args.size, args.size))
        print(f"cv2.XFeat defaults (maxKeypoints {defaults.getMaxKeypoints()}, scoreThreshold "
              f"{defaults.getScoreThreshold():g}): {len(defaults.detect(vis, None))} keypoints on the RoadScene visible frame")
        for name, det in detectors.items():
            print(f"detectAndCompute {name:<22} {median_ms(lambda: det.detectAndCompute(vis, None)):7.1f} ms "
                  f"(RoadScene visible {vis.shape[1]}x{vis.shape[0]})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
