"""s2cv.feature.postprocess (compiled) against the NumPy reference, known answers,
torch.grid_sample, and every documented error."""

from __future__ import annotations

import sys
import threading

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from s2cv.evaluation import reference as ref
from s2cv.feature import postprocess as pp

torch = pytest.importorskip("torch")
F = torch.nn.functional


def assert_same_keypoints(got: np.ndarray, want: np.ndarray) -> None:
    """Same pixels in the same order with the same scores; sub-pixel
    positions may differ by float rounding only."""
    assert got.dtype == np.float32 and got.ndim == 2 and got.shape[1] == 3
    assert got.shape == want.shape
    np.testing.assert_array_equal(got[:, 2], want[:, 2])
    np.testing.assert_allclose(got[:, :2], want[:, :2], rtol=0, atol=1e-5)


def smooth_map(shape: tuple[int, int], seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    noise = torch.from_numpy(rng.random(shape, dtype=np.float32))[None, None]
    return F.avg_pool2d(noise, 5, stride=1, padding=2, count_include_pad=False)[0, 0].numpy()


# --- detect: agreement with the reference ---------------------------------


@pytest.mark.parametrize("shape", [(1, 1), (3, 5), (2, 9), (17, 23), (64, 48)])
@pytest.mark.parametrize("nms_radius", [0, 1, 2, 4])
@pytest.mark.parametrize("border", [0, 1, 4])
@pytest.mark.parametrize("subpixel", [False, True])
def test_detect_matches_reference_random(shape, nms_radius, border, subpixel):
    s = np.random.default_rng(shape[0] * 100 + shape[1]).random(shape, dtype=np.float32)
    args = dict(nms_radius=nms_radius, border=border, threshold=0.1, subpixel=subpixel)
    assert_same_keypoints(pp.detect(s, **args), ref.detect(s, **args))


@pytest.mark.parametrize("nms_radius", [1, 2, 3, 8])
@pytest.mark.parametrize("max_keypoints", [0, 1, 500, 4096])
def test_detect_matches_reference_vga(nms_radius, max_keypoints):
    s = smooth_map((480, 640), seed=nms_radius)
    args = dict(nms_radius=nms_radius, max_keypoints=max_keypoints)
    got = pp.detect(s, **args)
    assert_same_keypoints(got, ref.detect(s, **args))
    assert len(got) > 0


def test_detect_negative_scores_and_threshold():
    s = np.random.default_rng(3).standard_normal((40, 50)).astype(np.float32) - 3.0
    args = dict(threshold=-3.5, border=2)
    got = pp.detect(s, **args)
    assert len(got) > 0 and (got[:, 2] > -3.5).all()
    assert_same_keypoints(got, ref.detect(s, **args))


@pytest.mark.parametrize("levels", [2, 3, 5])
@pytest.mark.parametrize("nms_radius", [1, 2, 3])
def test_detect_plateaus_match_reference(levels, nms_radius):
    s = np.random.default_rng(levels).integers(0, levels, (61, 47)).astype(np.float32) / levels
    for args in (dict(nms_radius=nms_radius), dict(nms_radius=nms_radius, max_keypoints=37)):
        assert_same_keypoints(pp.detect(s, threshold=-1.0, **args), ref.detect(s, threshold=-1.0, **args))


def test_detect_constant_map_keeps_every_inner_pixel_in_raster_order():
    s = np.full((12, 15), 0.5, np.float32)
    got = pp.detect(s, nms_radius=2, border=3, subpixel=True)
    ys, xs = np.mgrid[3:9, 3:12]
    np.testing.assert_array_equal(got[:, 0], xs.ravel())
    np.testing.assert_array_equal(got[:, 1], ys.ravel())
    np.testing.assert_array_equal(got[:, 2], 0.5)


def test_detect_plateau_keeps_all_pixels_sorted_by_y_then_x():
    s = np.zeros((9, 9), np.float32)
    s[4:6, 3:5] = 1.0  # 2x2 plateau
    s[1, 7] = 0.5
    got = pp.detect(s, nms_radius=2, border=0, subpixel=False)
    np.testing.assert_array_equal(got, [[3, 4, 1], [4, 4, 1], [3, 5, 1], [4, 5, 1], [7, 1, 0.5]])


def test_detect_suppresses_weaker_neighbour_within_radius_only():
    s = np.zeros((20, 20), np.float32)
    s[10, 10], s[10, 12], s[10, 15] = 1.0, 0.9, 0.8
    got = pp.detect(s, nms_radius=2, border=0, subpixel=False)
    np.testing.assert_array_equal(got, np.array([[10, 10, 1.0], [15, 10, 0.8]], np.float32))


def test_detect_border_and_edges():
    s = np.zeros((10, 12), np.float32)
    s[0, 0], s[9, 11], s[4, 6], s[1, 6] = 1.0, 0.9, 0.8, 0.7
    assert pp.detect(s, border=0, subpixel=False)[:, 2].tolist() == pytest.approx([1.0, 0.9, 0.8, 0.7])
    assert pp.detect(s, border=1, subpixel=False)[:, 2].tolist() == pytest.approx([0.8, 0.7])
    assert pp.detect(s, border=2, subpixel=False)[:, 2].tolist() == pytest.approx([0.8])
    assert pp.detect(s, border=6).shape == (0, 3)  # border wider than half the map


def test_detect_threshold_is_strict():
    s = np.zeros((9, 9), np.float32)
    s[4, 4] = 0.5
    assert len(pp.detect(s, threshold=0.5)) == 0
    assert len(pp.detect(s, threshold=0.49)) == 1


def test_detect_mask():
    rng = np.random.default_rng(7)
    s = rng.random((50, 70), dtype=np.float32)
    mask = rng.random((50, 70)) > 0.4
    got = pp.detect(s, mask=mask)
    assert_same_keypoints(got, ref.detect(s, mask=mask))
    assert mask[got[:, 1].round().astype(int), got[:, 0].round().astype(int)].all()
    assert_same_keypoints(pp.detect(s, mask=mask.astype(np.uint8) * 255), got)
    assert_same_keypoints(pp.detect(s, mask=mask.astype(np.int32)), got)
    assert pp.detect(s, mask=np.zeros_like(mask)).shape == (0, 3)
    assert_same_keypoints(pp.detect(s, mask=np.ones_like(mask)), pp.detect(s))


def test_detect_max_keypoints():
    s = smooth_map((120, 160), seed=1)
    everything = pp.detect(s)
    n = len(everything)
    assert n > 10
    np.testing.assert_array_equal(pp.detect(s, max_keypoints=0), everything)
    np.testing.assert_array_equal(pp.detect(s, max_keypoints=1), everything[:1])
    np.testing.assert_array_equal(pp.detect(s, max_keypoints=7), everything[:7])
    np.testing.assert_array_equal(pp.detect(s, max_keypoints=n + 100), everything)
    assert (np.diff(everything[:, 2]) <= 0).all()


def test_detect_no_nms_returns_every_pixel_over_threshold():
    s = np.random.default_rng(2).random((6, 8), dtype=np.float32)
    got = pp.detect(s, nms_radius=0, border=0, threshold=-1.0, subpixel=False)
    assert len(got) == 48
    np.testing.assert_array_equal(np.sort(got[:, 2])[::-1], np.sort(s.ravel())[::-1])


# --- detect: sub-pixel refinement -------------------------------------------


@pytest.mark.parametrize("peak", [(10.3, 7.8), (10.0, 7.0), (9.55, 6.45), (10.5, 7.5)])
def test_subpixel_recovers_quadratic_peak(peak):
    px, py = peak
    ys, xs = np.mgrid[0:15, 0:20].astype(np.float32)
    s = (100.0 - (xs - px) ** 2 - 0.5 * (ys - py) ** 2).astype(np.float32)
    got = pp.detect(s, max_keypoints=1)
    np.testing.assert_allclose(got[0, :2], [px, py], atol=1e-4)
    assert got[0, 2] == s.max()  # score is the integer-pixel score


def test_subpixel_known_offsets():
    s = np.zeros((5, 5), np.float32)
    s[2, 1:4] = [0.5, 1.0, 0.75]  # x: 0.5 * (0.5 - 0.75) / (0.5 - 2 + 0.75) = 1/6
    s[1, 2] = 0.25  # y: 0.5 * (0.25 - 0) / (0.25 - 2 + 0) = -1/14
    got = pp.detect(s, border=0, nms_radius=1, max_keypoints=1)
    np.testing.assert_allclose(got[0], [2 + 1 / 6, 2 - 1 / 14, 1.0], atol=1e-6)


def test_subpixel_skipped_on_image_edge_and_plateau():
    s = np.zeros((6, 6), np.float32)
    s[0, 0], s[1, 0], s[0, 1] = 1.0, 0.5, 0.9
    got = pp.detect(s, border=0, max_keypoints=1)
    np.testing.assert_array_equal(got[0], [0.0, 0.0, 1.0])
    flat = np.ones((7, 7), np.float32)
    np.testing.assert_array_equal(pp.detect(flat, border=2)[:, :2], [[2, 2], [3, 2], [4, 2], [2, 3], [3, 3], [4, 3],
                                                                    [2, 4], [3, 4], [4, 4]])


# --- detect: input conversion -------------------------------------------------


def test_detect_non_contiguous_and_other_dtypes():
    base = np.random.default_rng(5).random((80, 90))
    view = base[::2, 1::3]  # float64, strided
    want = ref.detect(np.ascontiguousarray(view, np.float32))
    assert_same_keypoints(pp.detect(view), want)
    assert_same_keypoints(pp.detect(np.asfortranarray(view.astype(np.float16))),
                          ref.detect(view.astype(np.float16)))
    ints = (base * 100).astype(np.int32)
    assert_same_keypoints(pp.detect(ints), ref.detect(ints.astype(np.float32)))
    assert_same_keypoints(pp.detect(torch.from_numpy(view.astype(np.float32))), want)


def test_detect_is_thread_safe_and_deterministic():
    s = smooth_map((240, 320), seed=9)
    want = pp.detect(s, max_keypoints=300)
    results: list[np.ndarray] = []
    threads = [threading.Thread(target=lambda: results.append(pp.detect(s, max_keypoints=300))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 4
    for r in results:
        np.testing.assert_array_equal(r, want)


@settings(max_examples=150, deadline=None)
@given(
    s=hnp.arrays(np.float32, hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=24),
                 elements=st.sampled_from([-1.0, 0.0, 0.25, 0.5, 0.75, 1.0])),
    nms_radius=st.integers(0, 4),
    border=st.integers(0, 5),
    threshold=st.sampled_from([-2.0, 0.0, 0.5]),
    max_keypoints=st.integers(0, 20),
    subpixel=st.booleans(),
)
def test_detect_property_matches_reference(s, nms_radius, border, threshold, max_keypoints, subpixel):
    args = dict(nms_radius=nms_radius, border=border, threshold=threshold, max_keypoints=max_keypoints,
                subpixel=subpixel)
    assert_same_keypoints(pp.detect(s, **args), ref.detect(s, **args))


# --- sample_descriptors -------------------------------------------------------


def grid_sample_reference(desc: np.ndarray, kpts: np.ndarray, stride: float) -> np.ndarray:
    """torch.grid_sample(align_corners=False, padding_mode='border') + L2 norm."""
    _, h, w = desc.shape
    k = torch.from_numpy(kpts).double()
    u = (k + 0.5) / stride - 0.5  # map coordinates
    grid = torch.stack([(2 * u[:, 0] + 1) / w - 1, (2 * u[:, 1] + 1) / h - 1], dim=-1)
    out = F.grid_sample(torch.from_numpy(desc).double()[None], grid[None, None], mode="bilinear",
                        padding_mode="border", align_corners=False)
    return F.normalize(out[0, :, 0].T, dim=1).numpy()


@pytest.mark.parametrize("stride", [1, 4, 8, 2.5])
@pytest.mark.parametrize("dhw", [(1, 1, 1), (3, 2, 7), (16, 12, 9), (128, 30, 40)])
def test_sample_matches_grid_sample(stride, dhw):
    D, h, w = dhw
    rng = np.random.default_rng(D + h)
    desc = rng.standard_normal(dhw).astype(np.float32)
    size = np.array([w * stride, h * stride], np.float32)
    kpts = (rng.random((300, 2)) * (size + 8) - 4).astype(np.float32)  # includes points off the map
    kpts[:4] = [[0, 0], [size[0] - 1, size[1] - 1], [-100, 1e6], [0.5 * stride, 0.5 * stride]]
    got = pp.sample_descriptors(desc, kpts, stride)
    assert got.dtype == np.float32 and got.shape == (300, D)
    np.testing.assert_allclose(got, grid_sample_reference(desc, kpts, stride), rtol=0, atol=2e-5)
    np.testing.assert_allclose(got, ref.sample_descriptors(desc, kpts, stride), rtol=0, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)


def test_sample_at_cell_centres_is_exact():
    desc = np.random.default_rng(0).random((5, 6, 8)).astype(np.float32)
    ys, xs = np.mgrid[0:6, 0:8]
    kpts = np.stack([xs.ravel() * 4 + 1.5, ys.ravel() * 4 + 1.5], 1).astype(np.float32)  # stride 4 centres
    want = desc.reshape(5, -1).T
    want = want / np.linalg.norm(want, axis=1, keepdims=True)
    np.testing.assert_allclose(pp.sample_descriptors(desc, kpts, 4.0), want, atol=1e-6)


def test_sample_zero_descriptors_stay_zero():
    desc = np.zeros((8, 10, 10), np.float32)
    desc[:, :, 5:] = 1.0
    kpts = np.array([[0.0, 0.0], [2.0, 9.0], [9.0, 9.0]], np.float32)
    got = pp.sample_descriptors(desc, kpts)
    assert np.isfinite(got).all()
    np.testing.assert_array_equal(got[:2], 0.0)
    np.testing.assert_allclose(got[2], 1 / np.sqrt(8), atol=1e-7)


def test_sample_no_keypoints():
    got = pp.sample_descriptors(np.ones((7, 4, 4), np.float32), np.zeros((0, 2), np.float32), 8.0)
    assert got.shape == (0, 7) and got.dtype == np.float32


def test_sample_non_contiguous_and_float64():
    rng = np.random.default_rng(4)
    desc64 = rng.standard_normal((20, 16, 24))
    desc = desc64.transpose(0, 2, 1)  # (20, 24, 16), non-contiguous
    kpts = (rng.random((2, 50)) * 60).T  # float64, non-contiguous
    want = ref.sample_descriptors(np.ascontiguousarray(desc, np.float32), kpts.astype(np.float32), 4)
    np.testing.assert_allclose(pp.sample_descriptors(desc, kpts, 4), want, atol=1e-6)


@pytest.mark.parametrize("stride", [1.0, 4.0])
def test_sample_channels_last_map_is_read_in_place(stride):
    """A (D, h, w) view of an (h, w, D) buffer (torch's channels-last CPU output) takes the
    in-place path and gives the same rows as the channel-major map."""
    rng = np.random.default_rng(7)
    hwd = rng.standard_normal((9, 13, 33)).astype(np.float32)
    view = hwd.transpose(2, 0, 1)
    assert not view.flags.c_contiguous
    kpts = (rng.random((200, 2)) * [13 * stride + 6, 9 * stride + 6] - 3).astype(np.float32)
    want = ref.sample_descriptors(np.ascontiguousarray(view), kpts, stride)
    np.testing.assert_allclose(pp.sample_descriptors(view, kpts, stride), want, rtol=0, atol=1e-6)
    torch = pytest.importorskip("torch")
    t = torch.from_numpy(np.ascontiguousarray(view))[None].contiguous(memory_format=torch.channels_last)
    np.testing.assert_allclose(pp.sample_descriptors(t[0].numpy(), kpts, stride), want, rtol=0, atol=1e-6)


# --- errors -------------------------------------------------------------------

GOOD = np.random.default_rng(0).random((16, 16), dtype=np.float32)
DESC = np.ones((4, 5, 6), np.float32)
KPTS = np.ones((3, 2), np.float32)


def with_value(value: float) -> np.ndarray:
    s = GOOD.copy()
    s[7, 3] = value
    return s


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda: pp.detect(np.zeros(5, np.float32)), ValueError, "dimensions"),
        (lambda: pp.detect(np.zeros((2, 3, 4), np.float32)), ValueError, "dimensions"),
        (lambda: pp.detect(np.zeros((0, 5), np.float32)), ValueError, "non-empty"),
        (lambda: pp.detect(with_value(np.nan)), ValueError, "NaN or Inf"),
        (lambda: pp.detect(with_value(np.inf)), ValueError, "NaN or Inf"),
        (lambda: pp.detect(with_value(-np.inf)), ValueError, "NaN or Inf"),
        (lambda: pp.detect(np.full((4, 4), 1e300)), ValueError, "NaN or Inf"),  # overflows float32
        (lambda: pp.detect(GOOD.astype(np.complex64)), TypeError, "real-valued"),
        (lambda: pp.detect(GOOD > 0.5), TypeError, "real-valued"),
        (lambda: pp.detect(GOOD, nms_radius=-1), ValueError, "nms_radius"),
        (lambda: pp.detect(GOOD, nms_radius=1.5), TypeError, "nms_radius"),
        (lambda: pp.detect(GOOD, border=-1), ValueError, "border"),
        (lambda: pp.detect(GOOD, max_keypoints=-1), ValueError, "max_keypoints"),
        (lambda: pp.detect(GOOD, threshold=float("nan")), ValueError, "threshold"),
        (lambda: pp.detect(GOOD, threshold="0.5"), TypeError, "threshold"),
        (lambda: pp.detect(GOOD, mask=np.ones((16, 15), bool)), ValueError, "mask"),
        (lambda: pp.detect(GOOD, mask=np.ones((16, 16), np.float32)), TypeError, "mask"),
        (lambda: pp.sample_descriptors(DESC[0], KPTS), ValueError, "dimensions"),
        (lambda: pp.sample_descriptors(DESC[:0], KPTS), ValueError, "non-empty"),
        (lambda: pp.sample_descriptors(DESC, np.ones((3, 3), np.float32)), ValueError, r"\(N, 2\)"),
        (lambda: pp.sample_descriptors(DESC, np.ones(2, np.float32)), ValueError, "dimensions"),
        (lambda: pp.sample_descriptors(DESC, np.array([[1.0, np.nan]], np.float32)), ValueError, "NaN"),
        (lambda: pp.sample_descriptors(DESC, np.array([[np.inf, 1.0]], np.float32)), ValueError, "NaN or Inf"),
        (lambda: pp.sample_descriptors(DESC, KPTS, 0.0), ValueError, "stride"),
        (lambda: pp.sample_descriptors(DESC, KPTS, -4.0), ValueError, "stride"),
        (lambda: pp.sample_descriptors(DESC, KPTS, float("nan")), ValueError, "stride"),
        (lambda: pp.sample_descriptors(DESC, KPTS, None), TypeError, "stride"),
    ],
)
@pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")
def test_bad_inputs_raise(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_reference_rejects_the_same_inputs():
    for call in (lambda: ref.detect(with_value(np.nan)), lambda: ref.detect(GOOD, nms_radius=-1),
                 lambda: ref.sample_descriptors(DESC, np.array([[np.nan, 0]])),
                 lambda: ref.sample_descriptors(DESC, KPTS, 0.0)):
        with pytest.raises(ValueError):
            call()


@pytest.mark.parametrize(
    "call, error",
    [
        (lambda C: C.detect(GOOD.astype(np.float64), None, 2, 0.0, 4, 0, True), TypeError),
        (lambda C: C.detect(np.asfortranarray(GOOD[:, :8]), None, 2, 0.0, 4, 0, True), ValueError),
        (lambda C: C.detect(GOOD, np.ones((16, 16), np.int64), 2, 0.0, 4, 0, True), TypeError),
        (lambda C: C.detect(GOOD, [[1]], 2, 0.0, 4, 0, True), TypeError),
        (lambda C: C.sample_descriptors(DESC, KPTS[:, :1].copy(), 1.0, False), ValueError),
        (lambda C: C.sample_descriptors(DESC[:, ::2], KPTS, 1.0, False), ValueError),
        (lambda C: C.sample_descriptors(DESC[:, ::2], KPTS, 1.0, True), ValueError),
        (lambda C: C.sample_descriptors(DESC, KPTS.astype(np.float64), 1.0, True), TypeError),
    ],
)
def test_raw_extension_validates_instead_of_crashing(call, error):
    from s2cv import _C

    with pytest.raises(error):
        call(_C)


def test_missing_extension_raises_import_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "s2cv._C", None)  # makes `import s2cv._C` fail
    with pytest.raises(ImportError, match="pip install"):
        pp.detect(GOOD)
    with pytest.raises(ImportError, match="pip install"):
        pp.sample_descriptors(DESC, KPTS)


# --- CUDA ---------------------------------------------------------------------


def test_has_cuda_is_bool_and_cuda_calls_fail_clearly_without_it():
    assert isinstance(pp.HAS_CUDA, bool)
    if pp.HAS_CUDA:
        pytest.skip("CUDA is available here")
    with pytest.raises(RuntimeError, match="CUDA post-processing is unavailable"):
        pp.detect_cuda(torch.zeros(4, 4))
    with pytest.raises(RuntimeError, match="CUDA post-processing is unavailable"):
        pp.sample_descriptors_cuda(torch.zeros(2, 4, 4), torch.zeros(1, 2))


needs_cuda = pytest.mark.skipif(
    not (torch.cuda.is_available() and pp.HAS_CUDA),
    reason="needs a CUDA device and the s2cv._C_cuda extension",
)


@needs_cuda
@pytest.mark.parametrize("shape", [(1, 1), (3, 5), (61, 47), (480, 640)])
@pytest.mark.parametrize("quantised", [False, True])
@pytest.mark.parametrize("max_keypoints", [0, 1, 100])
def test_cuda_detect_matches_cpu(shape, quantised, max_keypoints):
    rng = np.random.default_rng(shape[0])
    s = rng.random(shape, dtype=np.float32)
    if quantised:
        s = np.floor(s * 4) / 4
    mask = rng.random(shape) > 0.2
    for args in (dict(max_keypoints=max_keypoints, border=1, nms_radius=2),
                 dict(max_keypoints=max_keypoints, border=0, nms_radius=0, threshold=0.5, subpixel=False),
                 dict(max_keypoints=max_keypoints, nms_radius=3, mask=mask)):
        cpu = pp.detect(s, **args)
        if "mask" in args:
            args = {**args, "mask": torch.from_numpy(mask).cuda()}
        gpu = pp.detect_cuda(torch.from_numpy(s).cuda(), **args)
        assert gpu.is_cuda and gpu.dtype == torch.float32
        assert_same_keypoints(gpu.cpu().numpy(), cpu)


@needs_cuda
def test_cuda_detect_errors():
    with pytest.raises(ValueError, match="NaN or Inf"):
        pp.detect_cuda(torch.from_numpy(with_value(np.nan)).cuda())
    with pytest.raises(ValueError, match="nms_radius"):
        pp.detect_cuda(torch.zeros(8, 8, device="cuda"), nms_radius=-1)
    with pytest.raises(ValueError, match="max_keypoints"):
        pp.detect_cuda(torch.zeros(8, 8, device="cuda"), max_keypoints=-2)
    with pytest.raises(ValueError, match="CUDA tensor"):
        pp.detect_cuda(torch.zeros(8, 8))
    with pytest.raises(ValueError, match="mask"):
        pp.detect_cuda(torch.zeros(8, 8, device="cuda"), mask=torch.ones(8, 7, device="cuda", dtype=torch.bool))


@needs_cuda
@pytest.mark.parametrize("stride", [1, 4, 8])
@pytest.mark.parametrize("n", [0, 1, 4096])
def test_cuda_sample_matches_cpu(stride, n):
    rng = np.random.default_rng(n)
    desc = rng.standard_normal((128, 30, 40)).astype(np.float32)
    desc[:, :5] = 0.0  # zero rows must stay zero
    kpts = (rng.random((n, 2)) * [40 * stride, 30 * stride]).astype(np.float32)
    cpu = pp.sample_descriptors(desc, kpts, stride)
    gpu = pp.sample_descriptors_cuda(torch.from_numpy(desc).cuda(), torch.from_numpy(kpts).cuda(), stride)
    assert gpu.shape == (n, 128) and gpu.is_cuda
    np.testing.assert_allclose(gpu.cpu().numpy(), cpu, rtol=0, atol=1e-6)


@needs_cuda
def test_cuda_sample_errors():
    d = torch.ones(4, 5, 6, device="cuda")
    with pytest.raises(ValueError, match="NaN"):
        pp.sample_descriptors_cuda(d, torch.tensor([[float("nan"), 0.0]], device="cuda"))
    with pytest.raises(ValueError, match="stride"):
        pp.sample_descriptors_cuda(d, torch.zeros(1, 2, device="cuda"), 0.0)
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        pp.sample_descriptors_cuda(d, torch.zeros(1, 3, device="cuda"))
