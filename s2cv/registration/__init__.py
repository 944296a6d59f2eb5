"""The registration: an IR/NIR image (or a rig's frames) onto the visible one, with any detector.

Matching and robust fits (``geometry.py``), the plausibility verdict (``verdict.py``), the
refinement on dense maps (``refine.py``), one pair (``register.py``: ``register``, and
``match_pair``, the pair pipeline ``calibrate`` and the video share), a rig (``calibrate.py``),
frame sequences and the registered video (``video.py``), pictures (``viz.py``, OpenCV;
``plots.py``, matplotlib when installed) and the files they write (``io.py``). Imports the
feature room, numpy and OpenCV only.
"""
