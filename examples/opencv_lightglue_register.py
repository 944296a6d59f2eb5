"""Register a thermal image onto a visible one with OpenCV alone: cv2.XFeat (s2cv's S2-trained
s2xfeat detector) + cv2.LightGlueMatcher (s2cv's S2Glue matcher) + cv2.findHomography.

No s2cv, no torch, no onnxruntime at run time: two ONNX files and OpenCV >= 5.1.

    s2cv export s2xfeat --format cv-xfeat -o s2xfeat.onnx        # detector (cv::XFeat contract)
    s2cv export default --format cv-lightglue -o s2glue.onnx     # matcher (cv::LightGlueMatcher contract)
    python examples/opencv_lightglue_register.py VIS IR --xfeat s2xfeat.onnx --glue s2glue.onnx -o H.txt

(Both files also ship in s2cv/weights: s2xfeat-vis-ir-nir.cv-xfeat.onnx and s2glue-s2xfeat.onnx;
they are the defaults here.) Prints the IR -> visible homography and the inlier count; exit 1 when
no homography is found.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

WEIGHTS = Path(__file__).resolve().parents[1] / "s2cv" / "weights"
SAMPLES = Path(__file__).resolve().parents[1] / "s2cv" / "samples"


def register(vis: np.ndarray, ir: np.ndarray, xfeat_onnx: str, glue_onnx: str, nfeatures: int = 2048,
             threshold: float = 0.1) -> tuple[np.ndarray | None, int, int]:
    """(H mapping IR pixels onto the visible image or None, matches, inliers)."""
    detector = cv2.XFeat_create(xfeat_onnx, maxKeypoints=nfeatures, scoreThreshold=0.0)
    kp_vis, des_vis = detector.detectAndCompute(vis, None)
    kp_ir, des_ir = detector.detectAndCompute(ir, None)
    matcher = cv2.LightGlueMatcher_create(glue_onnx, threshold, type=cv2.LG_DISK)
    matcher.setKeypointNormalization(cv2.LG_NORM_MAX_SIDE)   # LightGlue's own keypoint normalisation
    matcher.setPairInfo(cv2.KeyPoint_convert(kp_ir), cv2.KeyPoint_convert(kp_vis),
                        (ir.shape[1], ir.shape[0]), (vis.shape[1], vis.shape[0]))
    matches = matcher.match(des_ir, des_vis)          # DMatch.distance = 1 - confidence
    if len(matches) < 4:
        return None, len(matches), 0
    src = np.float32([kp_ir[m.queryIdx].pt for m in matches])
    dst = np.float32([kp_vis[m.trainIdx].pt for m in matches])
    H, inliers = cv2.findHomography(src, dst, cv2.USAC_MAGSAC, 3.0)
    return H, len(matches), int(inliers.sum()) if inliers is not None else 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("vis", nargs="?", default=str(SAMPLES / "roadscene_vis.png"))
    p.add_argument("ir", nargs="?", default=str(SAMPLES / "roadscene_ir.png"))
    p.add_argument("--xfeat", default=str(WEIGHTS / "s2xfeat-vis-ir-nir.cv-xfeat.onnx"))
    p.add_argument("--glue", default=str(WEIGHTS / "s2glue-s2xfeat.onnx"))
    p.add_argument("--nfeatures", type=int, default=2048)
    p.add_argument("-o", "--output", help="write H (IR -> visible) here")
    args = p.parse_args(argv)
    vis, ir = cv2.imread(args.vis), cv2.imread(args.ir)
    if vis is None or ir is None:
        print(f"error: cannot read {args.vis if vis is None else args.ir}", file=sys.stderr)
        return 2
    H, n_matches, n_inliers = register(vis, ir, args.xfeat, args.glue, args.nfeatures)
    if H is None:
        print(f"no homography ({n_matches} matches)")
        return 1
    print(f"{n_inliers}/{n_matches} inliers\nH (IR -> visible):\n{np.array2string(H, precision=5)}")
    if args.output:
        np.savetxt(args.output, H)
    return 0


if __name__ == "__main__":
    sys.exit(main())
