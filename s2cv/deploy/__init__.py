"""Deployment: ONNX export (s2cv's graph, cv::XFeat's graph) and the TensorRT engine builder.

What the runtime checks of these artifacts (graph names and metadata, hashes, engine sidecars)
lives on the runtime side (``s2cv.feature.graph``, ``s2cv.feature.engine``), so serving never
imports this package. Needs the ``[train]`` extra (torch, onnx).
"""
from s2cv.feature.extras import require_train_extra

require_train_extra("s2cv export")
