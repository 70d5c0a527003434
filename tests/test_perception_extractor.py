"""The perception encoder as SB3's features extractor: chosen by name in the hyperparameters, trained in a tiny
PPO run from driving's camera (frozen: the checkpoint's weights unchanged), reloaded and evaluated from the run
folder; fine-tuned it gets gradients; Dict observations append the state; mismatches are one-line errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pytest
from gymnasium import spaces

import lepton_sim
from lepton_sim.errors import LeptonError
from lepton_sim.scenario import load_scenario

torch = pytest.importorskip("torch")
checkpoint = pytest.importorskip("lepton_sim.perception.checkpoint")

from perception_fixtures import save_random_encoder  # noqa: E402

from lepton_sim.agents.sb3.perception_extractor import PerceptionExtractor  # noqa: E402

SIZE = 40


@pytest.fixture(autouse=True)
def _threads() -> Iterator[None]:
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def encoder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A pretraining-style checkpoint: a small encoder for 40x40 RGB images (random weights)."""
    return save_random_encoder(tmp_path_factory.mktemp("encoder"), SIZE)


def _extractor_kwargs(encoder: Path, freeze: bool) -> dict[str, Any]:
    return {
        "policy_kwargs": {
            "features_extractor_class": "perception",
            "features_extractor_kwargs": {"checkpoint": str(encoder), "freeze": freeze},
        }
    }


def test_a_frozen_encoder_trains_ppo_reloads_and_evaluates(encoder: Path, tmp_path: Path) -> None:
    from lepton_sim.loading import load_policy

    scenario = load_scenario("driving/lane-keep").model_copy(update={"max_episode_steps": 16})
    overrides = {
        "params.obs_mode": "pixels",
        "params.camera_size": SIZE,
        "n_steps": 32,
        "batch_size": 32,
        "n_epochs": 1,
        "frame_stack": 1,
        **_extractor_kwargs(encoder, freeze=True),
    }
    run = lepton_sim.train(
        scenario, algo="ppo", steps=64, n_envs=2, out=tmp_path / "run", overrides=overrides, progress_bar=False
    )
    policy = load_policy(str(run), scenario)
    extractor = policy.model.features_extractor  # type: ignore[attr-defined]
    assert isinstance(extractor, PerceptionExtractor) and extractor.freeze
    saved = torch.load(encoder / checkpoint.ENCODER_FILE, weights_only=True)["state_dict"]
    for name, value in extractor.encoder.state_dict().items():
        torch.testing.assert_close(value, saved[f"encoder.{name}"], rtol=0, atol=0)  # frozen through training
    report = lepton_sim.evaluate(str(run), scenario=scenario, episodes=1, progress=False)
    assert report.rows[0].episodes[0].length > 0


def test_fine_tuning_gives_the_encoder_gradients_and_dicts_append_the_state(encoder: Path) -> None:
    image = spaces.Box(0, 255, (3, SIZE, SIZE), np.uint8)
    batch = torch.rand(4, 3, SIZE, SIZE)
    frozen = PerceptionExtractor(image, str(encoder), freeze=True).train()
    assert not frozen.encoder.training and not frozen(batch).requires_grad  # eval mode, no graph
    tuned = PerceptionExtractor(image, str(encoder), freeze=False).train()
    tuned(batch).sum().backward()
    assert tuned.encoder.training and all(p.grad is not None for p in tuned.encoder.parameters())
    both = spaces.Dict({"pixels": image, "state": spaces.Box(-1, 1, (5,), np.float32)})
    extractor = PerceptionExtractor(both, str(encoder))
    features = extractor({"pixels": batch, "state": torch.ones(4, 5)})
    assert features.shape == (4, extractor.features_dim) and extractor.features_dim == 256 + 5
    assert torch.all(features[:, -5:] == 1)


@pytest.mark.parametrize(
    "space, kwargs, words",
    [
        (spaces.Box(0, 255, (3, 64, 64), np.uint8), {}, ["40x40x3 images", "64x64x3"]),
        (spaces.Box(0, 255, (6, SIZE, SIZE), np.uint8), {}, ["40x40x6", "frame_stack"]),
        (spaces.Box(-1, 1, (7,), np.float32), {}, ["needs camera images"]),
    ],
)
def test_a_checkpoint_that_does_not_fit_is_one_line(
    encoder: Path, space: spaces.Space, kwargs: dict[str, Any], words: list[str]
) -> None:
    with pytest.raises(LeptonError) as err:
        PerceptionExtractor(space, str(encoder), **kwargs)
    assert "\n" not in str(err.value)
    for word in words:
        assert word in str(err.value)


def test_bad_extractor_hyperparameters_are_one_line(encoder: Path) -> None:
    from lepton_sim.agents.sb3.hyperparams import check_hyperparams

    for bad in ({"freeze": "yes", "checkpoint": str(encoder)}, {"path": str(encoder)}):
        with pytest.raises(LeptonError, match="features_extractor_kwargs"):
            check_hyperparams(
                "ppo",
                {"policy_kwargs": {"features_extractor_class": "perception", "features_extractor_kwargs": bad}},
            )
