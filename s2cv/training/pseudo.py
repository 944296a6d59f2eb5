"""Pseudo-modalities: appearance changes that turn one camera's image into "another sensor's".

The S2 transform T teaches invariance to what it varies. Its photometric part (noise, blur, one
inversion) covers little of what separates a visible camera from a thermal one, and a network
trained on three cameras learns those three. Following MINIMA's finding that *variety* of
rendered modalities generalises better than realism, each family below changes appearance in a
way real thermal or NIR sensors do (or exaggerates it) while leaving geometry untouched, so the
SSL pair (I, T(I)) stays exactly labelled when one side also gets a pseudo-modality.

Every family maps a float32 gray image in [0, 1] to one of the same shape and range, drawing its
parameters from ``rng``; ``pseudo_modality`` chains one to three of them.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import cv2
import numpy as np

Family = Callable[[np.ndarray, np.random.Generator], np.ndarray]


def _smooth_field(shape: tuple[int, int], rng: np.random.Generator, cells: int) -> np.ndarray:
    """A smooth random field in [0, 1]: uniform noise on a ``cells``-wide grid, upsampled bicubically."""
    h, w = shape
    ch = max(2, round(cells * h / max(h, w)))
    cw = max(2, round(cells * w / max(h, w)))
    field = cv2.resize(rng.random((ch, cw), dtype=np.float32), (w, h), interpolation=cv2.INTER_CUBIC)
    lo, hi = float(field.min()), float(field.max())
    return (field - lo) / max(hi - lo, 1e-6)


def tone_curve(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A non-monotone random tone curve: materials that are bright in one band may be dark in another."""
    knots = int(rng.integers(3, 8))
    xs = np.linspace(0.0, 1.0, knots)
    ys = rng.random(knots)
    lut = np.interp(np.linspace(0.0, 1.0, 256), xs, ys).astype(np.float32)
    return lut[np.clip(image * 255.0 + 0.5, 0, 255).astype(np.uint8)]


def band_inversion(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Inverts one or two intensity bands, or the regions of a smooth random mask (hot/cold objects
    that flip contrast with their background)."""
    if rng.random() < 0.5:
        out = image.copy()
        for _ in range(int(rng.integers(1, 3))):
            lo = rng.uniform(0.0, 0.8)
            hi = rng.uniform(lo + 0.1, 1.0)
            band = (out >= lo) & (out <= hi)
            out[band] = lo + hi - out[band]
        return out
    mask = _smooth_field(image.shape, rng, int(rng.integers(2, 6))) > rng.uniform(0.3, 0.7)
    return np.where(mask, 1.0 - image, image).astype(np.float32)


def optics(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Loss of resolution (a sensor 2-4x coarser) and optical blur, as thermal cameras have."""
    h, w = image.shape
    factor = rng.uniform(1.5, 4.0)
    small = cv2.resize(image, (max(1, round(w / factor)), max(1, round(h / factor))), interpolation=cv2.INTER_AREA)
    out = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
    return cv2.GaussianBlur(out, (0, 0), rng.uniform(0.5, 2.0))


def sensor(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Fixed-pattern noise of an uncooled microbolometer: column/row stripes, per-pixel gain, vignetting."""
    h, w = image.shape
    out = image * (1.0 + rng.normal(0.0, 0.03, (h, w))).astype(np.float32)
    out += rng.normal(0.0, rng.uniform(0.01, 0.06), (1, w)).astype(np.float32)  # column offsets
    if rng.random() < 0.5:
        out += rng.normal(0.0, rng.uniform(0.005, 0.03), (h, 1)).astype(np.float32)  # row offsets
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    r2 = ((xx - w / 2) / (w / 2)) ** 2 + ((yy - h / 2) / (h / 2)) ** 2
    out *= 1.0 - rng.uniform(0.0, 0.4) * r2 / 2.0
    return out.astype(np.float32)


def temperature(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A smooth "temperature" field mixed into the image: large-scale intensity that has no edges
    in the other modality (sun-warmed walls, sky, road heat)."""
    field = _smooth_field(image.shape, rng, int(rng.integers(2, 8)))
    a = rng.uniform(0.2, 0.7)
    return ((1.0 - a) * image + a * field).astype(np.float32)


def structure(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Structure only: gradient magnitude or band-passed detail, like a depth or edge rendering
    (what survives between modalities is where things begin and end)."""
    blurred = cv2.GaussianBlur(image, (0, 0), rng.uniform(0.7, 2.0))
    if rng.random() < 0.5:
        gx = cv2.Sobel(blurred, cv2.CV_32F, 1, 0, ksize=3)
        gy = cv2.Sobel(blurred, cv2.CV_32F, 0, 1, ksize=3)
        out = np.sqrt(gx * gx + gy * gy)
    else:
        out = np.abs(blurred - cv2.GaussianBlur(blurred, (0, 0), rng.uniform(3.0, 8.0)))
    scale = float(np.percentile(out, 99)) or 1.0
    return np.clip(out / scale, 0.0, 1.0).astype(np.float32)


PALETTES = (cv2.COLORMAP_INFERNO, cv2.COLORMAP_HOT, cv2.COLORMAP_JET, cv2.COLORMAP_RAINBOW,
            cv2.COLORMAP_TURBO, cv2.COLORMAP_MAGMA)  # INFERNO/HOT/MAGMA: the "ironbow" family


def palette(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A false-colour palette (ironbow, jet, rainbow...) turned back to gray with random channel
    weights: what a user feeds when their thermal camera only exports colourised video."""
    colour = cv2.applyColorMap(np.clip(image * 255.0 + 0.5, 0, 255).astype(np.uint8),
                               PALETTES[int(rng.integers(len(PALETTES)))])
    weights = rng.dirichlet(np.ones(3)).astype(np.float32)
    return (colour.astype(np.float32) @ weights / 255.0).astype(np.float32)


def jpeg(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """JPEG artefacts at a low quality (blocks, ringing), as in streamed or archived video."""
    quality = int(rng.integers(10, 50))
    ok, buf = cv2.imencode(".jpg", np.clip(image * 255.0 + 0.5, 0, 255).astype(np.uint8),
                           [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError("cv2.imencode failed to write a JPEG")
    return cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE).astype(np.float32) / 255.0


FAMILIES: dict[str, Family] = {
    "tone": tone_curve,
    "bands": band_inversion,
    "optics": optics,
    "sensor": sensor,
    "temperature": temperature,
    "structure": structure,
    "palette": palette,
    "jpeg": jpeg,
}


def parse_families(spec: str) -> tuple[str, ...]:
    """``"all"``, ``"none"`` or a comma list of family names (``--pseudo tone,optics``)."""
    if spec == "all":
        return tuple(FAMILIES)
    if spec in ("", "none"):
        return ()
    names = tuple(s.strip() for s in spec.split(","))
    unknown = [n for n in names if n not in FAMILIES]
    if unknown:
        raise ValueError(f"unknown pseudo-modality families {unknown}; known: {', '.join(FAMILIES)}, all, none")
    return names


def pseudo_modality(image: np.ndarray, rng: np.random.Generator, families: Sequence[str],
                    max_chain: int = 3) -> np.ndarray:
    """One to ``max_chain`` distinct families from ``families``, in random order, clipped to [0, 1]."""
    if image.ndim != 2 or image.dtype != np.float32:
        raise ValueError(f"expected a float32 (H, W) image, got {image.dtype} {image.shape}")
    if not families:
        return image
    n = int(rng.integers(1, min(max_chain, len(families)) + 1))
    out = image
    for i in rng.permutation(len(families))[:n]:
        out = np.clip(FAMILIES[families[i]](out, rng), 0.0, 1.0).astype(np.float32)
    return out
