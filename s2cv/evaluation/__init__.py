"""Benchmarks: data-set layouts, the NC / NCM / CMR / homography metrics, methods, reports and plots.

No torch here: s2cv models run through the runtime (``S2Net_create``), which loads torch only for
the torch backend. Needs the ``[train]`` extra for tqdm and matplotlib.
"""
from s2cv.feature.extras import require_train_extra

require_train_extra("s2cv evaluation")
