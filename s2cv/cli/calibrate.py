"""``s2cv calibrate``: one homography for a fixed visible/IR rig from many frame pairs
(``s2cv.registration.calibrate``).

Also ``python -m s2cv calibrate`` and ``python -m s2cv.calibrate``::

    s2cv calibrate VIS IR -o OUT [--model NAME|PATH|sift] [--nfeatures N] [--no-refine]
                   [--max-frames N] [--step S] [--ransac-threshold T] [--min-inliers N]
                   [--accept-implausible]

VIS and IR are two folders of frames with matching names, or two video files. Writes
``H.txt`` (IR -> visible, as ``s2cv register``), ``summary.json`` (per-frame matches, inliers,
residuals, flags), ``overlay.png`` (a few frames, checkerboard) and ``residuals.png`` (with
matplotlib). Exit status 0 on success, 2 (one line on stderr) when the rig cannot be calibrated
or read: no frame registers, or the pooled fit is implausible (``--accept-implausible`` keeps it).

"""
from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Sequence

from s2cv.cli import add_detector_arguments, add_matching_arguments, fail
from s2cv.feature.detectors import make_detector
from s2cv.registration.register import resolve_matcher
from s2cv.cli.register import _scale_argument
from s2cv.registration.calibrate import FrameResult, calibrate, write_calibration
from s2cv.registration.io import RegistrationError


# ---------------------------------------------------------------- CLI


def build_parser(prog: str = "s2cv calibrate") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog,
        description="Calibrate a fixed visible/IR rig: one homography (IR -> visible) from the matches of many "
                    "frame pairs. Writes H.txt, summary.json, overlay.png and residuals.png.")
    p.add_argument("vis", help="visible frames: a folder of images, or a video file")
    p.add_argument("ir", help="IR frames: a folder of images with the same names, or a video file")
    p.add_argument("-o", "--output", "--out", required=True, help="output folder (created if missing)")
    add_detector_arguments(p)  # --model, --nfeatures, --backend, --device
    add_matching_arguments(p, refine_default=True)  # --matcher, --ransac-threshold, --min-inliers, --refine, --scale, ...
    p.add_argument("--max-frames", type=int, help="use at most this many frame pairs")
    p.add_argument("--step", type=int, default=1, help="use every STEP-th frame pair (default: 1)")
    p.add_argument("--refine-frames", type=int, default=16,
                   help="frames the refinement (on the best frames) uses at most (default: 16)")
    return p


def main(argv: Sequence[str] | None = None, prog: str = "s2cv calibrate") -> int:
    """CLI entry point; returns the exit status (0 calibrated, 2 failed or bad input)."""
    args = build_parser(prog).parse_args(argv)
    out_dir = Path(args.output)
    try:
        if args.nfeatures < 0:
            raise ValueError(f"--nfeatures must be >= 0, got {args.nfeatures}")
        matcher = resolve_matcher(args.matcher, None)
        model = matcher.det_model if matcher is not None and args.model == "default" else args.model
        detector = make_detector(model, args.nfeatures, args.backend, args.device)
        result = calibrate(args.vis, args.ir, detector, matcher=matcher, ransac_threshold=args.ransac_threshold,
                           min_inliers=args.min_inliers, max_frames=args.max_frames, step=args.step,
                           refine="auto" if args.refine is None else args.refine, refine_frames=args.refine_frames,
                           accept_implausible=args.accept_implausible, scale=_scale_argument(args.scale),
                           fov=tuple(args.fov) if args.fov else None, rotation=args.rotation)
        write_calibration(result, out_dir, {"model": args.model, "nfeatures": args.nfeatures, "refine": bool(result.refined_on),
                                            "step": args.step, "max_frames": args.max_frames,
                                            "accept_implausible": args.accept_implausible})
    except (OSError, ValueError, TypeError, RegistrationError, RuntimeError) as exc:
        return fail(prog, exc)
    skipped = f", {len(result.source.skipped)} unreadable skipped" if result.source.skipped else ""
    if not result.success:
        hint = "; --accept-implausible keeps it" if result.verdict is not None else ""
        return fail(prog, f"{result.message}{skipped} (see {out_dir / 'summary.json'}{hint})")
    flagged = result.flagged
    label = "calibrated" + (f" (IMPLAUSIBLE, kept by --accept-implausible: {result.verdict.reason})"
                            if result.implausible_accepted else "")
    print(f"{label} from {len(result.frames)} frame pairs{skipped}: {result.num_inliers}/{result.num_matches} "
          f"matches agree{_predicted(result.predicted_error)}{_view(result.view)}, H (IR -> visible) in {out_dir / 'H.txt'}; "
          f"{len(flagged)} flagged{' (' + _names(flagged) + ')' if flagged else ''}; "
          f"{result.ms_per_frame:.0f} ms per frame pair")
    return 0


def _predicted(error: float) -> str:
    return f", predicted corner error \u00b1{error:.1f} px" if math.isfinite(error) else ""


def _view(view: dict) -> str:
    return "" if view == {"scale": 1.0, "rotation_deg": 0} else \
        f" (at scale {view['scale']:g}, IR turned {view['rotation_deg']} deg)"


def _names(frames: Sequence[FrameResult], limit: int = 5) -> str:
    shown = ", ".join(f"{f.name}: {'/'.join(f.flags)}" for f in frames[:limit])
    return shown + (f" and {len(frames) - limit} more" if len(frames) > limit else "")

