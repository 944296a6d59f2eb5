"""examples/opencv_detail_register.py, OpenCV's own cv2.detail pipeline on the native detector
(issue 28), runs torch-free and registers the bundled visible/thermal pair."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(not hasattr(cv2, "XFeat_create"), reason="the native detector needs OpenCV >= 5.1 (cv2.XFeat)")
def test_cv2_detail_example_registers_the_sample_pair():
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}
    proc = subprocess.run([sys.executable, str(ROOT / "examples" / "opencv_detail_register.py"), "--json"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    # measured with seed 0: 9.01 px (MatchesInfo.H; 7.7-24.3 px over RNG seeds 1-5) and 3.58 px (MAGSAC; 3.3-4.4)
    assert out["corner_error_detail"] is not None and out["corner_error_detail"] < 30, out
    assert out["corner_error_magsac"] is not None and out["corner_error_magsac"] < 8, out
    assert out["corner_error_register_same_model"] is not None and out["corner_error_register_same_model"] < 15, out
    assert out["inliers"] >= 50 and out["keypoints_vis"] == out["keypoints_ir"] == 2048, out
    assert out["python_detector_in_cpp"].startswith("refused"), out
