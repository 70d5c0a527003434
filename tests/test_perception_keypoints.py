"""The keypoint encoder (``arch="keypoint"``): its spatial softmax puts a blob's expected position at the blob's
sub-pixel centre; a model trained with it locates a square within a pixel on held-out frames; its checkpoint
records the architecture, so loading it as another encoder is a one-line error."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from perception_fixtures import make_synthetic_dataset

from lepton_sim.errors import LeptonError
from lepton_sim.perception import load_dataset, load_model, train
from lepton_sim.perception.checkpoint import encoder_state
from lepton_sim.perception.models import KEYPOINTS, EncoderConfig, SpatialSoftmax, build_encoder


def test_spatial_softmax_finds_a_blobs_sub_pixel_centre():
    h, w = 16, 20
    soft = SpatialSoftmax(h, w)
    rng = np.random.default_rng(0)
    centres = rng.uniform([3, 3], [w - 3, h - 3], size=(5, 2))  # (x, y) in pixels, away from the edges
    ys, xs = np.mgrid[0:h, 0:w] + 0.5  # pixel centres
    maps = np.stack([-((xs - cx) ** 2 + (ys - cy) ** 2) / (2 * 0.7**2) for cx, cy in centres])
    with torch.no_grad():
        out = soft(torch.as_tensor(maps, dtype=torch.float32)[None]).numpy().reshape(-1, 2)
    found = (out + 1) / 2 * np.array([w, h])  # [-1, 1] back to pixels
    np.testing.assert_allclose(found, centres, atol=0.02)  # well within a pixel
    assert len(list(soft.parameters())) == 1  # the temperature learns; the grid is a buffer


def test_keypoint_encoder_outputs_appearance_and_points_for_64_and_84_pixels():
    for side in (64, 84):
        cfg = EncoderConfig.make("keypoint", (side, side, 3))
        z = build_encoder(cfg)(torch.rand(2, 3, side, side))
        assert z.shape == (2, cfg.features)
        points = z[:, -2 * KEYPOINTS :]
        assert points.abs().max() <= 1.0  # expected coordinates stay inside the image


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_synthetic_dataset(tmp_path_factory.mktemp("keypoints") / "squares", frames=600, size=32)


@pytest.fixture(scope="module")
def model(data, tmp_path_factory):
    out = tmp_path_factory.mktemp("kp") / "m"
    options = {"epochs": 15, "batch_size": 32, "lr": 3e-3, "augment": "none", "device": "cpu"}
    return train(data, out, progress=False, arch="keypoint", heads=["position"], **options)


def test_a_keypoint_model_locates_a_square_within_a_pixel(model, data):
    test = load_dataset(data).split("test")
    predicted = load_model(model)(test.frames)["position"]
    present = test.labels["square_present"][:, 0] > 0
    error = np.abs(predicted - test.labels["position"])[present]
    spread = np.abs(test.labels["position"][present] - test.labels["position"][present].mean(0)).mean()
    assert error.mean() < 1.0 < spread  # pixels: sub-pixel, where guessing the mean is off by several


def test_a_keypoint_checkpoint_is_not_loaded_as_another_encoder(model):
    with pytest.raises(LeptonError, match="keypoint"):
        encoder_state(model, EncoderConfig.make("small", (32, 32, 3)))


def test_a_checkpoint_of_an_unknown_architecture_is_a_one_line_error(model, tmp_path):
    from lepton_sim.perception.checkpoint import CheckpointError, read_checkpoint, save_checkpoint

    _, kind, meta, state = read_checkpoint(model)
    meta["encoder"]["arch"] = "resnet99"
    save_checkpoint(tmp_path / "model.pt", kind, meta, state)
    with pytest.raises(CheckpointError, match="resnet99.*unknown"):
        load_model(tmp_path)
