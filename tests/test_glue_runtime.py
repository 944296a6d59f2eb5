"""S2Glue at run time (s2cv.feature.glue): the cv2.LightGlueMatcher-shaped matcher, torch-free;
OpenCV's own cv2.LightGlueMatcher on the same graph; the cv2-only example; register(matcher="glue")."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

import s2cv
from s2cv.feature.glue import S2GlueMatcher, available_matchers
from s2cv.registration.register import SAMPLES

ROOT = Path(__file__).resolve().parents[1]
HAS_CV_GLUE = hasattr(cv2, "LightGlueMatcher_create")
pytestmark = pytest.mark.skipif("default" not in available_matchers(), reason="the S2Glue graph is not shipped")


@pytest.fixture(scope="module")
def sample_features():
    det = s2cv.S2Net_create(1024, model=s2cv.S2Glue_create().det_model)
    a, b = (cv2.imread(str(p)) for p in SAMPLES["roadscene"][:2])
    ka, da = det.detectAndCompute(a, None)
    kb, db = det.detectAndCompute(b, None)
    return ka, da, kb, db, (a.shape[1], a.shape[0]), (b.shape[1], b.shape[0])


def _pairs(matches) -> set[tuple[int, int]]:
    return {(m.queryIdx, m.trainIdx) for m in matches}


def test_s2glue_is_a_plain_class_that_names_its_detector():
    m = s2cv.S2Glue_create()
    assert not isinstance(m, cv2.DescriptorMatcher)  # a Python subclass would crash OpenCV's C++ code
    assert m.det_model == "s2xfeat" and m.det_model in s2cv.available_models()
    assert m.descriptor_dim == s2cv.S2Net_create(16, model=m.det_model).descriptorSize()


def test_match_and_knnmatch_have_cv2_lightglue_shapes(sample_features):
    ka, da, kb, db, sa, sb = sample_features
    m = s2cv.S2Glue_create()
    m.setPairInfo(ka, kb, sa, sb)
    matches = m.match(da, db)
    assert len(matches) > 50
    assert all(isinstance(x, cv2.DMatch) and 0.0 <= x.distance < 0.9 for x in matches)  # 1 - confidence, conf > 0.1
    assert len({x.trainIdx for x in matches}) == len(matches)  # one-to-one
    knn = m.knnMatch(da, db, k=1)
    assert len(knn) == len(da) and all(len(r) <= 1 for r in knn)
    assert _pairs(r[0] for r in knn if r) == _pairs(matches)
    # (N, 2) pixel arrays work as well as cv2.KeyPoint lists
    m.setPairInfo(cv2.KeyPoint_convert(ka), cv2.KeyPoint_convert(kb), sa, sb)
    assert _pairs(m.match(da, db)) == _pairs(matches)
    # a higher threshold keeps a subset
    strict = s2cv.S2Glue_create(threshold=0.5)
    strict.setPairInfo(ka, kb, sa, sb)
    assert _pairs(strict.match(da, db)) < _pairs(matches)


def test_bad_input_gives_clear_errors(sample_features, tmp_path):
    ka, da, kb, db, sa, sb = sample_features
    m = s2cv.S2Glue_create()
    with pytest.raises(RuntimeError, match="setPairInfo"):
        m.match(da, db)
    m.setPairInfo(ka, kb, sa, sb)
    with pytest.raises(ValueError, match="64"):
        m.match(np.zeros((len(da), 128), np.float32), db)
    bad = da.copy()
    bad[3, 5] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        m.match(bad, db)
    with pytest.raises(ValueError, match="keypoints"):
        m.match(da[:-1], db)
    with pytest.raises(ValueError, match="k=1"):
        m.knnMatch(da, db, k=2)
    with pytest.raises(TypeError, match="size"):
        m.setPairInfo(ka, kb, 640, sb)
    with pytest.raises(ValueError, match="backend"):
        s2cv.S2Glue_create(backend="cuda-magic")
    with pytest.raises(FileNotFoundError):
        s2cv.S2Glue_create("no-such-matcher")
    with pytest.raises(ValueError, match="not an S2Glue matcher graph"):
        S2GlueMatcher(ROOT / "s2cv" / "weights" / "s2xfeat-vis-ir-nir.onnx")
    m.setPairInfo([], kb, sa, sb)
    assert m.match(np.zeros((0, 64), np.float32), db) == []


@pytest.mark.skipif(not HAS_CV_GLUE, reason="this OpenCV has no cv2.LightGlueMatcher")
def test_opencv_lightglue_matcher_runs_the_graph_with_the_same_matches(sample_features):
    """OpenCV's own matcher (cv::dnn) on the shipped graph against S2Glue_create (onnxruntime)."""
    ka, da, kb, db, sa, sb = sample_features
    ours = s2cv.S2Glue_create(backend="onnxruntime")
    ours.setPairInfo(ka, kb, sa, sb)
    ref = _pairs(ours.match(da, db))
    cvm = cv2.LightGlueMatcher_create(str(ours.path), 0.1, type=cv2.LG_DISK)
    cvm.setKeypointNormalization(cv2.LG_NORM_MAX_SIDE)
    cvm.setPairInfo(cv2.KeyPoint_convert(ka), cv2.KeyPoint_convert(kb), sa, sb)
    got = _pairs(cvm.match(da, db))
    assert len(ref & got) >= 0.95 * max(len(ref), len(got))
    via = s2cv.S2Glue_create(backend="opencv")
    via.setPairInfo(ka, kb, sa, sb)
    assert _pairs(via.match(da, db)) == got


@pytest.mark.skipif(not HAS_CV_GLUE or not hasattr(cv2, "XFeat_create"), reason="this OpenCV lacks XFeat/LightGlue")
def test_opencv_only_example_registers_the_sample(tmp_path):
    xfeat = ROOT / "s2cv" / "weights" / "s2xfeat-vis-ir-nir.cv-xfeat.onnx"
    if not xfeat.is_file():
        pytest.skip("the cv-xfeat graph of s2xfeat is not shipped")
    out = subprocess.run([sys.executable, str(ROOT / "examples" / "opencv_lightglue_register.py"), "-o",
                          str(tmp_path / "H.txt")], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "inliers" in out.stdout and (tmp_path / "H.txt").is_file()
    H = np.loadtxt(tmp_path / "H.txt")
    assert H.shape == (3, 3) and np.isfinite(H).all()


def test_register_takes_matcher_glue():
    from s2cv.registration.register import register, sample_ground_truth

    vis, ir = (cv2.imread(str(p)) for p in SAMPLES["roadscene"][:2])
    result = register(vis, ir, matcher="glue", nfeatures=1024)
    assert result.matches and result.H is not None
    with pytest.raises(ValueError, match="ratio"):
        register(vis, ir, matcher="glue", ratio=0.9)
    with pytest.raises(ValueError, match="matcher"):
        register(vis, ir, matcher="flann")
    assert sample_ground_truth("roadscene").shape == (3, 3)


def test_s2glue_runs_where_torch_cannot_be_imported():
    code = ("import sys; sys.modules['torch'] = None\n"
            "import cv2, s2cv\n"
            "from s2cv.registration.register import SAMPLES\n"
            "m = s2cv.S2Glue_create(backend='onnxruntime'); det = s2cv.S2Net_create(256, model=m.det_model)\n"
            "a, b = (cv2.imread(str(p)) for p in SAMPLES['roadscene'][:2])\n"
            "ka, da = det.detectAndCompute(a, None); kb, db = det.detectAndCompute(b, None)\n"
            "m.setPairInfo(ka, kb, a.shape[1::-1], b.shape[1::-1]); print(len(m.match(da, db)))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert int(out.stdout.strip().splitlines()[-1]) > 0


def test_calibrate_takes_matcher_glue(tmp_path):
    from conftest import write_folders

    from s2cv.registration.calibrate import calibrate

    vis, ir = (cv2.imread(str(p)) for p in SAMPLES["roadscene"][:2])
    vis_dir, ir_dir = write_folders(tmp_path, [(vis, ir), (vis, ir)])
    result = calibrate(vis_dir, ir_dir, matcher="glue", nfeatures=1024, progress=False)
    assert len(result.frames) == 2 and all(f.matches > 0 for f in result.frames)
    # the glue's matches are fewer than mutual NN's (it keeps the confident ones): a different matcher ran
    mnn = calibrate(vis_dir, ir_dir, model="s2xfeat", nfeatures=1024, progress=False)
    assert result.frames[0].matches != mnn.frames[0].matches
