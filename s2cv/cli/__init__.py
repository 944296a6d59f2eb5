"""The commands: ``s2cv NAME`` (``main.py`` dispatches) and ``python -m s2cv.NAME``.

One module per command (``register``, ``calibrate``, ``train``, ``evaluate``, ``export``,
``build_engine``, ``convert``), each thin over a room and in one style: ``build_parser(prog)``
builds its parser (``prog="s2cv NAME"``), ``main(argv=None, prog=...)`` returns the exit status,
the output is ``-o/--output`` (``--out`` still accepted), and errors a user can fix end in
``fail``: one line on stderr, exit status 2.
"""
from __future__ import annotations

import argparse
import sys
import types
from typing import Any, Callable


def fail(prog: str, error: str | Exception) -> int:
    """Exit status 2 with one line on stderr: the message, or an exception's first line (its type if empty)."""
    message = str(error).splitlines()[0] if str(error) else type(error).__name__
    print(f"{prog}: error: {message}", file=sys.stderr)
    return 2


def add_detector_arguments(p: argparse.ArgumentParser) -> None:
    """The detector options of ``register`` and ``calibrate`` (``s2cv.feature.detectors.make_detector``)."""
    p.add_argument("--model", default="default",
                   help="zoo name or checkpoint path (default: %(default)s); sift, orb, akaze or brisk use OpenCV's "
                        "detector as a baseline")
    p.add_argument("--nfeatures", type=int, default=4096, help="keypoints per image (default: %(default)s)")
    p.add_argument("--backend", default="auto",
                   help="inference backend: auto, onnxruntime, opencv, torch, tensorrt (default: auto)")
    p.add_argument("--device", default="auto",
                   help="device of the torch, ONNX Runtime and TensorRT backends: auto, cpu, cuda, cuda:N (default: auto)")


def add_matching_arguments(p: argparse.ArgumentParser, refine_default: bool = False) -> None:
    """The matching, fitting and view options of ``register`` and ``calibrate`` (``calibrate`` pools
    its frames' matches into one fit): --matcher, --ransac-threshold, --min-inliers, --refine,
    --accept-implausible, --scale, --fov, --rotation."""
    from s2cv.registration.search import ROTATIONS

    p.add_argument("--matcher", choices=("mnn", "glue"), default="mnn",
                   help="mnn: mutual nearest neighbours; glue: the learned S2Glue matcher (S2Glue_create(); "
                        "the detector is then the matcher's own, unless --model names another)")
    p.add_argument("--ransac-threshold", type=float, default=3.0, help="inlier threshold, px (default: 3)")
    p.add_argument("--min-inliers", type=int, default=12,
                   help="fewer inliers (calibrate: pooled over the frames) = failure (default: 12)")
    if refine_default:  # calibrate: on unless --no-refine (s2cv models; OpenCV's detectors have no dense maps)
        p.add_argument("--refine", action=argparse.BooleanOptionalAction, default=None,
                       help="polish the pooled homography on the dense descriptor maps (default: on for s2cv "
                            "models; --no-refine is about 4x faster and less accurate: docs/results.md)")
    else:
        p.add_argument("--refine", action="store_true",
                       help="polish the homography on the dense descriptor maps (s2cv models; slower: docs/results.md)")
    p.add_argument("--accept-implausible", action="store_true",
                   help="keep a fit the plausibility verdict refuses (labelled IMPLAUSIBLE in the output, H.txt "
                        "and summary.json)")
    p.add_argument("--scale", default="auto",
                   help="visible pixels per IR pixel (e.g. 2 for a visible camera with twice the thermal's pixel "
                        "density), 1/8 to 8; default auto: 1, searched from 1/4 to 4 when that fails")
    p.add_argument("--fov", nargs=2, type=float, metavar=("VIS_DEG", "IR_DEG"),
                   help="horizontal fields of view of the two cameras: gives --scale from them")
    p.add_argument("--rotation", choices=ROTATIONS, default="auto",
                   help="auto: up to about +-30 deg of roll; any: also try the IR image turned by 90/180/270 "
                        "and 45 deg steps (slower)")


def callable_module(name: str, function: Callable[..., Any]) -> None:
    """Make the module ``name`` callable as ``function``. ``s2cv.register`` and ``s2cv.calibrate``
    are functions of the package and also modules (``python -m s2cv.register``, old imports such
    as ``from s2cv.register import register``); importing such a module puts it in the package's
    attribute in place of the function, so the module must call like the function."""
    module = sys.modules[name]
    call = {"__call__": lambda self, *args, **kwargs: function(*args, **kwargs), "__doc__": function.__doc__}
    module.__class__ = type("CallableModule", (types.ModuleType,), call)
