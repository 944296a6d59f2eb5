"""Build a TensorRT engine for an s2cv network, plus the sidecar that says what it is for.

    python -m s2cv.build_engine MODEL_OR_ONNX -o model.engine [--fp16] \\
        --min 1x1x64x64 --opt 1x1x480x640 --max 8x1x1088x1920 [--timing-cache trt.cache]

Engines are tied to one model, one TensorRT version, one GPU generation and one range of
input shapes, and TensorRT itself reports a mismatch poorly (or not at all: a wrong model
just gives wrong keypoints). So every engine gets ``model.engine.json`` recording all of it,
and ``s2cv.backend_trt`` refuses an engine whose sidecar disagrees. ``trt/build_engine.sh``
builds the same engine with ``trtexec`` and writes the sidecar through ``--sidecar-only``.

FP16: TensorRT 10 takes ``BuilderFlag.FP16`` on the float32 graph; TensorRT >= 11 removed it
(networks are strongly typed), so there the graph itself is converted (convolutions in float16,
``s2cv.export.to_mixed_fp16``) before building. The sidecar records which way was used.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

SIDECAR_FORMAT = "s2cv-engine/1"
DEFAULT_MIN, DEFAULT_OPT, DEFAULT_MAX = (1, 1, 64, 64), (1, 1, 480, 640), (8, 1, 1088, 1920)

Shape = tuple[int, int, int, int]


class EngineMismatchError(RuntimeError):
    """The engine was built for something else (model, TensorRT version, GPU or shapes)."""


# ----------------------------------------------------------------------------- shapes
def parse_shape(text: str) -> Shape:
    """'1x1x480x640' -> (1, 1, 480, 640); also accepts 'image:1x1x480x640' (trtexec style)."""
    body = text.split(":", 1)[1] if ":" in text else text
    parts = body.lower().replace(",", "x").split("x")
    try:
        dims = tuple(int(p) for p in parts)
    except ValueError:
        raise ValueError(f"expected a shape like 1x1x480x640 (BxCxHxW), got {text!r}") from None
    if len(dims) != 4 or any(d <= 0 for d in dims):
        raise ValueError(f"expected 4 positive dimensions BxCxHxW, got {text!r}")
    return dims  # type: ignore[return-value]


def format_shape(shape: Sequence[int]) -> str:
    return "x".join(str(int(d)) for d in shape)


@dataclass(frozen=True)
class ShapeProfile:
    """TensorRT optimisation profile of the ``image`` input."""

    min: Shape = DEFAULT_MIN
    opt: Shape = DEFAULT_OPT
    max: Shape = DEFAULT_MAX

    def validate(self, pad_multiple: int) -> None:
        for name, shape in (("min", self.min), ("opt", self.opt), ("max", self.max)):
            if len(shape) != 4 or shape[1] != 1:
                raise ValueError(f"--{name} {format_shape(shape)}: expected Bx1xHxW (one gray channel)")
            if shape[2] % pad_multiple or shape[3] % pad_multiple:
                raise ValueError(f"--{name} {format_shape(shape)}: H and W must be multiples of "
                                 f"pad_multiple={pad_multiple} (images are padded to them)")
        if not all(a <= b <= c for a, b, c in zip(self.min, self.opt, self.max)):
            raise ValueError(f"profile must satisfy min <= opt <= max per dimension, got "
                             f"min {format_shape(self.min)}, opt {format_shape(self.opt)}, max {format_shape(self.max)}")

    def contains(self, shape: Sequence[int]) -> bool:
        return len(shape) == 4 and all(lo <= d <= hi for lo, d, hi in zip(self.min, shape, self.max))

    def as_dict(self) -> dict[str, list[int]]:
        return {"min": list(self.min), "opt": list(self.opt), "max": list(self.max)}

    @classmethod
    def from_dict(cls, d: dict[str, Sequence[int]]) -> "ShapeProfile":
        return cls(*(tuple(int(v) for v in d[k]) for k in ("min", "opt", "max")))  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- sidecar
@dataclass(frozen=True)
class EngineInfo:
    """What an engine was built for; stored as ``<engine>.json``."""

    arch: str
    model_sha256: str            # s2cv.export.weights_sha256 of the network
    source_sha256: str           # checkpoint file sha256 ("" for in-memory nets)
    onnx_sha256: str             # the exact graph TensorRT parsed
    precision: str               # "fp32" | "fp16"
    fp16_mode: str               # "" | "builder-flag" (TensorRT 10) | "mixed-onnx" (typed graph)
    profile: ShapeProfile
    tensorrt_version: str        # "major.minor.patch"
    stride: int
    pad_multiple: int
    descriptor_dim: int
    builder: str = "s2cv.build_engine"
    device_name: str = ""
    compute_capability: str = ""  # "9.0"; "" when unknown at build time
    created: str = field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    format: str = SIDECAR_FORMAT

    def to_json(self) -> str:
        d = asdict(self)
        d["profile"] = self.profile.as_dict()
        return json.dumps(d, indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str, where: str = "sidecar") -> "EngineInfo":
        try:
            d = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{where} is not valid JSON: {exc}") from exc
        if not isinstance(d, dict) or d.get("format") != SIDECAR_FORMAT:
            got = d.get("format") if isinstance(d, dict) else type(d).__name__
            raise ValueError(f"{where}: expected format {SIDECAR_FORMAT!r}, got {got!r}")
        try:
            d["profile"] = ShapeProfile.from_dict(d["profile"])
            names = {f for f in cls.__dataclass_fields__}
            return cls(**{k: v for k, v in d.items() if k in names})
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{where}: malformed engine sidecar ({type(exc).__name__}: {exc})") from exc


def sidecar_path(engine: str | Path) -> Path:
    engine = Path(engine)
    return engine.with_name(engine.name + ".json")


def write_sidecar(engine: str | Path, info: EngineInfo) -> Path:
    path = sidecar_path(engine)
    tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
    tmp.write_text(info.to_json())
    tmp.replace(path)
    return path


def read_sidecar(engine: str | Path) -> EngineInfo:
    path = sidecar_path(engine)
    if not path.is_file():
        raise FileNotFoundError(f"engine {engine} has no sidecar {path.name}: cannot tell which model, shapes and "
                                f"TensorRT version it was built for. Rebuild it with `python -m s2cv.build_engine` "
                                f"or trt/build_engine.sh")
    return EngineInfo.from_json(path.read_text(), str(path))


def normalize_trt_version(version: str) -> str:
    """'10.3.0.26', 'v100300', '100300', '8601' -> 'major.minor.patch'."""
    v = version.strip().lstrip("vV")
    if re.fullmatch(r"\d+", v):
        n = int(v)
        if n >= 100000:   # TensorRT >= 10: major*10000 + minor*100 + patch
            return f"{n // 10000}.{n // 100 % 100}.{n % 100}"
        return f"{n // 1000}.{n // 100 % 10}.{n % 100}"  # TensorRT 8/9: major*1000 + minor*100 + patch
    parts = re.findall(r"\d+", v)
    if len(parts) < 2:
        raise ValueError(f"cannot read a TensorRT version from {version!r}")
    return ".".join((parts + ["0"])[:3])


def check_engine(info: EngineInfo, *, model_sha256: str | None = None, shape: Sequence[int] | None = None,
                 tensorrt_version: str | None = None, compute_capability: str | None = None,
                 descriptor_dim: int | None = None) -> None:
    """Raise EngineMismatchError when the engine cannot serve this request; None-valued checks are skipped."""
    if model_sha256 is not None and info.model_sha256 and model_sha256 != info.model_sha256:
        raise EngineMismatchError(
            f"engine was built for other weights: expected model sha256 {model_sha256[:16]}..., engine has "
            f"{info.model_sha256[:16]}... ({info.arch}); rebuild it for this model")
    if descriptor_dim is not None and descriptor_dim != info.descriptor_dim:
        raise EngineMismatchError(f"engine produces {info.descriptor_dim}-d descriptors, the model {descriptor_dim}-d")
    if tensorrt_version is not None:
        want, have = normalize_trt_version(tensorrt_version), normalize_trt_version(info.tensorrt_version)
        if want != have:
            raise EngineMismatchError(f"engine was built with TensorRT {have}, this is TensorRT {want}; "
                                      f"engines do not carry across versions, rebuild it")
    if compute_capability and info.compute_capability and compute_capability != info.compute_capability:
        raise EngineMismatchError(
            f"engine was built for compute capability {info.compute_capability} ({info.device_name or 'unknown GPU'}), "
            f"this GPU is {compute_capability}; rebuild it on this GPU")
    if shape is not None and not info.profile.contains(shape):
        p = info.profile
        raise EngineMismatchError(
            f"input shape {format_shape(shape)} is outside the engine's profile min {format_shape(p.min)} .. "
            f"max {format_shape(p.max)} (BxCxHxW, after padding to multiples of {info.pad_multiple}); "
            f"rebuild with a wider --min/--max or resize the images")


# ----------------------------------------------------------------------------- TensorRT
def import_tensorrt() -> Any:
    try:
        import tensorrt as trt
    except ImportError as exc:
        raise ImportError("TensorRT is not installed: pip install tensorrt (or 's2cv[tensorrt]'); "
                          "it needs an NVIDIA GPU and driver") from exc
    major = int(normalize_trt_version(trt.__version__).split(".")[0])
    if major < 10:
        raise ImportError(f"s2cv needs TensorRT >= 10, found {trt.__version__}")
    return trt


def _gpu_identity() -> tuple[str, str]:
    try:
        import torch

        if torch.cuda.is_available():
            major, minor = torch.cuda.get_device_capability()
            return torch.cuda.get_device_name(), f"{major}.{minor}"
    except Exception:  # torch without CUDA, or a driver problem: the sidecar just says "unknown"
        pass
    return "", ""


def prepare_onnx(model: str | Path, *, mixed_fp16: bool = False, workdir: str | Path | None = None) -> Path:
    """The ONNX file TensorRT should parse: ``model`` itself if it is an .onnx (converted when
    ``mixed_fp16``), else an export of the checkpoint / zoo model into ``workdir``."""
    import onnx

    from .export import arch_name, export_onnx, to_mixed_fp16
    from .graph import file_sha256, read_onnx_metadata
    from .zoo import load_model, resolve

    workdir = Path(workdir or tempfile.mkdtemp(prefix="s2cv-trt-"))
    src = Path(model)
    if src.suffix.lower() == ".onnx":
        info = read_onnx_metadata(src)
        if not mixed_fp16 or info["precision"] == "fp16":
            return src
        out = workdir / (src.stem + "-fp16.onnx")
        converted = to_mixed_fp16(onnx.load(str(src)))
        onnx.checker.check_model(converted, full_check=True)
        onnx.save(converted, str(out))
        return out
    net, meta = load_model(model)
    out = workdir / (Path(str(meta.get("path") or model)).stem + ("-fp16" if mixed_fp16 else "") + ".onnx")
    export_onnx(net, out, arch=arch_name(net, meta), source_sha256=file_sha256(resolve(model)), fp16=mixed_fp16,
                progress=True)
    return out


def trt_has_fp16_flag(trt: Any) -> bool:
    return hasattr(trt.BuilderFlag, "FP16")


def build_engine(model: str | Path, engine: str | Path, profile: ShapeProfile = ShapeProfile(), *,
                 fp16: bool = False, timing_cache: str | Path | None = None, workspace_gib: float | None = None,
                 verbose: bool = False) -> EngineInfo:
    """Build ``engine`` (and its sidecar) from an s2cv ONNX export, a checkpoint or a zoo name."""
    from tqdm import tqdm

    from .graph import file_sha256, read_onnx_metadata

    trt = import_tensorrt()
    engine = Path(engine)
    use_flag = fp16 and trt_has_fp16_flag(trt)
    with tempfile.TemporaryDirectory(prefix="s2cv-trt-") as workdir, \
            tqdm(total=4, desc="tensorrt build", unit="step", leave=False) as bar:
        bar.set_postfix_str("onnx")
        onnx_path = prepare_onnx(model, mixed_fp16=fp16 and not use_flag, workdir=workdir)
        meta = read_onnx_metadata(onnx_path)
        profile.validate(meta["pad_multiple"])
        bar.update()

        bar.set_postfix_str("parse")
        logger = trt.Logger(trt.Logger.VERBOSE if verbose else trt.Logger.WARNING)
        builder = trt.Builder(logger)
        network = builder.create_network(0)  # explicit batch is the only mode since TensorRT 10
        parser = trt.OnnxParser(network, logger)
        if not parser.parse(Path(onnx_path).read_bytes()):
            errors = "\n  ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
            raise RuntimeError(f"TensorRT could not parse {onnx_path}:\n  {errors}")
        config = builder.create_builder_config()
        if workspace_gib:
            config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gib * (1 << 30)))
        if use_flag:
            config.set_flag(trt.BuilderFlag.FP16)
        opt_profile = builder.create_optimization_profile()
        opt_profile.set_shape("image", profile.min, profile.opt, profile.max)
        config.add_optimization_profile(opt_profile)
        cache_file = Path(timing_cache) if timing_cache else None
        blob = cache_file.read_bytes() if cache_file and cache_file.is_file() else b""
        cache = config.create_timing_cache(blob)
        config.set_timing_cache(cache, False)
        bar.update()

        bar.set_postfix_str("build (minutes)")
        plan = builder.build_serialized_network(network, config)
        if plan is None:
            raise RuntimeError("TensorRT failed to build the engine (see its log above); try --verbose")
        bar.update()

        bar.set_postfix_str("write")
        engine.parent.mkdir(parents=True, exist_ok=True)
        tmp = engine.with_name(f"{engine.name}.tmp{os.getpid()}")
        tmp.write_bytes(memoryview(plan))
        tmp.replace(engine)
        if cache_file:
            cache_file.parent.mkdir(parents=True, exist_ok=True)
            cache_file.write_bytes(memoryview(config.get_timing_cache().serialize()))
        name, cc = _gpu_identity()
        info = EngineInfo(
            arch=meta["arch"], model_sha256=meta["weights_sha256"], source_sha256=meta["source_sha256"],
            onnx_sha256=file_sha256(onnx_path), precision="fp16" if fp16 or meta["precision"] == "fp16" else "fp32",
            fp16_mode="builder-flag" if use_flag else ("mixed-onnx" if meta["precision"] == "fp16" else ""),
            profile=profile, tensorrt_version=normalize_trt_version(trt.__version__), stride=meta["stride"],
            pad_multiple=meta["pad_multiple"], descriptor_dim=meta["descriptor_dim"], device_name=name,
            compute_capability=cc)
        write_sidecar(engine, info)
        bar.update()
    return info


def sidecar_for_existing(onnx_path: str | Path, engine: str | Path, profile: ShapeProfile, *, fp16: bool,
                         tensorrt_version: str, builder: str = "trtexec", compute_capability: str = "",
                         device_name: str = "") -> EngineInfo:
    """Sidecar for an engine built elsewhere (trtexec) from ``onnx_path``."""
    from .graph import file_sha256, read_onnx_metadata

    if not Path(engine).is_file():
        raise FileNotFoundError(f"engine {engine} does not exist; build it first")
    meta = read_onnx_metadata(onnx_path)
    profile.validate(meta["pad_multiple"])
    if not compute_capability:
        device_name, compute_capability = _gpu_identity()
    mixed = meta["precision"] == "fp16"
    info = EngineInfo(
        arch=meta["arch"], model_sha256=meta["weights_sha256"], source_sha256=meta["source_sha256"],
        onnx_sha256=file_sha256(onnx_path), precision="fp16" if fp16 or mixed else "fp32",
        fp16_mode="mixed-onnx" if mixed else ("builder-flag" if fp16 else ""), profile=profile,
        tensorrt_version=normalize_trt_version(tensorrt_version), stride=meta["stride"],
        pad_multiple=meta["pad_multiple"], descriptor_dim=meta["descriptor_dim"], builder=builder,
        device_name=device_name, compute_capability=compute_capability)
    write_sidecar(engine, info)
    return info


# ----------------------------------------------------------------------------- CLI
def _shape_arg(text: str) -> Shape:
    try:
        return parse_shape(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m s2cv.build_engine", description=__doc__.split("\n\n")[0])
    p.add_argument("model", help="s2cv .onnx export, checkpoint path or zoo name")
    p.add_argument("-o", "--output", help="engine file to write (required unless --prepare-onnx)")
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


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
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


if __name__ == "__main__":
    sys.exit(main())
