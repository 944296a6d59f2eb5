"""Build a TensorRT engine for an s2cv network (Python API), and its sidecar (``s2cv.feature.engine``).

FP16: TensorRT 10 takes ``BuilderFlag.FP16`` on the float32 graph; TensorRT >= 11 removed it
(networks are strongly typed), so there the graph itself is converted (convolutions in float16,
``s2cv.deploy.export.to_mixed_fp16``) before building. The sidecar records which way was used.

"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from s2cv.feature.graph import INPUT_NAME
from s2cv.feature.engine import EngineInfo, ShapeProfile, import_tensorrt, normalize_trt_version, write_sidecar


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

    from s2cv.deploy.export import arch_name, export_onnx, to_mixed_fp16
    from s2cv.models.checkpoint import load_model
    from s2cv.feature.graph import file_sha256, read_onnx_metadata
    from s2cv.feature.zoo import resolve

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

    from s2cv.feature.graph import file_sha256, read_onnx_metadata

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
        opt_profile.set_shape(INPUT_NAME, profile.min, profile.opt, profile.max)
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
    from s2cv.feature.graph import file_sha256, read_onnx_metadata

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
