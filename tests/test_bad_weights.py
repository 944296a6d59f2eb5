"""A corrupt or truncated checkpoint is a ValueError naming the file, on every path that reads one."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from conftest import make_folder, untrained_net  # noqa: E402

import s2cv  # noqa: E402
from s2cv.cli import export as export_cli
from s2cv.models.checkpoint import load_model, read_checkpoint, save_checkpoint
from s2cv.cli.train import main as train_main


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("bad")
    good = root / "good.pt"
    save_checkpoint(good, untrained_net(), "fast")
    data = good.read_bytes()
    files = {"truncated": data[: len(data) // 2], "tail cut": data[:-100], "garbage": np.random.default_rng(0).bytes(4096),
             "empty": b"", "text": b"not a checkpoint\n"}
    out = {}
    for name, blob in files.items():
        out[name] = root / f"{name.replace(' ', '_')}.pt"
        out[name].write_bytes(blob)
    return out


@pytest.mark.parametrize("kind", ["truncated", "tail cut", "garbage", "empty", "text"])
def test_reading_and_loading(bad_files, kind):
    path = bad_files[kind]
    for read in (read_checkpoint, load_model):
        with pytest.raises(ValueError, match=rf"cannot read s2cv checkpoint .*{path.name}"):
            read(path)


@pytest.mark.parametrize("backend", ["auto", "torch", "onnxruntime", "opencv"])
def test_s2net_create(bad_files, backend):
    for path in bad_files.values():
        with pytest.raises(ValueError, match=rf"cannot read s2cv checkpoint .*{path.name}"):
            s2cv.S2Net_create(model=str(path), backend=backend, device="cpu")


def test_train_init_and_resume(bad_files, tmp_path):
    data = make_folder(tmp_path / "data", n=6)
    common = ["--dataset", "folder", "--data", str(data), "--steps", "1", "--val-every", "1", "--crop", "64",
              "--val-pairs", "1"]
    path = bad_files["truncated"]
    with pytest.raises(ValueError, match=rf"cannot read s2cv checkpoint .*{path.name}"):
        train_main([*common, "--out", str(tmp_path / "a"), "--init", str(path)])
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "last.pt").write_bytes(path.read_bytes())  # an interrupted copy of last.pt
    with pytest.raises(ValueError, match=r"cannot read s2cv checkpoint .*last\.pt"):
        train_main([*common, "--out", str(tmp_path / "b"), "--resume"])


def test_export_cli(bad_files, tmp_path, capsys):
    path = bad_files["garbage"]
    assert export_cli.main([str(path), "-o", str(tmp_path / "x.onnx"), "-q"]) == 2
    assert f"cannot read s2cv checkpoint {path}" in capsys.readouterr().err
    assert not (tmp_path / "x.onnx").exists()
