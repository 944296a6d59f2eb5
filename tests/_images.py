"""Synthetic test images shared by the test modules."""
import cv2
import numpy as np


def textured_image(h: int = 240, w: int = 320, seed: int = 1) -> np.ndarray:
    """Colour image of blobs and boxes: plenty of repeatable corners for SIFT."""
    rng = np.random.default_rng(seed)
    img = cv2.GaussianBlur(rng.integers(0, 255, (h, w, 3), dtype=np.uint8), (0, 0), 2)
    for _ in range(150):
        colour = tuple(int(c) for c in rng.integers(0, 255, 3))
        x, y = int(rng.integers(0, w)), int(rng.integers(0, h))
        if rng.random() < 0.5:
            cv2.circle(img, (x, y), int(rng.integers(4, 20)), colour, -1)
        else:
            size = rng.integers(5, 30, 2)
            cv2.rectangle(img, (x, y), (x + int(size[0]), y + int(size[1])), colour, -1)
    return img
