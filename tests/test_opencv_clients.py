"""OpenCV's own C++ functions that take a Feature2D, a DescriptorMatcher or a features finder, fed
s2cv's objects (issue 28): a working result or a clear Python exception, never a signal.

``S2NetFeature2D`` (and any look-alike the project adds, e.g. a learned matcher) is a plain Python
class (``s2cv.feature.pyalgorithm``): the bindings refuse it with ``cv2.error`` ("Expected
Ptr<cv::Feature2D> for argument ...") before any C++ runs. ``S2Net_create(model=..., native=True)``
is a genuine ``cv2.XFeat`` those functions run.

Entry points: every function or constructor whose parameter the installed bindings type as
``Feature2D`` / ``FeatureDetector`` / ``DescriptorExtractor`` / ``DescriptorMatcher`` (or a
subclass such as ``LightGlueMatcher``), found from the type stubs shipped with cv2 and from the
docstring signatures' parameter names. ``test_every_entry_point_is_covered`` fails when an
OpenCV upgrade adds one that ``CHECKS`` does not cover. Each check runs in its own interpreter
(a crash is attributable to one function) on the torch-free path; entries the installed OpenCV
lacks are skipped.

A matcher class the project adds (issue 26) goes into ``MATCHERS`` below, so every check that
takes a matcher runs with it too; ``test_no_class_in_the_package_derives_from_cv2`` enforces the
rule for every class in the package.
"""
from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
import textwrap
import types
from pathlib import Path

import cv2
import pytest

import s2cv

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "s2cv"
HAS_XFEAT = hasattr(cv2, "XFeat_create")

PRELUDE = """
import sys
import cv2, numpy as np, s2cv
from s2cv.feature.pyalgorithm import DESCRIPTOR_MATCHER_METHODS, PythonAlgorithm

img = cv2.imread({vis!r})
gray = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
K = np.array([[400.0, 0, 248], [0, 400.0, 150], [0, 0, 1]])

class ToyMatcher(PythonAlgorithm):
    '''Stand-in for a learned matcher: the cv2.DescriptorMatcher surface on a plain Python class.'''
    opencv_surface = "DescriptorMatcher"
    def __init__(self):
        self._bf = cv2.BFMatcher(cv2.NORM_L2)
    def __getattr__(self, name):
        if name in DESCRIPTOR_MATCHER_METHODS:
            return getattr(self._bf, name)
        raise AttributeError(name)

det = {detector}
matcher = {matcher}
"""
DETECTORS = {
    "s2net": "s2cv.S2Net_create(nfeatures=300)",
    "native": "s2cv.S2Net_create(model='s2xfeat', nfeatures=300, native=True)",
}
# s2cv's matcher look-alikes (issue 26: add the learned matcher's constructor here).
MATCHERS = {"toy": "ToyMatcher()"}
SIFT, BF = "cv2.SIFT_create(300)", "cv2.BFMatcher(cv2.NORM_L2)"

# entry point -> (names it goes by, the call; it prints a summary of a working result)
CHECKS: dict[str, tuple[tuple[str, ...], str]] = {
    "detail.computeImageFeatures2": (
        ("cv2.detail.computeImageFeatures2",),
        "f = cv2.detail.computeImageFeatures2(det, img); print('RESULT', len(f.keypoints), f.descriptors.get().shape)"),
    "detail.computeImageFeatures": (
        ("cv2.detail.computeImageFeatures",),
        "fs = cv2.detail.computeImageFeatures(det, [img, img]); print('RESULT', [len(f.keypoints) for f in fs])"),
    "slam.VisualOdometry.create": (
        ("cv2.slam.VisualOdometry.create", "cv2.slam.VisualOdometry_create", "cv2.slam_VisualOdometry.create"),
        "vo = cv2.slam.VisualOdometry.create(det, matcher, K); print('RESULT', type(vo).__name__)"),
    "AffineFeature.create": (
        ("cv2.AffineFeature.create", "cv2.AffineFeature_create"),
        "a = cv2.AffineFeature_create(det, 1); kp, d = a.detectAndCompute(gray, None); print('RESULT', len(kp))"),
    "findCirclesGrid": (
        ("cv2.findCirclesGrid",),
        "ok, c = cv2.findCirclesGrid(gray, (4, 11), None, cv2.CALIB_CB_ASYMMETRIC_GRID, det); print('RESULT', ok)"),
    "xfeatures2d.BOWImgDescriptorExtractor": (
        ("cv2.xfeatures2d.BOWImgDescriptorExtractor", "cv2.xfeatures2d_BOWImgDescriptorExtractor"),
        "b = cv2.xfeatures2d.BOWImgDescriptorExtractor(det, matcher); print('RESULT', type(b).__name__)"),
    "detail.LightGlueFeaturesMatcher": (
        ("cv2.detail.LightGlueFeaturesMatcher", "cv2.detail_LightGlueFeaturesMatcher"),
        "m = cv2.detail.LightGlueFeaturesMatcher(matcher); print('RESULT', type(m).__name__)"),
}
TAKES_DETECTOR = {"detail.computeImageFeatures2", "detail.computeImageFeatures", "slam.VisualOdometry.create",
                  "AffineFeature.create", "findCirclesGrid", "xfeatures2d.BOWImgDescriptorExtractor"}
TAKES_MATCHER = {"slam.VisualOdometry.create", "xfeatures2d.BOWImgDescriptorExtractor",
                 "detail.LightGlueFeaturesMatcher"}
# Where the native detector (a genuine cv2.XFeat) must work. Elsewhere OpenCV itself may stop with a
# cv2.error: computeImageFeatures computes descriptors at keypoints found before ("XFeat does not support
# providing keypoints externally").
NATIVE_WORKS = {"detail.computeImageFeatures2", "slam.VisualOdometry.create", "AffineFeature.create"}
# Entry points that call their backend from several threads at once (AffineFeature: one call per tilt in
# a parallel_for_). cv::XFeat's dnn network is not safe for that: a plain cv2.XFeat_create(onnx) inside
# AffineFeature ends in a cv2.error, a segfault or an abort, differently on every run (OpenCV 5.1: 6 of
# 30 runs killed by a signal, none with cv2.setNumThreads(1); docs/opencv_clients.md). The native
# detector runs them as a user must: with OpenCV's threads set to 1.
NATIVE_SERIAL = {"AffineFeature.create"}


def lookup(dotted: str):
    obj = cv2
    for part in dotted.split(".")[1:]:
        obj = getattr(obj, part, None)
        if obj is None:
            return None
    return obj


def cases():
    for name, (aliases, _) in CHECKS.items():
        if name in TAKES_DETECTOR:
            for det in DETECTORS:
                yield pytest.param(name, det, "BF" if name in TAKES_MATCHER else "None", id=f"{name}-{det}")
        if name in TAKES_MATCHER:
            for m in MATCHERS:
                yield pytest.param(name, "SIFT", m, id=f"{name}-{m}")


def run_check(name: str, detector: str, matcher: str) -> subprocess.CompletedProcess:
    code = PRELUDE.format(vis=str(PACKAGE / "samples" / "roadscene_vis.png"),
                          detector=DETECTORS.get(detector, SIFT if detector == "SIFT" else detector),
                          matcher=MATCHERS.get(matcher, BF if matcher == "BF" else matcher))
    if detector == "native" and name in NATIVE_SERIAL:
        code += "cv2.setNumThreads(1)\n"
    code += CHECKS[name][1] + "\nassert 'torch' not in sys.modules, 'torch was imported'\n"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE", "PYTHONFAULTHANDLER": ""}
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)


@pytest.mark.parametrize("name, detector, matcher", list(cases()))
def test_entry_point_gives_a_result_or_a_python_error(name, detector, matcher):
    if lookup(CHECKS[name][0][0]) is None:
        pytest.skip(f"this OpenCV ({cv2.__version__}) has no {CHECKS[name][0][0]}")
    if detector == "native" and not HAS_XFEAT:
        pytest.skip("native=True needs OpenCV >= 5.1")
    proc = run_check(name, detector, matcher)
    tail = f"rc={proc.returncode}\nstdout: {proc.stdout[-800:]}\nstderr: {proc.stderr[-1500:]}"
    assert proc.returncode >= 0, f"{name} with {detector}/{matcher} was killed by signal {-proc.returncode}\n{tail}"
    assert "torch was imported" not in proc.stderr, tail
    if proc.returncode == 0:
        assert "RESULT" in proc.stdout, tail
    else:
        raised = re.search(r"^(\w[\w.]*): ", proc.stderr.split("Traceback (most recent call last):")[-1], re.M)
        assert raised and raised.group(1) in ("TypeError", "cv2.error"), f"not a clear Python exception\n{tail}"
    s2cv_object = detector == "s2net" or matcher in MATCHERS
    if s2cv_object and proc.returncode:  # the bindings refuse the Python object itself, naming the C++ type
        assert re.search(r"Expected Ptr<cv::\w+> for argument", proc.stderr), tail
    if detector == "native" and name in NATIVE_WORKS:
        assert proc.returncode == 0, f"the native detector should work in {name}\n{tail}"
    elif s2cv_object:
        assert proc.returncode != 0, f"{name} accepted a Python look-alike (an empty C++ object?)\n{tail}"


# ---------------------------------------------------------------- the scan


STUB_TYPES = r"(?:cv2\.)?(?:typing\.)?(?:Feature2D|FeatureDetector|DescriptorExtractor|DescriptorMatcher|LightGlueMatcher)"
DOC_PARAM_NAMES = {"featuresFinder", "detector", "extractor", "dextractor", "matcher", "dmatcher", "blobDetector",
                   "lgMatcher", "keypoint_detector", "descriptor_extractor"}


def scan_stubs() -> set[str]:
    """Functions/constructors of the installed bindings with a parameter typed as a detector or
    matcher, from the ``.pyi`` stubs OpenCV ships (``cv2.<module>.<Class>.<method>`` or
    ``cv2.<module>.<function>``; constructors are ``...<Class>``)."""
    found: set[str] = set()
    root = Path(cv2.__file__).parent
    param = re.compile(rf"[(,]\s*\w+: {STUB_TYPES}\b(?![.\w])")
    for stub in root.rglob("*.pyi"):
        rel = stub.relative_to(root).with_suffix("")
        module = ".".join(["cv2", *rel.parts[:-1]] + ([] if rel.name == "__init__" else [rel.name]))
        cls: list[tuple[int, str]] = []
        for line in stub.read_text(errors="replace").splitlines():
            indent = len(line) - len(line.lstrip())
            cls = [(i, c) for i, c in cls if i < indent]
            m = re.match(r"\s*class (\w+)", line)
            if m:
                cls.append((indent, m.group(1)))
                continue
            m = re.match(r"\s*def (\w+)\((.*)", line)
            if not m or not param.search("(" + m.group(2).replace("self, ", "").replace("cls, ", "")):
                continue
            if m.group(2).startswith("self") and m.group(1) != "__init__":
                continue  # instance methods (e.g. AffineFeature2D's) take their own C++ object
            owner = ".".join(c for _, c in cls)
            name = owner if m.group(1) == "__init__" else ".".join(filter(None, [owner, m.group(1)]))
            found.add(f"{module}.{name}")
    return found


def scan_docstrings() -> set[str]:
    """Functions of the bindings whose docstring signature has a detector/matcher parameter name."""
    found: set[str] = set()
    seen: set[int] = set()

    def visit(obj, prefix: str, depth: int) -> None:
        if id(obj) in seen or depth > 3:
            return
        seen.add(id(obj))
        for name in dir(obj):
            if name.startswith("_"):
                continue
            try:
                child = getattr(obj, name)
            except Exception:  # noqa: BLE001 - lazy submodules that fail to import
                continue
            full = f"{prefix}.{name}"
            if isinstance(child, types.ModuleType):
                if child.__name__.startswith("cv2"):
                    visit(child, full, depth + 1)
            elif isinstance(child, type) and depth < 3:
                visit(child, full, 3)
            elif callable(child):
                for sig in (child.__doc__ or "").splitlines():
                    if "->" in sig and "(" in sig:
                        args = set(re.findall(r"\w+", sig.split("->")[0].partition("(")[2]))
                        if args & DOC_PARAM_NAMES:
                            found.add(full)

    visit(cv2, "cv2", 0)
    return found


def covered() -> set[str]:
    return {alias for aliases, _ in CHECKS.values() for alias in aliases}


def test_every_entry_point_is_covered():
    found = scan_stubs() | scan_docstrings()
    assert lookup("cv2.detail.computeImageFeatures2") is None or "cv2.detail.computeImageFeatures2" in found
    missing = sorted(f for f in found if f not in covered() and lookup(f) is not None)
    assert not missing, (f"OpenCV {cv2.__version__} has entry points taking a Feature2D/DescriptorMatcher that "
                         f"CHECKS does not test: {missing}")


# ---------------------------------------------------------------- the rule


def test_no_class_in_the_package_derives_from_cv2():
    """No s2cv class subclasses a cv2 class (the empty-C++-object crash of issue 28), now or later."""
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ClassDef):
                for base in node.bases:
                    if ast.unparse(base).startswith("cv2."):
                        offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name}({ast.unparse(base)})")
    assert not offenders, offenders


def test_python_algorithm_refuses_a_cv2_base():
    from s2cv.feature.pyalgorithm import PythonAlgorithm

    with pytest.raises(TypeError, match="empty C\\+\\+ object"):
        type("BadMatcher", (PythonAlgorithm, cv2.DescriptorMatcher), {})


def test_s2net_has_the_whole_feature2d_surface_but_is_not_a_cpp_object():
    """The contract since issue 28: every public cv2.Feature2D method, duck-typed; isinstance is False."""
    from s2cv.feature.pyalgorithm import FEATURE2D_METHODS, is_feature2d

    public = {m for m in dir(cv2.Feature2D) if not m.startswith("_")}
    assert public <= set(FEATURE2D_METHODS)
    det = s2cv.S2Net_create(nfeatures=10)
    assert not [m for m in public if not callable(getattr(det, m, None))]
    assert not isinstance(det, cv2.Feature2D) and is_feature2d(det) and is_feature2d(cv2.SIFT_create())
    assert not is_feature2d(object())
