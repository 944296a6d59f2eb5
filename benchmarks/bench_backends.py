"""Dense-map throughput/latency per inference backend, full detectAndCompute, and SIFT.

Run: ``python benchmarks/bench_backends.py [--model NAME_OR_PATH] [--quick]``.

Backends measured when available here: torch CPU, onnxruntime CPU (and CUDA), OpenCV's cv2.dnn
CPU, torch CUDA, TensorRT FP32/FP16 (engines built once into the s2cv cache; minutes on first
run). The onnxruntime-vs-opencv rows are what ``backend="auto"`` is set by on CPU
(``s2cv.feature.backends.AUTO_CPU_GRAPH_ORDER``). Sizes are
W x H, batch 1 and 8 for the dense maps, batch 1 for detectAndCompute. The network's FLOP count
(convolution MACs x 2, counted with forward hooks) turns times into GFLOP/s, printed next to
a measured fp32 matmul rate on the same device, so the distance to the hardware limit can be
read. SIFT (cv2.SIFT_create, same image, same run) is the yardstick: "vs SIFT" > 1 is faster.
"""
from __future__ import annotations

import argparse
import copy
import os
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import cv2
import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import s2cv  # noqa: E402
from s2cv.deploy.export import weights_sha256
from s2cv.models import build_model
from s2cv.models.checkpoint import load_model
from s2cv.torch_backends.backend_torch import TorchBackend
from s2cv.feature.graph import cache_dir
from s2cv.feature.image import pad_to_multiple, synthetic_image
from s2cv.feature.zoo import available_models


def real_image(w: int, h: int) -> np.ndarray:
    """The bundled RoadScene visible frame, resized: SIFT's cost depends on real texture."""
    sample = Path(s2cv.__file__).parent / "samples" / "roadscene_vis.png"
    image = cv2.imread(str(sample), cv2.IMREAD_GRAYSCALE)
    return cv2.resize(image, (w, h), interpolation=cv2.INTER_LINEAR) if image is not None else synthetic_image(h, w, seed=1)


@dataclass
class Timing:
    median_s: float
    p90_s: float
    best_s: float
    reps: int


def measure(fn: Callable[[], Any], min_time: float, max_reps: int, sync: Callable[[], None] = lambda: None) -> Timing:
    """Median over repeats (at least one, until ``min_time``) after one warm-up call (lazy init,
    autotuning, allocator growth)."""
    fn()
    sync()
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < max_reps and (not times or time.perf_counter() - start < min_time):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return timing(times)


def timing(times: list[float]) -> Timing:
    times = sorted(times)
    return Timing(statistics.median(times), times[min(len(times) - 1, int(0.9 * len(times)))], times[0], len(times))


def measure_interleaved(fn_a: Callable[[], Any], fn_b: Callable[[], Any], min_time: float, max_reps: int,
                        sync: Callable[[], None] = lambda: None) -> tuple[Timing, Timing]:
    """Time two functions in alternating calls: on a shared machine the load drifts, and a ratio of
    two separately timed blocks would measure the drift as much as the methods."""
    fn_a(), fn_b()
    sync()
    times: tuple[list[float], list[float]] = ([], [])
    start = time.perf_counter()
    while len(times[0]) < max_reps and (not times[0] or time.perf_counter() - start < 2 * min_time):
        for fn, out in ((fn_a, times[0]), (fn_b, times[1])):
            t0 = time.perf_counter()
            fn()
            sync()
            out.append(time.perf_counter() - t0)
    return timing(times[0]), timing(times[1])


def conv_flops(net: nn.Module, height: int, width: int) -> float:
    """FLOPs of one image: 2 x multiply-accumulates of every Conv2d/Linear, counted with hooks."""
    total = [0]

    def hook(module: nn.Module, inputs: Any, output: torch.Tensor) -> None:
        if isinstance(module, nn.Conv2d):
            kh, kw = module.kernel_size
            total[0] += output.numel() * (module.in_channels // module.groups) * kh * kw
        elif isinstance(module, nn.Linear):
            total[0] += output.numel() * module.in_features

    net = copy.deepcopy(net).cpu()
    handles = [m.register_forward_hook(hook) for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    try:
        with torch.inference_mode():
            net(torch.zeros(1, 1, height, width))
    finally:
        for h in handles:
            h.remove()
    return 2.0 * total[0]


def matmul_gflops(device: str, dtype: torch.dtype = torch.float32, n: int = 1024) -> float:
    """Attainable dense-math rate: best of repeated square matmuls (other load only slows it down)."""
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    t = measure(lambda: a @ b, 0.5, 100, sync)
    return 2 * n ** 3 / t.best_s / 1e9


def cpu_description() -> str:
    name, flags = "unknown CPU", ""
    try:
        text = Path("/proc/cpuinfo").read_text()
        for line in text.splitlines():
            if line.startswith("model name") and name == "unknown CPU":
                name = line.split(":", 1)[1].strip()
            if line.startswith("flags") and not flags:
                flags = line
    except OSError:
        pass
    simd = "AVX-512" if " avx512f" in flags else ("AVX2+FMA" if " fma" in flags else "no FMA")
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"{name}, {cores} usable cores, {simd}; torch threads {torch.get_num_threads()}"


# ----------------------------------------------------------------------------- backends
def trt_engine(net: nn.Module, precision: str) -> Path | None:
    """Engine for ``net`` in the cache, built on first use (minutes); None when that fails."""
    import tensorrt as trt

    from s2cv.deploy.build_engine import build_engine
    from s2cv.deploy.export import export_onnx
    from s2cv.feature.engine import ShapeProfile, normalize_trt_version, sidecar_path

    key = f"{weights_sha256(net)[:16]}-{precision}-trt{normalize_trt_version(trt.__version__)}"
    engine = cache_dir() / "engines" / f"bench-{key}.engine"
    if engine.is_file() and sidecar_path(engine).is_file():
        return engine
    onnx_path = cache_dir() / "engines" / f"bench-{weights_sha256(net)[:16]}.onnx"
    if not onnx_path.is_file():
        export_onnx(net, onnx_path, sizes=((240, 320),))
    print(f"  building TensorRT {precision} engine (first run only, minutes) -> {engine}", flush=True)
    try:
        build_engine(onnx_path, engine, ShapeProfile(), fp16=precision == "fp16",
                        timing_cache=cache_dir() / "engines" / "timing.cache")
    except Exception as exc:  # report and keep benchmarking the other backends
        print(f"  TensorRT {precision} build failed: {exc}")
        return None
    return engine


def make_backends(net: nn.Module, meta: dict[str, Any], wanted: set[str] | None) -> dict[str, tuple[Any, dict]]:
    """name -> (backend, S2NetFeature2D kwargs that rebuild the same backend)."""
    out: dict[str, tuple[Any, dict]] = {}

    def want(name: str) -> bool:
        return wanted is None or name in wanted

    if want("torch-cpu"):
        out["torch-cpu"] = (TorchBackend(copy.deepcopy(net), "cpu"), {"backend": "torch", "device": "cpu"})
    try:
        import onnxruntime as ort

        from s2cv.feature.backend_onnx import make_onnx

        if want("onnxruntime-cpu"):
            out["onnxruntime-cpu"] = (make_onnx(net, meta, "cpu"), {"backend": "onnxruntime", "device": "cpu"})
        if want("onnxruntime-cuda") and "CUDAExecutionProvider" in ort.get_available_providers():
            out["onnxruntime-cuda"] = (make_onnx(net, meta, "cuda"), {"backend": "onnxruntime", "device": "cuda"})
    except ImportError as exc:
        print(f"  onnxruntime skipped: {exc}")
    if want("opencv-cpu"):
        from s2cv.feature.backend_opencv import make_opencv

        out["opencv-cpu"] = (make_opencv(net, meta, "cpu"), {"backend": "opencv", "device": "cpu"})
    if torch.cuda.is_available():
        if want("torch-cuda"):
            out["torch-cuda"] = (TorchBackend(copy.deepcopy(net), "cuda"), {"backend": "torch", "device": "cuda"})
        try:
            from s2cv.torch_backends.backend_trt import ENGINE_ENV, make_tensorrt

            for precision in ("fp32", "fp16"):
                name = f"tensorrt-{precision}"
                if not want(name):
                    continue
                engine = trt_engine(net, precision)
                if engine is not None:
                    meta_e = {**meta, "engine": str(engine)}
                    os.environ.pop(ENGINE_ENV, None)
                    out[name] = (make_tensorrt(net, meta_e, "cuda"), {"backend": "tensorrt", "device": "cuda",
                                                                      "engine": str(engine)})
        except ImportError as exc:
            print(f"  tensorrt skipped: {exc}")
    return out


def detector(net: nn.Module, meta: dict[str, Any], spec: dict) -> s2cv.S2NetFeature2D:
    """A detector on the checkpoint (the graph runtimes then run its shipped graph), else on its
    own copy of the net (TorchBackend moves the module it is given)."""
    model, spec = meta.get("path") or copy.deepcopy(net), dict(spec)
    engine = spec.pop("engine", None)
    if engine:
        os.environ["S2CV_ENGINE"] = engine
    try:
        return s2cv.S2NetFeature2D(model, nfeatures=4096, **spec)
    finally:
        os.environ.pop("S2CV_ENGINE", None)


# ----------------------------------------------------------------------------- main
def parse_sizes(text: str) -> list[tuple[int, int]]:
    return [tuple(int(v) for v in s.lower().split("x")) for s in text.split(",")]  # type: ignore[misc]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", help="zoo name or checkpoint (default: zoo 'default', else random-init fast)")
    p.add_argument("--sizes", type=parse_sizes, help="WxH list (default 640x480,1920x1080)")
    p.add_argument("--batches", type=lambda s: [int(v) for v in s.split(",")], help="default 1,8")
    p.add_argument("--backends", type=lambda s: set(s.split(",")), help="subset, e.g. torch-cpu,onnxruntime-cpu")
    p.add_argument("--min-time", type=float, help="seconds of repeats per measurement (default 0.5)")
    p.add_argument("--max-call-s", type=float, help="skip a measurement whose single call is estimated "
                   "(from batch 1) to take longer (default 8 s, 3 s with --quick)")
    p.add_argument("--quick", action="store_true", help="smoke run: 640x480 only, fewer repeats")
    p.add_argument("--sections", type=lambda s: set(s.split(",")), default={"dense", "detect", "graph"},
                   help="what to measure: dense (maps), detect (detectAndCompute vs SIFT), graph (onnxruntime "
                        "vs opencv head to head, what backend='auto' is set by); default all")
    args = p.parse_args(argv)
    sizes = args.sizes or ([(640, 480)] if args.quick else [(640, 480), (1920, 1080)])
    batches = sorted(args.batches or [1, 8])
    min_time = args.min_time if args.min_time is not None else (0.2 if args.quick else 0.5)
    max_call = args.max_call_s if args.max_call_s is not None else (3.0 if args.quick else 8.0)
    max_reps = 20 if args.quick else 50

    if args.model:
        net, meta = load_model(args.model)
    elif "default" in available_models():
        net, meta = load_model("default")
    else:
        torch.manual_seed(0)
        net, meta = build_model("fast").eval(), {"arch": "fast", "path": None}
        print("note: no zoo weights shipped; timing a randomly initialised 'fast' net (same cost)")
    net = net.eval()
    print(f"model: {meta.get('arch')} ({meta.get('path') or 'in-memory'}), stride {net.stride}, D={net.descriptor_dim}")
    print(f"cpu: {cpu_description()}")
    peaks = {"cpu": matmul_gflops("cpu")}
    print(f"fp32 matmul reference: cpu {peaks['cpu']:.0f} GFLOP/s", end="")
    if torch.cuda.is_available():
        peaks["cuda"] = matmul_gflops("cuda", n=4096)
        peaks["cuda-fp16"] = matmul_gflops("cuda", torch.float16, n=4096)
        print(f"; {torch.cuda.get_device_name()} fp32 {peaks['cuda']:.0f} (TF32 "
              f"{'on' if torch.backends.cuda.matmul.allow_tf32 else 'off'}), fp16 {peaks['cuda-fp16']:.0f} GFLOP/s", end="")
    print()

    backends = make_backends(net, meta, args.backends)
    print(f"backends: {', '.join(backends) or 'none'}")
    cuda_sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)

    images = {(w, h): real_image(w, h) for w, h in sizes}
    if "dense" in args.sections:
        dense_maps(net, backends, images, batches, peaks, min_time, max_reps, max_call, cuda_sync)
    if "detect" in args.sections:
        detect_vs_sift(net, meta, backends, images, min_time, max_reps, cuda_sync)
    if "graph" in args.sections and meta.get("path"):
        graph_runtimes(meta, images, min_time, max_reps)
    return 0


def dense_maps(net: nn.Module, backends: dict[str, tuple[Any, dict]], images: dict[tuple[int, int], np.ndarray],
               batches: list[int], peaks: dict[str, float], min_time: float, max_reps: int, max_call: float,
               cuda_sync: Callable[[], None]) -> None:
    print("\n== dense maps (network only) ==")
    print(f"{'backend':<17} {'size':>9} {'B':>2} {'ms/batch':>9} {'p90':>8} {'img/s':>8} {'GFLOP/s':>8} {'%matmul':>8}")
    per_image: dict[tuple[str, int, int], float] = {}  # seconds per image at the smallest batch
    for w, h in images:
        gray = pad_to_multiple(images[(w, h)].astype(np.float32) / 255, net.pad_multiple)
        flops = conv_flops(net, *gray.shape)
        print(f"-- {w}x{h}: {flops / 1e9:.2f} GFLOP per image (conv MACs x 2, padded {gray.shape[1]}x{gray.shape[0]})")
        for b in batches:
            batch = np.repeat(gray[None, None], b, axis=0)
            for name, (backend, _) in backends.items():
                gpu = "cuda" in name or "tensorrt" in name
                estimate = per_image.get((name, w, h), 0.0) * b
                if estimate > max_call:
                    print(f"{name:<17} {w:>4}x{h:<4} {b:>2}  skipped: ~{estimate:.0f} s per call > --max-call-s {max_call:g}")
                    continue
                try:
                    t = measure(lambda: backend(batch), min_time, max_reps, cuda_sync if gpu else lambda: None)
                except Exception as exc:  # e.g. a batch outside an engine profile
                    print(f"{name:<17} {w:>4}x{h:<4} {b:>2}  failed: {type(exc).__name__}: {str(exc)[:80]}")
                    continue
                per_image.setdefault((name, w, h), t.median_s / b)
                rate = flops * b / t.median_s / 1e9
                peak = peaks["cuda-fp16" if name.endswith("fp16") else "cuda"] if gpu else peaks["cpu"]
                print(f"{name:<17} {w:>4}x{h:<4} {b:>2} {t.median_s * 1e3:9.1f} {t.p90_s * 1e3:8.1f} "
                      f"{b / t.median_s:8.1f} {rate:8.1f} {100 * rate / peak:7.0f}%")


def detect_vs_sift(net: nn.Module, meta: dict[str, Any], backends: dict[str, tuple[Any, dict]],
                   images: dict[tuple[int, int], np.ndarray], min_time: float, max_reps: int,
                   cuda_sync: Callable[[], None]) -> None:
    print("\n== detectAndCompute, batch 1 (image -> keypoints + descriptors) ==")
    print(f"{'method':<26} {'size':>9} {'ms':>8} {'p90':>8} {'kpts':>6} {'vs SIFT':>8}")
    print("(each method timed in alternation with cv2.SIFT on the same image; SIFT's row is its median over all)")
    sift = cv2.SIFT_create(nfeatures=4096)
    detectors = {name: detector(net, meta, spec) for name, (_, spec) in backends.items()}
    if meta.get("path"):  # what a user gets: the checkpoint through S2Net_create's defaults
        default = s2cv.S2Net_create(model=meta["path"])
        detectors[f"S2Net_create ({default._net_backend.name})"] = default
    for (w, h), img in images.items():
        n_sift = len(sift.detectAndCompute(img, None)[0])
        rows, sift_times = [], []
        for name, det in detectors.items():
            gpu = "cuda" in name or "tensorrt" in name or str(getattr(det._net_backend, "device", "")).startswith("cuda")
            t, t_sift = measure_interleaved(lambda: det.detectAndCompute(img, None),
                                            lambda: sift.detectAndCompute(img, None), min_time, max_reps,
                                            cuda_sync if gpu else lambda: None)
            n = len(det.detectAndCompute(img, None)[0])
            sift_times.append(t_sift.median_s)
            rows.append(f"{name:<26} {w:>4}x{h:<4} {t.median_s * 1e3:8.1f} {t.p90_s * 1e3:8.1f} {n:6d} "
                        f"{t_sift.median_s / t.median_s:7.2f}x")
        if sift_times:
            print(f"{'cv2.SIFT':<26} {w:>4}x{h:<4} {statistics.median(sift_times) * 1e3:8.1f} {'':>8} {n_sift:6d} {1.0:7.2f}x")
        print("\n".join(rows))


def graph_runtimes(meta: dict[str, Any], images: dict[tuple[int, int], np.ndarray], min_time: float,
                   max_reps: int) -> None:
    """onnxruntime and cv2.dnn on the checkpoint's shipped graph, timed in alternation: the ratio
    ``backend="auto"``'s CPU order (s2cv.feature.backends.AUTO_CPU_GRAPH_ORDER) is chosen by."""
    from s2cv.feature.backends import AUTO_CPU_GRAPH_ORDER

    print("\n== graph runtimes head to head: detectAndCompute on the shipped graph, in alternation ==")
    print(f"{'size':>9} {'onnxruntime ms':>15} {'opencv ms':>10} {'opencv speed-up':>16}  auto runs")
    ort = s2cv.S2Net_create(model=meta["path"], backend="onnxruntime", device="cpu")
    ocv = s2cv.S2Net_create(model=meta["path"], backend="opencv", device="cpu")
    auto = s2cv.S2Net_create(model=meta["path"], device="cpu")._net_backend.name
    for (w, h), img in images.items():
        t_ort, t_ocv = measure_interleaved(lambda: ort.detectAndCompute(img, None),
                                           lambda: ocv.detectAndCompute(img, None), min_time, max_reps)
        print(f"{w:>4}x{h:<4} {t_ort.median_s * 1e3:15.1f} {t_ocv.median_s * 1e3:10.1f} "
              f"{t_ort.median_s / t_ocv.median_s:15.2f}x  {auto} (order {', '.join(AUTO_CPU_GRAPH_ORDER)})")


if __name__ == "__main__":
    sys.exit(main())
