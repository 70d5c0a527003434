"""Image augmentation for training on pixels: DrQ's random shift, batched, in numpy.

Why random shift: of the augmentations tried for pixel RL (crop, translate, colour jitter, cutout) it is the one
that matters most (DrQ, RAD, PVR), and it costs a pad and a slice per image. Each image of a batch is padded by
``pad`` pixels on every side with its border pixels repeated (replicate padding, as DrQ), then cropped back to its
size at a random offset, so its content moves by up to ``pad`` pixels in each direction. A stacked observation
(frames along the channel axis) moves as one image: all its frames by the same offset.

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
