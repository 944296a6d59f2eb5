"""The package's rooms and who may import whom, read from the source (no imports are run).

    feature         s2cv/feature/          what S2Net_create needs: image -> backend registry -> maps
                                           -> post-processing -> cv2.KeyPoint + descriptors; zoo, detectors
    registration    s2cv/registration/     matching, fits, verdict, refinement, register, calibrate, video,
                                           pictures, and the files they write (io)
    torch_backends  s2cv/torch_backends/   the backends that run torch code (torch, TensorRT) and the
                                           export of a checkpoint into the graph cache
    models          s2cv/models/           the networks and their checkpoints (torch)
    training        s2cv/training/         data, the S2 transform, losses, the loop
    evaluation      s2cv/evaluation/       data-set layouts, metrics, reports, plots, the NumPy reference
    deploy          s2cv/deploy/           ONNX export, TensorRT builder
    cli             s2cv/cli/              the commands: one module each, thin, one style; main.py dispatches
    package         s2cv/*.py, runtime/    the top-level package (S2Net_create, register, calibrate), the
                                           ``python -m s2cv.NAME`` entry points, the old ``s2cv.runtime`` paths

The runtime is the feature and the registration: a module there imports only the standard
library, numpy and OpenCV when it is imported; anything else (onnxruntime; torch for tensors a
caller already holds on a GPU) it loads inside the function that needs it. The feature reaches the
torch backends only by name, through its backend registry (``s2cv.feature.backends``), never by
an import, so no import cycle runs through the exporter. ``tests/test_runtime_no_torch.py``
checks the same rule by running the runtime in an interpreter where torch cannot be imported.
No module imports, even inside a function, a module that imports it back (``test_no_import_cycle``).
"""
from __future__ import annotations

import ast
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

import s2cv
from s2cv.cli.main import COMMANDS

PACKAGE = Path(s2cv.__file__).resolve().parent
ROOMS = ("feature", "registration", "torch_backends", "models", "training", "evaluation", "deploy", "cli")
RUNTIME = ("feature", "registration")
# room -> the rooms its modules may import from (always also itself)
MAY_IMPORT = {
    "feature": set(),
    "registration": {"feature"},
    "torch_backends": {"feature", "models", "deploy"},
    "models": {"feature", "registration"},
    "training": {"feature", "registration", "models", "evaluation"},
    "evaluation": {"feature", "registration"},
    "deploy": {"feature", "registration", "models"},
    "cli": set(ROOMS),
    "package": {"feature", "registration", "cli"},
}
RUNTIME_TOP_LEVEL = {"numpy", "cv2"}  # third-party modules a runtime module may import at import time
# The feature's one door to the torch backends: "module:function" strings of its backend registry.
REGISTRY = "s2cv.feature.backends"
ENTRY_POINT = re.compile(r"^s2cv(\.\w+)+:\w+$")


@dataclass(frozen=True)
class Import:
    module: str        # the importing module, e.g. s2cv.registration.register
    target: str        # what it imports, absolute, e.g. s2cv.feature.image or numpy
    top_level: bool    # at import time (module body), not inside a function


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def room_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in ROOMS else "package"


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
                for alias in child.names:  # `from s2cv.registration import viz` imports the module s2cv.registration.viz
                    sub = f"{base}.{alias.name}"
                    is_module = (PACKAGE.parent / Path(*sub.split("."))).with_suffix(".py").is_file() or \
                        (PACKAGE.parent / Path(*sub.split(".")) / "__init__.py").is_file()
                    found.append(Import(module, sub if is_module else base, top_level))
            visit(child, inside)

    visit(tree, True)
    return found


SOURCES = sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)
MODULES = {module_name(p) for p in SOURCES}
ALL = [imp for path in SOURCES for imp in imports_of(path)]


def test_every_module_lives_in_a_room():
    for room in ROOMS:
        assert (PACKAGE / room / "__init__.py").is_file(), f"room {room} is missing"
    package = sorted(m for m in MODULES if room_of(m) == "package")
    for name in package:
        assert name == "s2cv" or name.startswith("s2cv.runtime") or name.count(".") == 1, \
            f"{name}: only the package, its entry points and the old runtime paths sit outside the rooms"


def test_every_command_is_in_the_dispatcher_in_one_style():
    """One module per command in s2cv/cli/, each in ``s2cv NAME``'s dispatcher and reachable as
    ``python -m s2cv.NAME``, with ``build_parser`` and ``main``."""
    commands = sorted(m.rpartition(".")[2] for m in MODULES
                      if room_of(m) == "cli" and m not in ("s2cv.cli", "s2cv.cli.main"))
    assert commands
    dispatched = {module.rpartition(".")[2]: name for name, (module, _) in COMMANDS.items() if module}
    assert sorted(dispatched) == commands, "every command module is in s2cv.cli.main.COMMANDS, and only those"
    for name in commands:
        tree = ast.parse((PACKAGE / "cli" / f"{name}.py").read_text())
        functions = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
        assert {"build_parser", "main"} <= set(functions), f"s2cv/cli/{name}.py needs build_parser and main"
        prog = functions["build_parser"].args.defaults[0].value
        assert prog == f"s2cv {dispatched[name]}", f"s2cv/cli/{name}.py: prog {prog!r}"
        assert (PACKAGE / f"{name}.py").is_file(), f"python -m s2cv.{name} needs s2cv/{name}.py"
        assert re.search(r"\"-o\", \"--output\", \"--out\"", (PACKAGE / "cli" / f"{name}.py").read_text()), \
            f"s2cv/cli/{name}.py: -o/--output (and --out) is the output"


def room_violations(imports: list[Import], room: str) -> list[str]:
    allowed = MAY_IMPORT[room] | {room}
    bad = []
    for imp in imports:
        if room_of(imp.module) != room or not imp.target.startswith("s2cv.") or imp.target.startswith("s2cv._C"):
            continue
        target = room_of(imp.target)
        if target not in allowed:
            bad.append(f"{imp.module} imports {imp.target} ({target})")
    return bad


def runtime_top_level_violations(imports: list[Import]) -> list[str]:
    stdlib = set(sys.stdlib_module_names)
    return [f"{imp.module}: import {imp.target}" for imp in imports
            if room_of(imp.module) in RUNTIME and imp.top_level
            and not imp.target.startswith("s2cv") and imp.target.split(".")[0] not in stdlib | RUNTIME_TOP_LEVEL]


@pytest.mark.parametrize("room", [*ROOMS, "package"])
def test_rooms_import_only_what_their_rule_allows(room):
    bad = room_violations(ALL, room)
    assert not bad, f"{room} may import only {sorted(MAY_IMPORT[room] | {room})}:\n" + "\n".join(bad)


def test_no_room_imports_a_command_module():
    bad = [f"{imp.module} imports {imp.target}" for imp in ALL
           if room_of(imp.module) not in ("cli", "package") and imp.target.startswith("s2cv.")
           and room_of(imp.target) in ("cli", "package") and imp.target != "s2cv"]
    assert not bad, "\n".join(bad)


def test_runtime_imports_only_numpy_and_opencv_at_import_time():
    bad = runtime_top_level_violations(ALL)
    assert not bad, "\n".join(bad)


def test_evaluation_never_imports_torch():
    bad = [f"{imp.module}: import {imp.target}" for imp in ALL
           if room_of(imp.module) == "evaluation" and imp.target.split(".")[0] in ("torch", "onnx", "tensorrt")]
    assert not bad, "\n".join(bad)


def entry_points(path: Path) -> list[str]:
    """The "s2cv.module:function" strings in a module's source."""
    return [node.value for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and ENTRY_POINT.match(node.value)]


def test_the_runtime_names_code_outside_it_only_in_the_backend_registry():
    """The feature's one door to torch code: the registry's "module:function" strings, each naming
    a function that exists; no other runtime module names code by string."""
    named = {module_name(p): entry_points(p) for p in SOURCES if room_of(module_name(p)) in RUNTIME}
    assert {m for m, found in named.items() if found} == {REGISTRY}
    for spec in named[REGISTRY]:
        module, _, function = spec.partition(":")
        assert module in MODULES and room_of(module) in ("feature", "torch_backends"), spec
        path = PACKAGE.parent / (module.replace(".", "/") + ".py")
        assert function in {n.name for n in ast.parse(path.read_text()).body if isinstance(n, ast.FunctionDef)}, spec


def import_graph(imports: list[Import]) -> dict[str, set[str]]:
    """s2cv module -> the s2cv modules it imports, at import time or inside functions."""
    graph: dict[str, set[str]] = {}
    for imp in imports:
        target = imp.target
        while target not in MODULES and "." in target:  # `from s2cv.x.y import name`: the module s2cv.x.y
            target = target.rpartition(".")[0]
        if imp.target.startswith("s2cv") and target in MODULES and target != imp.module:
            graph.setdefault(imp.module, set()).add(target)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                connect(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return found


def test_no_import_cycle():
    found = cycles(import_graph(ALL))
    assert not found, "import cycles among s2cv modules (function-level imports count):\n" + \
        "\n".join(" <-> ".join(c) for c in found)


def test_the_cycle_check_sees_a_cycle(tmp_path):
    """A lazy import inside a function closes a cycle as surely as a top-level one."""
    probe = tmp_path / "probe.py"
    probe.write_text("def f():\n    from s2cv.deploy import export\n")
    graph = import_graph([*ALL, *imports_of(probe, "s2cv.feature.graph")])
    assert any({"s2cv.deploy.export", "s2cv.feature.graph"} <= set(c) for c in cycles(graph))


def test_command_modules_stay_thin():
    """Commands parse arguments and call a room: no classes, and no function longer than a screen."""
    for path in SOURCES:
        if room_of(module_name(path)) not in ("cli", "package") or module_name(path) == "s2cv.cli.main":
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
    imports = imports_of(probe, "s2cv.feature.probe")
    assert {(i.target, i.top_level) for i in imports} == {
        ("torch", True), ("s2cv.training.losses", True), ("s2cv.deploy.export", True), ("onnxruntime", False)}
    assert room_violations(imports, "feature") == [
        "s2cv.feature.probe imports s2cv.training.losses (training)",
        "s2cv.feature.probe imports s2cv.deploy.export (deploy)"]
    assert runtime_top_level_violations(imports) == ["s2cv.feature.probe: import torch"]
