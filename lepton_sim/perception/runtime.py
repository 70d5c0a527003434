"""Where and how the perception models run: device choice, torch threads, seeding, batches of augmented frames.

Why one torch thread by default on the CPU: the machines this runs on have few cores shared with simulators
and other jobs, and small CNNs gain little from more (the pixel-PPO measurement: 165 vs 32 steps/s with two
threads on a loaded 2-core machine). The previous setting is restored afterwards, so a caller's process (a test
suite, an SB3 run) keeps its own.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch

from lepton_sim.augmentation import photometric_jitter, random_shift
from lepton_sim.errors import LeptonError
from lepton_sim.perception.augmix import augmix

DEVICE_PATTERN = r"auto|cpu|cuda(:\d+)?"
AUGMENTATIONS: tuple[str, ...] = (
    "none",
    "shift",
    "photometric",
    "shift+photometric",
    "augmix",
    "augmix+photometric",
)
SHIFT_PAD = 4  # DrQ's pad at 84x84; 3 px at 64x64 (scaled with the image side)


def resolve_device(device: str) -> torch.device:
    """``auto`` (CUDA when present), ``cpu``, ``cuda`` or ``cuda:N``; a CUDA device that is not there is an
    error naming what is."""
    if not re.fullmatch(DEVICE_PATTERN, device):
        raise LeptonError(f"--device must be auto, cpu, cuda or cuda:N, got {device!r}")
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if device == "auto":
        return torch.device("cuda" if count else "cpu")
    if device.startswith("cuda") and int(device.partition(":")[2] or 0) >= count:
        here = "no CUDA device on this machine" if not count else f"this machine has {count} CUDA device(s)"
        raise LeptonError(f"--device {device}: {here}")
    return torch.device(device)


@contextmanager
def torch_threads(device: torch.device, threads: int | None = 1) -> Iterator[None]:
    """``threads`` torch threads on the CPU while inside (None: leave torch's setting); restored after."""
    before = torch.get_num_threads()
    if device.type == "cpu" and threads is not None:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def seed_everything(seed: int) -> np.random.Generator:
    """Seed torch (CPU and CUDA) and return the numpy generator for batches and augmentations. cuDNN is kept
    deterministic; CPU training with one thread repeats bit for bit."""
    torch.manual_seed(seed)
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
    return np.random.default_rng(seed)


def shift_pad(size: int) -> int:
    return max(1, round(SHIFT_PAD * size / 84))


def augment(images: np.ndarray, how: str, rng: np.random.Generator, rgb: list[int] | None) -> np.ndarray:
    """A batch of uint8 (N, H, W, C) frames augmented as ``how`` says: random shift first, then AugMix, then
    photometric jitter (the last two on the colour channels ``rgb`` only)."""
    if how not in AUGMENTATIONS:
        raise LeptonError(f"unknown augmentation {how!r}; allowed: {', '.join(AUGMENTATIONS)}")
    if "shift" in how:
        images = random_shift(images, rng, pad=shift_pad(images.shape[1]))
    if "augmix" in how:
        images = augmix(images, rng, channels=rgb)
    if "photometric" in how:
        images = photometric_jitter(images, rng, channels=rgb)
    return images


def batches(n: int, batch_size: int, rng: np.random.Generator | None) -> Iterator[np.ndarray]:
    """Indices of an epoch's batches: shuffled with ``rng``, in order without; the last batch may be short."""
    order = rng.permutation(n) if rng is not None else np.arange(n)
    for start in range(0, n, batch_size):
        yield order[start : start + batch_size]
