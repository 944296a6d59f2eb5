"""What a TensorRT engine was built for, recorded beside it and checked before it runs.

Engines are tied to one model, one TensorRT version, one GPU generation and one range of
input shapes, and TensorRT itself reports a mismatch poorly (or not at all: a wrong model
just gives wrong keypoints). So every engine gets ``model.engine.json`` recording all of it,
and ``s2cv.torch_backends.backend_trt`` refuses an engine whose sidecar disagrees. The builder is
``s2cv.deploy.build_engine`` (or ``trt/build_engine.sh`` with ``trtexec``).
"""
from __future__ import annotations

import json
import os
import re
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
    model_sha256: str            # s2cv.deploy.export.weights_sha256 of the network
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
