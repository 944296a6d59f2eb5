"""The runtime: everything ``S2Net_create`` and ``s2cv register`` need, and nothing more.

image -> backend (onnxruntime | opencv | tensorrt | torch) -> dense maps -> post-processing (C++/CUDA)
-> ``cv2.KeyPoint`` list + float32 descriptors, then matching, robust fits, refinement and the
plausibility verdict. Needs numpy, OpenCV and onnxruntime only: no module here imports torch,
training, evaluation or export code at import time; the torch and TensorRT backends
(``backend_torch``, ``backend_trt``) are loaded only when chosen (``tests/test_layout.py``).
"""
