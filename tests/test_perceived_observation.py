"""``obs_mode: perceived``: the declared space is the state space, the model runs batched on vector envs (final
observations included), a perfect model (ground truth) reproduces the state agent's evaluation exactly, and a
model made for other images or another state is a one-line error.

Models here are stand-ins (no torch): ``ground-truth`` and recording estimators put in place of the core's
loader; real checkpoints are in tests/test_perception_checkpoints.py.
"""

from __future__ import annotations

from typing import Any

import gymnasium
import numpy as np
import pytest
from gymnasium.vector import AutoresetMode

import lepton_sim
from lepton_sim.envs import perceived_observation
from lepton_sim.errors import ScenarioError
from lepton_sim.policy import Policy

DRIVING = "driving/obstacle-avoid"
INSPECTION = "manufacturing/visual-inspection"
FAST = {"parts_per_episode": 2, "arrival_rate": 0.5}
TRUTH = {"obs_mode": "perceived", "perception": "ground-truth", "camera_size": 32}


class Recorder:
    """A stand-in model: records the batches it is given and estimates every state value as ``value``."""

    def __init__(self, image_shape: tuple[int, int, int], state_size: int, value: float = 100.0) -> None:
        self.name = "recorder"
        self.image_shape = image_shape
        self.state_size = state_size
        self.value = value
        self.batches: list[tuple[int, ...]] = []

    def __call__(self, images: np.ndarray) -> np.ndarray:
        assert images.dtype == np.uint8
        self.batches.append(images.shape)
        return np.full((len(images), self.state_size), self.value)


@pytest.fixture
def models(monkeypatch: pytest.MonkeyPatch) -> dict[str, Recorder]:
    """``perception: NAME`` loads ``models[NAME]``."""
    known: dict[str, Recorder] = {}

    def load(spec: str) -> Recorder:
        return known[spec]

    monkeypatch.setattr(perceived_observation, "_loader", load)
    return known


@pytest.mark.parametrize("scenario", [DRIVING, INSPECTION, "manufacturing/reach"])
def test_the_perceived_space_is_the_state_space(scenario: str) -> None:
    extra = FAST if scenario == INSPECTION else {}
    with lepton_sim.make(scenario, **extra) as state, lepton_sim.make(scenario, **extra, **TRUTH) as perceived:
        assert perceived.observation_space == state.observation_space
        obs, _ = perceived.reset(seed=1)
        assert perceived.observation_space.contains(obs)
        assert perceived.observation_space.contains(perceived.step(perceived.action_space.sample())[0])
        assert perceived.unwrapped is not None and type(perceived.unwrapped) is type(state.unwrapped)


@pytest.mark.parametrize("scenario", [DRIVING, INSPECTION])
def test_a_model_runs_once_a_step_on_every_worlds_image(scenario: str, models: dict[str, Recorder]) -> None:
    """Sync (manufacturing) and native (driving) vector envs: one call per reset and step with all worlds'
    images; the estimate, clipped to the state space, is the observation; the episode is the state mode's."""
    extra = FAST if scenario == INSPECTION else {}
    state = lepton_sim.make_vec(scenario, 3, **extra)
    space = state.single_observation_space
    model = models["m"] = Recorder((32, 32, 3), int(np.prod(space.shape)))
    venv = lepton_sim.make_vec(scenario, 3, **extra, obs_mode="perceived", perception="m", camera_size=32)
    try:
        assert venv.single_observation_space == space
        obs, _ = venv.reset(seed=5)
        state.reset(seed=5)
        np.testing.assert_array_equal(obs, np.broadcast_to(space.high, obs.shape))
        rng = np.random.default_rng(0)
        for _ in range(4):
            actions = rng.uniform(-1, 1, venv.action_space.shape).astype(np.float32)
            obs, reward, terminated, truncated, info = venv.step(actions)
            expected = state.step(actions)
            np.testing.assert_array_equal(reward, expected[1])
            assert venv.observation_space.contains(obs)
        assert model.batches == [(3, 32, 32, 3)] * 5
    finally:
        venv.close()
        state.close()


class _Unpinned(Policy):
    """A policy run as it is, without the obs mode its env_overrides would force (the scripted baselines ask for
    ``obs_mode: state``): so the same controller runs on state and on perceived state."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.name = policy.name
        self.env_overrides = {k: v for k, v in policy.env_overrides.items() if k != "obs_mode"}

    def reset(self, context: Any) -> None:
        self.policy.reset(context)

    def act(self, observation: Any, state: Any = None, episode_start: Any = None, *, info: Any = None) -> Any:
        return self.policy.act(observation, state, episode_start, info=info)


def _episodes(report: Any) -> list[Any]:
    return [
        (e.seed, e.episode_return, e.length, e.success, str(e.metrics)) for row in report.rows for e in row.episodes
    ]


def test_ground_truth_reproduces_the_state_agents_evaluation_exactly() -> None:
    """State controllers (driving's scripted planner, the oracle sorter on visual inspection) give the same
    episodes, returns and metrics on true state and on perfectly perceived state (a trained state policy does
    too: the golden PPO on lane-keep, checked by hand; its SB3 load costs ~10 s here)."""
    from lepton_sim.agents.manufacturing.inspection import OracleSorter

    cases = [
        ("scripted", lepton_sim.load_scenario(DRIVING), 2),
        (_Unpinned(OracleSorter()), lepton_sim.load_scenario(INSPECTION, **FAST), 1),
    ]
    for policy, scenario, episodes in cases:
        short = scenario.model_copy(update={"max_episode_steps": 80})
        perceived = short.with_params(TRUTH)
        runs = [lepton_sim.evaluate(policy, scenario=s, episodes=episodes, progress=False) for s in (short, perceived)]
        assert _episodes(runs[0]) == _episodes(runs[1])
        assert runs[0].rows[0].episodes[0].length > 10
        assert runs[1].rows[0].env_overrides.get("obs_mode") is None  # nothing forced the state mode back


def test_same_step_final_observations_are_perceived(models: dict[str, Recorder]) -> None:
    """SB3 trains with SAME_STEP autoreset: the final observation of a world that ended is perceived as well
    (ground truth: equal to the state mode's; a model: its estimate, from one more call on the ended worlds)."""
    kwargs = {"max_episode_steps": 4, "autoreset_mode": AutoresetMode.SAME_STEP}
    state = lepton_sim.make_vec(DRIVING, 2, **kwargs)
    truth = lepton_sim.make_vec(DRIVING, 2, **kwargs, **TRUTH)
    model = models["m"] = Recorder((32, 32, 3), int(np.prod(state.single_observation_space.shape)), value=-100.0)
    perceived = lepton_sim.make_vec(DRIVING, 2, **kwargs, obs_mode="perceived", perception="m", camera_size=32)
    try:
        for venv in (state, truth, perceived):
            venv.reset(seed=3)
        actions = np.zeros((2, *state.single_action_space.shape), np.float32)
        for _ in range(4):
            outs = [venv.step(actions) for venv in (state, truth, perceived)]
        info_state, info_truth, info_model = (out[4] for out in outs)
        assert info_state["_final_obs"].all()
        for i in range(2):
            np.testing.assert_array_equal(info_truth["final_obs"][i], info_state["final_obs"][i])
            low = state.single_observation_space.low
            np.testing.assert_array_equal(info_model["final_obs"][i], low)
        assert model.batches[-2:] == [(2, 32, 32, 3), (2, 32, 32, 3)]  # the ended worlds' final images, then all
    finally:
        for venv in (state, truth, perceived):
            venv.close()


def test_a_single_env_perceives_its_one_image(models: dict[str, Recorder]) -> None:
    with gymnasium.make("lepton/ArmReach-v0") as state:
        models["m"] = Recorder((32, 32, 3), perceived_observation.flat_size(state.observation_space), value=0.5)
    with gymnasium.make("lepton/ArmReach-v0", obs_mode="perceived", perception="m", camera_size=32) as env:
        obs, _ = env.reset(seed=0)
        assert isinstance(obs, dict) and set(obs) == {"achieved_goal", "desired_goal", "observation"}
        assert env.observation_space.contains(obs)
        assert all(np.all(v == 0.5) for v in obs.values())
    assert models["m"].batches == [(1, 32, 32, 3)]


@pytest.mark.parametrize(
    "params, words",
    [
        ({"camera_size": 48}, ["takes 32x32x3 images", "48x48x3", "camera_size"]),
        ({"camera_size": 32, "camera_depth": True}, ["32x32x3", "32x32x4"]),
        ({"camera_size": 32, "perception": "short"}, ["estimates a state of 5 values", "has 87"]),
        ({"camera_size": 32, "perception": None}, ["perception", "needs a perception model"]),
    ],
)
def test_a_model_for_other_images_or_another_state_is_a_one_line_error(
    params: dict[str, Any], words: list[str], models: dict[str, Recorder]
) -> None:
    models["m"] = Recorder((32, 32, 3), 87)
    models["short"] = Recorder((32, 32, 3), 5)
    kwargs = {"obs_mode": "perceived", "perception": "m", **params}
    if kwargs.get("camera_depth"):
        scenario, kwargs["obs_camera"] = INSPECTION, "overhead"
    else:
        scenario = DRIVING
    with pytest.raises(ScenarioError) as err:
        lepton_sim.make(scenario, **kwargs)
    message = str(err.value)
    assert "\n" not in message
    for word in words:
        assert word in message


def test_perception_outside_the_perceived_mode_is_refused() -> None:
    with pytest.raises(ScenarioError, match="only obs_mode perceived runs a perception model"):
        lepton_sim.load_scenario(DRIVING, perception="ground-truth")
