"""AugMix (Hendrycks et al. 2020) for uint8 image batches: each image is mixed with a few chains of random
operations, so a model sees varied, natural-looking images and cannot lean on one low-level cue.

Why these operations: AugMix's own set (autocontrast, equalize, posterize, solarize, rotate, shear, translate)
was chosen to share nothing with ImageNet-C's corruptions, so robustness measured on those corruptions (here the
sensor's blur, occlusions and dead pixels) is not trained on them. Like the paper, it leaves out brightness,
contrast, colour and sharpness (the photometric jitter and the sensor's training corruptions cover light);
geometric operations replicate the edge pixels rather than fill with black, which would look like an occlusion.
Rotations, shears and translations move what the image shows: use it for class and binary labels, not positions.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

WIDTH = 3  # chains mixed per image
MAX_DEPTH = 3  # operations per chain: 1 to MAX_DEPTH
ROTATE_DEG = 15.0
SHEAR = 0.15
TRANSLATE = 1 / 8  # of the image side

Op = Callable[[np.ndarray, np.random.Generator], np.ndarray]  # float32 (H, W, C) in [0, 255] -> same


def autocontrast(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    lo = x.min(axis=(0, 1), keepdims=True)
    hi = x.max(axis=(0, 1), keepdims=True)
    scale = np.where(hi > lo, 255.0 / np.maximum(hi - lo, 1e-6), 1.0)
    return np.where(hi > lo, (x - lo) * scale, x)


def equalize(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    out = np.empty_like(x)
    for c in range(x.shape[2]):
        v = np.clip(x[..., c], 0, 255).astype(np.uint8)
        cdf = np.cumsum(np.bincount(v.ravel(), minlength=256)).astype(np.float32)
        lo = cdf[cdf > 0][0]
        lut = (cdf - lo) / max(cdf[-1] - lo, 1.0) * 255.0
        out[..., c] = lut[v]
    return out


def posterize(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    bits = int(rng.integers(4, 8))
    mask = np.uint8((0xFF << (8 - bits)) & 0xFF)
    return (np.clip(x, 0, 255).astype(np.uint8) & mask).astype(np.float32)


def solarize(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    threshold = rng.uniform(128.0, 256.0)
    return np.where(x < threshold, x, 255.0 - x)


def _warp(x: np.ndarray, matrix: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """Nearest-neighbour affine warp about the image centre: output pixel p shows input pixel
    matrix @ (p - centre) + centre + shift (clamped: edge pixels repeat)."""
    h, w = x.shape[:2]
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    cy, cx = (h - 1) / 2, (w - 1) / 2
    dx, dy = xs - cx, ys - cy
    sx = matrix[0, 0] * dx + matrix[0, 1] * dy + cx + shift[0]
    sy = matrix[1, 0] * dx + matrix[1, 1] * dy + cy + shift[1]
    ix = np.clip(np.rint(sx), 0, w - 1).astype(np.intp)
    iy = np.clip(np.rint(sy), 0, h - 1).astype(np.intp)
    return x[iy, ix]


def rotate(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    a = np.radians(rng.uniform(-ROTATE_DEG, ROTATE_DEG))
    return _warp(x, np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]]), np.zeros(2))


def shear_x(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return _warp(x, np.array([[1.0, rng.uniform(-SHEAR, SHEAR)], [0.0, 1.0]]), np.zeros(2))


def shear_y(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return _warp(x, np.array([[1.0, 0.0], [rng.uniform(-SHEAR, SHEAR), 1.0]]), np.zeros(2))


def translate(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    h, w = x.shape[:2]
    t = rng.uniform(-TRANSLATE, TRANSLATE, size=2) * np.array([w, h])
    return _warp(x, np.eye(2), t)


OPS: tuple[Op, ...] = (autocontrast, equalize, posterize, solarize, rotate, shear_x, shear_y, translate)


def augmix(images: np.ndarray, rng: np.random.Generator, channels: list[int] | None = None) -> np.ndarray:
    """AugMix of a uint8 batch ``(N, H, W, C)``: per image, WIDTH chains of 1-MAX_DEPTH random operations,
    mixed with Dirichlet(1) weights, then blended with the image by a Beta(1, 1) share. ``channels``: the
    colour channels (default all); the others (depth, segmentation, semantic grids) are copied unchanged.
    Returns a new uint8 array; the same ``rng`` state gives the same images."""
    images = np.asarray(images)
    if images.ndim != 4 or images.dtype != np.uint8:
        raise ValueError(f"augmix expects uint8 images (N, H, W, C), got {images.dtype} {images.shape}")
    idx = np.arange(images.shape[3]) if channels is None else np.asarray(channels, dtype=np.int64)
    out = images.copy()
    if images.shape[0] == 0 or idx.size == 0:
        return out
    for i in range(images.shape[0]):
        x = images[i][..., idx].astype(np.float32)
        weights = rng.dirichlet(np.ones(WIDTH))
        mix = np.zeros_like(x)
        for k in range(WIDTH):
            y = x
            for _ in range(int(rng.integers(1, MAX_DEPTH + 1))):
                y = OPS[int(rng.integers(len(OPS)))](y, rng)
            mix += weights[k] * y
        m = rng.beta(1.0, 1.0)
        out[i][..., idx] = np.clip((1.0 - m) * x + m * mix + 0.5, 0.0, 255.0).astype(np.uint8)
    return out
