"""Export an s2cv network to ONNX, checked against PyTorch before the file is written.

    python -m s2cv.export MODEL -o model.onnx      # MODEL: zoo name or checkpoint path
    python -m s2cv.export MODEL --format cv-xfeat -o xfeat.onnx   # for cv2.XFeat_create (s2cv.deploy.export_xfeat)
    s2cv export MATCHER --format cv-lightglue -o glue.onnx  # for cv2.LightGlueMatcher / S2Glue_create (export_glue)

What the graph holds and why every export is validated: ``s2cv.deploy.export``.
"""
from __future__ import annotations

import argparse
import sys
from typing import Any, Callable, Sequence

from s2cv.deploy import export_xfeat
from s2cv.deploy.export import (
    DEFAULT_OPSET,
    DEFAULT_SIZES,
    FP16_TOLERANCE,
    FP32_TOLERANCE,
    ExportValidationError,
    Tolerance,
    export_model,
)
from s2cv.deploy.export_xfeat import DEFAULT_SIZE
from s2cv.feature.image import read_image


# ----------------------------------------------------------------------------- CLI
def _sizes(text: str) -> list[tuple[int, int]]:
    out = []
    for item in text.split(","):
        try:
            h, w = (int(v) for v in item.lower().split("x"))
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected sizes like 240x320,480x640 (HxW), got {text!r}") from None
        out.append((h, w))
    return out


def build_parser(prog: str = "s2cv export") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    p.add_argument("model", help="zoo name (see s2cv.available_models()) or checkpoint path")
    p.add_argument("-o", "--output", "--out", required=True, help="ONNX file to write")
    p.add_argument("--opset", type=int, default=DEFAULT_OPSET, help="ONNX opset (>= 17)")
    p.add_argument("--fp16", action="store_true", help="convolutions in float16 (I/O stays float32)")
    p.add_argument("--image", help="validation image (default: a shipped sample or a synthetic scene)")
    p.add_argument("--sizes", type=_sizes, default=list(DEFAULT_SIZES), help="validation sizes HxW,HxW")
    p.add_argument("--scores-atol", type=float, help="max |scores diff| (default 1e-3, 1e-2 with --fp16)")
    p.add_argument("--min-cosine", type=float, help="min descriptor cosine (default 0.999, 0.98 with --fp16)")
    p.add_argument("--no-validate", action="store_true", help="skip the ONNX Runtime comparison")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.add_argument("--format", choices=("s2cv", "cv-xfeat", "cv-lightglue"), default="s2cv",
                   help="s2cv: the dense-maps graph S2Net_create runs (default); cv-xfeat: OpenCV's cv::XFeat "
                        "contract for cv2.XFeat_create (XFeat-layout models only); cv-lightglue: a matcher "
                        "(glue zoo name or checkpoint) for s2cv.S2Glue_create and OpenCV's cv2.LightGlueMatcher")
    p.add_argument("--size", type=int, help="cv-xfeat only: the graph's fixed input size S (S x S, default 640, "
                   "cv::XFeat's default inputSize)")
    return p


def _run_export(export: Callable[[], Any]) -> tuple[Any, int]:
    """Run an export and print its checks: (report, 0), or (None, status) with the error on stderr
    (status 1: the graph failed validation, 2: bad input)."""
    try:
        report = export()
    except ExportValidationError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return None, 1
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return None, 2
    for check in report.checks:
        print(check.line())
    return report, 0


def _export_network(args: argparse.Namespace, size: int) -> Any:
    """``--format s2cv`` or ``cv-xfeat`` (graph input size ``size``): the network's export report."""
    image = read_image(args.image) if args.image else None
    if args.format == "cv-xfeat":
        return export_xfeat.export_model(args.model, args.output, size, args.opset,
                                         validate_graph=not args.no_validate, image=image)
    default = FP16_TOLERANCE if args.fp16 else FP32_TOLERANCE
    tolerance = Tolerance(args.scores_atol if args.scores_atol is not None else default.scores_atol,
                          args.min_cosine if args.min_cosine is not None else default.min_cosine)
    return export_model(args.model, args.output, args.opset, fp16=args.fp16, validate=not args.no_validate,
                        image=image, sizes=args.sizes, tolerance=tolerance, progress=not args.quiet)


def _export_matcher(args: argparse.Namespace) -> int:
    """``--format cv-lightglue``: an S2Glue matcher's graph (s2cv.deploy.export_glue)."""
    from s2cv.deploy.export_glue import export_matcher

    report, status = _run_export(lambda: export_matcher(args.model, args.output, args.opset,
                                                        validate_graph=not args.no_validate))
    if report is None:
        return status
    print(f"wrote {report.path} (S2Glue for S2Net_create(model={report.metadata['s2cv.det_model']!r}), "
          f"{report.metadata['s2cv.descriptor_dim']}-d descriptors); run it with "
          f"m = cv2.LightGlueMatcher_create({str(report.path)!r}, 0.1, type=cv2.LG_DISK); "
          f"m.setKeypointNormalization(cv2.LG_NORM_MAX_SIDE)  or  s2cv.S2Glue_create({str(report.path)!r})")
    return 0


def main(argv: Sequence[str] | None = None, prog: str = "s2cv export") -> int:
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    if args.format == "cv-lightglue":
        return _export_matcher(args)
    if args.format == "cv-xfeat":
        if args.fp16 or args.scores_atol is not None or args.min_cosine is not None:
            parser.error("--fp16, --scores-atol and --min-cosine are for --format s2cv")
    elif args.size is not None:
        parser.error("--size is for --format cv-xfeat (s2cv graphs take any size)")
    size = DEFAULT_SIZE if args.size is None else args.size
    report, status = _run_export(lambda: _export_network(args, size))
    if report is None:
        return status
    m = report.metadata
    if args.format == "cv-xfeat":
        print(f"wrote {report.path} (cv::XFeat graph of {m['s2cv.arch']}, input 1x1x{size}x{size}, "
              f"weights {m['s2cv.weights_sha256'][:12]}); run it with "
              f"cv2.XFeat_create({str(report.path)!r}, inputSize=({size}, {size}))")
    else:
        print(f"wrote {report.path} ({m['s2cv.arch']}, {m['s2cv.precision']}, opset {args.opset}, "
              f"stride {m['s2cv.stride']}, D={m['s2cv.descriptor_dim']}, weights {m['s2cv.weights_sha256'][:12]})")
    return 0
