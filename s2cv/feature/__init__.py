"""The feature: everything ``S2Net_create`` needs, and nothing more.

image (``image.py``) -> backend (``backends.py``, the registry: ``backend_onnx.py``,
``backend_opencv.py``; the torch and TensorRT backends live in ``s2cv.torch_backends`` and are
named there, never imported) -> dense maps -> post-processing (``postprocess.py``, the C++/CUDA
extensions) -> ``cv2.KeyPoint`` list + float32 descriptors (``feature2d.py``). Graph metadata
(``graph.py``), engine sidecars (``engine.py``), the model zoo (``zoo.py``), detectors by name
(``detectors.py``) and the ``[train]`` extra's message (``extras.py``). Imports numpy and OpenCV;
onnxruntime inside the function that needs it; nothing from the other rooms
(``tests/test_layout.py``).
"""
