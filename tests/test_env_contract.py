"""The contract every registered env keeps, in every observation mode it declares (``LeptonEnvSpec.obs_modes``):
Gymnasium's checker passes, same seeds replay identically, vector envs equal single envs, plain ``gymnasium.make``
equals ``lepton_sim.make``, and the observation mode is built by the one pipeline (``env.unwrapped`` is the base env).

Each env runs the built-in scenario named below (or its first one), shortened: a few steps, 32-pixel cameras,
100 s SUMO windows. libsumo allows one simulation per process, so envs run one after the other, each closed.
"""

from __future__ import annotations

import math
import warnings
from contextlib import closing
from pathlib import Path
from typing import Any

import gymnasium
import numpy as np
import pytest
import yaml
from gymnasium.utils.env_checker import check_env
from gymnasium.wrappers import OrderEnforcing, PassiveEnvChecker, TimeLimit

import lepton_sim
from lepton_sim.envs import LEPTON_ENVS
from lepton_sim.envs.observation_pipeline import STAGES
from lepton_sim.errors import ScenarioError
from lepton_sim.make import vectorization_mode
from lepton_sim.scenario import builtin_root

CASES = [(env_id, mode) for env_id, spec in LEPTON_ENVS.items() for mode in spec.obs_modes]
PREFERRED = {"lepton/TrafficSignal-v0": "traffic/single-intersection", "lepton/TrafficNetwork-v0": "traffic/2x2-grid"}
STEPS = {"driving": 10, "manufacturing": 5, "traffic": 3}
FAST = {"driving": {}, "manufacturing": {}, "traffic": {"duration": 100}}
MODE_KWARGS = {"state": {}, "pixels": {"camera_size": 32}}


def _scenario_of(env_id: str) -> str:
    """The env's built-in scenario: PREFERRED, else the first by name (read from the YAML, nothing validated)."""
    if env_id in PREFERRED:
        return PREFERRED[env_id]
    root = builtin_root()
    names = sorted(
        str(p.relative_to(root).with_suffix(""))
        for p in root.rglob("*.yaml")
        if (yaml.safe_load(p.read_text()) or {}).get("env") == env_id
    )
    assert names, f"{env_id} has no built-in scenario"
    return names[0]


def _kwargs(env_id: str, mode: str) -> dict[str, Any]:
    """Keyword arguments of gymnasium.make for the env's (shortened) scenario in ``mode``."""
    spec = LEPTON_ENVS[env_id]
    scenario = lepton_sim.load_scenario(_scenario_of(env_id))
    return {**scenario.params, **FAST[spec.domain], **MODE_KWARGS[mode], "obs_mode": mode}


def _pipeline_env(env: gymnasium.Env) -> gymnasium.Env:
    """The observation pipeline's env: ``gymnasium.make``'s result without the wrappers make itself adds."""
    while isinstance(env, (TimeLimit, OrderEnforcing, PassiveEnvChecker)):
        env = env.env
    return env


def _assert_same(a: Any, b: Any, where: str = "") -> None:
    """Exact equality of observations, rewards, flags and infos (NaN equals NaN)."""
    if isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for key in a:
            _assert_same(a[key], b[key], f"{where}/{key}")
    elif isinstance(a, (tuple, list)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_same(x, y, f"{where}[{i}]")
    elif isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        a, b = np.asarray(a), np.asarray(b)
        assert a.shape == b.shape and a.dtype == b.dtype, where
        assert np.array_equal(a, b, equal_nan=a.dtype.kind == "f"), where
    elif isinstance(a, float) and math.isnan(a):
        assert isinstance(b, float) and math.isnan(b), where
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def _rollout(env: gymnasium.Env, seed: int, actions: list[Any]) -> list[tuple]:
    out: list[tuple] = [env.reset(seed=seed)]
    for action in actions:
        out.append(env.step(action))
        if out[-1][2] or out[-1][3]:
            break
    return out


def _actions(space: gymnasium.Space, seed: int, n: int) -> list[Any]:
    space.seed(seed)
    return [space.sample() for _ in range(n)]


def _steps(env_id: str) -> int:
    return STEPS[LEPTON_ENVS[env_id].domain]


@pytest.fixture(params=CASES, ids=[f"{env_id}-{mode}" for env_id, mode in CASES])
def case(request: pytest.FixtureRequest) -> tuple[str, str]:
    return request.param


def test_every_declared_mode_has_a_pipeline_stage() -> None:
    assert {mode for _, mode in CASES} <= set(STAGES)
    assert all("state" in spec.obs_modes for spec in LEPTON_ENVS.values())


@pytest.mark.parametrize("env_id", sorted(LEPTON_ENVS))
def test_every_id_builds_with_plain_gymnasium_make(env_id: str) -> None:
    with closing(gymnasium.make(env_id)) as env:
        obs, _ = env.reset(seed=0)
        assert env.observation_space.contains(obs)
        assert env.observation_space.contains(env.step(env.action_space.sample())[0])


def test_check_env_passes_and_unwrapped_is_the_base_env(case: tuple[str, str]) -> None:
    env_id, mode = case
    with closing(gymnasium.make(env_id, **_kwargs(env_id, mode))) as env:
        module, _, cls = LEPTON_ENVS[env_id].entry_point.partition(":")
        assert type(env.unwrapped).__module__ == module and type(env.unwrapped).__name__ == cls
        inner = _pipeline_env(env)
        assert (inner is env.unwrapped) == (mode == "state")  # the state mode adds no wrapper
        with warnings.catch_warnings():  # check_env warns that a camera mode's env is a wrapper: it is meant to be
            warnings.filterwarnings("ignore", message=".*different from the unwrapped version.*")
            check_env(inner, skip_render_check=True)


def test_same_seed_same_episode(case: tuple[str, str]) -> None:
    env_id, mode = case
    runs = []
    for _ in range(2):  # one after the other: libsumo runs one simulation per process
        with closing(gymnasium.make(env_id, **_kwargs(env_id, mode))) as env:
            runs.append(_rollout(env, 7, _actions(env.action_space, 7, _steps(env_id))))
    _assert_same(runs[0], runs[1])
    assert len(runs[0]) > 1


def test_vector_env_equals_single_envs(case: tuple[str, str]) -> None:
    env_id, mode = case
    kwargs = _kwargs(env_id, mode)
    how = vectorization_mode(lepton_sim.load_scenario(_scenario_of(env_id)), 2)
    vector_kwargs = {"vector_kwargs": {"context": "spawn"}} if how == "async" else {}
    venv = gymnasium.make_vec(env_id, num_envs=2, vectorization_mode=how, **vector_kwargs, **kwargs)
    try:
        actions = _actions(venv.action_space, 3, _steps(env_id))
        batched = [venv.reset(seed=30)]
        for action in actions:
            batched.append(venv.step(action))
            if np.any(batched[-1][2] | batched[-1][3]):  # stop before an autoreset
                break
    finally:
        venv.close()
    for i in range(2):
        with closing(gymnasium.make(env_id, **kwargs)) as env:
            single = _rollout(env, 30 + i, [a[i] for a in actions[: len(batched) - 1]])
        assert len(single) == len(batched)
        for t, (one, many) in enumerate(zip(single, batched)):
            obs = {k: v[i] for k, v in many[0].items()} if isinstance(many[0], dict) else many[0][i]
            _assert_same(one[0], obs, f"{env_id} env {i} step {t} observation")
            if t:
                _assert_same(
                    (one[1], one[2], one[3]),
                    (many[1][i].item(), bool(many[2][i]), bool(many[3][i])),
                    f"{env_id} env {i} step {t}",
                )


def test_gymnasium_make_equals_lepton_sim_make(case: tuple[str, str]) -> None:
    env_id, mode = case
    name = _scenario_of(env_id)
    scenario = lepton_sim.load_scenario(name)
    kwargs = _kwargs(env_id, mode)
    overrides = {k: v for k, v in kwargs.items() if k not in scenario.params or scenario.params[k] != v}
    runs = []
    for make in (
        lambda: gymnasium.make(env_id, max_episode_steps=scenario.max_episode_steps, **kwargs),
        lambda: lepton_sim.make(name, **overrides),
    ):
        with closing(make()) as env:
            runs.append(_rollout(env, 5, _actions(env.action_space, 5, _steps(env_id))))
    _assert_same(runs[0], runs[1])


@pytest.mark.parametrize("env_id", [i for i, spec in LEPTON_ENVS.items() if "pixels" in spec.obs_modes])
def test_pixels_replaces_only_the_state_vector(env_id: str) -> None:
    """Goal envs keep their goals next to the image (HER works on pixels); the others observe the image alone."""
    with (
        closing(gymnasium.make(env_id, obs_mode="pixels", camera_size=32)) as pixels,
        closing(gymnasium.make(env_id)) as state,
    ):
        image, _ = pixels.reset(seed=2)
        vector, _ = state.reset(seed=2)
        expected = pixels.unwrapped.camera_image(pixels.unwrapped.params.obs_camera, 32, 32).rgb
    if isinstance(vector, dict):
        assert image.keys() == vector.keys() and image["observation"].shape == (32, 32, 3)
        np.testing.assert_array_equal(image["observation"], expected)
        for key in ("achieved_goal", "desired_goal"):
            np.testing.assert_array_equal(image[key], vector[key])
    else:
        assert image.shape == (32, 32, 3) and image.dtype == np.uint8
        np.testing.assert_array_equal(image, expected)


def test_the_old_rgb_mode_names_its_new_name(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="obs_mode 'rgb' was renamed to 'pixels'"):
        gymnasium.make("lepton/ArmReach-v0", obs_mode="rgb")
    old = (builtin_root() / "manufacturing" / "reach.yaml").read_text().replace("params:", "params:\n  obs_mode: rgb")
    (tmp_path / "old.yaml").write_text(old)
    with pytest.raises(ScenarioError, match=r"params\.obs_mode: .*obs_mode 'rgb' was renamed to 'pixels'"):
        lepton_sim.load_scenario(tmp_path / "old.yaml")
