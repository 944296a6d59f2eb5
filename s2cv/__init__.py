"""s2cv: cross-modality local features (visible <-> thermal, visible <-> NIR) for OpenCV.

    import cv2, s2cv
    det = s2cv.S2Net_create()
    kp, des = det.detectAndCompute(img, None)
    matches = cv2.BFMatcher(det.defaultNorm(), crossCheck=True).match(des1, des2)
"""
from .feature2d import DetectorParams, S2Net_create, S2NetFeature2D
from .zoo import available_models

__version__ = "0.1.0"
__all__ = ["S2Net_create", "S2NetFeature2D", "DetectorParams", "available_models", "__version__"]
