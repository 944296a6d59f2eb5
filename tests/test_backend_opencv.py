"""backend="opencv": the shipped graphs through cv2.dnn alone, against onnxruntime on the same graph.

Parity bar: >= 95 % of keypoints within 1 px of one of the other backend's, descriptor cosine
>= 0.999 at those. Runs without torch (only the hand-made old-style graph below needs onnx).
"""
from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np
import pytest
from conftest import read_sample

import s2cv
from s2cv.feature.backend_opencv import OpenCVBackend
from s2cv.registration.register import SAMPLES


def parity(a: s2cv.S2NetFeature2D, b: s2cv.S2NetFeature2D, image: np.ndarray) -> tuple[float, float, int, int]:
    """(share of b's keypoints within 1 px of one of a's, min descriptor cosine there, a's and b's keypoints)."""
    (ka, da), (kb, db) = a.detectAndCompute(image, None), b.detectAndCompute(image, None)
    pa, pb = cv2.KeyPoint_convert(ka), cv2.KeyPoint_convert(kb)
    dist = np.sqrt(((pb[:, None] - pa[None]) ** 2).sum(-1))
    nearest, close = dist.argmin(1), dist.min(1) <= 1.0
    cos = (db[close] * da[nearest[close]]).sum(1)
    return float(close.mean()), float(cos.min()) if close.any() else -1.0, len(ka), len(kb)


@pytest.mark.parametrize("sample", sorted(SAMPLES))
def test_default_model_matches_onnxruntime_on_the_bundled_pairs(sample):
    # contrast_floor=0: every pixel is ranked, so both backends rank the whole map (a network may have
    # fewer local maxima than the budget: the counts must agree, not reach it)
    ort = s2cv.S2Net_create(backend="onnxruntime", device="cpu", contrast_floor=0.0)
    ocv = s2cv.S2Net_create(backend="opencv", device="cpu", contrast_floor=0.0)
    assert ocv._net_backend.name == "opencv" and ocv._net_backend.path == ort._net_backend.path
    for image in (read_sample(sample, "vis"), read_sample(sample, "ir", cv2.IMREAD_UNCHANGED)):
        share, cos, n_ort, n = parity(ort, ocv, image)
        assert 2048 <= n <= 4096 and abs(n - n_ort) <= 0.01 * n_ort and share >= 0.95 and cos >= 0.999, \
            (sample, n_ort, n, share, cos)


@pytest.mark.parametrize("name", s2cv.available_models())
def test_every_zoo_model_runs_in_cv2_dnn(name):
    """Every shipped graph loads in OpenCV's ONNX engine and gives onnxruntime's maps (crop: r2d2 is slow)."""
    image = read_sample("roadscene", "ir", cv2.IMREAD_UNCHANGED)[:128, :192]
    ort = s2cv.S2Net_create(model=name, backend="onnxruntime", nfeatures=500, contrast_floor=0.0)
    ocv = s2cv.S2Net_create(model=name, backend="opencv", nfeatures=500, contrast_floor=0.0)
    share, cos, n_ort, n = parity(ort, ocv, image)
    assert 250 <= n <= 500 and abs(n - n_ort) <= 0.01 * n_ort and share >= 0.95 and cos >= 0.999, \
        (name, n_ort, n, share, cos)


def test_outputs_are_the_callers_and_calls_are_thread_safe():
    """cv2.dnn's forward returns views of its own buffers: a second call must not change the first maps."""
    det = s2cv.S2Net_create(backend="opencv", nfeatures=300)
    vis = read_sample("roadscene", "vis", cv2.IMREAD_GRAYSCALE)[:128, :160]
    ir = read_sample("roadscene", "ir", cv2.IMREAD_GRAYSCALE)[:128, :160]
    first = det.denseMaps(vis.astype(np.float32) / 255)
    kept = first.scores.copy(), first.descriptors.copy()
    det.denseMaps(ir.astype(np.float32) / 255)
    np.testing.assert_array_equal(first.scores, kept[0])
    np.testing.assert_array_equal(first.descriptors, kept[1])

    images = [vis, ir, vis[:96], ir[:, :128]]
    serial = [det.detectAndCompute(im, None) for im in images]
    with ThreadPoolExecutor(4) as pool:
        for (ks, ds), (kp, dp) in zip(serial, pool.map(lambda im: det.detectAndCompute(im, None), images)):
            assert [k.pt for k in ks] == [k.pt for k in kp]
            np.testing.assert_array_equal(ds, dp)


def test_cpu_only_and_clear_device_errors():
    with pytest.raises(RuntimeError, match="CPU only"):
        s2cv.S2Net_create(backend="opencv", device="cuda")
    with pytest.raises(ValueError, match="unknown device"):
        s2cv.S2Net_create(backend="opencv", device="gpu0")


def test_a_graph_with_an_overflowing_softplus_is_refused_not_silently_wrong(tmp_path):
    """Graphs exported before the stable softplus: cv2.dnn's Softplus(x > 88) is inf, the score NaN."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    nodes = [helper.make_node("Mul", ["image", "hundred"], ["big"]), helper.make_node("Softplus", ["big"], ["sp"]),
             helper.make_node("Div", ["sp", "sp"], ["scores"]), helper.make_node("Identity", ["image"], ["descriptors"])]
    dims = ["b", 1, "h", "w"]
    graph = helper.make_graph(nodes, "old", [helper.make_tensor_value_info("image", TensorProto.FLOAT, dims)],
                              [helper.make_tensor_value_info(n, TensorProto.FLOAT, dims) for n in ("scores", "descriptors")],
                              [helper.make_tensor("hundred", TensorProto.FLOAT, [], [100.0])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    helper.set_model_props(model, {"s2cv.arch": "fast", "s2cv.stride": "1", "s2cv.pad_multiple": "8",
                                   "s2cv.descriptor_dim": "1", "s2cv.conf": json.dumps({})})
    path = tmp_path / "old.onnx"
    onnx.save(model, str(path))
    backend = OpenCVBackend(path, "cpu")
    small = np.full((1, 1, 8, 8), 0.5, np.float32)   # Softplus(50): finite, passes
    assert np.isfinite(backend(small).scores).all()
    with pytest.raises(RuntimeError, match="NaN/Inf scores.*re-export"):
        backend(np.ones((1, 1, 8, 8), np.float32))  # Softplus(100) = inf in cv2.dnn
