"""Training with S2-Net: data -> augment (the S2 transform T) -> model -> loss -> the loop.

Needs the ``[train]`` extra; importing any of it without torch says how to install it.
"""
from s2cv.feature.extras import require_train_extra

require_train_extra("s2cv training")
