"""Image augmentation for training on pixels: DrQ's random shift and a photometric (colour) jitter, batched,
in numpy.

Why random shift: of the augmentations tried for pixel RL (crop, translate, colour jitter, cutout) it is the one
that matters most (DrQ, RAD, PVR), and it costs a pad and a slice per image. Each image of a batch is padded by
``pad`` pixels on every side with its border pixels repeated (replicate padding, as DrQ), then cropped back to its
size at a random offset, so its content moves by up to ``pad`` pixels in each direction. A stacked observation
(frames along the channel axis) moves as one image: all its frames by the same offset.

The photometric jitter (:func:`photometric_jitter`) is applied after the shift where both are used (SimSiam's
views, perception training), on colour channels only.

Numpy only, so the core, the training wrappers of any back end and the perception work can share it.
"""

from __future__ import annotations

import numpy as np

DEFAULT_PAD = 4  # DrQ's pad for 84x84 images


def shift_images(
    images: np.ndarray, dy: np.ndarray, dx: np.ndarray, pad: int = DEFAULT_PAD, channels_first: bool = False
) -> np.ndarray:
    """Each image ``i`` of the batch cropped from its padded copy (borders replicated) at ``(dy[i], dx[i])``: its
    content moves ``pad - dy[i]`` pixels down and ``pad - dx[i]`` right (``out[r, c] = image[r + dy - pad,
    c + dx - pad]``, clamped to the border).

    ``images``: ``(N, H, W, C)`` (or ``(N, C, H, W)`` with ``channels_first``); ``dy`` / ``dx``: crop offsets in
    ``0 .. 2 * pad`` (``pad`` leaves the image unchanged). Returns a new array of the same shape and dtype."""
    images = np.asarray(images)
    if images.ndim != 4:
        raise ValueError(
            f"shift_images expects a batch of images (N, H, W, C) or (N, C, H, W), got shape {images.shape}"
        )
    if pad < 0:
        raise ValueError(f"pad must be >= 0, got {pad}")
    dy, dx = np.asarray(dy, dtype=np.int64), np.asarray(dx, dtype=np.int64)
    n = images.shape[0]
    if dy.shape != (n,) or dx.shape != (n,):
        raise ValueError(f"one offset per image: dy {dy.shape}, dx {dx.shape} for {n} images")
    if n and (min(dy.min(), dx.min()) < 0 or max(dy.max(), dx.max()) > 2 * pad):
        raise ValueError(f"offsets must lie in 0..{2 * pad} (pad {pad})")
    hwc = images.transpose(0, 2, 3, 1) if channels_first else images
    h, w = hwc.shape[1:3]
    padded = np.pad(hwc, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode="edge")
    out = np.empty_like(hwc)
    for i in range(n):  # a slice per image: faster than one gather for the batch sizes of training (<= 256)
        out[i] = padded[i, dy[i] : dy[i] + h, dx[i] : dx[i] + w]
    return out.transpose(0, 3, 1, 2) if channels_first else out


def random_shift(
    images: np.ndarray, rng: np.random.Generator, pad: int = DEFAULT_PAD, channels_first: bool = False
) -> np.ndarray:
    """DrQ's random shift: each image moved by a uniform random offset in ``-pad .. pad`` pixels per axis (see
    :func:`shift_images`); the offsets come from ``rng``, so a seeded generator repeats them."""
    n = np.asarray(images).shape[0]
    offsets = rng.integers(0, 2 * pad + 1, size=(2, n))
    return shift_images(images, offsets[0], offsets[1], pad, channels_first)


class RandomShift:
    """A seeded random shift to apply batch after batch (a training wrapper keeps one per env)."""

    def __init__(self, pad: int = DEFAULT_PAD, seed: int | None = None, channels_first: bool = False) -> None:
        if pad < 0:
            raise ValueError(f"pad must be >= 0, got {pad}")
        self.pad = pad
        self.channels_first = channels_first
        self.rng = np.random.default_rng(seed)

    def __call__(self, images: np.ndarray) -> np.ndarray:
        return random_shift(images, self.rng, self.pad, self.channels_first)


# ------------------------------------------------------------------------------------------- photometric
DEFAULT_BRIGHTNESS = 0.2  # fraction of full scale, +-
DEFAULT_CONTRAST = 0.3  # factor 1 +- this, around each image's mean
DEFAULT_COLOUR = 0.1  # per-channel gain 1 +- this


def photometric_jitter(
    images: np.ndarray,
    rng: np.random.Generator,
    brightness: float = DEFAULT_BRIGHTNESS,
    contrast: float = DEFAULT_CONTRAST,
    colour: float = DEFAULT_COLOUR,
    channels: list[int] | None = None,
) -> np.ndarray:
    """Colour jitter (RAD, SimSiam's views), per image of a uint8 batch ``(N, H, W, C)``: contrast around the
    image's mean, an additive brightness and a gain per channel, each drawn uniformly from ``rng``.

    ``channels``: the colour channels to jitter (default all); the others (semantic grids, depth,
    segmentation ids) are copied unchanged, as they are not light. Returns a new uint8 array."""
    images = np.asarray(images)
    if images.ndim != 4 or images.dtype != np.uint8:
        raise ValueError(f"photometric_jitter expects uint8 images (N, H, W, C), got {images.dtype} {images.shape}")
    n, c = images.shape[0], images.shape[3]
    idx = np.arange(c) if channels is None else np.asarray(channels, dtype=np.int64)
    out = images.copy()
    if n == 0 or idx.size == 0:
        return out
    x = images[..., idx].astype(np.float32)
    mean = x.mean(axis=(1, 2, 3), keepdims=True)
    k = rng.uniform(1.0 - contrast, 1.0 + contrast, size=(n, 1, 1, 1)).astype(np.float32)
    b = rng.uniform(-brightness, brightness, size=(n, 1, 1, 1)).astype(np.float32) * 255.0
    gain = rng.uniform(1.0 - colour, 1.0 + colour, size=(n, 1, 1, idx.size)).astype(np.float32)
    x = ((x - mean) * k + mean + b) * gain
    out[..., idx] = np.clip(x + 0.5, 0.0, 255.0).astype(np.uint8)
    return out
