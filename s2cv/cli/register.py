"""``s2cv register``: one pair, or two videos / folders of frames, registered from the command line.

Also ``python -m s2cv register`` and ``python -m s2cv.register``::

    s2cv register VIS IR -o OUT_DIR [--model NAME|PATH] [--nfeatures N] [--ratio R]
                  [--transform homography|affine|similarity] [--min-inliers N] [--refine]
                  [--accept-implausible]
    s2cv register --sample -o OUT_DIR        # the bundled RoadScene pair, no data needed
    s2cv register --sample visnir -o OUT_DIR # the bundled VIS-NIR pair
    s2cv register --video VIS IR -o OUT_DIR [--H H.txt]  # two videos / folders: s2cv.registration.video

writes ``matches.png``, ``overlay.png``, ``blend.png``, ``H.txt`` and ``summary.json``. Exit
status 0 on success, 2 (one line on stderr) when the pair cannot be registered or read, or when
the fit is implausible (``s2cv.registration.verdict``: e.g. two different scenes); ``--accept-implausible``
keeps such a fit, labelled as such in the output line, ``summary.json`` and ``H.txt``.
"""
from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any, Sequence

from s2cv.cli import add_detector_arguments, add_matching_arguments, fail
from s2cv.feature.detectors import make_detector
from s2cv.feature.image import read_image
from s2cv.registration.accuracy import DEFAULT_MAX_ERROR
from s2cv.registration.geometry import TRANSFORMS
from s2cv.registration.io import RegistrationError, load_homography
from s2cv.registration.register import (
    SAMPLES,
    register,
    resolve_matcher,
    sample_corner_error,
    sample_ground_truth,
    write_registration,
)
from s2cv.registration.video import FOLDER_FPS, STYLES, PairedFrames, write_registered_video


def build_parser(prog: str = "s2cv register") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog,
        description="Register an IR (thermal/NIR) image onto a visible image with s2cv features. "
                    "Writes matches.png, overlay.png, blend.png, H.txt (IR -> visible) and summary.json.",
    )
    p.add_argument("vis", nargs="?", help="visible image (PNG, TIFF, JPEG; 8 or 16 bit)")
    p.add_argument("ir", nargs="?", help="thermal / NIR image (8 or 16 bit, any size)")
    p.add_argument("-o", "--output", "--out", required=True, help="output folder (created if missing)")
    p.add_argument("--sample", nargs="?", const="roadscene", choices=sorted(SAMPLES),
                   help="use a bundled pair (default: roadscene) and report the corner error against its ground truth")
    add_detector_arguments(p)  # --model, --nfeatures, --backend, --device
    add_matching_arguments(p)  # --matcher, --ransac-threshold, --min-inliers, --refine, --scale, ...
    p.add_argument("--ratio", type=float, help="also apply Lowe's ratio test with this ratio (e.g. 0.9)")
    p.add_argument("--transform", choices=TRANSFORMS, default="homography")
    p.add_argument("--max-error", type=float, default=DEFAULT_MAX_ERROR,
                   help="refuse a fit whose predicted corner error is larger, px of the coarser image "
                        "(default: %(default)g; inf: no limit)")
    add_arguments(p)  # --video, --H, ...
    return p


def main(argv: Sequence[str] | None = None, prog: str = "s2cv register") -> int:
    """CLI entry point; returns the exit status (0 registered, 2 failed or bad input)."""
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    if args.video or args.H:
        return main_video(args, parser, prog)
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
        matcher = resolve_matcher(args.matcher, args.ratio)
        model = matcher.det_model if matcher is not None and args.model == "default" else args.model
        detector = make_detector(model, args.nfeatures, args.backend, args.device)
        result = register(vis, ir, detector, matcher=matcher, ratio=args.ratio, transform=args.transform,
                          ransac_threshold=args.ransac_threshold, min_inliers=args.min_inliers, refine=args.refine,
                          accept_implausible=args.accept_implausible, max_error=args.max_error,
                          scale=_scale_argument(args.scale), fov=tuple(args.fov) if args.fov else None,
                          rotation=args.rotation)
        extra: dict[str, Any] = {
            "model": model, "matcher": args.matcher, "nfeatures": args.nfeatures, "ratio": args.ratio, "refine": args.refine,
            "accept_implausible": args.accept_implausible,
            "scale_option": args.scale, "fov": args.fov, "rotation": args.rotation,
            "vis": str(vis_path), "ir": str(ir_path),
            "vis_shape": list(vis.shape), "ir_shape": list(ir.shape),
            "vis_dtype": str(vis.dtype), "ir_dtype": str(ir.dtype),
        }
        if args.sample:
            err = sample_corner_error(result, sample_ground_truth(args.sample))
            extra["corner_error_px"] = err if math.isfinite(err) else None
        write_registration(result, vis, ir, out_dir, extra)
    except (OSError, ValueError, TypeError, RegistrationError, RuntimeError) as exc:
        return fail(prog, exc)
    if not result.success:
        hint = "; --accept-implausible keeps it" if result.verdict is not None and not result.verdict.ok else ""
        return fail(prog, f"registration failed: {result.message} (see {out_dir / 'matches.png'}{hint})")
    label = "registered"
    if result.implausible_accepted:
        label += f" (IMPLAUSIBLE, kept by --accept-implausible: {result.verdict.reason})"
    line = f"{label}: {result.num_inliers}/{result.num_matches} inliers"
    if math.isfinite(result.predicted_error):
        line += f", predicted corner error \u00b1{result.predicted_error:.1f} px"
    if result.view != {"scale": 1.0, "rotation_deg": 0}:
        line += f" (found at scale {result.view['scale']:g}, IR turned {result.view['rotation_deg']} deg)"
    agreement = result.verdict.view_disagreement_px if result.verdict is not None else math.inf
    if math.isfinite(agreement):  # accepted on the search's corroboration (search.Detections.corroborate)
        line += f", confirmed by a second view within {agreement:.1f} px"
    line += f", H (IR -> visible) in {out_dir / 'H.txt'}"
    if args.sample and extra.get("corner_error_px") is not None:
        line += f", corner error {extra['corner_error_px']:.2f} px"
    print(line)
    return 0


def _scale_argument(text: str) -> float | str:
    """--scale: 'auto', a number or a fraction such as 1/2."""
    if text == "auto":
        return text
    try:
        num, _, den = text.partition("/")
        return float(num) / float(den) if den else float(num)
    except (ValueError, ZeroDivisionError):
        raise ValueError(f"--scale must be auto, a number or a fraction such as 1/2, got {text!r}") from None


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


def main_video(args: argparse.Namespace, parser: argparse.ArgumentParser, prog: str) -> int:
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
        return fail(prog, exc)
    out = Path(args.output)
    if not summary["frames"]:
        return fail(prog, f"no frame could be read ({len(summary['skipped'])} skipped)")
    if not summary["frames_registered"]:
        (out / summary["output"]).unlink()
        return fail(prog, f"none of the {summary['frames']} frames registers on its own (see "
                           f"{out / 'summary.json'}); calibrate the rig with s2cv calibrate and pass --H")
    print(f"wrote {out / summary['output']}: {summary['frames']} frames ({summary['homography']} homography, "
          f"{summary['frames_registered']} registered), {summary['frames_per_second']:.1f} frames/s")
    return 0

