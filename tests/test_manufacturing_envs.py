"""Manufacturing envs: Gymnasium API conformance, determinism, HER rewards, info keys, rendering, obs modes."""

from __future__ import annotations

import gymnasium
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import lepton_sim.envs.manufacturing as manufacturing
from lepton_sim.envs.manufacturing.metrics import INFO_KEYS

ENV_IDS = manufacturing.ENV_IDS
GOAL_ENV_IDS = ("lepton/ArmReach-v0", "lepton/ArmPickPlace-v0")


@pytest.fixture(scope="module", params=ENV_IDS)
def env_id(request: pytest.FixtureRequest) -> str:
    return request.param


def test_check_env(env_id: str) -> None:
    env = gymnasium.make(env_id)
    try:
        check_env(env.unwrapped, skip_render_check=True)
    finally:
        env.close()


def _rollout(env: gymnasium.Env, seed: int, steps: int) -> list:
    env.action_space.seed(seed)
    out = [env.reset(seed=seed)]
    for t in range(steps):
        if t == steps // 2:
            out.append(env.reset())  # the second episode continues the env's own random stream
            continue
        out.append(env.step(env.action_space.sample()))
    return out


def test_same_seed_same_episodes_two_envs_in_one_process(env_id: str) -> None:
    """Two envs live side by side in one process (own PyBullet clients) and replay identically."""
    a, b = gymnasium.make(env_id), gymnasium.make(env_id)
    try:
        ra, rb = _rollout(a, 7, 40), _rollout(b, 7, 40)
    finally:
        a.close()
        b.close()
    for xa, xb in zip(ra, rb):
        for ya, yb in zip(xa, xb):
            if isinstance(ya, dict):
                assert ya.keys() == yb.keys()
                for k in ya:
                    np.testing.assert_array_equal(np.asarray(ya[k]), np.asarray(yb[k]), err_msg=k)
            else:
                np.testing.assert_array_equal(np.asarray(ya), np.asarray(yb))


def test_different_seeds_differ(env_id: str) -> None:
    env = gymnasium.make(env_id)
    try:
        o1, _ = env.reset(seed=1)
        o2, _ = env.reset(seed=2)
    finally:
        env.close()
    flat = (lambda o: np.concatenate([np.ravel(v) for v in o.values()])) if isinstance(o1, dict) else np.ravel
    assert not np.array_equal(flat(o1), flat(o2))


def test_info_keys_on_reset_and_every_step(env_id: str) -> None:
    env = gymnasium.make(env_id)
    try:
        _, info = env.reset(seed=0)
        infos = [info]
        for _ in range(10):
            infos.append(env.step(env.action_space.sample())[4])
    finally:
        env.close()
    for info in infos:
        assert tuple(info) == (*INFO_KEYS, "gripper_opening")  # rollout videos show the gripper opening
        assert all(isinstance(v, (bool, int, float, np.floating)) for v in info.values())
    assert np.isnan(infos[0]["time_to_success"]) or infos[0]["is_success"]
    assert np.isnan(infos[0]["parts_per_minute"])  # no simulated time yet


@pytest.mark.parametrize("env_id", GOAL_ENV_IDS)
@pytest.mark.parametrize("reward_type", ["sparse", "dense"])
def test_batched_compute_reward_matches_step_rewards(env_id: str, reward_type: str) -> None:
    """HER relabels with compute_reward on batches; it must reproduce the rewards the env gave."""
    env = gymnasium.make(env_id, reward_type=reward_type)
    env.action_space.seed(0)
    achieved, desired, rewards, infos = [], [], [], []
    try:
        obs, _ = env.reset(seed=3)
        for _ in range(60):
            obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
            achieved.append(obs["achieved_goal"])
            desired.append(obs["desired_goal"])
            rewards.append(reward)
            infos.append(info)
            if terminated or truncated:
                obs, _ = env.reset()
        batch = env.unwrapped.compute_reward(np.stack(achieved), np.stack(desired), np.array(infos))
        shuffled = env.unwrapped.compute_reward(np.stack(achieved), np.roll(np.stack(desired), 1, axis=0), infos)
    finally:
        env.close()
    assert batch.shape == (60,)
    np.testing.assert_allclose(batch, np.array(rewards, dtype=np.float32), rtol=1e-6, atol=1e-6)
    if reward_type == "sparse":
        assert set(np.unique(batch)) <= {-1.0, 0.0}
        assert set(np.unique(shuffled)) <= {-1.0, 0.0}
    else:
        assert np.all(batch <= 0)


def test_sparse_reward_is_zero_exactly_at_success() -> None:
    env = gymnasium.make("lepton/ArmReach-v0").unwrapped
    try:
        goal = np.array([0.1, 0.0, 0.1], dtype=np.float32)
        near, far = goal + np.array([0.049, 0, 0], np.float32), goal + np.array([0.051, 0, 0], np.float32)
        assert env.compute_reward(near, goal, {}) == 0.0
        assert env.compute_reward(far, goal, {}) == -1.0
    finally:
        env.close()


def test_render_rgb_array(env_id: str) -> None:
    env = gymnasium.make(env_id, render_mode="rgb_array", render_width=96, render_height=64)
    try:
        env.reset(seed=0)
        frame = env.render()
    finally:
        env.close()
    assert frame.shape == (64, 96, 3) and frame.dtype == np.uint8
    assert frame.std() > 5  # a scene, not a blank image
    assert env.metadata["render_fps"] == 25  # one step = 0.04 s of simulated time: videos play in real time


def test_pixels_observation_mode(env_id: str) -> None:
    env = gymnasium.make(env_id, obs_mode="pixels")
    try:
        obs, _ = env.reset(seed=0)
        obs2 = env.step(env.action_space.sample())[0]
    finally:
        env.close()
    image = obs.get("pixels", obs.get("observation")) if isinstance(obs, dict) else obs  # goal envs keep their goals
    assert image.shape == (84, 84, 3) and image.dtype == np.uint8
    assert env.observation_space.contains(obs) and env.observation_space.contains(obs2)


def test_kuka_reach_and_joint_control() -> None:
    env = gymnasium.make("lepton/ArmReach-v0", robot="kuka")
    try:
        obs, _ = env.reset(seed=0)
        assert env.action_space.shape == (3,)
        for _ in range(30):  # the straight-line controller reaches with the Kuka too
            action = np.clip((obs["desired_goal"] - obs["achieved_goal"]) / 0.05, -1, 1)
            obs, _, terminated, _, info = env.step(action)
            if terminated:
                break
        assert info["is_success"]
    finally:
        env.close()
    env = gymnasium.make("lepton/ArmPickPlace-v0", control_type="joints")
    try:
        env.reset(seed=0)
        assert env.action_space.shape == (8,)  # 7 joint deltas + gripper
        obs = env.step(np.r_[np.full(7, 0.5), 1.0].astype(np.float32))[0]
        assert env.observation_space.contains(obs)
    finally:
        env.close()


def test_importing_the_domain_does_not_import_pybullet() -> None:
    import subprocess
    import sys

    code = (
        "import sys, lepton_sim.envs.manufacturing, lepton_sim.agents.manufacturing; print('pybullet' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().endswith("False")
