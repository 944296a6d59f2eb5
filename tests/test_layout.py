"""The package's rooms and who may import whom, read from the source (no imports are run).

    runtime     s2cv/__init__.py, s2cv/runtime/   image -> backend -> maps -> keypoints, matching, fits
    models      s2cv/models/                      the networks and their checkpoints (torch)
    training    s2cv/training/                    data, the S2 transform, losses, the loop
    evaluation  s2cv/evaluation/                  data-set layouts, metrics, reports, plots
    deploy      s2cv/deploy/                      ONNX export, TensorRT builder
    commands    s2cv/*.py                         thin command-line modules over the rooms

A runtime module imports only the standard library, numpy and OpenCV when it is imported;
anything else (onnxruntime; torch for tensors a caller already holds on a GPU) it loads inside the
function that needs it. Only the backends that run torch code (``backend_torch``, loaded when a
network rather than a graph has to run, and ``backend_trt``) reach the models or the exporter. ``tests/test_runtime_no_torch.py`` checks the same rule by
running the runtime in an interpreter where torch cannot be imported.
"""
from __future__ import annotations

import ast
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

import s2cv

PACKAGE = Path(s2cv.__file__).resolve().parent
ROOMS = ("runtime", "models", "training", "evaluation", "deploy")
# room -> the rooms its modules may import from (always also itself)
MAY_IMPORT = {
    "runtime": set(),
    "models": {"runtime"},
    "training": {"runtime", "models", "evaluation"},
    "evaluation": {"runtime"},
    "deploy": {"runtime", "models"},
    "commands": set(ROOMS),
}
# Backends that run torch code, loaded only when chosen: they may reach models and deploy from inside functions.
TORCH_BRIDGES = {"s2cv.runtime.backend_torch", "s2cv.runtime.backend_trt"}
RUNTIME_TOP_LEVEL = {"numpy", "cv2"}  # third-party modules a runtime module may import at import time


@dataclass(frozen=True)
class Import:
    module: str        # the importing module, e.g. s2cv.runtime.register
    target: str        # what it imports, absolute, e.g. s2cv.runtime.image or numpy
    top_level: bool    # at import time (module body), not inside a function


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def room_of(module: str) -> str:
    parts = module.split(".")
    if module == "s2cv":
        return "runtime"
    return parts[1] if parts[1] in ROOMS else "commands"


def imports_of(path: Path, module: str | None = None) -> list[Import]:
    module = module or module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    tree = ast.parse(path.read_text(), str(path))
    found: list[Import] = []

    def visit(node: ast.AST, top_level: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inside = top_level and not isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                continue  # annotations only, never executed
            if isinstance(child, ast.Import):
                found.extend(Import(module, a.name, top_level) for a in child.names)
            elif isinstance(child, ast.ImportFrom) and child.module != "__future__":
                base = child.module or ""
                if child.level:
                    anchor = package.split(".")[: len(package.split(".")) - child.level + 1]
                    base = ".".join(anchor + ([base] if base else []))
                for alias in child.names:  # `from s2cv.runtime import viz` imports the module s2cv.runtime.viz
                    sub = f"{base}.{alias.name}"
                    is_module = (PACKAGE.parent / Path(*sub.split("."))).with_suffix(".py").is_file() or \
                        (PACKAGE.parent / Path(*sub.split(".")) / "__init__.py").is_file()
                    found.append(Import(module, sub if is_module else base, top_level))
            visit(child, inside)

    visit(tree, True)
    return found


SOURCES = sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)
ALL = [imp for path in SOURCES for imp in imports_of(path)]


def test_every_module_lives_in_a_room():
    commands = sorted(module_name(p) for p in SOURCES if room_of(module_name(p)) == "commands")
    assert commands, "no command modules found"
    for name in commands:
        assert name.count(".") == 1, f"{name}: a command module sits directly in s2cv/"
    for room in ROOMS:
        assert (PACKAGE / room / "__init__.py").is_file(), f"room {room} is missing"


def room_violations(imports: list[Import], room: str) -> list[str]:
    allowed = MAY_IMPORT[room] | {room}
    bad = []
    for imp in imports:
        if room_of(imp.module) != room or not imp.target.startswith("s2cv.") or imp.target.startswith("s2cv._C"):
            continue
        target = room_of(imp.target)
        if target in allowed:
            continue
        if imp.module in TORCH_BRIDGES and target in ("models", "deploy") and not imp.top_level:
            continue
        bad.append(f"{imp.module} imports {imp.target} ({target})")
    return bad


def runtime_top_level_violations(imports: list[Import]) -> list[str]:
    stdlib = set(sys.stdlib_module_names)
    return [f"{imp.module}: import {imp.target}" for imp in imports
            if room_of(imp.module) == "runtime" and imp.top_level and imp.module not in TORCH_BRIDGES
            and not imp.target.startswith("s2cv") and imp.target.split(".")[0] not in stdlib | RUNTIME_TOP_LEVEL]


@pytest.mark.parametrize("room", [*ROOMS, "commands"])
def test_rooms_import_only_what_their_rule_allows(room):
    bad = room_violations(ALL, room)
    assert not bad, f"{room} may import only {sorted(MAY_IMPORT[room] | {room})}:\n" + "\n".join(bad)


def test_no_room_imports_a_command_module():
    bad = [f"{imp.module} imports {imp.target}" for imp in ALL
           if room_of(imp.module) != "commands" and imp.target.startswith("s2cv.")
           and room_of(imp.target) == "commands" and imp.target != "s2cv"]
    assert not bad, "\n".join(bad)


def test_runtime_imports_only_numpy_and_opencv_at_import_time():
    bad = runtime_top_level_violations(ALL)
    assert not bad, "\n".join(bad)


def test_evaluation_never_imports_torch():
    bad = [f"{imp.module}: import {imp.target}" for imp in ALL
           if room_of(imp.module) == "evaluation" and imp.target.split(".")[0] in ("torch", "onnx", "tensorrt")]
    assert not bad, "\n".join(bad)


def test_command_modules_stay_thin():
    """Commands parse arguments and call a room: no classes, and no function longer than a screen."""
    for path in SOURCES:
        if room_of(module_name(path)) != "commands" or path.name == "__main__.py":
            continue
        tree = ast.parse(path.read_text())
        assert not [n for n in tree.body if isinstance(n, ast.ClassDef)], f"{path.name} defines a class"
        for node in tree.body:
            if isinstance(node, ast.FunctionDef):
                length = node.end_lineno - node.lineno + 1
                assert length <= 80, f"{path.name}:{node.name} is {length} lines"


def test_the_rule_sees_a_violation(tmp_path):
    """The checker itself: a runtime module that imports torch and the training room, a relative
    import into the exporter, and a lazy import of onnxruntime (allowed) are told apart."""
    probe = tmp_path / "probe.py"
    probe.write_text("import torch\nfrom s2cv.training import losses\nfrom ..deploy import export\n"
                     "def f():\n    import onnxruntime\n")
    imports = imports_of(probe, "s2cv.runtime.probe")
    assert {(i.target, i.top_level) for i in imports} == {
        ("torch", True), ("s2cv.training.losses", True), ("s2cv.deploy.export", True), ("onnxruntime", False)}
    assert room_violations(imports, "runtime") == [
        "s2cv.runtime.probe imports s2cv.training.losses (training)",
        "s2cv.runtime.probe imports s2cv.deploy.export (deploy)"]
    assert runtime_top_level_violations(imports) == ["s2cv.runtime.probe: import torch"]
