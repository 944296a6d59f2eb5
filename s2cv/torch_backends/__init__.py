"""The backends that run torch code: eager PyTorch (``backend_torch.py``, which also exports a
checkpoint without its graph into the cache) and TensorRT on torch's CUDA buffers
(``backend_trt.py``).

The feature room never imports them: its backend registry (``s2cv.feature.backends.BACKENDS``,
``EXPORT_TO_CACHE``) names them by module, loaded when chosen. They may import the feature, the
models and the exporter (``s2cv.deploy``). ``backend_torch`` imports torch when it is loaded,
``backend_trt`` when an engine starts; without torch either raises an ImportError naming the
``[train]`` extra.
"""
