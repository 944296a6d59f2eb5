"""``s2cv register``: one pair, or two videos / folders of frames, registered from the command line.

Also ``python -m s2cv register`` and ``python -m s2cv.register``::

    s2cv register VIS IR -o OUT_DIR [--model NAME|PATH] [--nfeatures N] [--ratio R]
                  [--transform homography|affine|similarity] [--min-inliers N] [--refine]
                  [--accept-implausible]
    s2cv register --sample -o OUT_DIR        # the bundled RoadScene pair, no data needed
    s2cv register --sample visnir -o OUT_DIR # the bundled VIS-NIR pair
    s2cv register --video VIS IR -o OUT_DIR [--H H.txt]  # two videos / folders: s2cv.runtime.video

writes ``matches.png``, ``overlay.png``, ``blend.png``, ``H.txt`` and ``summary.json``. Exit
status 0 on success, 2 (one line on stderr) when the pair cannot be registered or read, or when
the fit is implausible (``s2cv.runtime.verdict``: e.g. two different scenes); ``--accept-implausible``
keeps such a fit, labelled as such in the output line, ``summary.json`` and ``H.txt``.
"""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any, Sequence

import cv2

from s2cv.runtime.geometry import TRANSFORMS
from s2cv.runtime.image import read_image
from s2cv.runtime.register import (
    SAMPLES,
    RegistrationError,
    register,
    sample_corner_error,
    sample_ground_truth,
    write_outputs,
)
from s2cv.runtime.video import FOLDER_FPS, STYLES, PairedFrames, load_homography, make_detector, write_registered_video


def build_parser(prog: str = "s2cv register") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog,
        description="Register an IR (thermal/NIR) image onto a visible image with s2cv features. "
                    "Writes matches.png, overlay.png, blend.png, H.txt (IR -> visible) and summary.json.",
    )
    p.add_argument("vis", nargs="?", help="visible image (PNG, TIFF, JPEG; 8 or 16 bit)")
    p.add_argument("ir", nargs="?", help="thermal / NIR image (8 or 16 bit, any size)")
    p.add_argument("-o", "--output", required=True, help="output folder (created if missing)")
    p.add_argument("--sample", nargs="?", const="roadscene", choices=sorted(SAMPLES),
                   help="use a bundled pair (default: roadscene) and report the corner error against its ground truth")
    p.add_argument("--model", default="default",
                   help="zoo name or checkpoint path (default: %(default)s); 'sift' uses cv2.SIFT as a baseline")
    p.add_argument("--nfeatures", type=int, default=4096, help="keypoints per image (default: %(default)s)")
    p.add_argument("--ratio", type=float, help="also apply Lowe's ratio test with this ratio (e.g. 0.9)")
    p.add_argument("--transform", choices=TRANSFORMS, default="homography")
    p.add_argument("--ransac-threshold", type=float, default=3.0, help="inlier threshold, px (default: 3)")
    p.add_argument("--min-inliers", type=int, default=12, help="fewer inliers = failure (default: 12)")
    p.add_argument("--refine", action="store_true",
                   help="polish the homography on the dense descriptor maps (s2cv models; about 1 s more on a 2-core CPU)")
    p.add_argument("--accept-implausible", action="store_true",
                   help="keep a fit the plausibility verdict refuses (labelled IMPLAUSIBLE in the output)")
    p.add_argument("--backend", default="auto", help="inference backend: auto, torch, onnxruntime, tensorrt")
    p.add_argument("--device", default="auto", help="torch device, e.g. cpu or cuda (default: auto)")
    add_arguments(p)  # --video, --H, ...
    return p


def _fail(prog: str, message: str) -> int:
    print(f"{prog}: error: {message}", file=sys.stderr)
    return 2


def main(argv: Sequence[str] | None = None, prog: str = "s2cv register") -> int:
    """CLI entry point; returns the exit status (0 registered, 2 failed or bad input)."""
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    if args.video or args.H:
        return main_register(args, parser, prog)
    if bool(args.sample) == (args.vis is not None):
        parser.error("give VIS and IR images, or --sample (not both)")
    if not args.sample and args.ir is None:
        parser.error("the IR image is missing")
    if args.nfeatures < 0:
        parser.error("--nfeatures must be >= 0")
    vis_path, ir_path = SAMPLES[args.sample][:2] if args.sample else (Path(args.vis), Path(args.ir))
    out_dir = Path(args.output)
    try:
        vis, ir = read_image(vis_path), read_image(ir_path)
        if args.model == "sift":
            detector = cv2.SIFT_create(args.nfeatures)
        else:
            from s2cv.runtime.feature2d import S2Net_create

            detector = S2Net_create(nfeatures=args.nfeatures, model=args.model, backend=args.backend,
                                    device=args.device)
        result = register(vis, ir, detector, ratio=args.ratio, transform=args.transform,
                          ransac_threshold=args.ransac_threshold, min_inliers=args.min_inliers, refine=args.refine,
                          accept_implausible=args.accept_implausible)
        extra: dict[str, Any] = {
            "model": args.model, "nfeatures": args.nfeatures, "ratio": args.ratio, "refine": args.refine,
            "accept_implausible": args.accept_implausible,
            "vis": str(vis_path), "ir": str(ir_path),
            "vis_shape": list(vis.shape), "ir_shape": list(ir.shape),
            "vis_dtype": str(vis.dtype), "ir_dtype": str(ir.dtype),
        }
        if args.sample:
            err = sample_corner_error(result, sample_ground_truth(args.sample))
            extra["corner_error_px"] = err if math.isfinite(err) else None
        write_outputs(result, vis, ir, out_dir, extra)
    except (OSError, ValueError, TypeError, RegistrationError, RuntimeError) as exc:
        return _fail(prog, str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
    if not result.success:
        hint = "; --accept-implausible keeps it" if result.verdict is not None else ""
        return _fail(prog, f"registration failed: {result.message} (see {out_dir / 'matches.png'}{hint})")
    label = "registered"
    if result.implausible_accepted:
        label += f" (IMPLAUSIBLE, kept by --accept-implausible: {result.verdict.reason})"
    line = f"{label}: {result.num_inliers}/{result.num_matches} inliers, H (IR -> visible) in {out_dir / 'H.txt'}"
    if args.sample and extra.get("corner_error_px") is not None:
        line += f", corner error {extra['corner_error_px']:.2f} px"
    print(line)
    return 0


# ---------------------------------------------------------------- register --video


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``s2cv register``'s video options."""
    group = parser.add_argument_group("video (VIS and IR are two videos or two folders of frames)")
    group.add_argument("--video", action="store_true",
                       help="write OUT/registered.mp4: every IR frame warped onto its visible frame")
    group.add_argument("--H", metavar="H.txt",
                       help="fixed homography IR -> visible (H.txt of s2cv calibrate); default: re-estimate per frame")
    group.add_argument("--style", choices=STYLES, default="blend", help="output frames (default: %(default)s)")
    group.add_argument("--max-frames", type=int, help="stop after this many frames")
    group.add_argument("--step", type=int, default=1, help="use every STEP-th frame (default: 1)")
    group.add_argument("--fps", type=float, help=f"output frame rate (default: the input's; {FOLDER_FPS:g} for folders)")


def main_register(args: argparse.Namespace, parser: argparse.ArgumentParser, prog: str) -> int:
    """``s2cv register --video``: 0 when the video is written, 2 (one line on stderr) otherwise."""
    if not args.video:
        parser.error("--H applies to --video")
    if args.sample or args.vis is None or args.ir is None:
        parser.error("--video needs VIS and IR (two videos or two folders of frames), not --sample")
    if args.refine or args.transform != "homography" or args.ratio is not None:
        parser.error("--video registers each frame with a plain homography fit (no --refine, --ratio, --transform)")
    try:
        source = PairedFrames(args.vis, args.ir, step=args.step, max_frames=args.max_frames)
        H = load_homography(args.H) if args.H else None
        detector = None if H is not None else make_detector(args.model, args.nfeatures, args.backend, args.device)
        summary = write_registered_video(source, args.output, H=H, detector=detector, style=args.style, fps=args.fps,
                                         ransac_threshold=args.ransac_threshold, min_inliers=args.min_inliers)
    except (OSError, ValueError, TypeError, RegistrationError, RuntimeError) as exc:
        print(f"{prog}: error: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}", file=sys.stderr)
        return 2
    out = Path(args.output)
    if not summary["frames"]:
        print(f"{prog}: error: no frame could be read ({len(summary['skipped'])} skipped)", file=sys.stderr)
        return 2
    if not summary["frames_registered"]:
        (out / summary["output"]).unlink()
        print(f"{prog}: error: none of the {summary['frames']} frames registers on its own (see "
              f"{out / 'summary.json'}); calibrate the rig with s2cv calibrate and pass --H", file=sys.stderr)
        return 2
    print(f"wrote {out / summary['output']}: {summary['frames']} frames ({summary['homography']} homography, "
          f"{summary['frames_registered']} registered), {summary['frames_per_second']:.1f} frames/s")
    return 0


if __name__ == "__main__":
    sys.exit(main(prog="python -m s2cv.register"))
