"""The runtime without torch: what a `pip install .` user (no ``[train]`` extra) can do.

Each test runs a fresh interpreter in which importing torch, onnx, tensorrt, tqdm or matplotlib
fails (a meta-path finder raises ModuleNotFoundError for them, as in a venv without them), and
checks that S2Net_create on every zoo model, the whole cv2.Feature2D surface, ``s2cv register``
and ``s2cv info`` work, that none of those modules got imported, and that whatever needs the
extra says how to install it.

The runtime rooms (``s2cv.feature``, ``s2cv.registration``) and the runtime's commands import
without those modules; every other room (``s2cv.torch_backends`` included) says how to get them. The static side
of the rule (which room may import which) is ``tests/test_layout.py``.
"""
from __future__ import annotations

import json
import os
import pkgutil
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import s2cv
from s2cv.feature.extras import TRAIN_INSTALL

PACKAGE_PARENT = Path(s2cv.__file__).resolve().parents[1]
BLOCKED = ("torch", "onnx", "tensorrt", "tqdm", "matplotlib")
# What a torch-free install imports: the runtime rooms and their commands.
RUNTIME_COMMANDS = ("s2cv", "s2cv.__main__", "s2cv.register", "s2cv.calibrate", "s2cv.cli", "s2cv.cli.main",
                    "s2cv.cli.register", "s2cv.cli.calibrate", "s2cv.runtime")
# The rooms and commands that need the extra must name it instead of failing deep inside.
NAMES_THE_EXTRA = ("s2cv.models", "s2cv.training", "s2cv.evaluation", "s2cv.deploy", "s2cv.train",
                   "s2cv.export", "s2cv.evaluate", "s2cv.convert", "s2cv.build_engine", "s2cv.deploy.export_xfeat",
                   "s2cv.torch_backends.backend_torch")

BLOCKER = f"""
import importlib.abc, json, sys

class _Blocked(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in {BLOCKED!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}} (blocked by the test)", name=name)
        return None

sys.meta_path.insert(0, _Blocked())

def _no_blocked_module_was_imported():
    loaded = sorted(m for m in sys.modules if m.partition(".")[0] in {BLOCKED!r})
    assert not loaded, f"imported with torch & co. blocked: {{loaded}}"
"""


def run_without_torch(code: str, tmp_path: Path) -> dict:
    """Run ``code`` with the blocked imports; it fills ``out`` (a dict), printed back as JSON."""
    script = tmp_path / "no_torch.py"
    script.write_text(BLOCKER + "\nout = {}\n" + textwrap.dedent(code)
                      + "\n_no_blocked_module_was_imported()\nprint('@@' + json.dumps(out))\n")
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(PACKAGE_PARENT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, cwd=tmp_path, env=env,
                          timeout=600)
    assert proc.returncode == 0, f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("@@"))
    return json.loads(line[2:])


def test_runtime_modules_import_without_torch(tmp_path):
    import s2cv.feature
    import s2cv.registration

    runtime = sorted(f"{room.__name__}.{m.name}" for room in (s2cv.feature, s2cv.registration)
                     for m in pkgutil.iter_modules(room.__path__))
    assert {"s2cv.feature.feature2d", "s2cv.feature.backend_onnx", "s2cv.registration.register"} <= set(runtime)
    out = run_without_torch(f"""
        import importlib, json
        for name in {[*RUNTIME_COMMANDS, *runtime]!r}:
            importlib.import_module(name)
        out["extra"] = {{}}
        for name in {NAMES_THE_EXTRA!r}:
            try:
                importlib.import_module(name)
            except ImportError as exc:
                out["extra"][name] = str(exc)
    """, tmp_path)
    for name in NAMES_THE_EXTRA:
        assert TRAIN_INSTALL in out["extra"].get(name, ""), (name, out["extra"].get(name))


def test_every_zoo_model_detects_and_the_sample_registers(tmp_path):
    out = run_without_torch("""
        import json
        import cv2, numpy as np
        import s2cv
        from s2cv.register import SAMPLES, main, register, sample_corner_error, sample_ground_truth

        vis = cv2.imread(str(SAMPLES["roadscene"][0]))
        det = s2cv.S2Net_create()
        kp, des = det.detectAndCompute(vis, None)
        out["default"] = [det._net_backend.name, len(kp), list(des.shape), det.descriptorSize()]
        crop = vis[:160, :224]
        out["zoo"] = {}
        for name in s2cv.available_models():
            d = s2cv.S2Net_create(model=name, nfeatures=100)
            k, ds = d.detectAndCompute(crop, None)
            out["zoo"][name] = [d._net_backend.name, len(k), ds.shape[1], bool(np.isfinite(ds).all())]
        vis_, ir_, _ = SAMPLES["roadscene"]
        out["corner_error"] = sample_corner_error(register(vis_, ir_, det), sample_ground_truth("roadscene"))
        out["cli"] = main(["--sample", "-o", "reg"])
    """, tmp_path)
    name, n, shape, dim = out["default"]
    assert name in ("onnxruntime", "opencv") and 1000 <= n <= 4096 and shape == [n, dim] and dim in (64, 128)
    from s2cv.feature.zoo import WEIGHTS_DIR, ZOO

    shipped = {z for z, f in ZOO.items() if (WEIGHTS_DIR / f).is_file()}
    assert set(out["zoo"]) == shipped
    for model, (backend, k, dim, finite) in out["zoo"].items():
        assert backend in ("onnxruntime", "opencv") and k == 100 and dim > 0 and finite, (model, out["zoo"][model])
    assert out["corner_error"] < 20, out["corner_error"]
    assert out["cli"] == 0
    for f in ("matches.png", "overlay.png", "H.txt", "summary.json"):
        assert (tmp_path / "reg" / f).is_file(), f


@pytest.mark.parametrize("backend", ["opencv", "onnxruntime"])
def test_the_whole_feature2d_surface(tmp_path, backend):
    out = run_without_torch(f"""
        import cv2, numpy as np
        import s2cv
        from s2cv.register import SAMPLES

        img = cv2.imread(str(SAMPLES["visnir"][0]))[400:600, 384:640]  # textured, not sky
        gray = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
        det = s2cv.S2Net_create(nfeatures=300, backend={backend!r})
        out["backend"] = det._net_backend.name
        from s2cv.feature.zoo import model_meta
        out["dim"] = model_meta("default")["descriptor_dim"]
        out["constants"] = [det.descriptorSize(), det.descriptorType() == cv2.CV_32F,
                            det.defaultNorm() == cv2.NORM_L2, det.getDefaultName(), det.empty()]
        det.clear()
        kp = det.detect(img)
        kp2, des = det.detectAndCompute(img, None)
        out["detect"] = [len(kp), len(kp2), list(des.shape), [k.pt for k in kp] == [k.pt for k in kp2]]
        mask = np.zeros(gray.shape, np.uint8)
        mask[:, :128] = 255
        km, _ = det.detectAndCompute(img, mask)
        out["mask"] = max(k.pt[0] for k in km) < 128
        sift = cv2.SIFT_create(100).detect(gray, None)
        ks, ds = det.compute(img, sift)
        out["compute"] = [len(ks), list(ds.shape)]
        kp_given, d_given = det.detectAndCompute(img, None, useProvidedKeypoints=True, keypoints=kp2[:50])
        out["provided"] = bool(np.allclose(d_given, des[:50], atol=1e-5))
        lists = det.detect([img, gray])
        kl, dl = det.compute([img, gray], [kp2[:20], kp2[:30]])
        out["lists"] = [len(lists), len(lists[0]), len(lists[1]), dl[0].shape[0], dl[1].shape[0]]
        matches = cv2.BFMatcher(det.defaultNorm(), crossCheck=True).match(des, det.compute(gray, kp2)[1])
        out["self_matches"] = sum(m.queryIdx == m.trainIdx for m in matches) / len(kp2)
        maps = det.denseMaps(gray.astype(np.float32) / 255)
        k3, d3, maps3 = det.detectAndComputeMaps(img)
        out["maps"] = [list(maps.scores.shape), maps.stride, list(maps3.scores.shape)]
        det.setNFeatures(40)
        det.setThreshold(0.0)
        out["setters"] = [det.getNFeatures(), len(det.detect(img))]
        det.save("det.yml")
        other = s2cv.S2Net_create(nfeatures=7, backend={backend!r})
        other.read("det.yml")
        fs = cv2.FileStorage("det2.yml", cv2.FILE_STORAGE_WRITE)
        det.write(fs, "S2Net")
        fs.release()
        out["filestorage"] = other.getNFeatures()
    """, tmp_path)
    assert out["backend"] == backend
    dim = out["dim"]  # the default's graph says how long its descriptors are
    assert dim in (64, 128) and out["constants"] == [dim, True, True, "Feature2D.S2Net", False]
    assert out["detect"] == [300, 300, [300, dim], True]
    assert out["mask"] and out["compute"][0] > 50 and out["compute"][1] == [out["compute"][0], dim]
    assert out["provided"] and out["lists"] == [2, 300, 300, 20, 30]
    assert out["self_matches"] > 0.99
    assert out["maps"] == [[1, 200, 256], 4, [1, 200, 256]]
    assert out["setters"] == [40, 40] and out["filestorage"] == 40
    assert (tmp_path / "det2.yml").is_file()


def test_what_needs_the_extra_says_how_to_get_it(tmp_path):
    from s2cv.feature.zoo import WEIGHTS_DIR, ZOO

    checkpoint = tmp_path / "mine.pt"  # a checkpoint without the graph beside it: only torch can run it
    checkpoint.write_bytes((WEIGHTS_DIR / ZOO["default"]).read_bytes())
    out = run_without_torch(f"""
        import contextlib, io
        import s2cv
        from s2cv.__main__ import main

        out["errors"] = {{}}
        for what, call in (("torch backend", lambda: s2cv.S2Net_create(backend="torch")),
                           ("checkpoint without graph", lambda: s2cv.S2Net_create(model={str(checkpoint)!r})),
                           ("export of it", lambda: s2cv.S2Net_create(model={str(checkpoint)!r},
                                                                       backend="onnxruntime"))):
            try:
                call()
                out["errors"][what] = None
            except ImportError as exc:
                out["errors"][what] = str(exc)
        out["cli"] = {{}}
        for command in ("train", "export", "evaluate", "info"):
            err, std = io.StringIO(), io.StringIO()
            with contextlib.redirect_stderr(err), contextlib.redirect_stdout(std):
                status = main([command, "--help"] if command != "info" else [command])
            out["cli"][command] = [status, err.getvalue(), std.getvalue()]
    """, tmp_path)
    for what, message in out["errors"].items():
        assert message and TRAIN_INSTALL in message, (what, message)
    for command in ("train", "export", "evaluate"):
        status, err, _ = out["cli"][command]
        assert status == 2 and TRAIN_INSTALL in err, (command, out["cli"][command])
    status, _, text = out["cli"]["info"]
    assert status == 0 and "backend opencv       available" in text and "backend torch        not available" in text
    assert re.search(r"S2Net_create\(.*\) runs on: (onnxruntime|opencv)", text), text
