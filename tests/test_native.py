"""``S2Net_create(model=..., native=True)``: a genuine ``cv2.XFeat`` on s2cv's shipped cv::XFeat graphs
(issue 28), torch-free; clear errors for the models and arguments it cannot take."""
from __future__ import annotations

import fnmatch
import os
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import cv2
import numpy as np
import pytest

import s2cv
from s2cv.feature.graph import file_sha256, read_graph_info
from s2cv.feature.native import create_native, native_models
from s2cv.feature.zoo import CV_XFEAT, WEIGHTS_DIR, ZOO

ROOT = Path(__file__).resolve().parents[1]
HAS_XFEAT = hasattr(cv2, "XFeat_create")
needs_xfeat = pytest.mark.skipif(not HAS_XFEAT, reason="native=True needs OpenCV >= 5.1 (cv2.XFeat)")


@pytest.fixture(scope="module")
def vis() -> np.ndarray:
    return cv2.imread(str(ROOT / "s2cv" / "samples" / "roadscene_vis.png"))


def test_shipped_graphs_are_recorded_current_and_packaged():
    assert set(native_models()) == {"s2xfeat", "xfeat"} == set(CV_XFEAT)
    package_data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["s2cv"]
    for name, file in CV_XFEAT.items():
        graph = WEIGHTS_DIR / file
        meta = read_graph_info(graph).metadata
        assert meta["s2cv.arch"] == "xfeat" and meta["s2cv.input_size"] == "640", file
        # exported from the very checkpoint the zoo ships (re-export with `s2cv export NAME --format cv-xfeat`)
        assert meta["s2cv.source_sha256"] == file_sha256(WEIGHTS_DIR / ZOO[name]), f"{file} is stale"
        assert any(fnmatch.fnmatch(f"weights/{file}", pattern) for pattern in package_data), file
        ignored = subprocess.run(["git", "check-ignore", "-q", str(graph)], cwd=ROOT).returncode == 0
        assert not ignored, f"{file} is git-ignored"


@needs_xfeat
@pytest.mark.parametrize("model", ["s2xfeat", "xfeat"])
def test_native_is_a_genuine_xfeat_with_the_same_nfeatures(model, vis):
    det = s2cv.S2Net_create(nfeatures=300, model=model, native=True)
    assert isinstance(det, cv2.XFeat) and isinstance(det, cv2.Feature2D)
    assert det.getMaxKeypoints() == 300 and det.getInputSize() == (640, 640) and det.getScoreThreshold() == 0.0
    kps, desc = det.detectAndCompute(vis, None)
    assert 0 < len(kps) <= 300 and desc.shape == (len(kps), 64) and desc.dtype == np.float32
    h, w = vis.shape[:2]
    pts = cv2.KeyPoint_convert(kps)
    assert (pts >= 0).all() and (pts[:, 0] < w).all() and (pts[:, 1] < h).all()  # input coordinates, not 640x640
    features = cv2.detail.computeImageFeatures2(det, vis)  # what the Python detector cannot do
    assert len(features.keypoints) == len(kps)
    assert s2cv.S2Net_create(nfeatures=0, model=model, native=True).getMaxKeypoints() == -1  # 0 = all, as s2cv
    assert s2cv.S2Net_create(model=model, native=True, threshold=0.25).getScoreThreshold() == 0.25


@needs_xfeat
def test_native_accepts_the_neutral_values_of_what_it_cannot_honour():
    det = s2cv.S2Net_create(model="s2xfeat", native=True, backend="opencv", device="cpu", contrast_floor=0,
                            nms_radius=2, border=4, multiscale=False)
    assert det.getMaxKeypoints() == 4096


@pytest.mark.parametrize("model", ["default", "s2fast-gen", "s2fast", "vis-ir", "r2d2", "s2fast-wide",
                                   str(WEIGHTS_DIR / ZOO["s2xfeat"]), str(WEIGHTS_DIR / CV_XFEAT["s2xfeat"])])
def test_other_models_name_the_ones_that_can(model):
    with pytest.raises(ValueError, match=r"native=True needs .*'s2xfeat', 'xfeat'.*s2cv export CKPT --format cv-xfeat"):
        s2cv.S2Net_create(model=model, native=True)


@pytest.mark.parametrize("kwargs", [{"backend": "onnxruntime"}, {"backend": "torch"}, {"device": "cuda"},
                                    {"contrast_floor": 4 / 255}, {"nms_radius": 3}, {"border": 8},
                                    {"multiscale": True}, {"subpixel": False}, {"keypoint_size": 8.0}])
def test_what_cv_xfeat_cannot_honour_is_refused(kwargs):
    key = next(iter(kwargs))
    with pytest.raises(ValueError, match=rf"cannot honour {key}="):
        s2cv.S2Net_create(model="s2xfeat", native=True, **kwargs)


def test_opencv_4_gets_a_clear_error(monkeypatch):
    monkeypatch.delattr(cv2, "XFeat_create", raising=False)
    with pytest.raises(RuntimeError, match=r"needs OpenCV >= 5\.1"):
        create_native("s2xfeat", nfeatures=100)
    with pytest.raises(ValueError, match="'s2xfeat', 'xfeat'"):  # the model is checked first
        s2cv.S2Net_create(model="default", native=True)


def test_bad_nfeatures():
    with pytest.raises(ValueError, match="nfeatures"):
        s2cv.S2Net_create(nfeatures=-5, model="s2xfeat", native=True)


@needs_xfeat
def test_native_route_is_torch_and_onnxruntime_free(tmp_path):
    code = textwrap.dedent("""
        import importlib.abc, sys
        class Blocked(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.partition(".")[0] in ("torch", "onnx"):
                    raise ModuleNotFoundError(f"No module named {name!r} (blocked)", name=name)
        sys.meta_path.insert(0, Blocked())
        import cv2, s2cv
        det = s2cv.S2Net_create(model="s2xfeat", nfeatures=100, native=True)
        img = cv2.imread(sys.argv[1])
        f = cv2.detail.computeImageFeatures2(det, img)
        assert not [m for m in sys.modules if m.partition(".")[0] in ("torch", "onnx", "onnxruntime")], sorted(sys.modules)
        print("OK", len(f.keypoints))
    """)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}
    proc = subprocess.run([sys.executable, "-c", code, str(ROOT / "s2cv" / "samples" / "roadscene_vis.png")],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "OK 100" in proc.stdout, proc.stderr[-2000:]
