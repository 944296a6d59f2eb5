"""Featuremetric refinement: polish a homography on the dense descriptor maps.

A homography fitted to keypoint matches inherits their localisation noise and leaves image
regions without matches to extrapolation. Here its eight parameters are instead moved to make
the two dense descriptor maps agree (least squares between each well-scored cell's descriptor
and the other map bilinearly sampled where the homography sends it, both directions), by
Levenberg-Marquardt from the fitted model. The maps are the network's own output
(``S2NetFeature2D.denseMaps``), so no extra learning is involved.
Several pairs of a fixed camera rig can share one optimisation (``refine_homography_pairs``).
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from s2cv.feature.backends import DenseMaps
from s2cv.registration.geometry import image_corners, inside_image, invertible, warp_points

# Free entries (row, column) of the homography; H[2, 2] stays 1.
_ENTRIES = ((0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2), (2, 0), (2, 1))


@dataclass(frozen=True)
class RefineParams:
    """Optimiser knobs (chosen on the training split's validation pairs: docs/results.md)."""

    iters: int = 20            # Levenberg-Marquardt steps at most
    max_points: int = 16384    # best-scored map cells per image (fewer lost pairs on validation)
    max_shift: float = 0.1     # keep the input if a corner moves more than this x image diagonal
    levels: int = 1            # descriptor-map pyramid levels, coarse to fine (1 = the maps as they are)
    dims: int = 64             # principal axes kept (0 = all): the default's maps span <= 65, half the channels to sample

    def __post_init__(self) -> None:
        if int(self.iters) != self.iters or self.iters < 1:
            raise ValueError(f"iters must be an integer >= 1, got {self.iters!r}")
        if int(self.max_points) != self.max_points or self.max_points < 16:
            raise ValueError(f"max_points must be an integer >= 16, got {self.max_points!r}")
        if int(self.dims) != self.dims or self.dims < 0:
            raise ValueError(f"dims must be an integer >= 0, got {self.dims!r}")
        if int(self.levels) != self.levels or self.levels < 1:
            raise ValueError(f"levels must be an integer >= 1, got {self.levels!r}")
        if not (self.max_shift > 0 and np.isfinite(self.max_shift)):
            raise ValueError(f"max_shift must be a positive number, got {self.max_shift!r}")


def _host(array: object) -> np.ndarray:
    """Maps may be torch CUDA tensors (GPU backends); the optimisation runs on the CPU."""
    return array.detach().cpu().numpy() if hasattr(array, "detach") else np.asarray(array)


def _to_unit(shape: tuple[int, ...]) -> np.ndarray:
    """Pixel coordinates -> [-1, 1] over the image, so the eight parameters share one scale."""
    h, w = shape[:2]
    return np.array([[2.0 / w, 0.0, -1.0], [0.0, 2.0 / h, -1.0], [0.0, 0.0, 1.0]])


def _cells(scores: np.ndarray, stride: int, shape: tuple[int, ...], max_points: int) -> tuple[np.ndarray, np.ndarray]:
    """Centres (N, 2) of the best-scored descriptor cells inside the image, and their weights."""
    h, w = shape[:2]
    ys, xs = np.mgrid[stride // 2:h:stride, stride // 2:w:stride]
    weight = scores[ys.ravel(), xs.ravel()].astype(np.float64)
    keep = np.argsort(-weight, kind="stable")[:max_points]
    return np.column_stack([xs.ravel()[keep], ys.ravel()[keep]]).astype(np.float64), np.maximum(weight[keep], 0.0)


def _bilinear(desc: np.ndarray, xy: np.ndarray, stride: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(N, D) samples of an (h, w, D) map at image pixels ``xy`` (s2cv's cell convention, edges
    clamped) and their derivatives along x and y, per image pixel."""
    h, w = desc.shape[:2]
    u = np.clip((xy[:, 0] + 0.5) / stride - 0.5, 0, w - 1)
    v = np.clip((xy[:, 1] + 0.5) / stride - 0.5, 0, h - 1)
    u0, v0 = np.minimum(np.floor(u), w - 2).astype(np.int64), np.minimum(np.floor(v), h - 2).astype(np.int64)
    fu, fv = (u - u0)[:, None].astype(np.float32), (v - v0)[:, None].astype(np.float32)
    flat, i = desc.reshape(h * w, -1), v0 * w + u0
    f00, f01, f10, f11 = flat[i], flat[i + 1], flat[i + w], flat[i + w + 1]
    top, bottom = f00 + (f01 - f00) * fu, f10 + (f11 - f10) * fu
    dx = ((f01 - f00) * (1 - fv) + (f11 - f10) * fv) / stride
    return top + (bottom - top) * fv, dx, (bottom - top) / stride


def _project(H: np.ndarray, points: np.ndarray, inverse: bool) -> tuple[np.ndarray, np.ndarray]:
    """Homogeneous unit ``points`` (N, 3) through H (or H^-1): (N, 2) results and their
    derivatives (N, 2, 8) with respect to H's free entries."""
    M = np.linalg.inv(H) if inverse else H
    z = points @ M.T
    dz = np.zeros((len(points), 3, 8))
    for k, (i, j) in enumerate(_ENTRIES):
        if inverse:  # d(H^-1 p) = -H^-1 E_ij H^-1 p
            dz[:, :, k] = -M[:, i] * z[:, j:j + 1]
        else:
            dz[:, i, k] = points[:, j]
    z3 = z[:, 2:3, None]
    return z[:, :2] / z[:, 2:], (dz[:, :2] * z3 - z[:, :2, None] * dz[:, 2:]) / z3 ** 2


def _principal(desc: list[np.ndarray], dims: int) -> list[np.ndarray]:
    """Both maps projected on the top ``dims`` principal axes of their cells (fewer channels to
    sample per step; residuals between descriptors live mostly in that subspace)."""
    cells = np.concatenate([d.reshape(-1, d.shape[2]) for d in desc])
    centred = cells - cells.mean(0)
    axes = np.linalg.eigh(centred.T @ centred)[1][:, ::-1][:, :dims]  # eigenvalues ascend
    return [d @ np.ascontiguousarray(axes, np.float32) for d in desc]


def _pool(desc: np.ndarray, factor: int) -> np.ndarray:
    """An (h, w, D) map averaged over factor x factor cells and re-normalised (a coarser level)."""
    if factor == 1:
        return desc
    h, w = desc.shape[0] // factor * factor, desc.shape[1] // factor * factor
    pooled = desc[:h, :w].reshape(h // factor, factor, w // factor, factor, -1).mean((1, 3))
    return pooled / np.maximum(np.linalg.norm(pooled, axis=-1, keepdims=True), 1e-6)


def _terms(desc: list[np.ndarray], maps: tuple[DenseMaps, DenseMaps], shapes: tuple[tuple[int, ...], ...],
           unit: tuple[np.ndarray, np.ndarray], stride: int, max_points: int) -> list[tuple]:
    """One least-squares term per direction: cells of b sent into a by H, cells of a into b by H^-1."""
    terms = []
    for src, dst, inverse in ((1, 0, False), (0, 1, True)):
        xy, weight = _cells(_host(maps[src].scores)[0], stride, shapes[src], max_points)
        points = np.column_stack([xy, np.ones(len(xy))]) @ unit[src].T
        terms.append((points, _bilinear(desc[src], xy, stride)[0], weight, desc[dst], shapes[dst][:2], inverse))
    return terms


def _levenberg_marquardt(H: np.ndarray, terms: list[tuple], stride: int, iters: int) -> np.ndarray:
    """Minimise the weighted mean squared descriptor residual over H's eight free entries."""

    def normal_equations(H: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
        cost, JtJ, Jtr = 0.0, np.zeros((8, 8)), np.zeros(8)
        for points, feat, weight, other, (h, w), inverse in terms:
            q_unit, dq = _project(H, points, inverse)
            q = (q_unit + 1) * (w / 2, h / 2)
            weight = weight * inside_image(q, (h, w))
            if weight.sum() <= 0:
                continue
            weight = weight / weight.sum()
            value, gx, gy = _bilinear(other, q, stride)
            r = value - feat
            J = dq * np.array([w / 2, h / 2])[None, :, None] * np.sqrt(weight)[:, None, None]  # (N, 2, 8)
            G = np.stack([np.stack([(gx * gx).sum(1), (gx * gy).sum(1)], -1),
                          np.stack([(gx * gy).sum(1), (gy * gy).sum(1)], -1)], -2)  # (N, 2, 2)
            cost += float((weight * (r * r).sum(1)).sum())
            JtJ += J.reshape(-1, 8).T @ (G @ J).reshape(-1, 8)
            Jtr += (J * np.sqrt(weight)[:, None, None]).reshape(-1, 8).T @ np.stack(
                [(gx * r).sum(1), (gy * r).sum(1)], -1).reshape(-1)
        return cost, JtJ, Jtr

    cost, JtJ, Jtr = normal_equations(H)
    damping = 1e-3
    for _ in range(iters):
        step = np.linalg.solve(JtJ + damping * np.diag(np.diag(JtJ) + 1e-12), -Jtr)
        trial = H + np.append(step, 0.0).reshape(3, 3)
        new = normal_equations(trial)
        if new[0] < cost:
            H, (cost, JtJ, Jtr), damping = trial, new, max(damping / 10, 1e-7)
            if np.abs(step).max() < 1e-6:
                break
        else:
            damping *= 10
            if damping > 1e4:
                break
    return H


def _pair_terms(maps_a: DenseMaps, maps_b: DenseMaps, shape_a: tuple[int, ...], shape_b: tuple[int, ...],
                params: RefineParams) -> tuple[int, list[list[tuple] | None]]:
    """One pair's checked maps -> (stride, its least-squares terms per pyramid level, coarse to
    fine; None where a level is too coarse). Only what the optimiser samples is kept."""
    if maps_a.stride != maps_b.stride:
        raise ValueError(f"descriptor maps of different strides ({maps_a.stride} vs {maps_b.stride})")
    stride = maps_a.stride
    for name, maps, shape in (("a", maps_a, shape_a), ("b", maps_b, shape_b)):
        if tuple(np.shape(maps.scores)[-2:]) != tuple(shape[:2]):
            raise ValueError(f"maps_{name}: scores of shape {np.shape(maps.scores)[-2:]} for an image of {shape[:2]}")
    desc = [np.ascontiguousarray(_host(m.descriptors)[0].astype(np.float32).transpose(1, 2, 0)) for m in (maps_a, maps_b)]
    if not all(np.isfinite(d).all() and np.isfinite(_host(m.scores)).all() for d, m in zip(desc, (maps_a, maps_b))):
        raise ValueError("dense maps hold NaN/Inf values")
    if min(min(d.shape[:2]) for d in desc) < 2:
        raise ValueError("descriptor maps smaller than 2x2 cells: the images are too small to refine on")
    if 0 < params.dims < desc[0].shape[2]:
        desc = _principal(desc, params.dims)
    unit = _to_unit(shape_a), _to_unit(shape_b)
    levels: list[list[tuple] | None] = []
    for level in reversed(range(params.levels)):  # coarse to fine: a wider basin, then precision
        pooled = [_pool(d, 2 ** level) for d in desc]
        levels.append(None if min(min(d.shape[:2]) for d in pooled) < 2 else
                      _terms(pooled, (maps_a, maps_b), (shape_a, shape_b), unit, stride * 2 ** level, params.max_points))
    return stride, levels


def refine_homography(H_ba: np.ndarray, maps_a: DenseMaps, maps_b: DenseMaps, shape_a: tuple[int, ...],
                      shape_b: tuple[int, ...], params: RefineParams = RefineParams()) -> np.ndarray:
    """``H_ba`` (image b -> image a pixels) moved to where the two descriptor maps agree best.

    ``maps_a``/``maps_b`` are the two images' dense maps (``denseMaps``), ``shape_*`` the image
    sizes. Returns the input unchanged when the optimum lies implausibly far (a corner moves
    more than ``max_shift`` of the image diagonal): this polishes a model, it does not replace
    a failed one.
    """
    return refine_homography_pairs(H_ba, [(maps_a, maps_b)], shape_a, shape_b, params)


def refine_homography_pairs(H_ba: np.ndarray, pairs: Iterable[tuple[DenseMaps, DenseMaps]], shape_a: tuple[int, ...],
                            shape_b: tuple[int, ...], params: RefineParams = RefineParams()) -> np.ndarray:
    """``refine_homography`` for several image pairs that share one homography (a fixed camera
    rig): every pair's two directions enter the same least squares with equal weight.

    ``pairs`` yields ``(maps_a, maps_b)`` of images of sizes ``shape_a`` / ``shape_b``; it is
    consumed one pair at a time and only the sampled cells and projected maps of each are kept,
    so a generator that computes the maps on the fly bounds the memory.
    """
    H_ba = np.asarray(H_ba, np.float64)
    if H_ba.shape != (3, 3) or not np.isfinite(H_ba).all() or not invertible(H_ba):
        raise ValueError("H_ba must be a finite, invertible 3x3 matrix")
    strides, per_pair = set(), []
    for maps_a, maps_b in pairs:
        stride, levels = _pair_terms(maps_a, maps_b, shape_a, shape_b, params)
        strides.add(stride)
        per_pair.append(levels)
    if not per_pair:
        raise ValueError("pairs is empty: refinement needs the dense maps of at least one image pair")
    if len(strides) > 1:
        raise ValueError(f"pairs with descriptor maps of different strides {sorted(strides)}")
    stride = strides.pop()
    unit = _to_unit(shape_a), _to_unit(shape_b)
    H = unit[0] @ H_ba @ np.linalg.inv(unit[1])
    H = H / H[2, 2]
    for i, level in enumerate(reversed(range(params.levels))):
        terms = [term for levels in per_pair if levels[i] is not None for term in levels[i]]
        if terms:
            H = _levenberg_marquardt(H, terms, stride * 2 ** level, params.iters)

    refined = np.linalg.inv(unit[0]) @ H @ unit[1]
    refined = refined / refined[2, 2]
    corners = image_corners(shape_b)
    shift = np.linalg.norm(warp_points(corners, H_ba) - warp_points(corners, refined), axis=1).max()
    if not np.isfinite(refined).all() or not np.isfinite(shift) or shift > params.max_shift * np.hypot(*shape_a[:2]):
        return H_ba
    return refined
