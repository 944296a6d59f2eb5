"""ONNX export (python -m s2cv.export) and the onnxruntime backend, on CPU.

A small randomly initialised ``fast`` net (fixed seed) stands in for trained weights: the
export has to reproduce PyTorch whatever the weights are.
"""
from __future__ import annotations

import copy
import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import untrained_net

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

import s2cv  # noqa: E402
from s2cv.cli import export as export_cli
from s2cv.deploy import export as ex
from s2cv.models import build_model
from s2cv.models.checkpoint import load_model, save_checkpoint
from s2cv.feature import graph
from s2cv.feature.backend_onnx import OnnxRuntimeBackend, make_onnx
from s2cv.feature.backends import make_backend
from s2cv.feature.graph import onnx_model_meta, prebuilt_onnx
from s2cv.feature.image import synthetic_image
from s2cv.feature.zoo import WEIGHTS_DIR, ZOO

SIZES = ((64, 96), (96, 128))  # small: CI runs on 2 cores


@pytest.fixture(scope="module")
def net() -> torch.nn.Module:
    return untrained_net()


@pytest.fixture(scope="module")
def exported(net, tmp_path_factory) -> tuple[ex.ExportReport, object]:
    path = tmp_path_factory.mktemp("onnx") / "fast.onnx"
    report = ex.export_onnx(net, path, sizes=SIZES)
    return report, path


def torch_maps(net: torch.nn.Module, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    with torch.inference_mode():
        out = net(torch.from_numpy(batch))
    return out["scores"].numpy(), out["descriptors"].numpy()


def test_export_is_valid_onnx_with_metadata(net, exported):
    report, path = exported
    model = onnx.load(str(path))
    onnx.checker.check_model(model, full_check=True)
    assert max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) >= 17
    assert [i.name for i in model.graph.input] == ["image"]
    assert [o.name for o in model.graph.output] == ["scores", "descriptors"]
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    dims = [d.dim_param for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert dims[0] and dims[2] and dims[3], f"batch/height/width must be dynamic, got {dims}"
    props = {p.key: p.value for p in model.metadata_props}
    assert props["s2cv.arch"] == "fast"
    assert props["s2cv.stride"] == "4" and props["s2cv.pad_multiple"] == "8"
    assert props["s2cv.descriptor_dim"] == "128"
    assert json.loads(props["s2cv.conf"]) == net.conf
    assert "s2cv.source_sha256" in props
    assert props["s2cv.weights_sha256"] == ex.weights_sha256(net)
    meta = graph.read_onnx_metadata(path)
    assert (meta["stride"], meta["pad_multiple"], meta["descriptor_dim"], meta["precision"]) == (4, 8, 128, "fp32")
    assert [c.passed for c in report.checks] == [True] * (1 + len(SIZES))


@pytest.mark.parametrize("size", [(64, 96), (120, 160)])
def test_onnxruntime_matches_torch_batch2(net, exported, size):
    _, path = exported
    rng = np.random.default_rng(1)
    img = synthetic_image(*size, seed=3).astype(np.float32) / 255
    batch = np.stack([img[None], rng.random((1, *size), dtype=np.float32)])
    session = ex.onnx_session(path)
    scores, desc = session.run(["scores", "descriptors"], {"image": batch})
    ref_scores, ref_desc = torch_maps(net, batch)
    assert scores.shape == (2, 1, *size) and desc.shape == (2, 128, size[0] // 4, size[1] // 4)
    np.testing.assert_allclose(scores, ref_scores, atol=1e-4, rtol=0)
    assert (desc * ref_desc).sum(1).min() > 0.9999


def test_export_leaves_the_callers_net_alone(tmp_path):
    """The legacy exporter flipped a wrapped net to training mode (BN stats moved); never again."""
    net = untrained_net()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    ex.export_onnx(net, tmp_path / "m.onnx", validate=False)
    assert not net.training
    for k, v in net.state_dict().items():
        assert torch.equal(v, before[k]), f"export modified {k}"


def test_validation_rejects_a_graph_that_disagrees(net, exported):
    _, path = exported
    tampered = untrained_net()
    with torch.no_grad():
        tampered.score_head.bias.add_(0.5)
        tampered.desc_head.weight.mul_(-1)
    with pytest.raises(ex.ExportValidationError, match="disagrees"):
        ex.validate_onnx(tampered, path, sizes=SIZES[:1])
    assert [r.passed for r in ex.validate_onnx(net, path, sizes=SIZES[:1])] == [True, True]


def test_cli_stops_with_nonzero_exit_when_outputs_differ(net, tmp_path, monkeypatch, capsys):
    ckpt = tmp_path / "net.pt"
    save_checkpoint(ckpt, net, "fast")
    real = ex._onnx_outputs

    def tampered(session, batch):
        scores, desc = real(session, batch)
        return scores + 5e-3, desc

    monkeypatch.setattr(ex, "_onnx_outputs", tampered)
    out = tmp_path / "bad.onnx"
    code = export_cli.main([str(ckpt), "-o", str(out), "--sizes", "64x96", "-q"])
    assert code != 0
    assert not out.exists(), "a graph that failed validation must not be written"
    err = capsys.readouterr().err
    assert "disagrees with PyTorch" in err and "scores max|diff|" in err


def test_cli_exports_a_checkpoint(net, tmp_path, capsys):
    ckpt = tmp_path / "net.pt"
    save_checkpoint(ckpt, net, "fast")
    out = tmp_path / "out" / "net.onnx"
    assert export_cli.main([str(ckpt), "-o", str(out), "--sizes", "64x96,96x128", "-q"]) == 0
    text = capsys.readouterr().out
    assert "desc cos min" in text and "wrote" in text
    meta = graph.read_onnx_metadata(out)
    assert meta["source_sha256"] == graph.file_sha256(ckpt)
    assert meta["weights_sha256"] == ex.weights_sha256(net)


def test_cli_reports_a_missing_model(tmp_path, capsys):
    assert export_cli.main([str(tmp_path / "nope.pt"), "-o", str(tmp_path / "x.onnx"), "-q"]) == 2
    assert "neither a zoo name" in capsys.readouterr().err


def test_export_rejects_old_opsets_and_bad_sizes(net, tmp_path):
    with pytest.raises(ValueError, match="opset must be >= 17"):
        ex.export_onnx(net, tmp_path / "x.onnx", opset=13)
    with pytest.raises(ValueError, match="multiples of pad_multiple=8"):
        ex.export_onnx(net, tmp_path / "x.onnx", sizes=[(60, 96)])


def test_mixed_fp16_graph_keeps_float32_io(net, exported):
    _, path = exported
    model = ex.to_mixed_fp16(onnx.load(str(path)))
    onnx.checker.check_model(model, full_check=True)
    halves = [t for t in model.graph.initializer if t.data_type == onnx.TensorProto.FLOAT16]
    assert len(halves) >= 10, "conv weights should be float16"
    assert all(v.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
               for v in list(model.graph.input) + list(model.graph.output))
    assert {p.key: p.value for p in model.metadata_props}["s2cv.precision"] == "fp16"
    batch = synthetic_image(64, 96)[None, None].astype(np.float32) / 255
    scores, desc = ex.onnx_session(model.SerializeToString()).run(None, {"image": batch})
    ref_scores, ref_desc = torch_maps(net, batch)
    assert np.abs(scores - ref_scores).max() < ex.FP16_TOLERANCE.scores_atol
    assert (desc * ref_desc).sum(1).min() > ex.FP16_TOLERANCE.min_cosine


def _identity_graph(path: Path, inputs: dict[str, list], outputs: dict[str, list]) -> Path:
    """A graph with the given input/output names and shapes (outputs copy the first input)."""
    from onnx import TensorProto, helper

    first = next(iter(inputs))
    graph = helper.make_graph([helper.make_node("Identity", [first], [name]) for name in outputs], "g",
                              [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in inputs.items()],
                              [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in outputs.items()])
    onnx.save(helper.make_model(graph), str(path))
    return path


@pytest.mark.parametrize("backend", ["onnxruntime", "opencv"])
def test_onnx_of_another_layout_says_what_was_expected(tmp_path, backend):
    foreign = _identity_graph(tmp_path / "foreign.onnx", {"x": [1]}, {"y": [1]})
    with pytest.raises(ValueError, match=r"wrong layout.*expected one input 'image'.*it has inputs 'x' \(1\)"):
        s2cv.S2Net_create(model=str(foreign), backend=backend, device="cpu")
    xfeat = _identity_graph(tmp_path / "xfeat.onnx", {"images": [1, 1, 640, 640]},
                            {n: [1, 1, 640, 640] for n in ("output_feats", "output_keypoints", "output_heatmap")})
    with pytest.raises(ValueError, match=r"cv::XFeat-layout graph: run it with cv2.XFeat_create"):
        s2cv.S2Net_create(model=str(xfeat), backend=backend, device="cpu")
    # The right names without s2cv's metadata: not an export of ours.
    bare = _identity_graph(tmp_path / "bare.onnx", {"image": ["b", 1, "h", "w"]},
                           {"scores": ["b", 1, "h", "w"], "descriptors": ["b", 1, "h", "w"]})
    with pytest.raises(ValueError, match="not an s2cv ONNX export"):
        make_backend(backend, None, {"onnx": str(bare)}, "cpu")


def test_graph_reader_agrees_with_onnx_on_the_shipped_graphs():
    """s2cv.feature.graph walks the protobuf itself (no onnx package at run time): same metadata, names, shapes."""
    from s2cv.feature.graph import read_graph_info

    for path in sorted(WEIGHTS_DIR.glob("*.onnx")):
        model, info = onnx.load(str(path), load_external_data=False), read_graph_info(path)
        assert info.metadata == {p.key: p.value for p in model.metadata_props}, path.name

        def dims(value_info) -> tuple:
            return tuple(d.dim_value if d.HasField("dim_value") else d.dim_param
                         for d in value_info.type.tensor_type.shape.dim)

        assert info.inputs == {i.name: dims(i) for i in model.graph.input}, path.name
        assert info.outputs == {o.name: dims(o) for o in model.graph.output}, path.name


def test_truncated_onnx_is_a_clear_error(tmp_path):
    data = (WEIGHTS_DIR / ZOO["default"]).with_suffix(".onnx").read_bytes()
    for name, blob in (("half", data[: len(data) // 2]), ("empty", b""), ("tail", data[:-7])):
        (tmp_path / f"{name}.onnx").write_bytes(blob)
        with pytest.raises(ValueError, match=rf"cannot read ONNX model .*{name}\.onnx"):
            s2cv.S2Net_create(model=str(tmp_path / f"{name}.onnx"), device="cpu")


def test_corrupt_onnx_is_a_clear_error_and_a_corrupt_sibling_is_skipped(tmp_path):
    (tmp_path / "m.onnx").write_bytes(b"\x08garbage, not protobuf")
    with pytest.raises(ValueError, match="cannot read ONNX model"):
        s2cv.S2Net_create(model=str(tmp_path / "m.onnx"), device="cpu")
    save_checkpoint(tmp_path / "m.pt", untrained_net(seed=1), "fast")
    with pytest.warns(UserWarning, match="not a readable s2cv ONNX export"):
        assert s2cv.S2NetFeature2D(str(tmp_path / "m.pt"), device="cpu")._net_backend.name == "torch"


# ----------------------------------------------------------------------------- backend
def test_prebuilt_onnx_backend(net, exported):
    _, path = exported
    backend = make_backend("onnxruntime", None, onnx_model_meta(path), "cpu")
    assert isinstance(backend, OnnxRuntimeBackend) and backend.providers == ["CPUExecutionProvider"]
    assert (backend.stride, backend.pad_multiple, backend.descriptor_dim) == (4, 8, 128)
    batch = synthetic_image(64, 64)[None, None].astype(np.float32) / 255
    maps = backend(batch)
    ref_scores, ref_desc = torch_maps(net, batch)
    assert isinstance(maps.scores, np.ndarray) and maps.scores.shape == (1, 64, 64) and maps.stride == 4
    np.testing.assert_allclose(maps.scores, ref_scores[:, 0], atol=1e-4)
    with pytest.raises(ValueError, match="multiples of 8"):
        backend(np.zeros((1, 1, 60, 64), np.float32))
    with pytest.raises(ValueError, match=r"\(B, 1, H, W\)"):
        backend(np.zeros((64, 64), np.float32))


def test_in_memory_net_is_exported_once_into_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("S2CV_CACHE", str(tmp_path))
    net = untrained_net(seed=5)
    first = make_onnx(net, {"arch": "S2Fast", "path": None}, "cpu")
    files = list((tmp_path / "onnx").glob("*.onnx"))
    assert len(files) == 1 and first.path == files[0]

    def no_export(*args, **kwargs):
        raise AssertionError("cached export should have been reused")

    monkeypatch.setattr("s2cv.deploy.export.export_onnx", no_export)
    assert make_onnx(net, {"arch": "S2Fast", "path": None}, "cpu").path == first.path


@pytest.mark.skipif("CUDAExecutionProvider" in ort.get_available_providers(), reason="this onnxruntime has CUDA")
def test_cuda_device_without_cuda_provider_is_a_clear_error(exported):
    _, path = exported
    with pytest.raises(RuntimeError, match="no CUDAExecutionProvider"):
        make_onnx(None, {"onnx": str(path)}, "cuda")


def test_onnxruntime_feature2d_matches_torch(tmp_path, monkeypatch):
    monkeypatch.setenv("S2CV_CACHE", str(tmp_path))
    net = untrained_net(seed=2)
    image = synthetic_image(240, 320, seed=7)
    ref = s2cv.S2NetFeature2D(net, backend="torch", device="cpu", nfeatures=800)
    det = s2cv.S2NetFeature2D(net, backend="onnxruntime", device="cpu", nfeatures=800)
    assert det._net_backend.name == "onnxruntime"
    kp_ref, d_ref = ref.detectAndCompute(image, None)
    kp, d = det.detectAndCompute(image, None)
    assert len(kp_ref) > 100 and d is not None and d.shape[1] == 128
    a = np.array([k.pt for k in kp_ref], np.float32)
    b = np.array([k.pt for k in kp], np.float32)
    dist = np.linalg.norm(a[:, None] - b[None], axis=2)
    nearest = dist.argmin(1)
    close = dist[np.arange(len(a)), nearest] <= 1.0
    assert close.mean() >= 0.95, f"only {close.mean():.1%} of torch keypoints have an onnxruntime twin within 1 px"
    cos = (d_ref[close] * d[nearest[close]]).sum(1)
    assert cos.min() >= 0.999, f"descriptor cosine min {cos.min():.5f}"


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # the legacy exporter, as s2cv.export uses
def test_standardisation_stays_exact_in_onnxruntime():
    """One ReduceMean over a 640x480 image loses accuracy in ONNX Runtime (scores moved by > 1e-3)."""
    from s2cv.models.common import normalize_image

    class Standardise(torch.nn.Module):
        def forward(self, image):
            return normalize_image(image)

    image = torch.from_numpy(synthetic_image(480, 640, seed=3)[None, None].astype(np.float32) / 255)
    buffer = io.BytesIO()
    torch.onnx.export(Standardise(), (image,), buffer, dynamo=False, opset_version=17,
                      input_names=["image"], output_names=["out"])
    (out,) = ex.onnx_session(buffer.getvalue()).run(None, {"image": image.numpy()})
    truth = normalize_image(image.double()).numpy()
    assert np.abs(out - truth).max() < 5e-6


# ----------------------------------------------------------------------------- graphs beside checkpoints
@pytest.mark.parametrize("name", sorted(ZOO))
def test_every_shipped_zoo_model_ships_its_own_graph(name):
    """A retrained .pt without a re-exported .onnx would make backend='auto' quietly fall back to torch."""
    if not (WEIGHTS_DIR / ZOO[name]).is_file():
        pytest.skip(f"{name} is not shipped")
    _, meta = load_model(name)
    path = prebuilt_onnx(meta)
    assert path is not None, f"re-export it: python -m s2cv.export {name} -o {Path(meta['path']).with_suffix('.onnx')}"
    assert graph.read_onnx_metadata(path)["conf"] == load_model(name)[0].conf


def test_auto_backend_on_cpu_runs_the_shipped_graph_with_torchs_keypoints():
    if "default" not in s2cv.available_models():
        pytest.skip("no default model shipped")
    image = ex.sample_image()
    auto = s2cv.S2Net_create(device="cpu", nfeatures=2000)
    ref = s2cv.S2Net_create(backend="torch", device="cpu", nfeatures=2000)
    assert auto._net_backend.name == "onnxruntime"
    kp, d = auto.detectAndCompute(image, None)
    kp_ref, d_ref = ref.detectAndCompute(image, None)
    a = {k.pt: i for i, k in enumerate(kp_ref)}
    same = [(a[k.pt], i) for i, k in enumerate(kp) if k.pt in a]
    assert len(kp) == len(kp_ref) == 2000 and len(same) >= 0.99 * len(kp), f"{len(same)} of 2000 keypoints identical"
    i, j = np.array(same).T
    assert (d_ref[i] * d[j]).sum(1).min() >= 0.9999


def test_graph_beside_a_user_checkpoint_is_used_and_a_stale_one_skipped(tmp_path, monkeypatch):
    monkeypatch.setenv("S2CV_CACHE", str(tmp_path / "cache"))
    ckpt = tmp_path / "mine.pt"
    save_checkpoint(ckpt, untrained_net(seed=3), "fast")
    assert s2cv.S2NetFeature2D(str(ckpt), device="cpu")._net_backend.name == "torch"  # nothing exported yet
    assert export_cli.main([str(ckpt), "-o", str(tmp_path / "mine.onnx"), "--sizes", "64x96", "-q"]) == 0
    det = s2cv.S2NetFeature2D(str(ckpt), device="cpu")
    assert det._net_backend.name == "onnxruntime" and det._net_backend.path == tmp_path / "mine.onnx"

    save_checkpoint(ckpt, untrained_net(seed=4), "fast")  # retrained: the graph beside it is now stale
    with pytest.warns(UserWarning, match="exported from other weights"):
        assert s2cv.S2NetFeature2D(str(ckpt), device="cpu")._net_backend.name == "torch"
    with pytest.warns(UserWarning, match="exported from other weights"):
        explicit = s2cv.S2NetFeature2D(str(ckpt), backend="onnxruntime", device="cpu")._net_backend
    assert explicit.path.parent == tmp_path / "cache" / "onnx"  # a fresh export of the new weights


def test_onnx_model_path_through_s2net_create(exported):
    """``S2Net_create(model='x.onnx', backend='onnxruntime')`` (needs the .onnx route in feature2d)."""
    _, path = exported
    try:
        det = s2cv.S2Net_create(model=str(path), backend="onnxruntime", device="cpu", nfeatures=200)
    except ValueError as exc:
        if "checkpoint" in str(exc):  # zoo.load_model tried to read the .onnx as a checkpoint
            pytest.skip("feature2d.py does not route .onnx models to onnx_model_meta yet")
        raise
    kp, desc = det.detectAndCompute(synthetic_image(120, 160), None)
    assert len(kp) > 0 and desc.shape == (len(kp), 128)


def test_synthetic_image_is_deterministic_and_textured():
    a, b = synthetic_image(120, 160, seed=1), synthetic_image(120, 160, seed=1)
    assert a.dtype == np.uint8 and a.shape == (120, 160) and np.array_equal(a, b)
    assert a.std() > 20 and not np.array_equal(a, synthetic_image(120, 160, seed=2))


def test_digest_covers_the_conf_that_changes_outputs():
    # Same weights, other keypoint ranking: a cached ONNX file/engine must not be reused.
    a = build_model("fast", keypoint_score="product")
    b = build_model("fast", keypoint_score="reliability")
    b.load_state_dict(a.state_dict())
    assert ex.weights_sha256(a) != ex.weights_sha256(b)
    assert ex.weights_sha256(a) == ex.weights_sha256(copy.deepcopy(a))
