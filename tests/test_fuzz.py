"""Property-based robustness: whatever users (or a bug upstream) pass in, s2cv answers with a
result or a ValueError/TypeError — never a crash, a hang or a foreign exception type.

Kept fast on purpose (few examples, small arrays): this guards the C++ boundary and the
input checks, it is not a benchmark. Run it under AddressSanitizer with tests/asan_check.sh.
"""
from __future__ import annotations

import io
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import untrained_net
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import s2cv
from s2cv.models.checkpoint import read_checkpoint, save_checkpoint
from s2cv.feature import postprocess as pp

EXPECTED = (ValueError, TypeError)
FAST = settings(max_examples=30, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

DTYPES = [np.uint8, np.uint16, np.int8, np.int16, np.int32, np.int64, np.float16, np.float32, np.float64,
          np.bool_, np.complex64]


@pytest.fixture(scope="module")
def det() -> s2cv.S2NetFeature2D:
    return s2cv.S2Net_create(model=untrained_net(), nfeatures=64)


@st.composite
def images(draw) -> np.ndarray:
    """Arrays of any small shape and dtype, with extreme values (NaN, Inf, dtype limits)."""
    dtype = np.dtype(draw(st.sampled_from(DTYPES)))
    h, w = draw(st.integers(0, 24)), draw(st.integers(0, 24))
    shape = draw(st.sampled_from([(h, w), (h, w, 1), (h, w, 2), (h, w, 3), (h, w, 4), (h, w, 5), (h,), (1, h, w, 3)]))
    elements = None
    if dtype.kind == "f":
        elements = st.floats(allow_nan=True, allow_infinity=True, width=dtype.itemsize * 8)
    elif dtype.kind == "c":
        elements = st.complex_numbers(allow_nan=True, allow_infinity=True, width=64)
    arr = draw(hnp.arrays(dtype, shape, elements=elements))
    if draw(st.booleans()) and arr.ndim >= 2 and arr.shape[1] > 1:
        arr = arr[:, ::2]  # non-contiguous view
    return arr


@FAST
@given(image=images(), use_mask=st.booleans(), nfeatures=st.sampled_from([0, 1, 2, 64, 2**31, 10**12]))
@example(image=np.full((8, 8), np.nan, np.float32), use_mask=False, nfeatures=1)
@example(image=np.full((16, 16), np.inf, np.float64), use_mask=False, nfeatures=1)
@example(image=np.full((16, 16), 65535, np.uint16), use_mask=True, nfeatures=0)
@example(image=np.zeros((1, 1), np.uint8), use_mask=True, nfeatures=10**12)
@example(image=(np.arange(16 * 20, dtype=np.uint16).reshape(16, 20) * 97), use_mask=False, nfeatures=5)
@example(image=np.linspace(-40, 120, 16 * 20, dtype=np.float32).reshape(16, 20), use_mask=False, nfeatures=5)
def test_detector_any_image(det, image, use_mask, nfeatures):
    det.setNFeatures(nfeatures)
    mask = None
    if use_mask and image.ndim >= 2:
        mask = (np.arange(image.shape[0] * image.shape[1]) % 3 != 0).astype(np.uint8).reshape(image.shape[:2])
    try:
        kps, desc = det.detectAndCompute(image, mask)
    except EXPECTED:
        return
    finally:
        det.setNFeatures(64)
    assert image.dtype in (np.uint8, np.uint16, np.float32, np.float64), f"accepted {image.dtype}"
    assert (desc is None) == (len(kps) == 0)
    if desc is not None:
        assert desc.dtype == np.float32 and desc.shape == (len(kps), det.descriptorSize())
        assert np.isfinite(desc).all()
        if nfeatures:
            assert len(kps) <= nfeatures
        h, w = image.shape[:2]
        p = np.array([k.pt for k in kps])
        assert (p >= -0.5).all() and (p[:, 0] <= w - 0.5).all() and (p[:, 1] <= h - 0.5).all()


@FAST
@given(
    mask=hnp.arrays(st.sampled_from([np.uint8, np.bool_, np.int32, np.float32, np.uint16]),
                    hnp.array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=20)),
)
@example(mask=np.ones((16, 20), np.uint8))
@example(mask=np.ones((16, 20, 1), np.bool_))
def test_detector_any_mask(det, mask):
    image = np.random.default_rng(0).integers(0, 256, (16, 20), dtype=np.uint8)
    try:
        kps = det.detect(image, mask)
    except EXPECTED:
        return
    m = mask[..., 0] if mask.ndim == 3 else mask
    for k in kps:
        x, y = (int(np.floor(v + 0.5)) for v in k.pt)
        x, y = min(max(x, 0), 19), min(max(y, 0), 15)
        assert m[y, x] or any(m[yy, xx] for yy in range(max(0, y - 1), min(16, y + 2))
                              for xx in range(max(0, x - 1), min(20, x + 2)))


# ---------------------------------------------------------------- C++ extension via postprocess


@st.composite
def score_maps(draw):
    dtype = draw(st.sampled_from([np.float32, np.float64, np.int32, np.uint8, np.bool_, np.complex64, np.float16]))
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=24))
    if draw(st.booleans()):
        shape = (draw(st.integers(0, 24)), draw(st.integers(0, 24)))
    width = 16 if dtype == np.float16 else 32
    elements = None
    if np.dtype(dtype).kind == "f":
        extreme = draw(st.integers(0, 9)) == 0
        elements = st.floats(allow_nan=extreme, allow_infinity=extreme, width=width)
    arr = draw(hnp.arrays(dtype, shape, elements=elements))
    layout = draw(st.sampled_from(["c", "transpose", "stride", "fortran"]))
    if layout == "transpose":
        arr = arr.T
    elif layout == "stride" and arr.ndim >= 1:
        arr = arr[::2]
    elif layout == "fortran":
        arr = np.asfortranarray(arr)
    return arr


@FAST
@given(
    scores=score_maps(),
    mask_kind=st.sampled_from(["none", "same", "wrong", "float", "bool", "int64"]),
    nms_radius=st.integers(-3, 40),
    threshold=st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-2, 2), st.none()),
    border=st.integers(-3, 30),
    max_keypoints=st.one_of(st.integers(-3, 10), st.integers(10, 2**63 + 5)),
    subpixel=st.booleans(),
)
def test_postprocess_detect(scores, mask_kind, nms_radius, threshold, border, max_keypoints, subpixel):
    shape = scores.shape
    mask = {
        "none": None,
        "same": np.ones(shape, np.uint8),
        "wrong": np.ones(shape + (2,), np.uint8),
        "float": np.ones(shape, np.float32),
        "bool": (np.arange(int(np.prod(shape))) % 2 == 0).reshape(shape),
        "int64": np.ones(shape, np.int64)[..., ::-1] if len(shape) else np.ones(shape, np.int64),
    }[mask_kind]
    try:
        out = pp.detect(scores, mask, nms_radius, threshold, border, max_keypoints, subpixel)
    except EXPECTED:
        return
    assert out.dtype == np.float32 and out.ndim == 2 and out.shape[1] == 3
    h, w = scores.shape
    assert max_keypoints <= 0 or len(out) <= max_keypoints
    if len(out):
        assert (out[:, 0] >= border - 0.5).all() and (out[:, 0] <= w - 1 - border + 0.5).all()
        assert (out[:, 1] >= border - 0.5).all() and (out[:, 1] <= h - 1 - border + 0.5).all()
        assert (np.diff(out[:, 2]) <= 0).all() and (out[:, 2].astype(np.float64) > threshold).all()


@pytest.mark.parametrize("radius", [24, 10**4, 2**40, 2**62, 2**63 - 1])
def test_postprocess_huge_radius_is_whole_map(radius):
    """A window larger than the map is the map (windows are clipped), whatever the radius:
    no huge scratch allocation, no signed overflow in y +- r, no minutes-long loop."""
    s = np.random.default_rng(0).random((12, 16), dtype=np.float32)
    out = pp.detect(s, nms_radius=radius, border=0)
    assert len(out) == 1
    assert tuple(out[0, :2].round().astype(int)) == np.unravel_index(s.argmax(), s.shape)[::-1]


@pytest.mark.parametrize("border", [2**40, 2**62, 2**63 - 1])
def test_postprocess_huge_border_is_empty(border):
    s = np.random.default_rng(0).random((12, 16), dtype=np.float32)
    assert pp.detect(s, border=border).shape == (0, 3)


@st.composite
def descriptor_maps(draw):
    dtype = draw(st.sampled_from([np.float32, np.float64, np.int16, np.bool_, np.complex64]))
    shape = draw(hnp.array_shapes(min_dims=2, max_dims=4, min_side=0, max_side=8))
    if draw(st.booleans()):
        shape = tuple(draw(st.integers(0, 8)) for _ in range(3))
    elements = st.floats(-10, 10, width=32) if np.dtype(dtype).kind == "f" else None
    arr = draw(hnp.arrays(dtype, shape, elements=elements))
    return arr[..., ::2] if draw(st.booleans()) and arr.ndim else arr


@st.composite
def keypoint_arrays(draw):
    dtype = np.dtype(draw(st.sampled_from([np.float32, np.float64, np.int32, np.complex64])))
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=6))
    if draw(st.booleans()):
        shape = (draw(st.integers(0, 6)), 2)
    elements = None
    if dtype.kind == "f":
        elements = st.floats(-1e6, 1e6, width=32) | st.sampled_from([np.nan, np.inf, -np.inf, 3.0])
    return draw(hnp.arrays(dtype, shape, elements=elements))


@FAST
@given(
    desc=descriptor_maps(),
    keypoints=keypoint_arrays(),
    stride=st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-4, 16), st.booleans(),
                     st.none()),
    transpose_kp=st.booleans(),
)
def test_postprocess_sample_descriptors(desc, keypoints, stride, transpose_kp):
    if transpose_kp:
        keypoints = keypoints.T
    try:
        out = pp.sample_descriptors(desc, keypoints, stride)
    except EXPECTED:
        return
    assert out.dtype == np.float32 and out.shape == (keypoints.shape[0], desc.shape[0])
    norms = np.linalg.norm(out, axis=1)
    assert np.all((np.abs(norms - 1) < 1e-4) | (norms < 1e-6))  # all-zero (or underflowing) rows stay ~0


@pytest.mark.parametrize("bad", [
    lambda: pp.detect(np.zeros((0, 0), np.float32)),
    lambda: pp.detect(np.zeros((4, 4), np.float32), nms_radius=-1),
    lambda: pp.detect(np.zeros((4, 4), np.float32), border=-1),
    lambda: pp.detect(np.zeros((4, 4), np.float32), max_keypoints=-1),
    lambda: pp.detect(np.zeros((4, 4), np.float32), nms_radius=1.5),
    lambda: pp.detect(np.zeros((4, 4), np.float32), threshold="0"),
    lambda: pp.detect(np.zeros((4, 4), np.float32), threshold=float("nan")),
    lambda: pp.detect(np.zeros((4, 4), np.float32), max_keypoints=2**64),
    lambda: pp.detect([[0.0]] * 3, mask=[[1]]),
    lambda: pp.detect(np.zeros((4, 4), object)),
    lambda: pp.sample_descriptors(np.zeros((0, 4, 4), np.float32), np.zeros((1, 2), np.float32)),
    lambda: pp.sample_descriptors(np.ones((2, 4, 4), np.float32), np.zeros((1, 3), np.float32)),
    lambda: pp.sample_descriptors(np.ones((2, 4, 4), np.float32), np.zeros((1, 2), np.float32), stride=0),
    lambda: pp.sample_descriptors(np.ones((2, 4, 4), np.float32), np.array([[np.nan, 0.0]], np.float32)),
    lambda: pp.sample_descriptors(np.ones((2, 4, 4), np.float32), np.array([[1e300, 0.0]])),
])
@pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")
def test_postprocess_known_bad_arguments(bad):
    with pytest.raises(EXPECTED):
        bad()


# ---------------------------------------------------------------- corrupt weight files


@pytest.fixture(scope="module")
def real_checkpoint(tmp_path_factory) -> bytes:
    path = tmp_path_factory.mktemp("ckpt") / "net.pt"
    save_checkpoint(path, untrained_net(), "fast")
    return path.read_bytes()


@FAST
@pytest.mark.filterwarnings("ignore:Detected pickle protocol:UserWarning")
@given(data=st.binary(min_size=0, max_size=2048))
@example(data=b"PK\x03\x04" + b"\x00" * 60)  # looks like a zip (torch's format) but is not
@example(data=b"\x80\x04N.")  # a pickle of None
def test_random_bytes_refused(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("rnd") / "w.pt"
    path.write_bytes(data)
    with pytest.raises(ValueError):
        s2cv.S2Net_create(model=str(path))


@settings(max_examples=25, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(fraction=st.floats(0.0, 0.999), flip=st.booleans())
def test_truncated_or_damaged_checkpoint_refused(tmp_path_factory, real_checkpoint, fraction, flip):
    data = bytearray(real_checkpoint)
    cut = int(len(data) * fraction)
    if flip:  # damage one byte instead of truncating
        data[cut] ^= 0xFF
    else:
        data = data[:cut]
    path = tmp_path_factory.mktemp("cut") / "w.pt"
    path.write_bytes(bytes(data))
    try:
        s2cv.S2Net_create(model=str(path))
    except ValueError:
        return
    # A flipped byte inside tensor data may leave a loadable (finite) checkpoint: acceptable.
    assert flip, "a truncated checkpoint must never load"


class _Payload:
    """Unpickling this object would create a directory: proof that code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (str(self.marker),))


@pytest.mark.parametrize("container", ["torch", "pickle"])
def test_pickle_with_code_refused_by_weights_only(tmp_path, container):
    marker = tmp_path / "code-ran"
    payload = {"format": "s2cv/1", "arch": "fast", "conf": {}, "state_dict": {}, "meta": {"x": _Payload(marker)}}
    path = tmp_path / "evil.pt"
    if container == "torch":
        torch.save(payload, path)
    else:
        path.write_bytes(pickle.dumps(payload, protocol=2))
    with pytest.raises(ValueError, match="cannot read"):
        read_checkpoint(path)
    with pytest.raises(ValueError):
        s2cv.S2Net_create(model=str(path))
    assert not marker.exists(), "weights_only loading must not run code from the file"


def test_non_weights_payloads_refused(tmp_path):
    for i, payload in enumerate([[1, 2, 3], "weights", {"format": "other"}, torch.zeros(3),
                                 {"format": "s2cv/1", "arch": "fast", "conf": {}, "state_dict": {"x": torch.ones(1)}}]):
        buf = io.BytesIO()
        torch.save(payload, buf)
        path = tmp_path / f"p{i}.pt"
        path.write_bytes(buf.getvalue())
        with pytest.raises(ValueError):
            s2cv.S2Net_create(model=str(path))
