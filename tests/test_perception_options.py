"""Training options of the perception models: AugMix (its operations do what they say, the mix changes colour
channels only, repeats for a seed, and trains through ``augment="augmix+photometric"``) and ``val_every``
(validation, and so the kept model, only every k epochs and at the last)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from perception_fixtures import make_synthetic_dataset

from lepton_sim.errors import LeptonError
from lepton_sim.perception import train
from lepton_sim.perception.augmix import OPS, augmix, posterize, solarize, translate
from lepton_sim.perception.runtime import augment


def _images(n: int = 6, size: int = 24, channels: int = 4) -> np.ndarray:
    rng = np.random.default_rng(3)
    img = rng.integers(0, 256, size=(n, size, size, channels), dtype=np.uint8)
    img[:, 8:16, 8:16, :3] = 250  # a bright square for the geometric operations to move
    return img


def test_augmix_changes_colour_channels_only_and_repeats_for_a_seed():
    x = _images()
    a = augmix(x, np.random.default_rng(0), channels=[0, 1, 2])
    b = augmix(x, np.random.default_rng(0), channels=[0, 1, 2])
    c = augmix(x, np.random.default_rng(1), channels=[0, 1, 2])
    assert a.dtype == np.uint8 and a.shape == x.shape
    np.testing.assert_array_equal(a, b)  # same seed, same images
    assert not np.array_equal(a, c)
    assert (a[..., :3] != x[..., :3]).mean() > 0.3  # most colour pixels change
    np.testing.assert_array_equal(a[..., 3], x[..., 3])  # a depth / segmentation channel is not light
    np.testing.assert_array_equal(x, _images())  # the input is not modified


def test_augmix_operations_do_what_they_say():
    rng = np.random.default_rng(0)
    x = _images(1)[0, ..., :3].astype(np.float32)
    p = posterize(x, rng).astype(np.uint8)
    step = np.gcd.reduce(p.ravel().astype(int))
    assert step in (2, 4, 8, 16) and np.all(x - p < step)  # 4-7 high bits kept, the rest floored away
    s = solarize(x, rng)
    assert np.all((s == x) | (s == 255 - x)) and (s == 255 - x)[x == 255].all()
    t = translate(x, np.random.default_rng(5))
    moved = np.argwhere(t[..., 0] >= 250).mean(0) - np.argwhere(x[..., 0] >= 250).mean(0)
    assert np.abs(moved).max() > 0.5  # the bright square moved
    for op in OPS:  # every operation keeps the image's shape and range
        y = op(x, np.random.default_rng(2))
        assert y.shape == x.shape and y.min() >= 0 and y.max() <= 255


def test_augment_applies_augmix_then_photometric_and_rejects_unknown_names():
    x = _images(channels=3)
    y = augment(x, "augmix+photometric", np.random.default_rng(0), [0, 1, 2])
    z = augment(x, "augmix+photometric", np.random.default_rng(0), [0, 1, 2])
    np.testing.assert_array_equal(y, z)
    assert not np.array_equal(y, augment(x, "augmix", np.random.default_rng(0), [0, 1, 2]))
    with pytest.raises(LeptonError, match="unknown augmentation"):
        augment(x, "cutout", np.random.default_rng(0), None)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_synthetic_dataset(tmp_path_factory.mktemp("options") / "squares", frames=120, size=32)


def test_training_with_augmix_and_validating_every_k_epochs(data, tmp_path):
    out = train(
        data, tmp_path / "m", progress=False, epochs=5, batch_size=32, augment="augmix+photometric", val_every=2
    )
    record = json.loads((out / "train.json").read_text())
    validated = [row["epoch"] for row in record["history"] if "val_loss" in row]
    assert validated == [2, 4, 5]  # every second epoch and the last
    assert record["training"]["best_epoch"] in validated
    assert record["training"]["augment"] == "augmix+photometric"
    with pytest.raises(LeptonError, match="--val-every"):
        train(data, tmp_path / "bad", progress=False, val_every=0)
