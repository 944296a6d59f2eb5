"""Old import paths: ``s2cv.runtime.X`` until 0.1, now ``s2cv.feature.X`` or ``s2cv.registration.X``.

Each old module name is the new module itself (``s2cv.runtime.feature2d is s2cv.feature.feature2d``),
so ``from s2cv.runtime.register import register`` keeps working. Nothing in s2cv imports this
package. The torch backends (``s2cv.torch_backends``) and the NumPy reference
(``s2cv.evaluation.reference``) have no alias here: CHANGELOG.md maps them.
"""
import importlib
import sys

MOVED = {
    **{name: f"s2cv.feature.{name}" for name in (
        "image", "backends", "backend_onnx", "backend_opencv", "graph", "engine", "postprocess", "zoo", "feature2d",
        "extras")},
    **{name: f"s2cv.registration.{name}" for name in (
        "geometry", "verdict", "refine", "register", "calibrate", "video", "viz")},
}
for _old, _new in MOVED.items():
    sys.modules[f"{__name__}.{_old}"] = globals()[_old] = importlib.import_module(_new)
