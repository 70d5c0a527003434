"""lepton/Driving-v0: Gymnasium conformance, determinism, the native vector env against SyncVectorEnv, params,
observation and info contents, rendering and scenario files."""

from __future__ import annotations

import math
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import yaml
from gymnasium.utils.env_checker import check_env
from gymnasium.vector import AutoresetMode, SyncVectorEnv
from pydantic import ValidationError

import lepton_sim.envs  # noqa: F401  (registers the ids)
from lepton_sim.envs.driving.observation import observation_size
from lepton_sim.envs.driving.params import DrivingParams
from lepton_sim.envs.driving.sim import INFO_KEYS

ENV_ID = "lepton/Driving-v0"
SCENARIOS = Path(__file__).resolve().parents[1] / "scenarios" / "driving"
# a busy world: obstacles, traffic and curves, so every code path runs
BUSY = dict(
    lanes=[2, 3],
    curvature=[0.0, 0.02],
    route_length=250,
    obstacles=[2, 4],
    vehicles=[3, 8],
    vehicle_speed=[8, 14],
    ego_speed=[8, 12],
    max_speed=15,
)


def scenario_params(name: str) -> dict:
    return yaml.safe_load((SCENARIOS / f"{name}.yaml").read_text())["params"]


@pytest.mark.parametrize("kwargs", [{}, BUSY, {**BUSY, "action_mode": "discrete", "sim_steps_per_action": 3}])
def test_check_env(kwargs: dict) -> None:
    env = gym.make(ENV_ID, **kwargs)
    check_env(env.unwrapped, skip_render_check=True)
    env.close()


def test_spaces_follow_the_params() -> None:
    env = gym.make(ENV_ID, num_waypoints=3, lidar_rays=8, num_objects=2)
    assert env.observation_space.shape == (19 + 6 + 8 + 14,)
    assert env.action_space == gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
    assert gym.make(ENV_ID, action_mode="discrete").action_space == gym.spaces.Discrete(5)
    assert observation_size(DrivingParams()) == 87


def rollout(env: gym.Env, seed: int, steps: int, action_seed: int = 0) -> list:
    rng = np.random.default_rng(action_seed)
    out = [env.reset(seed=seed)]
    for _ in range(steps):
        obs, reward, terminated, truncated, info = env.step(rng.uniform(-1, 1, 2).astype(np.float32))
        out.append((obs, reward, terminated, truncated, info))
        if terminated or truncated:
            out.append(env.reset())
    return out


def assert_same(a: object, b: object) -> None:
    """Exact equality for nested tuples / dicts / arrays (NaN equals NaN)."""
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        for key in a:
            assert_same(a[key], b[key])
    elif isinstance(a, (tuple, list)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            assert_same(x, y)
    elif isinstance(a, np.ndarray) and a.dtype == object:
        for x, y in zip(a, b):
            assert_same(x, y)
    else:
        np.testing.assert_array_equal(a, b)


def test_same_seed_same_episode_and_different_seeds_differ() -> None:
    first = rollout(gym.make(ENV_ID, max_episode_steps=60, **BUSY), seed=3, steps=150)
    second = rollout(gym.make(ENV_ID, max_episode_steps=60, **BUSY), seed=3, steps=150)
    assert_same(first, second)
    other = gym.make(ENV_ID, **BUSY).reset(seed=4)[0]
    assert not np.array_equal(first[0][0], other)


def test_info_has_the_same_numeric_keys_on_reset_and_every_step() -> None:
    env = gym.make(ENV_ID, max_episode_steps=40, **BUSY)
    _, info = env.reset(seed=0)
    assert set(info) == set(INFO_KEYS)
    for key in ("is_success", "collision", "off_road", "route_completion", "time_to_goal", "x", "y", "heading"):
        assert key in info
    assert math.isnan(info["time_to_goal"]) and info["route_completion"] == 0.0 and not info["is_success"]
    for _ in range(40):
        _, _, terminated, truncated, step_info = env.step(env.action_space.sample())
        assert step_info.keys() == info.keys()
        assert all(isinstance(v, (bool, int, float)) for v in step_info.values())
        if terminated or truncated:
            break


def make_pair(num_envs: int, mode: AutoresetMode, **kwargs: object) -> tuple[gym.vector.VectorEnv, SyncVectorEnv]:
    native = gym.make_vec(
        ENV_ID,
        num_envs=num_envs,
        vectorization_mode="vector_entry_point",
        max_episode_steps=25,
        autoreset_mode=mode,
        **kwargs,
    )
    sync = SyncVectorEnv(
        [lambda: gym.make(ENV_ID, max_episode_steps=25, **kwargs) for _ in range(num_envs)], autoreset_mode=mode
    )
    return native, sync


@pytest.mark.parametrize("mode", [AutoresetMode.NEXT_STEP, AutoresetMode.SAME_STEP])
@pytest.mark.parametrize("kwargs", [BUSY, {**BUSY, "action_mode": "discrete", "sim_steps_per_action": 4}])
def test_vector_env_matches_sync_vector_env_across_autoresets(mode: AutoresetMode, kwargs: dict) -> None:
    native, sync = make_pair(5, mode, **kwargs)
    assert native.metadata["autoreset_mode"] == mode
    assert native.single_observation_space == sync.single_observation_space
    assert native.single_action_space == sync.single_action_space
    assert_same(native.reset(seed=11), sync.reset(seed=11))
    native.action_space.seed(0)
    ends = 0
    for _ in range(70):
        action = native.action_space.sample()
        a, b = native.step(action), sync.step(action)
        assert_same(a, b)
        ends += int(np.sum(a[2] | a[3]))
    assert ends >= 8  # terminations and truncations (every 25 steps) both happened
    # reset with a seed list and with a reset mask (only some envs)
    assert_same(native.reset(seed=[5, 6, 7, 8, 9]), sync.reset(seed=[5, 6, 7, 8, 9]))
    mask = np.array([True, False, True, False, False])
    assert_same(native.reset(options={"reset_mask": mask}), sync.reset(options={"reset_mask": mask.copy()}))


def test_vector_reset_int_seed_gives_seed_plus_index() -> None:
    native = gym.make_vec(ENV_ID, num_envs=3, vectorization_mode="vector_entry_point", **BUSY)
    obs, _ = native.reset(seed=20)
    for i in range(3):
        single, _ = gym.make(ENV_ID, **BUSY).reset(seed=20 + i)
        np.testing.assert_array_equal(obs[i], single)


def test_unknown_obs_mode_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="obs_mode 'lidar' is not supported; allowed: state, pixels, state\\+pixels"):
        gym.make(ENV_ID, obs_mode="lidar")
    with pytest.raises(ValueError, match="obs_mode 'rgb' was renamed to 'pixels'"):
        gym.make(ENV_ID, obs_mode="rgb")


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"lanes": 7}, ["lanes", "[1, 4]", "7"]),
        ({"lanes": [0, 2]}, ["lanes", "[1, 4]"]),
        ({"curvature": 0.2}, ["curvature", "0.05"]),
        ({"vehicles": 500}, ["vehicles", "[0, 100]"]),
        ({"lanes": 1, "obstacles": 2}, ["obstacles need at least 2 lanes"]),
        ({"obstacles": 8, "obstacle_spacing": 40, "route_length": 200}, ["8 obstacles", "route"]),
        ({"ego_speed": 25, "max_speed": 20}, ["ego_speed", "max_speed"]),
        ({"lane": 2}, ["lane"]),  # unknown key
        ({"action_mode": "joystick"}, ["action_mode"]),
    ],
)
def test_invalid_params_are_reported_with_their_name_and_allowed_values(kwargs: dict, words: list[str]) -> None:
    with pytest.raises(ValidationError) as err:
        DrivingParams(**kwargs)
    for word in words:
        assert word in str(err.value)


def test_reward_pays_progress_and_goal() -> None:
    """Straight empty road, full throttle: the per-step reward is the distance gained over max_speed * dt (1 at
    the speed limit), minus the comfort cost of the first step's jerk; the goal bonus comes on the last step."""
    env = gym.make(ENV_ID, curvature=0.0, route_length=60, ego_speed=10, max_speed=15)
    _, info = env.reset(seed=0)
    total, x_prev, rewards = 0.0, info["x"], []
    while True:
        _, reward, terminated, truncated, info = env.step(np.array([1.0, 0.0], dtype=np.float32))
        total += reward
        rewards.append(reward)
        if terminated:
            break
        jerk = 3.0 / 0.1 / 10.0 if len(rewards) == 1 else 0.0  # 0 -> 3 m/s^2 in the first step
        assert reward == pytest.approx((info["x"] - x_prev) / 1.5 - 0.1 * min(jerk**2, 1.0) / 2, abs=1e-9)
        x_prev = info["x"]
    assert info["is_success"] and info["route_completion"] == 1.0
    assert total == pytest.approx(60.0 / 1.5 + 10.0 - 0.05, abs=1e-9)
    assert max(rewards[1:-1]) <= 1.0 + 1e-12  # at most 1 per step below the goal bonus
    assert 4.0 < info["time_to_goal"] < 5.0  # 60 m from 10 m/s at 3 m/s^2 to 15 m/s: about 4.4 s


def test_render_shows_the_ego_and_plot_draws_the_path(tmp_path: Path) -> None:
    env = gym.make(ENV_ID, render_mode="rgb_array", max_episode_steps=30, **BUSY)
    assert env.metadata["render_fps"] == pytest.approx(10.0)
    _, info = env.reset(seed=1)
    infos = [info]
    for _ in range(30):
        *_, terminated, truncated, info = env.step(np.array([0.2, 0.0], dtype=np.float32))
        infos.append(info)
        if terminated or truncated:
            break
    frame = env.render()
    assert frame.shape == (400, 400, 3) and frame.dtype == np.uint8
    centre = frame[180:220, 180:220].reshape(-1, 3)
    ego_red = (centre[:, 0] > 200) & (centre[:, 1] < 60) & (centre[:, 2] < 60)
    assert ego_red.sum() > 40  # the ego's box (about 18 x 8 pixels) is drawn at the centre
    assert gym.make(ENV_ID, sim_steps_per_action=10).metadata["render_fps"] == pytest.approx(1.0)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    env.unwrapped.plot_trajectory(ax, infos)
    path = [line for line in ax.get_lines() if line.get_label() == "ego path"][0]
    np.testing.assert_allclose(path.get_xdata(), [i["x"] for i in infos])
    fig.savefig(tmp_path / "trajectory.png")
    plt.close(fig)


def test_vector_env_renders_each_world() -> None:
    venv = gym.make_vec(
        ENV_ID, num_envs=2, vectorization_mode="vector_entry_point", render_mode="rgb_array", render_size=64, **BUSY
    )
    venv.reset(seed=0)
    frames = venv.render()
    assert len(frames) == 2 and frames[0].shape == (64, 64, 3)


@pytest.mark.parametrize("name", ["lane-keep", "obstacle-avoid", "dense-traffic"])
def test_scenario_files_are_valid(name: str) -> None:
    data = yaml.safe_load((SCENARIOS / f"{name}.yaml").read_text())
    assert data["env"] == ENV_ID
    params = DrivingParams(**data["params"])
    env = gym.make(ENV_ID, **data["params"])
    _, info = env.reset(seed=0)
    assert all(metric in info for metric in data["metrics"])
    if name == "dense-traffic":  # the throughput benchmark's setting: 20 vehicles, 1 s per env step
        assert params.vehicles.low == params.vehicles.high == 20 and params.policy_dt == pytest.approx(1.0)


def test_suite_holds_out_seeds_and_parameter_ranges() -> None:
    suite = yaml.safe_load((SCENARIOS / "standard.yaml").read_text())
    train_seeds = {e["seed"] for e in suite["train"]}
    assert all(e["seed"] >= 100_000 and e["seed"] not in train_seeds for e in suite["test"])
    assert any(e.get("params") for e in suite["test"])
    for entry in suite["test"]:
        base = scenario_params(entry["scenario"].split("/")[1])
        DrivingParams(**{**base, **entry.get("params", {})})
