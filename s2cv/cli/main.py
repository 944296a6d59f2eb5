"""``s2cv`` / ``python -m s2cv``: one command, a subcommand per tool (the modules of ``s2cv.cli``).

Each subcommand's module is imported only when it runs, so ``s2cv info`` or ``s2cv register``
never pays for (or breaks on) training, ONNX or TensorRT imports, and optional modules that
are not part of this build give a clear message instead of a traceback.
"""
from __future__ import annotations

import importlib
import importlib.util
import sys
from typing import Callable, Sequence

# name -> (module with main(argv) -> int, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "register": ("s2cv.cli.register", "register an IR/NIR image onto a visible image (H, overlays, summary)"),
    "calibrate": ("s2cv.cli.calibrate", "one homography for a fixed visible/IR rig from many frame pairs (folders or videos)"),
    "train": ("s2cv.cli.train", "train a network with S2-Net"),
    "train-glue": ("s2cv.cli.train_glue", "train the S2Glue matcher with S2-Net on a frozen detector's features"),
    "evaluate": ("s2cv.cli.evaluate", "benchmark features on pairs with known homographies"),
    "export": ("s2cv.cli.export", "export a checkpoint to ONNX"),
    "build-engine": ("s2cv.cli.build_engine", "build a TensorRT engine from an ONNX export"),
    "convert": ("s2cv.cli.convert", "convert XFeat's released weights into an s2cv checkpoint"),
    "info": ("", "versions, shipped models, available backends and compiled extensions"),
}


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = ["usage: s2cv COMMAND [ARGS...]   (COMMAND --help for its options)", "", "commands:"]
    lines += [f"  {name:<{width}}  {text}" for name, (_, text) in COMMANDS.items()]
    return "\n".join(lines)


def _available(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def _extension(module: str) -> str:
    try:
        importlib.import_module(module)
    except ImportError as exc:
        return f"not built ({exc})"
    return "built"


def _version(dist: str) -> str:
    """Installed version of a distribution, read without importing it (torch takes seconds)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return "not installed"


def info() -> int:
    """Print what this installation can do; never fails on a missing optional part, never imports torch."""
    import cv2
    import numpy

    import s2cv
    from s2cv.feature.backends import BACKENDS

    print(f"s2cv {s2cv.__version__}  (python {sys.version.split()[0]}, opencv {cv2.__version__}, "
          f"numpy {numpy.__version__}, onnxruntime {_version('onnxruntime')}, torch {_version('torch')})")
    print(f"zoo models shipped: {', '.join(s2cv.available_models()) or 'none'}")
    for name in s2cv.available_matchers():
        try:
            print(f"matcher {name!r}: S2Glue_create({name!r}) for S2Net_create(model={s2cv.S2Glue_create(name).det_model!r})")
        except Exception as exc:  # info reports, it never fails
            print(f"matcher {name!r}: unusable ({type(exc).__name__}: {exc})")
    needs = {"torch": ("torch",), "onnxruntime": ("onnxruntime",), "opencv": ("cv2",),
             "tensorrt": ("tensorrt", "torch")}
    for name, target in BACKENDS.items():
        missing = [m for m in needs.get(name, ()) if not _available(m)]
        state = "available" if _available(target.split(":")[0]) and not missing else \
            f"not available (needs {', '.join(missing)})"
        if name == "torch" and missing:
            state += ': pip install "s2cv[train]"'
        print(f"backend {name:<12} {state}")
    if "default" in s2cv.available_models():
        from s2cv.feature.backends import no_nvidia_driver

        # Without an NVIDIA driver device='auto' is the CPU; with one, finding out needs torch.
        call = "S2Net_create()" if no_nvidia_driver() else "S2Net_create(device='cpu')"
        try:
            picked = s2cv.S2Net_create(device="cpu")._net_backend.name
        except Exception as exc:  # info reports, it never fails
            picked = f"nothing ({type(exc).__name__}: {exc})"
        print(f"{call} runs on: {picked}")
    print(f"s2cv._C       {_extension('s2cv._C')}")
    print(f"s2cv._C_cuda  {_extension('s2cv._C_cuda')}")
    if _available("onnxruntime"):
        import onnxruntime

        print(f"onnxruntime providers: {', '.join(onnxruntime.get_available_providers())}")
    return 0


def _load(command: str) -> Callable[..., int] | None:
    module_name = COMMANDS[command][0]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name:  # a dependency of the module is missing: say which
            raise
        return None
    return getattr(module, "main")


def main(argv: Sequence[str] | None = None) -> int:
    """Dispatch ``argv[0]`` to its subcommand with the rest of ``argv``; returns the exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(usage(), file=sys.stdout if args else sys.stderr)
        return 0 if args else 2
    if args[0] == "--version":
        from s2cv import __version__

        print(f"s2cv {__version__}")
        return 0
    command, rest = args[0], args[1:]
    if command not in COMMANDS:
        print(f"s2cv: error: unknown command {command!r}\n\n{usage()}", file=sys.stderr)
        return 2
    if command == "info":
        return info()
    try:
        entry = _load(command)
    except ModuleNotFoundError as exc:
        from s2cv.feature.extras import TRAIN_MODULES, missing_train_extra

        if (exc.name or "").split(".")[0] in TRAIN_MODULES:
            exc = missing_train_extra(exc, f"s2cv {command}")
        print(f"s2cv {command}: error: {exc}", file=sys.stderr)
        return 2
    except ImportError as exc:  # a module that says which extra it needs (s2cv.feature.extras)
        print(f"s2cv {command}: error: {exc}", file=sys.stderr)
        return 2
    if entry is None:
        print(f"s2cv {command}: error: this build of s2cv has no {COMMANDS[command][0]} module", file=sys.stderr)
        return 2
    try:
        status = entry(rest, f"s2cv {command}")
    except SystemExit as exc:  # argparse --help / usage errors inside the subcommand
        if exc.code is None or isinstance(exc.code, int):
            return exc.code or 0
        print(exc.code, file=sys.stderr)  # what the interpreter would print for sys.exit("message")
        return 1
    return int(status or 0)
