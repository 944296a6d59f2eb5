"""The rule for s2cv's OpenCV look-alikes: Python classes that OpenCV's C++ side can never receive.

A Python class that subclasses ``cv2.Feature2D`` (or ``cv2.DescriptorMatcher``, or any ``cv2``
algorithm) carries an *empty* C++ object: the bindings accept the instance wherever the C++
type is expected (``cv2.detail.computeImageFeatures2``, ``cv2.slam.VisualOdometry.create``,
``cv2.AffineFeature_create``, ...), and OpenCV then dereferences a null ``Ptr`` (segmentation
fault) or stops on "detector must not be null". Python methods overriding the C++ ones are never
called from C++ (issue 28).

So every s2cv class that mimics an OpenCV algorithm derives from :class:`PythonAlgorithm`
instead (``S2NetFeature2D`` does; a learned matcher with the ``cv2.DescriptorMatcher`` surface
would too). It keeps the whole OpenCV method surface by duck typing, and because it holds no
C++ object, the bindings refuse it with a ``cv2.error`` / ``TypeError`` ("Expected
Ptr<cv::Feature2D> for argument ...") before any C++ runs. What changes for users:
``isinstance(obj, cv2.Feature2D)`` is False; test for the surface instead
(:func:`is_feature2d`, :func:`is_descriptor_matcher`). For a genuine C++ object, s2cv offers
``S2Net_create(model=..., native=True)`` (a ``cv2.XFeat`` running s2cv's weights).

The rule is enforced twice: :class:`PythonAlgorithm` refuses a subclass that also has a ``cv2``
base, and ``tests/test_opencv_clients.py`` refuses any class in the package with a ``cv2`` base.
"""
from __future__ import annotations

from typing import Any

import cv2

# cv2.Feature2D's public methods (OpenCV 4.x and 5.x), all of which a look-alike must have.
FEATURE2D_METHODS = ("detect", "compute", "detectAndCompute", "descriptorSize", "descriptorType", "defaultNorm",
                     "getDefaultName", "empty", "clear", "read", "write", "save")
# cv2.DescriptorMatcher's matching and training-set methods, all of which a matcher look-alike must have.
DESCRIPTOR_MATCHER_METHODS = ("match", "knnMatch", "radiusMatch", "add", "getTrainDescriptors", "clear", "empty",
                              "train", "isMaskSupported", "getDefaultName", "read", "write", "save")


def _cv2_bases(cls: type) -> list[type]:
    return [base for base in cls.__mro__[1:] if (base.__module__ or "").split(".")[0] == "cv2"]


class PythonAlgorithm:
    """Base of s2cv's pure-Python OpenCV look-alikes (see the module docstring for why).

    Subclasses set ``opencv_surface`` to the OpenCV class they imitate ("Feature2D" or
    "DescriptorMatcher"), implement its methods, and must not also derive from a ``cv2`` class:
    defining such a class raises ``TypeError``.
    """

    opencv_surface: str = ""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        bad = _cv2_bases(cls)
        if bad:
            raise TypeError(
                f"{cls.__qualname__} derives from {bad[0].__module__}.{bad[0].__qualname__}: a Python subclass of an "
                f"OpenCV class carries an empty C++ object that OpenCV's C++ functions dereference (segfault). "
                f"s2cv look-alikes are plain Python classes (s2cv.feature.pyalgorithm)")


def _has(obj: Any, methods: tuple[str, ...]) -> bool:
    return all(callable(getattr(obj, name, None)) for name in methods)


def is_feature2d(obj: Any) -> bool:
    """True for a ``cv2.Feature2D`` and for anything with its surface (``S2NetFeature2D``):
    what to use where ``isinstance(obj, cv2.Feature2D)`` was used before issue 28."""
    return isinstance(obj, cv2.Feature2D) or _has(obj, FEATURE2D_METHODS)


def is_descriptor_matcher(obj: Any) -> bool:
    """True for a ``cv2.DescriptorMatcher`` and for anything with its matching surface."""
    return isinstance(obj, cv2.DescriptorMatcher) or _has(obj, DESCRIPTOR_MATCHER_METHODS)
