"""TensorRT backend: engine bookkeeping everywhere, engine builds and runs only with a GPU.

The sidecar checks, engine lookup, CLI helpers and trt/build_engine.sh (driven by a fake
trtexec) are plain Python/bash and run in CI; the engine tests skip without tensorrt + CUDA.
"""
from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import types
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import untrained_net

import s2cv
from s2cv.cli import build_engine as build_engine_cli
from s2cv.deploy import build_engine as be
from s2cv.torch_backends.backend_trt import ENGINE_ENV, engine_candidates, find_engine
from s2cv.feature.engine import EngineMismatchError, check_engine, parse_shape, read_sidecar

REPO = Path(__file__).resolve().parents[1]
HAS_TRT = importlib.util.find_spec("tensorrt") is not None
HAS_GPU = HAS_TRT and torch.cuda.is_available()
needs_gpu = pytest.mark.skipif(not HAS_GPU, reason="needs the tensorrt package and a CUDA GPU"
                               if not HAS_TRT else "needs a CUDA GPU visible to torch")


def info(**changes) -> be.EngineInfo:
    base = be.EngineInfo(
        arch="fast", model_sha256="a" * 64, source_sha256="", onnx_sha256="b" * 64, precision="fp32", fp16_mode="",
        profile=be.ShapeProfile((1, 1, 64, 64), (1, 1, 480, 640), (8, 1, 1088, 1920)), tensorrt_version="10.3.0",
        stride=4, pad_multiple=8, descriptor_dim=128, compute_capability="9.0", device_name="H100")
    return replace(base, **changes)


# ----------------------------------------------------------------------------- no GPU needed
@pytest.mark.skipif(HAS_GPU, reason="TensorRT and a GPU are present here")
def test_tensorrt_backend_is_a_clear_error_without_tensorrt_or_gpu():
    with pytest.raises((ImportError, RuntimeError)) as err:
        s2cv.S2NetFeature2D(untrained_net(), backend="tensorrt")
    assert "TensorRT" in str(err.value) or "CUDA" in str(err.value)


@pytest.mark.skipif(HAS_GPU, reason="TensorRT and a GPU are present here")
def test_auto_backend_falls_back_to_torch():
    det = s2cv.S2NetFeature2D(untrained_net(), backend="auto", device="cpu")
    assert det._net_backend.name == "torch"


def test_sidecar_round_trip(tmp_path):
    engine = tmp_path / "m.engine"
    engine.write_bytes(b"plan")
    written = info()
    assert be.write_sidecar(engine, written) == tmp_path / "m.engine.json"
    assert read_sidecar(engine) == written
    assert json.loads((tmp_path / "m.engine.json").read_text())["profile"]["max"] == [8, 1, 1088, 1920]


def test_sidecar_missing_or_foreign(tmp_path):
    engine = tmp_path / "m.engine"
    with pytest.raises(FileNotFoundError, match="no sidecar"):
        read_sidecar(engine)
    (tmp_path / "m.engine.json").write_text('{"format": "other"}')
    with pytest.raises(ValueError, match="expected format 's2cv-engine/1'"):
        read_sidecar(engine)
    (tmp_path / "m.engine.json").write_text('{"format": "s2cv-engine/1", "arch": "fast"}')
    with pytest.raises(ValueError, match="malformed"):
        read_sidecar(engine)


def test_check_engine_accepts_what_it_was_built_for():
    check_engine(info(), model_sha256="a" * 64, shape=(1, 1, 480, 640), tensorrt_version="10.3.0.26",
                    compute_capability="9.0", descriptor_dim=128)
    check_engine(info(), shape=(8, 1, 1088, 1920))
    check_engine(info(), shape=(1, 1, 64, 64))


def test_check_engine_rejects_other_weights():
    with pytest.raises(EngineMismatchError, match="built for other weights") as err:
        check_engine(info(), model_sha256="c" * 64)
    assert "cccc" in str(err.value) and "aaaa" in str(err.value)  # expected and actual


@pytest.mark.parametrize("shape", [(1, 1, 1088, 1928), (9, 1, 480, 640), (1, 1, 56, 640), (1, 1, 2000, 640)])
def test_check_engine_rejects_shapes_outside_the_profile(shape):
    with pytest.raises(EngineMismatchError, match="outside the engine's profile min 1x1x64x64 .. max 8x1x1088x1920"):
        check_engine(info(), shape=shape)


def test_check_engine_rejects_other_tensorrt_versions_and_gpus():
    with pytest.raises(EngineMismatchError, match="built with TensorRT 10.3.0, this is TensorRT 10.4.0"):
        check_engine(info(), tensorrt_version="10.4.0.1")
    with pytest.raises(EngineMismatchError, match="compute capability 9.0"):
        check_engine(info(), compute_capability="8.6")
    with pytest.raises(EngineMismatchError, match="256-d"):
        check_engine(info(descriptor_dim=256), descriptor_dim=128)


@pytest.mark.parametrize("text,want", [("10.3.0.26", "10.3.0"), ("v100300", "10.3.0"), ("101300", "10.13.0"),
                                       ("8601", "8.6.1"), ("11.2.1", "11.2.1"), ("10.8", "10.8.0")])
def test_normalize_trt_version(text, want):
    assert be.normalize_trt_version(text) == want


def test_shapes_and_profiles():
    assert parse_shape("1x1x480x640") == (1, 1, 480, 640)
    assert parse_shape("image:8x1x1088x1920") == (8, 1, 1088, 1920)
    for bad in ("1x480x640", "1x1xax640", "0x1x64x64", ""):
        with pytest.raises(ValueError, match="BxCxHxW"):
            parse_shape(bad)
    be.ShapeProfile().validate(8)
    with pytest.raises(ValueError, match="multiples of pad_multiple=8"):
        be.ShapeProfile(max=(8, 1, 1084, 1920)).validate(8)
    with pytest.raises(ValueError, match="min <= opt <= max"):
        be.ShapeProfile(opt=(16, 1, 480, 640)).validate(8)
    with pytest.raises(ValueError, match="one gray channel"):
        be.ShapeProfile(min=(1, 3, 64, 64)).validate(8)


def test_engine_lookup_order(tmp_path, monkeypatch):
    ckpt = tmp_path / "model.pt"
    monkeypatch.delenv(ENGINE_ENV, raising=False)
    with pytest.raises(FileNotFoundError, match="python -m s2cv.build_engine"):
        find_engine({"path": str(ckpt)})
    assert engine_candidates({"path": str(ckpt)}) == [tmp_path / "model.pt.engine", tmp_path / "model.engine"]
    (tmp_path / "model.engine").write_bytes(b"x")
    assert find_engine({"path": str(ckpt)}) == tmp_path / "model.engine"
    explicit = tmp_path / "other.engine"
    with pytest.raises(FileNotFoundError, match="meta\\['engine'\\]"):
        find_engine({"path": str(ckpt), "engine": str(explicit)})
    explicit.write_bytes(b"x")
    assert find_engine({"path": str(ckpt), "engine": str(explicit)}) == explicit
    monkeypatch.setenv(ENGINE_ENV, str(tmp_path / "env.engine"))
    with pytest.raises(FileNotFoundError, match=ENGINE_ENV):
        find_engine({"path": str(ckpt), "engine": str(explicit)})
    with pytest.raises(FileNotFoundError, match="in-memory"):
        monkeypatch.delenv(ENGINE_ENV)
        find_engine({"path": None})


@pytest.fixture(scope="module")
def onnx_file(tmp_path_factory) -> Path:
    pytest.importorskip("onnxruntime")
    from s2cv.deploy.export import export_onnx

    path = tmp_path_factory.mktemp("trt") / "fast.onnx"
    export_onnx(untrained_net(), path, sizes=((64, 64),))
    return path


def test_sidecar_only_cli(onnx_file, tmp_path):
    engine = tmp_path / "fast.engine"
    engine.write_bytes(b"plan")
    code = build_engine_cli.main([str(onnx_file), "-o", str(engine), "--sidecar-only", "--tensorrt-version", "v100300",
                    "--min", "1x1x64x64", "--opt", "1x1x128x128", "--max", "2x1x256x256",
                    "--compute-capability", "8.9", "--device-name", "L4"])
    assert code == 0
    got = read_sidecar(engine)
    from s2cv.deploy.export import weights_sha256
    from s2cv.feature.graph import file_sha256

    assert got.model_sha256 == weights_sha256(untrained_net()) and got.onnx_sha256 == file_sha256(onnx_file)
    assert (got.tensorrt_version, got.compute_capability, got.precision, got.builder) == ("10.3.0", "8.9", "fp32", "trtexec")
    assert got.profile == be.ShapeProfile((1, 1, 64, 64), (1, 1, 128, 128), (2, 1, 256, 256))


def test_build_engine_cli_without_tensorrt_is_a_clear_error(onnx_file, tmp_path, capsys):
    if HAS_TRT:
        pytest.skip("tensorrt is installed")
    assert build_engine_cli.main([str(onnx_file), "-o", str(tmp_path / "x.engine")]) == 1
    assert "TensorRT is not installed" in capsys.readouterr().err


def fake_tensorrt(version: str, has_fp16_flag: bool) -> tuple[types.ModuleType, dict]:
    """A stand-in for the tensorrt module recording what the builder is asked to do.

    Only the calls s2cv.build_engine makes exist, with the documented TensorRT 10/11 names,
    so a typo or a missing step fails here instead of on the first GPU machine.
    """
    calls: dict = {"flags": set(), "shapes": None, "parsed": None, "pool": None}

    class Parser:
        def __init__(self, network, logger):
            self.num_errors = 0

        def parse(self, data):
            calls["parsed"] = data
            return True

        def get_error(self, i):
            raise AssertionError("no errors")

    class Profile:
        def set_shape(self, name, lo, opt, hi):
            calls["shapes"] = (name, tuple(lo), tuple(opt), tuple(hi))

    class Cache:
        def serialize(self):
            return b"cache-v2"

    class Config:
        def set_memory_pool_limit(self, pool, size):
            calls["pool"] = (pool, size)

        def set_flag(self, flag):
            calls["flags"].add(flag)

        def add_optimization_profile(self, profile):
            calls["profile_added"] = True

        def create_timing_cache(self, blob):
            calls["cache_in"] = bytes(blob)
            return Cache()

        def set_timing_cache(self, cache, ignore_mismatch):
            return True

        def get_timing_cache(self):
            return Cache()

    class Builder:
        def __init__(self, logger):
            pass

        def create_network(self, flags):
            calls["network_flags"] = flags
            return object()

        def create_builder_config(self):
            return Config()

        def create_optimization_profile(self):
            return Profile()

        def build_serialized_network(self, network, config):
            return b"serialized-plan"

    trt = types.ModuleType("tensorrt")
    trt.__version__ = version
    trt.Logger = type("Logger", (), {"WARNING": 2, "VERBOSE": 4, "__init__": lambda self, level: None})
    trt.Builder, trt.OnnxParser = Builder, Parser
    trt.MemoryPoolType = types.SimpleNamespace(WORKSPACE="workspace")
    trt.BuilderFlag = types.SimpleNamespace(**({"FP16": "fp16"} if has_fp16_flag else {}), TF32="tf32")
    return trt, calls


@pytest.mark.parametrize("version,flag", [("10.3.0.26", True), ("11.2.1.2", False)])
def test_build_engine_drives_the_tensorrt_api(onnx_file, tmp_path, monkeypatch, version, flag):
    onnx = pytest.importorskip("onnx")
    trt, calls = fake_tensorrt(version, flag)
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    cache = tmp_path / "timing.cache"
    cache.write_bytes(b"cache-v1")
    engine = tmp_path / "e" / "fast.engine"
    profile = be.ShapeProfile((1, 1, 64, 64), (1, 1, 128, 128), (2, 1, 256, 256))
    got = be.build_engine(onnx_file, engine, profile, fp16=True, timing_cache=cache, workspace_gib=1)
    assert engine.read_bytes() == b"serialized-plan" and cache.read_bytes() == b"cache-v2"
    assert calls["cache_in"] == b"cache-v1" and calls["pool"] == ("workspace", 1 << 30)
    assert calls["shapes"] == ("image", (1, 1, 64, 64), (1, 1, 128, 128), (2, 1, 256, 256))
    parsed = onnx.load_from_string(calls["parsed"])
    halves = [t for t in parsed.graph.initializer if t.data_type == onnx.TensorProto.FLOAT16]
    if flag:   # TensorRT 10: float32 graph + BuilderFlag.FP16
        assert calls["flags"] == {"fp16"} and not halves and got.fp16_mode == "builder-flag"
    else:      # TensorRT 11: no precision flags; the graph carries float16
        assert calls["flags"] == set() and halves and got.fp16_mode == "mixed-onnx"
    assert read_sidecar(engine) == got
    assert (got.precision, got.tensorrt_version, got.profile) == ("fp16", version.rsplit(".", 1)[0], profile)
    from s2cv.deploy.export import weights_sha256

    assert got.model_sha256 == weights_sha256(untrained_net())


def test_old_tensorrt_is_refused(monkeypatch):
    trt, _ = fake_tensorrt("8.6.1", True)
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    with pytest.raises(ImportError, match="TensorRT >= 10, found 8.6.1"):
        be.import_tensorrt()


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
@pytest.mark.parametrize("version,fp16,mode", [("v100300", True, "builder-flag"), ("v110200", True, "mixed-onnx")])
def test_build_engine_sh_with_a_fake_trtexec(onnx_file, tmp_path, version, fp16, mode):
    """The script's plumbing: ONNX preparation, trtexec arguments, sidecar."""
    fake = tmp_path / "trtexec"
    log = tmp_path / "args.txt"
    fake.write_text(f"""#!/usr/bin/env bash
echo "&&&& RUNNING TensorRT.trtexec [TensorRT {version}] # trtexec $*"
[[ $1 == --help ]] && exit 0
echo "$@" > {log}
for a in "$@"; do case $a in --saveEngine=*) echo plan > "${{a#--saveEngine=}}";; esac; done
""")
    fake.chmod(0o755)
    engine = tmp_path / "out" / "fast.engine"
    env = {**os.environ, "TRTEXEC": str(fake), "PYTHON": sys.executable,
           "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""), "PATH": os.environ["PATH"]}
    cmd = ["bash", str(REPO / "trt" / "build_engine.sh"), str(onnx_file), str(engine),
           "--min", "1x1x64x64", "--opt", "1x1x128x128", "--max", "2x1x256x256", "--timing-cache", str(tmp_path / "tc")]
    if fp16:
        cmd.append("--fp16")
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    args = log.read_text()
    assert "--minShapes=image:1x1x64x64" in args and "--maxShapes=image:2x1x256x256" in args
    assert f"--timingCacheFile={tmp_path / 'tc'}" in args
    assert ("--fp16" in args.split()) == (mode == "builder-flag")
    got = read_sidecar(engine)
    assert got.builder == "trtexec" and got.precision == ("fp16" if fp16 else "fp32") and got.fp16_mode == mode
    assert got.tensorrt_version == be.normalize_trt_version(version)


def test_build_engine_sh_rejects_bad_shapes(tmp_path):
    proc = subprocess.run(["bash", str(REPO / "trt" / "build_engine.sh"), "m.onnx", "x.engine", "--min", "1x3x64x64"],
                          capture_output=True, text=True, env={**os.environ, "TRTEXEC": "/bin/true"})
    assert proc.returncode != 0 and "expected Bx1xHxW" in proc.stderr


# ----------------------------------------------------------------------------- GPU
TINY = be.ShapeProfile((1, 1, 64, 64), (1, 1, 128, 160), (2, 1, 256, 256))


@pytest.fixture(scope="module")
def engines(onnx_file, tmp_path_factory):
    if not HAS_GPU:
        pytest.skip("needs the tensorrt package and a CUDA GPU")
    out = tmp_path_factory.mktemp("engines")
    cache = out / "timing.cache"
    built = {}
    for precision in ("fp32", "fp16"):
        path = out / f"fast-{precision}.engine"
        be.build_engine(onnx_file, path, TINY, fp16=precision == "fp16", timing_cache=cache)
        built[precision] = path
    return built


@needs_gpu
@pytest.mark.parametrize("precision,atol,min_cos", [("fp32", 5e-3, 0.995), ("fp16", 3e-2, 0.97)])
def test_engine_matches_torch(engines, monkeypatch, precision, atol, min_cos):
    from s2cv.torch_backends.backend_trt import make_tensorrt

    monkeypatch.setenv(ENGINE_ENV, str(engines[precision]))
    net = untrained_net()
    backend = make_tensorrt(net, {"arch": "fast", "path": None}, "cuda")
    from s2cv.feature.image import synthetic_image

    img = synthetic_image(128, 160).astype(np.float32) / 255
    batch = np.stack([img[None], np.random.default_rng(0).random((1, 128, 160), dtype=np.float32)])
    maps = backend(batch)
    assert maps.scores.is_cuda and maps.scores.shape == (2, 128, 160) and maps.descriptors.shape == (2, 128, 32, 40)
    with torch.inference_mode():
        ref = net.cuda()(torch.from_numpy(batch).cuda())
    assert (maps.scores - ref["scores"][:, 0]).abs().max().item() < atol
    cos = (maps.descriptors * ref["descriptors"]).sum(1)
    assert cos.mean().item() > 0.999 and torch.quantile(cos.flatten().float(), 0.001).item() > min_cos
    with pytest.raises(EngineMismatchError, match="outside the engine's profile"):
        backend(np.zeros((1, 1, 512, 512), np.float32))


@needs_gpu
def test_engine_for_other_weights_is_refused(engines, monkeypatch):
    from s2cv.torch_backends.backend_trt import make_tensorrt

    monkeypatch.setenv(ENGINE_ENV, str(engines["fp32"]))
    with pytest.raises(EngineMismatchError, match="other weights"):
        make_tensorrt(untrained_net(seed=1), {"arch": "fast", "path": None}, "cuda")


@needs_gpu
def test_feature2d_on_tensorrt(engines, monkeypatch):
    from s2cv.feature.image import synthetic_image

    monkeypatch.setenv(ENGINE_ENV, str(engines["fp32"]))
    net = untrained_net()
    det = s2cv.S2NetFeature2D(net, backend="tensorrt", nfeatures=500)
    assert det._net_backend.name == "tensorrt"
    ref = s2cv.S2NetFeature2D(untrained_net(), backend="torch", device="cuda", nfeatures=500)
    image = synthetic_image(200, 250, seed=4)  # padded to 200x256: inside the tiny profile
    kp, d = det.detectAndCompute(image, None)
    kp_ref, _ = ref.detectAndCompute(image, None)
    assert d is not None and d.shape == (len(kp), 128) and len(kp) > 100
    a = np.array([k.pt for k in kp_ref])
    b = np.array([k.pt for k in kp])
    near = np.linalg.norm(a[:, None] - b[None], axis=2).min(1) <= 1.0
    assert near.mean() >= 0.9
