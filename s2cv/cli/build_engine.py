"""Build a TensorRT engine for an s2cv network, plus the sidecar that says what it is for.

    python -m s2cv.build_engine MODEL_OR_ONNX -o model.engine [--fp16] \\
        --min 1x1x64x64 --opt 1x1x480x640 --max 8x1x1088x1920 [--timing-cache trt.cache]

``trt/build_engine.sh`` builds the same engine with ``trtexec`` and writes the sidecar through
``--sidecar-only``. What the sidecar records and why: ``s2cv.feature.engine``.
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Sequence

from s2cv.deploy.build_engine import build_engine, prepare_onnx, sidecar_for_existing
from s2cv.feature.engine import (
    DEFAULT_MAX,
    DEFAULT_MIN,
    DEFAULT_OPT,
    Shape,
    ShapeProfile,
    format_shape,
    parse_shape,
    sidecar_path,
)


# ----------------------------------------------------------------------------- CLI
def _shape_arg(text: str) -> Shape:
    try:
        return parse_shape(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def build_parser(prog: str = "s2cv build-engine") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    p.add_argument("model", help="s2cv .onnx export, checkpoint path or zoo name")
    p.add_argument("-o", "--output", "--out", help="engine file to write (required unless --prepare-onnx)")
    p.add_argument("--fp16", action="store_true", help="half-precision engine")
    p.add_argument("--min", type=_shape_arg, default=DEFAULT_MIN, help=f"smallest input BxCxHxW ({format_shape(DEFAULT_MIN)})")
    p.add_argument("--opt", type=_shape_arg, default=DEFAULT_OPT, help=f"tuned input BxCxHxW ({format_shape(DEFAULT_OPT)})")
    p.add_argument("--max", type=_shape_arg, default=DEFAULT_MAX, help=f"largest input BxCxHxW ({format_shape(DEFAULT_MAX)})")
    p.add_argument("--timing-cache", help="TensorRT timing cache file (read if present, then updated)")
    p.add_argument("--workspace-gib", type=float, help="builder workspace limit in GiB")
    p.add_argument("--verbose", action="store_true", help="TensorRT verbose log")
    g = p.add_argument_group("trtexec helpers (used by trt/build_engine.sh)")
    g.add_argument("--prepare-onnx", metavar="OUT", help="only write the ONNX TensorRT should parse, then exit")
    g.add_argument("--mixed-fp16", action="store_true", help="with --prepare-onnx: convolutions in float16 (TensorRT >= 11)")
    g.add_argument("--sidecar-only", action="store_true", help="only write OUTPUT.json for an engine built by trtexec")
    g.add_argument("--tensorrt-version", help="with --sidecar-only: version that built it (10.3.0 or v100300)")
    g.add_argument("--compute-capability", default="", help="with --sidecar-only: GPU compute capability, e.g. 9.0")
    g.add_argument("--device-name", default="", help="with --sidecar-only: GPU name")
    return p


def main(argv: Sequence[str] | None = None, prog: str = "s2cv build-engine") -> int:
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    profile = ShapeProfile(args.min, args.opt, args.max)
    try:
        if args.prepare_onnx:
            out = Path(args.prepare_onnx)
            with tempfile.TemporaryDirectory(prefix="s2cv-trt-") as workdir:
                src = prepare_onnx(args.model, mixed_fp16=args.mixed_fp16, workdir=workdir)
                if src.resolve() != out.resolve():
                    out.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(src, out)
            print(out)
            return 0
        if not args.output:
            parser.error("-o/--output is required")
        if args.sidecar_only:
            if not args.tensorrt_version:
                parser.error("--sidecar-only needs --tensorrt-version")
            if Path(args.model).suffix.lower() != ".onnx":
                parser.error("--sidecar-only needs the .onnx the engine was built from")
            info = sidecar_for_existing(args.model, args.output, profile, fp16=args.fp16,
                                        tensorrt_version=args.tensorrt_version,
                                        compute_capability=args.compute_capability, device_name=args.device_name)
        else:
            info = build_engine(args.model, args.output, profile, fp16=args.fp16, timing_cache=args.timing_cache,
                                workspace_gib=args.workspace_gib, verbose=args.verbose)
    except (ImportError, RuntimeError, FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {args.output} and {sidecar_path(args.output).name}: {info.arch} {info.precision}"
          f"{' (' + info.fp16_mode + ')' if info.fp16_mode else ''}, TensorRT {info.tensorrt_version}, profile "
          f"{format_shape(info.profile.min)} / {format_shape(info.profile.opt)} / {format_shape(info.profile.max)}")
    return 0
