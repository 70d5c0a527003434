"""The scripted driving baseline: registered for the driving domain and successful on the built-in scenarios."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import yaml

import lepton_sim.envs  # noqa: F401
from lepton_sim.baselines import available_baselines, make_baseline
from lepton_sim.policy import Policy, PolicyContext

ENV_ID = "lepton/Driving-v0"
SCENARIOS = Path(__file__).resolve().parents[1] / "scenarios" / "driving"


def scenario(name: str) -> dict:
    return yaml.safe_load((SCENARIOS / f"{name}.yaml").read_text())


def run_batch(policy: Policy, venv: gym.vector.VectorEnv, seeds: list[int], params: dict) -> dict[str, np.ndarray]:
    """One episode per sub-env; the final info of each. The policy knows the env only through its context."""
    policy.reset(
        PolicyContext(venv.single_observation_space, venv.single_action_space, seeds, env_id=ENV_ID, params=params)
    )
    obs, info = venv.reset(seed=seeds)
    running = np.ones(len(seeds), dtype=bool)
    final = {key: np.zeros(len(seeds)) for key in ("is_success", "collision", "off_road", "route_completion")}
    while running.any():
        obs, _, terminated, truncated, info = venv.step(policy.act(obs, info=info)[0])
        for i in np.flatnonzero(running & (terminated | truncated)):
            for key in final:
                final[key][i] = info[key][i]
            running[i] = False
    return final


def scripted_for(data: dict, num_envs: int, **extra: object) -> tuple[Policy, gym.vector.VectorEnv]:
    venv = gym.make_vec(
        ENV_ID,
        num_envs=num_envs,
        vectorization_mode="vector_entry_point",
        max_episode_steps=data["max_episode_steps"],
        **{**data["params"], **extra},
    )
    policy = make_baseline("scripted", ENV_ID, "driving", venv.single_observation_space, venv.single_action_space)
    return policy, venv


def test_scripted_is_registered_for_driving() -> None:
    names = {b.name for b in available_baselines("driving")}
    assert {"scripted", "random"} <= names


@pytest.mark.parametrize(
    "name, episodes, minimum", [("lane-keep", 24, 0.95), ("obstacle-avoid", 24, 0.9), ("dense-traffic", 12, 0.8)]
)
def test_scripted_succeeds_on_held_out_seeds(name: str, episodes: int, minimum: float) -> None:
    policy, venv = scripted_for(scenario(name), episodes)
    final = run_batch(policy, venv, [100_000 + k for k in range(episodes)], scenario(name)["params"])
    assert final["is_success"].mean() >= minimum, final
    assert final["off_road"].sum() == 0


def test_scripted_beats_random_on_obstacles() -> None:
    data = scenario("obstacle-avoid")
    policy, venv = scripted_for(data, 8)
    scripted = run_batch(policy, venv, list(range(8)), data["params"])
    random = make_baseline("random", ENV_ID, "driving", venv.single_observation_space, venv.single_action_space)
    chance = run_batch(random, venv, list(range(8)), data["params"])
    assert scripted["route_completion"].mean() > chance["route_completion"].mean() + 0.5


def test_scripted_reads_the_params_from_its_context() -> None:
    """Non-default observation sizes work once the policy is reset with a context that holds the scenario's
    parameters (here on a SyncVectorEnv of single envs: the policy never touches the env)."""
    kwargs = dict(scenario("obstacle-avoid")["params"], num_waypoints=3, lidar_rays=8, num_objects=4)
    venv = gym.vector.SyncVectorEnv([lambda: gym.make(ENV_ID, max_episode_steps=300, **kwargs) for _ in range(4)])
    policy = make_baseline("scripted", ENV_ID, "driving", venv.single_observation_space, venv.single_action_space)
    with pytest.raises(ValueError, match="call reset"):
        policy.act(np.zeros((4, venv.single_observation_space.shape[0])))
    final = run_batch(policy, venv, [7, 8, 9, 10], kwargs)
    assert final["is_success"].mean() >= 0.75
