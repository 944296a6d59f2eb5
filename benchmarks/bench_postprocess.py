"""Compiled post-processing vs the NumPy reference on VGA-sized inputs.

Run: ``python benchmarks/bench_postprocess.py [--repeats N]``. Times
detect (K=4096) and descriptor sampling (128 x 120 x 160 map, stride 4)
separately and together; median of the repeats, in milliseconds. Sampling is
timed on a channel-major map and on a channels-last one (torch's CPU output,
read in place by the C++ sampler). Where ``s2cv._C_cuda`` and a GPU are
present, the CUDA kernels are timed too, on maps already on the device (as the
torch CUDA backend leaves them), synchronised, keypoints copied back to the host.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Callable

import cv2
import numpy as np

from s2cv.evaluation import reference as ref
from s2cv.feature import postprocess as pp

K = 4096
STRIDE = 4.0


def median_ms(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm-up: first-call allocation and thread start-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(times)


def inputs(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A smooth score map (blurred noise, like a network heatmap) and a descriptor map."""
    rng = np.random.default_rng(seed)
    scores = cv2.GaussianBlur(rng.random((480, 640), dtype=np.float32), (0, 0), 1.5)
    desc = rng.standard_normal((128, 120, 160)).astype(np.float32)
    return scores, desc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()

    scores, desc = inputs()
    desc_hwc = np.ascontiguousarray(desc.transpose(1, 2, 0)).transpose(2, 0, 1)  # (D, h, w) view, HWC memory
    kpts = pp.detect(scores, max_keypoints=K)[:, :2].copy()
    cases = {
        "detect": (lambda: pp.detect(scores, max_keypoints=K), lambda: ref.detect(scores, max_keypoints=K)),
        "sample": (lambda: pp.sample_descriptors(desc, kpts, STRIDE),
                   lambda: ref.sample_descriptors(desc, kpts, STRIDE)),
        "sample (HWC)": (lambda: pp.sample_descriptors(desc_hwc, kpts, STRIDE),
                         lambda: ref.sample_descriptors(desc_hwc, kpts, STRIDE)),
        "detect+sample": (
            lambda: pp.sample_descriptors(desc, pp.detect(scores, max_keypoints=K)[:, :2], STRIDE),
            lambda: ref.sample_descriptors(desc, ref.detect(scores, max_keypoints=K)[:, :2], STRIDE),
        ),
    }
    gpu = cuda_cases(scores, desc, kpts) if pp.HAS_CUDA else {}
    print(f"480x640 scores, {desc.shape[0]}x{desc.shape[1]}x{desc.shape[2]} descriptors (stride {STRIDE:g}), "
          f"K={K} ({len(kpts)} found), median of {args.repeats}")
    print(f"{'step':<15}{'C++ ms':>10}{'NumPy ms':>11}{'speed-up':>10}" + (f"{'CUDA ms':>10}" if gpu else ""))
    for name, (fast, slow) in cases.items():
        t_fast, t_slow = median_ms(fast, args.repeats), median_ms(slow, args.repeats)
        cuda = f"{median_ms(gpu[name], args.repeats):>10.3f}" if name in gpu else ""
        print(f"{name:<15}{t_fast:>10.2f}{t_slow:>11.2f}{t_slow / t_fast:>9.1f}x{cuda}")


def cuda_cases(scores: np.ndarray, desc: np.ndarray, kpts: np.ndarray) -> dict[str, Callable[[], object]]:
    """The CUDA kernels on device-resident maps; each call ends with its result on the host."""
    import torch

    s, d, k = (torch.from_numpy(a).cuda() for a in (scores, desc, kpts))

    def detect() -> torch.Tensor:
        return pp.detect_cuda(s, max_keypoints=K)

    return {
        "detect": lambda: detect().cpu(),
        "sample": lambda: pp.sample_descriptors_cuda(d, k, STRIDE).cpu(),
        "detect+sample": lambda: pp.sample_descriptors_cuda(d, detect()[:, :2].contiguous(), STRIDE).cpu(),
    }


if __name__ == "__main__":
    main()
