"""What needs the ``[train]`` extra, and the one message that says how to get it.

The runtime (``S2Net_create`` on the shipped ONNX graphs, ``s2cv register``, ``s2cv info``)
installs with numpy, OpenCV and onnxruntime only. Training, export, evaluation and the torch
backend need PyTorch and a few more packages; every place that needs them imports them through
here, so a user without them gets one ImportError naming the command that installs them.
"""
from __future__ import annotations

import importlib
import importlib.util
import sys
from types import ModuleType

TRAIN_INSTALL = 'pip install "s2cv[train]"'
# Import names of the [train] extra in pyproject.toml.
TRAIN_MODULES = ("torch", "onnx", "tqdm", "matplotlib")


def missing_train_extra(error: ImportError, what: str) -> ImportError:
    """The ImportError to raise when ``error`` says a module of the extra is absent."""
    name = getattr(error, "name", None) or "?"
    return ImportError(f"{what} needs the training extra ({name} is not installed): {TRAIN_INSTALL}")


def import_torch(what: str) -> ModuleType:
    """``torch``, or an ImportError naming the extra; ``what`` is the feature that needs it."""
    try:
        return importlib.import_module("torch")
    except ImportError as exc:
        raise missing_train_extra(exc, what) from exc


def require_train_extra(what: str) -> None:
    """Check that every module of the extra is installed (CLI entry points call this first, so a
    missing one is reported before any work, not as a traceback from deep inside)."""
    for name in TRAIN_MODULES:
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError) as exc:
            raise missing_train_extra(ModuleNotFoundError(str(exc), name=name), what) from exc
        if not found:
            raise missing_train_extra(ModuleNotFoundError(f"No module named {name!r}", name=name), what)


def torch_if_loaded() -> ModuleType | None:
    """``torch`` when some code already imported it, else None: an object can only be a torch
    module or tensor if torch is loaded, so this answers such checks without importing it."""
    return sys.modules.get("torch")
