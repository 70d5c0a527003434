"""``perception: PATH`` with real checkpoints (tiny untrained models): the estimate is the model's state head in
the state layout, batched and loaded once per process; a missing, corrupt or mismatched checkpoint (another
input size, no state head, another state) is a one-line error naming the file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

import lepton_sim
from lepton_sim.errors import LeptonError

torch = pytest.importorskip("torch")
checkpoint = pytest.importorskip("lepton_sim.perception.checkpoint")
labels = pytest.importorskip("lepton_sim.perception.labels")
models = pytest.importorskip("lepton_sim.perception.models")

SCENARIO = "manufacturing/visual-inspection"
FAST = {"parts_per_episode": 2, "arrival_rate": 0.5, "camera_size": 32}


@pytest.fixture(autouse=True)
def _threads() -> Any:
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def _save(folder: Path, image: tuple[int, int, int], heads: list[Any], state_size: int = 56) -> Path:
    torch.manual_seed(0)
    cfg = models.EncoderConfig.make("small", image)
    model = models.PerceptionModel(cfg, heads)
    layout = labels.StateLayout(((None, (state_size,)),))
    meta = {
        "encoder": cfg.to_json(),
        "heads": [h.to_json() for h in heads],
        "normalisation": {},
        "state_layout": layout.to_json(),
    }
    folder.mkdir(parents=True, exist_ok=True)
    checkpoint.save_checkpoint(folder / checkpoint.MODEL_FILE, "model", meta, model.state_dict())
    return folder


def _state(size: int = 56) -> Any:
    return labels.LabelSpec("state", "regression", (size,))


def test_the_estimate_is_the_models_state_head_batched_and_loaded_once(tmp_path: Path) -> None:
    from lepton_sim import perceived

    folder = _save(tmp_path / "m", (32, 32, 3), [_state()])
    perceived._cache.clear()
    venv = lepton_sim.make_vec(SCENARIO, 2, **FAST, obs_mode="perceived", perception=str(folder))
    pixels = lepton_sim.make_vec(SCENARIO, 2, **FAST, obs_mode="state+pixels")
    try:
        obs, _ = venv.reset(seed=2)
        seen, _ = pixels.reset(seed=2)
        model = lepton_sim.perception.load_model(folder)
        space = venv.single_observation_space
        expected = np.clip(model(seen["pixels"])["state"], space.low, space.high)
        np.testing.assert_allclose(obs, expected, rtol=1e-5, atol=1e-6)
        assert venv.observation_space.contains(obs)
        with lepton_sim.make(SCENARIO, **FAST, obs_mode="perceived", perception=str(folder / "model.pt")) as env:
            assert env.observation_space.contains(env.reset(seed=2)[0])
        assert len(perceived._cache) == 1  # the vector env and the single env share one loaded model
    finally:
        venv.close()
        pixels.close()


def _error(perception: str, **params: Any) -> str:
    with pytest.raises(LeptonError) as err:
        lepton_sim.make(SCENARIO, **{**FAST, **params}, obs_mode="perceived", perception=perception)
    message = str(err.value)
    assert "\n" not in message and "Traceback" not in message
    return message


def test_a_missing_or_corrupt_checkpoint_is_one_line(tmp_path: Path) -> None:
    assert "no such perception checkpoint" in _error(str(tmp_path / "nowhere"))
    assert "not a perception model" in _error(str(tmp_path))  # a folder without model.pt
    bad = tmp_path / "model.pt"
    bad.write_bytes(b"\x00not a checkpoint" * 10)
    assert str(bad) in _error(str(bad))
    truncated = _save(tmp_path / "t", (32, 32, 3), [_state()]) / "model.pt"
    truncated.write_bytes(truncated.read_bytes()[:200])
    assert "not a readable perception checkpoint" in _error(str(truncated))


def test_a_mismatched_checkpoint_is_one_line(tmp_path: Path) -> None:
    other_size = _save(tmp_path / "a", (64, 64, 3), [_state()])
    assert "takes 64x64x3 images" in _error(str(other_size)) and "32x32x3" in _error(str(other_size))
    no_state = _save(tmp_path / "b", (32, 32, 3), [labels.LabelSpec("defect", "binary", (1,))])
    message = _error(str(no_state))
    assert "'state' head" in message and "defect" in message
    other_state = _save(tmp_path / "c", (32, 32, 3), [_state(87)], state_size=87)
    assert "estimates a state of 87 values" in _error(str(other_state))
