"""Images in: files and arrays -> one gray float32 plane in [0, 1], the same way on every path.

Inference, ``register``, evaluation and training all read files with ``read_image`` and
normalise with ``to_gray_float``, so a 16-bit radiometric thermal frame reaches the network
stretched the same way whether it is being trained on or matched. Why robust normalisation for
16-bit and float input: such frames use a narrow band of the range (e.g. 7000-9000), so a plain
/65535 would hand the network a flat image.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
ROBUST_PERCENTILES = (0.5, 99.5)
GRAY_TOLERANCE = 2  # max channel difference still treated as gray (JPEG chroma noise)
SAMPLES_DIR = Path(__file__).resolve().parent.parent / "samples"


def read_image(path: str | Path) -> np.ndarray:
    """An image file as a user would hand it to a detector: depth kept (8/16-bit), 2-D for gray,
    BGR for colour; alpha is dropped and 3-channel files whose channels are equal (thermal/NIR
    saved as RGB) become single-channel. Clear errors instead of ``cv2.imread``'s None.

    Decoding from bytes (not ``cv2.imread(path)``) keeps non-ASCII paths working on Windows.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"image file not found: {path}")
    if not path.is_file():
        raise ValueError(f"not an image file: {path}")
    data = np.fromfile(str(path), dtype=np.uint8)
    img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if img is None or img.size == 0:
        raise ValueError(f"cannot decode image {path} (unsupported or corrupt file)")
    if img.ndim == 3 and img.shape[2] == 4:
        img = img[:, :, :3]
    if img.ndim == 3 and img.shape[2] == 3:
        spread = np.abs(img.astype(np.int32) - img[:, :, :1].astype(np.int32)).max()
        if spread <= GRAY_TOLERANCE:
            img = img[:, :, 0]
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    return np.ascontiguousarray(img)


def read_gray(path: str | Path) -> np.ndarray:
    """``to_gray_float(read_image(path))``: what the network sees of a file, in training too."""
    return to_gray_float(read_image(path), str(path))


def list_images(root: str | Path) -> list[Path]:
    """Every image file of a folder (sorted by name); hidden files are skipped."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"image folder not found: {root}")
    files = sorted(p for p in root.iterdir()
                   if p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".") and p.is_file())
    if not files:
        raise FileNotFoundError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) in {root}")
    return files


def to_gray_float(image: np.ndarray, name: str = "image") -> np.ndarray:
    """uint8 / uint16 / float32|64 gray, BGR or BGRA -> (H, W) float32 in [0, 1]."""
    if image is None:
        raise TypeError(f"{name} is None (did cv2.imread fail to read the file?)")
    if not isinstance(image, np.ndarray):
        raise TypeError(f"{name} must be a numpy array, got {type(image).__name__}")
    if image.size == 0:
        raise ValueError(f"{name} is empty (shape {image.shape})")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[..., 0]
    if image.ndim == 3 and image.shape[2] in (3, 4):
        if image.dtype not in (np.uint8, np.uint16, np.float32, np.float64):
            raise TypeError(f"{name}: unsupported dtype {image.dtype}; expected uint8, uint16, float32 or float64")
        code = cv2.COLOR_BGR2GRAY if image.shape[2] == 3 else cv2.COLOR_BGRA2GRAY
        image = cv2.cvtColor(np.ascontiguousarray(image.astype(np.float32) if image.dtype == np.float64 else image), code)
    elif image.ndim != 2:
        raise ValueError(f"{name}: expected shape (H, W), (H, W, 3) or (H, W, 4), got {image.shape}")
    if image.dtype == np.uint8:
        return image.astype(np.float32) / 255.0
    if image.dtype == np.uint16:
        return _robust(image.astype(np.float32))
    if image.dtype in (np.float32, np.float64):
        image = image.astype(np.float32)
        if not np.isfinite(image).all():
            raise ValueError(f"{name} contains NaN or Inf values")
        if image.min() >= 0.0 and image.max() <= 1.0:
            return image
        return _robust(image)
    raise TypeError(f"{name}: unsupported dtype {image.dtype}; expected uint8, uint16, float32 or float64")


def robust_range(values: np.ndarray) -> tuple[float, float] | None:
    """(low, high) 0.5/99.5 percentiles, or min/max where those coincide; None for flat data.

    Shared by the network input normalisation and the 8-bit display stretch (register).
    """
    lo, hi = np.percentile(values, ROBUST_PERCENTILES)
    if hi <= lo:
        lo, hi = float(values.min()), float(values.max())
    return (lo, hi) if hi > lo else None


def _robust(image: np.ndarray) -> np.ndarray:
    bounds = robust_range(image)
    if bounds is None:
        return np.zeros_like(image)
    lo, hi = bounds
    return np.clip((image - lo) / (hi - lo), 0.0, 1.0).astype(np.float32)


def check_mask(mask: np.ndarray | None, shape: tuple[int, int]) -> np.ndarray | None:
    """OpenCV-style mask: 8-bit (or bool), same height and width as the image, nonzero = keep."""
    if mask is None:
        return None
    if not isinstance(mask, np.ndarray):
        raise TypeError(f"mask must be a numpy array or None, got {type(mask).__name__}")
    if mask.ndim == 3 and mask.shape[2] == 1:
        mask = mask[..., 0]
    if mask.shape != shape:
        raise ValueError(f"mask shape {mask.shape} does not match image shape {shape}")
    if mask.dtype not in (np.uint8, np.bool_):
        raise TypeError(f"mask must be uint8 or bool, got {mask.dtype}")
    return np.ascontiguousarray(mask.astype(np.uint8))


def contrast_mask(gray: np.ndarray, floor: float, window: int = 8) -> np.ndarray:
    """uint8 mask, nonzero where the grey values around a pixel (``window`` x ``window``) vary by more
    than ``floor`` (standard deviation, in the network's [0, 1] units).

    Why: every network standardises its input per image, so faint sensor noise on a flat sky, or
    a constant frame, reaches it as full-contrast texture; SIFT's contrast threshold plays this
    role for SIFT.
    """
    mean = cv2.blur(gray, (window, window))
    var = cv2.blur(gray * gray, (window, window)) - mean * mean
    return (var > floor * floor).astype(np.uint8)


# Immerkær's mask: the difference of two Laplacians, zero on any locally quadratic surface, so
# smooth shading and most of an edge cancel and white noise of std s leaves a response of std 6 s.
_NOISE_KERNEL = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], np.float32)


def noise_sigma(gray: np.ndarray) -> float:
    """Robust estimate of an image's white-noise standard deviation (its own units): the median
    absolute response of Immerkær's mask on every other pixel. The median keeps edges and texture
    (a minority of the pixels) from passing for noise; 0 for a constant or smooth image."""
    response = cv2.filter2D(gray.astype(np.float32, copy=False), cv2.CV_32F, _NOISE_KERNEL)[1:-1:2, 1:-1:2]
    return float(np.median(np.abs(response))) / (0.6745 * 6.0) if response.size else 0.0


def shrink_to(image: np.ndarray, max_side: int, interpolation: int = cv2.INTER_AREA) -> tuple[np.ndarray, float]:
    """The image with its longer side at most ``max_side`` px (never enlarged) and the factor
    applied: validation and benchmark pairs are measured at one working size."""
    if max_side < 1:
        raise ValueError(f"max_side must be a positive number of pixels, got {max_side}")
    if image.ndim < 2 or min(image.shape[:2]) == 0:
        raise ValueError(f"expected a non-empty image, got shape {image.shape}")
    s = min(1.0, max_side / max(image.shape[:2]))
    if s < 1.0:
        image = cv2.resize(image, (round(image.shape[1] * s), round(image.shape[0] * s)), interpolation=interpolation)
    return image, s


def pad_to_multiple(image: np.ndarray, multiple: int) -> np.ndarray:
    """Pad bottom/right (edge values) so both sides are multiples of the network stride.

    Padding only at the far edges keeps pixel coordinates unchanged, so no mapping back is needed.
    """
    h, w = image.shape
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph == 0 and pw == 0:
        return image
    return cv2.copyMakeBorder(image, 0, ph, 0, pw, cv2.BORDER_REPLICATE)


def to_uint8(image: np.ndarray) -> np.ndarray:
    """8-bit copy for display and 8-bit-only detectors; deeper data is percentile stretched.

    A min-max stretch would let a few hot pixels in a 16-bit thermal frame crush the rest to
    black; clipping the 0.5 % tails keeps the scene visible. Channels are kept.
    """
    image = np.asarray(image)
    if image.dtype == np.uint8:
        return image
    if image.dtype.kind not in "uif" or image.dtype == np.bool_:
        raise TypeError(f"unsupported image dtype {image.dtype}")
    data = image.astype(np.float32)
    finite = data[np.isfinite(data)]
    bounds = robust_range(finite) if finite.size else None
    if bounds is None:
        return np.zeros(image.shape, np.uint8)
    lo, hi = bounds
    out = np.clip((np.nan_to_num(data, nan=lo) - lo) * (255.0 / (hi - lo)), 0, 255)
    return (out + 0.5).astype(np.uint8)


def synthetic_image(height: int, width: int, seed: int = 0) -> np.ndarray:
    """Deterministic uint8 scene (blobs, edges, corners, texture at several scales).

    Used when no real sample ships with the package: random noise alone has no corners
    or edges, so it would not exercise the score maps the way photographs do.
    """
    rng = np.random.default_rng(seed)
    img = np.zeros((height, width), np.float32)
    for scale in (64, 16, 4):  # smooth noise from coarse to fine
        small = rng.random((max(2, height // scale), max(2, width // scale)), dtype=np.float32)
        img += cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC) * (scale / 84)
    canvas = np.zeros_like(img)
    n = max(8, height * width // 6000)
    for _ in range(n):
        kind = rng.integers(3)
        color = float(rng.uniform(-0.6, 0.6))
        x, y = int(rng.integers(width)), int(rng.integers(height))
        size = int(rng.integers(4, max(6, min(height, width) // 6)))
        if kind == 0:
            cv2.rectangle(canvas, (x, y), (x + size, y + int(size * rng.uniform(0.5, 2))), color, -1)
        elif kind == 1:
            cv2.ellipse(canvas, (x, y), (size, max(2, size // 2)), float(rng.uniform(0, 180)), 0, 360, color, -1)
        else:
            cv2.line(canvas, (x, y), (int(rng.integers(width)), int(rng.integers(height))), color,
                     int(rng.integers(1, 4)))
    img = cv2.GaussianBlur(img + canvas, (0, 0), 0.8)
    img = (img - img.min()) / max(float(img.max() - img.min()), 1e-6)
    return np.round(img * 255).astype(np.uint8)


def sample_image() -> np.ndarray:
    """A real sample photograph when the package ships one, else ``synthetic_image``: what
    export validation, backend parity checks and benchmarks run on by default."""
    try:
        return read_image(list_images(SAMPLES_DIR)[0])
    except FileNotFoundError:  # a build without the samples folder, or an empty one
        return synthetic_image(480, 640)
