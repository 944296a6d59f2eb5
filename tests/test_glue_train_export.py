"""S2Glue training (s2cv.training.glue_*) and export (s2cv.deploy.export_glue, s2cv export --format cv-lightglue)."""
from __future__ import annotations

import csv

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from conftest import make_folder  # noqa: E402

from s2cv.cli.export import main as export_main  # noqa: E402
from s2cv.cli.train_glue import main as train_glue_main  # noqa: E402
from s2cv.deploy.export_glue import export_glue  # noqa: E402
from s2cv.feature.glue import S2Glue_create, read_glue_metadata  # noqa: E402
from s2cv.models.glue import GlueConfig, GlueMatcher  # noqa: E402
from s2cv.models.checkpoint import load_model  # noqa: E402
from s2cv.models.glue_checkpoint import load_glue, save_glue  # noqa: E402
from s2cv.training.glue_data import GluePair, ground_truth  # noqa: E402
from s2cv.training.glue_loop import JointDescriptors, assignment_nll  # noqa: E402


def test_ground_truth_from_reprojection():
    k0 = np.array([[10, 10], [50, 50], [90, 20], [5, 200]], np.float32)
    H = np.array([[1, 0, 4], [0, 1, -2], [0, 0, 1]], np.float64)   # a shift by (4, -2)
    k1 = np.array([[14, 8], [54.5, 48.5], [300, 300]], np.float32)  # 0 and 1 have partners within 3 px
    matches, u0, u1 = ground_truth(k0, k1, H, (320, 240))
    assert matches.tolist() == [[0, 0], [1, 1]]
    assert u0.tolist() == [2, 3] and u1.tolist() == [2]


def test_nll_is_low_for_the_right_assignment_and_high_for_a_wrong_one():
    pair = GluePair("sl", np.zeros((3, 2), np.float32), np.zeros((3, 2), np.float32), np.zeros((3, 4), np.float32),
                    np.zeros((3, 4), np.float32), (8, 8), (8, 8), np.array([[0, 0], [1, 1]]), np.array([2]), np.array([2]))
    right = torch.full((1, 4, 4), -20.0)
    right[0, 0, 0] = right[0, 1, 1] = right[0, 2, 3] = right[0, 3, 2] = -0.01
    wrong = right.clone()[:, [1, 0, 2, 3]]
    assert assignment_nll(right, pair) < 0.05 < 5 < assignment_nll(wrong, pair)


def test_train_glue_runs_resumes_and_logs(tmp_path):
    """Two steps of S2 training (SL + both SSL branches) on a tiny folder set, from scratch, with
    validation; then --resume continues to step 3."""
    data = make_folder(tmp_path / "pairs", n=12, size=160)
    out = tmp_path / "run"
    args = ["--data", f"folder={data}", "--val", f"folder={data}", "--init", "scratch", "--nfeatures", "64",
            "--steps", "2", "--val-every", "2", "-o", str(out), "-q"]
    assert train_glue_main(args) == 0
    assert (out / "last.pt").is_file() and (out / "best.pt").is_file()
    rows = list(csv.DictReader(open(out / "log.csv")))
    assert [r["step"] for r in rows] == ["0", "1", "2"] and rows[-1]["val_glue"] != ""
    assert float(rows[1]["l_sl"]) > 0 and float(rows[1]["l_ssl_vis"]) > 0 and float(rows[1]["l_ssl_ir"]) > 0
    net, meta = load_glue(out / "last.pt")
    assert meta["det_model"] == "s2xfeat" and net.config.input_dim == 64
    assert train_glue_main([*args[:-5], "--steps", "3", "-o", str(out), "-q", "--resume"]) == 0
    assert list(csv.DictReader(open(out / "log.csv")))[-1]["step"] == "3"
    assert train_glue_main(["--data", f"folder={data}", "--init", "lighterglue", "-o", str(out / "x"), "-q"]) == 2


def test_joint_descriptors_are_the_runtime_descriptors_and_carry_gradients():
    """Joint training re-samples descriptors in torch; they must be what the shipped detector gives
    at the same keypoints (else the matcher learns on features it never sees), and differentiable."""
    from s2cv.feature.image import synthetic_image

    net, _ = load_model("s2xfeat")
    joint = JointDescriptors(net)
    img = synthetic_image(240, 320, seed=3)            # 240 is not a multiple of 32: padding matters
    kp, desc = joint.detector(256).detectAndCompute(img, None)
    xy = np.array([k.pt for k in kp], np.float32)
    mine = joint(img, xy)
    np.testing.assert_allclose(mine[0].detach().numpy(), desc, atol=2e-4)
    mine.sum().backward()
    assert net.fusion[-1].weight.grad is not None and net.fusion[-1].weight.grad.abs().sum() > 0


def test_joint_training_writes_the_detector_the_matcher_names(tmp_path):
    data = make_folder(tmp_path / "pairs", n=12, size=160)
    out = tmp_path / "joint"
    before = load_model("s2xfeat")[0].state_dict()
    args = ["--data", f"folder={data}", "--val", f"folder={data}", "--init", "scratch", "--nfeatures", "64",
            "--steps", "2", "--val-every", "2", "--joint-lr", "1e-3", "-o", str(out), "-q"]
    assert train_glue_main(args) == 0
    _, meta = load_glue(out / "best.pt")
    assert meta["det_model"] == str(out / "detector_best.pt")
    tuned, _ = load_model(out / "detector_last.pt")
    changed = [k for k, v in tuned.state_dict().items() if v.is_floating_point() and not torch.equal(v, before[k])]
    assert changed, "joint training left the detector untouched"
    assert train_glue_main([*args[:-3], "--steps", "3", "-o", str(out), "-q", "--resume"]) == 0
    assert train_glue_main([*args[:-5], "--joint-lr", "-1", "-o", str(out / "x"), "-q"]) == 2


def test_export_cli_writes_a_graph_both_runtimes_load(tmp_path, capsys):
    ckpt = tmp_path / "g.pt"
    torch.manual_seed(0)
    save_glue(ckpt, GlueMatcher(GlueConfig(input_dim=64, dim=32, n_layers=2)), {"det_model": "s2xfeat"})
    out = tmp_path / "g.onnx"
    assert export_main([str(ckpt), "--format", "cv-lightglue", "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "cv2.LightGlueMatcher_create" in printed and "FAIL" not in printed and "onnxruntime sample" in printed
    meta = read_glue_metadata(out)
    assert meta["det_model"] == "s2xfeat" and meta["descriptor_dim"] == 64
    m = S2Glue_create(ckpt)   # a checkpoint finds its graph beside it
    assert m.path == out and m.det_model == "s2xfeat"
    assert export_main([str(tmp_path / "missing.pt"), "--format", "cv-lightglue", "-o", str(out)]) == 2


def test_export_refuses_a_graph_that_disagrees(tmp_path, monkeypatch):
    """The validation can fail: the graph is traced from the plain matcher while the PyTorch
    reference shifts its matches; nothing is written then."""
    from s2cv.deploy import export_glue as eg
    from s2cv.deploy.export import ExportValidationError

    torch.manual_seed(0)
    config = GlueConfig(input_dim=64, dim=32, n_layers=2, filter_threshold=0.0, width_confidence=-1)
    rng = np.random.default_rng(0)
    k = rng.uniform(0, 100, (40, 2)).astype(np.float32)
    d = rng.normal(size=(40, 64)).astype(np.float32)
    inputs = [("random", (k, k, d, d, (100, 100), (100, 100)))]

    class Shifted(GlueMatcher):
        def forward(self, *a):
            out = super().forward(*a)
            return {**out, "matches0": torch.roll(out["matches0"], 1, dims=1)}

    plain = GlueMatcher(config).eval()
    report = export_glue(plain, tmp_path / "ok.onnx", det_model="s2xfeat", inputs=inputs)
    assert report.checks and all(c.passed for c in report.checks)
    bad = Shifted(config)
    bad.load_state_dict(plain.state_dict())
    real_trace = eg._trace
    monkeypatch.setattr(eg, "_trace", lambda net, opset: real_trace(plain, opset))
    with pytest.raises(ExportValidationError, match="disagrees"):
        export_glue(bad, tmp_path / "bad.onnx", det_model="s2xfeat", inputs=inputs)
    assert not (tmp_path / "bad.onnx").exists()
