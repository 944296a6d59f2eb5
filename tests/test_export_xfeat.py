"""``s2cv export --format cv-xfeat``: graphs OpenCV's own cv2.XFeat_create runs."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")

from conftest import read_sample, untrained_net  # noqa: E402

import s2cv  # noqa: E402
from s2cv.cli import export as export_cli
from s2cv.deploy import export
from s2cv.deploy import export_xfeat as ex
from s2cv.registration.geometry import match_errors, mutual_nn_matches
from s2cv.feature.graph import read_graph_info, read_onnx_metadata
from s2cv.registration.register import sample_ground_truth
from s2cv.feature.zoo import WEIGHTS_DIR


@pytest.fixture(scope="module")
def small_graph(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("cvx") / "xfeat64.onnx"
    report = ex.export_cv_xfeat(untrained_net("xfeat"), path, size=64, arch="xfeat")
    assert report.checks and all(c.passed for c in report.checks)
    assert {c.name.split()[0] for c in report.checks} == {"onnxruntime", "cv2.dnn"}
    return path


def test_graph_has_cv_xfeats_contract(small_graph):
    info = read_graph_info(small_graph)
    assert info.inputs == {"image": (1, 1, 64, 64)}
    assert info.outputs == {"output_feats": (1, 64, 8, 8), "output_keypoints": (1, 65, 8, 8),
                            "output_heatmap": (1, 1, 8, 8)}
    assert info.metadata["s2cv.format"] == ex.FORMAT and info.metadata["s2cv.input_size"] == "64"


def test_opencv_xfeat_runs_it_and_s2net_create_points_there(small_graph):
    image = read_sample()
    xfeat = cv2.XFeat_create(str(small_graph), 50, 0.0, (64, 64))
    kp, desc = xfeat.detectAndCompute(image, None)
    assert 0 < len(kp) <= 50 and desc.shape == (len(kp), 64) and desc.dtype == np.float32
    with pytest.raises(ValueError, match=r"cv::XFeat-layout graph: run it with cv2.XFeat_create"):
        read_onnx_metadata(small_graph)
    with pytest.raises(ValueError, match="wrong layout for S2Net_create"):
        s2cv.S2Net_create(model=str(small_graph), backend="opencv")


def test_cv_xfeat_reads_outputs_by_name_and_only_the_exported_size(small_graph, tmp_path, monkeypatch):
    """What the export relies on: cv::XFeat finds the three maps by name, not position, and a
    fixed-size graph runs only at the inputSize it was exported for."""
    order = (2, 0, 1)
    monkeypatch.setattr(ex, "XFEAT_OUTPUTS", tuple(ex.XFEAT_OUTPUTS[i] for i in order))
    monkeypatch.setattr(ex._CvXFeatGraph, "forward", lambda self, x: tuple(self.net.raw(x)[i] for i in order))
    permuted = tmp_path / "permuted.onnx"
    ex.export_cv_xfeat(untrained_net("xfeat"), permuted, size=64, arch="xfeat", validate_graph=False)  # raw() order is the reference
    assert list(read_graph_info(permuted).outputs) == ["output_heatmap", "output_feats", "output_keypoints"]
    image = read_sample()
    a = cv2.XFeat_create(str(small_graph), 50, 0.0, (64, 64)).detectAndCompute(image, None)
    b = cv2.XFeat_create(str(permuted), 50, 0.0, (64, 64)).detectAndCompute(image, None)
    assert [k.pt for k in a[0]] == [k.pt for k in b[0]]
    np.testing.assert_allclose(a[1], b[1], atol=1e-6)
    with pytest.raises(cv2.error):
        cv2.XFeat_create(str(small_graph), 50, 0.0, (96, 96)).detectAndCompute(image, None)


def test_other_layouts_and_sizes_are_refused(tmp_path, capsys):
    assert export_cli.main(["default", "--format", "cv-xfeat", "-o", str(tmp_path / "x.onnx"), "-q"]) == 2
    err = capsys.readouterr().err
    assert "needs an XFeat-layout model (arch 'xfeat')" in err and "(arch 'fast')" in err
    with pytest.raises(ValueError, match="multiple of 32"):
        ex.export_cv_xfeat(untrained_net("xfeat"), tmp_path / "y.onnx", size=100, arch="xfeat")
    with pytest.raises(ValueError, match="XFeat-layout"):
        ex.export_cv_xfeat(untrained_net(), tmp_path / "z.onnx", size=64, arch="fast")
    with pytest.raises(SystemExit):
        export_cli.main(["default", "-o", str(tmp_path / "w.onnx"), "--size", "64"])  # --size is cv-xfeat's
    assert not any(tmp_path.glob("*.onnx"))


def test_a_graph_that_disagrees_is_not_written(tmp_path, monkeypatch):
    other = untrained_net("xfeat", seed=1)
    real_trace = ex._trace
    monkeypatch.setattr(ex, "_trace", lambda net, size, opset: real_trace(other, size, opset))
    with pytest.raises(export.ExportValidationError, match="disagrees with PyTorch"):
        ex.export_cv_xfeat(untrained_net("xfeat", seed=0), tmp_path / "x.onnx", size=64, arch="xfeat")
    assert not (tmp_path / "x.onnx").exists()


def _shipped_xfeat_checkpoints() -> list[Path]:
    """Shipped checkpoints of the XFeat layout (their graph beside them says so)."""
    out = []
    for graph in sorted(WEIGHTS_DIR.glob("*.onnx")):
        try:
            if read_onnx_metadata(graph)["arch"] == "xfeat" and graph.with_suffix(".pt").is_file():
                out.append(graph.with_suffix(".pt"))
        except ValueError:
            continue
    return out


def correct_matches(detector: cv2.Feature2D, vis: np.ndarray, ir: np.ndarray, H: np.ndarray,
                    px: float = 5.0) -> tuple[int, int]:
    """(mutual-NN matches, those within ``px`` of the ground truth) of a detector on a pair."""
    (k1, d1), (k2, d2) = detector.detectAndCompute(vis, None), detector.detectAndCompute(ir, None)
    m = mutual_nn_matches(d1, d2)
    errors = match_errors(cv2.KeyPoint_convert(k1)[m[:, 0]], cv2.KeyPoint_convert(k2)[m[:, 1]], H)
    return len(m), int((errors <= px).sum())


@pytest.mark.parametrize("checkpoint", _shipped_xfeat_checkpoints(), ids=lambda p: p.stem)
def test_opencv_xfeat_on_the_shipped_model_finds_s2nets_correct_matches(checkpoint, tmp_path):
    """cv2.XFeat_create on the exported graph registers as S2Net_create does on the bundled
    visible/thermal pair: correct matches (within 5 px of the ground truth) at K = 1024."""
    out = tmp_path / "cv-xfeat.onnx"
    assert export_cli.main([str(checkpoint), "--format", "cv-xfeat", "-o", str(out), "-q"]) == 0
    vis, ir = read_sample("roadscene", "vis"), read_sample("roadscene", "ir", cv2.IMREAD_UNCHANGED)
    H = sample_ground_truth("roadscene")
    opencv = correct_matches(cv2.XFeat_create(str(out), 1024, 0.0), vis, ir, H)
    s2net = correct_matches(s2cv.S2Net_create(model=str(checkpoint), nfeatures=1024), vis, ir, H)
    print(f"{checkpoint.name}: cv2.XFeat {opencv[1]} of {opencv[0]} matches correct, S2Net_create {s2net[1]} of "
          f"{s2net[0]}")
    assert opencv[1] >= 15 and opencv[1] >= 0.5 * s2net[1], (opencv, s2net)
