"""s2cv: cross-modality local features (visible <-> thermal, visible <-> NIR) for OpenCV.

    import cv2, s2cv
    det = s2cv.S2Net_create()
    kp, des = det.detectAndCompute(img, None)
    matches = cv2.BFMatcher(det.defaultNorm(), crossCheck=True).match(des1, des2)
    result = s2cv.register(vis, ir)        # IR -> visible homography: result.H, result.success

The runtime (this import, ``S2Net_create`` on the shipped graphs, ``s2cv register``) needs numpy,
OpenCV and onnxruntime only and never imports torch; training, export, evaluation and the torch
backend need the ``[train]`` extra (``pip install "s2cv[train]"``).
"""
from s2cv.feature.feature2d import DetectorParams, S2Net_create, S2NetFeature2D
from s2cv.feature.glue import S2Glue_create, S2GlueMatcher, available_matchers
from s2cv.feature.zoo import available_models
from s2cv.registration.calibrate import calibrate
from s2cv.registration.register import register

__version__ = "0.1.0"
__all__ = ["S2Net_create", "S2NetFeature2D", "DetectorParams", "available_models", "register", "calibrate",
           "S2Glue_create", "S2GlueMatcher", "available_matchers", "__version__"]
