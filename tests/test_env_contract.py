"""The contract every registered env keeps, in every observation mode it declares (``LeptonEnvSpec.obs_modes``):
Gymnasium's checker passes, same seeds replay identically, vector envs equal single envs, plain ``gymnasium.make``
equals ``lepton_sim.make``, and the observation mode is built by the one pipeline (``env.unwrapped`` is the base env).
Camera modes: the declared shape and dtype, same seed same image (degraded too), the episode itself (rewards,
flags, infos) unchanged by the camera, batched camera images equal single-env images across autoresets.

Each env runs the built-in scenario named below (or its first one), shortened: a few steps, 32-pixel cameras,
100 s SUMO windows. libsumo allows one simulation per process, so envs run one after the other, each closed.
The pipeline's own behaviour (layouts, autoreset modes, fallbacks, HER) is tested on a tiny fake camera env
(``fake_camera_env``) written only against the camera contract.
"""

from __future__ import annotations

import math
import warnings
from contextlib import closing
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import gymnasium
import numpy as np
import pytest
import yaml
from fake_camera_env import FakeCameraEnv, FakeCameraVectorEnv, FakeParams
from gymnasium.envs.registration import EnvSpec
from gymnasium.utils.env_checker import check_env
from gymnasium.vector import AutoresetMode, SyncVectorEnv
from gymnasium.wrappers import OrderEnforcing, PassiveEnvChecker, TimeLimit

import lepton_sim
from lepton_sim.envs import LEPTON_ENVS
from lepton_sim.envs.observation_pipeline import STAGES, native_vector_form
from lepton_sim.envs.registration import ENV_ID_KWARG, PIPELINE, LeptonEnvSpec
from lepton_sim.envs.vector_pixel_observation import VectorPixelObservation
from lepton_sim.errors import ScenarioError
from lepton_sim.make import vectorization_mode
from lepton_sim.scenario import builtin_root

CASES = [(env_id, mode) for env_id, spec in LEPTON_ENVS.items() for mode in spec.obs_modes]
PREFERRED = {"lepton/TrafficSignal-v0": "traffic/single-intersection", "lepton/TrafficNetwork-v0": "traffic/2x2-grid"}
STEPS = {"driving": 10, "manufacturing": 5, "traffic": 3}
FAST = {"driving": {}, "manufacturing": {}, "traffic": {"duration": 100}}
MODE_KWARGS = {
    "state": {},
    "pixels": {"camera_size": 32},
    "state+pixels": {"camera_size": 32},
    "perceived": {"camera_size": 32, "perception": "ground-truth"},  # the state, through the camera pipeline
}
CAMERA_CASES = [(env_id, mode) for env_id, mode in CASES if mode not in ("state", "perceived")]
DEGRADED = {"sensor": {"severity": 3}}  # every corruption, pose jitter and light at once


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
    elif isinstance(a, np.ndarray) and a.dtype == object:  # final_obs: one observation (or None) per world
        assert isinstance(b, np.ndarray) and b.dtype == object and a.shape == b.shape, where
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
    how = vectorization_mode(lepton_sim.load_scenario(_scenario_of(env_id), **MODE_KWARGS[mode], obs_mode=mode), 2)
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


def _image(obs: Any) -> np.ndarray:
    return obs["pixels"] if isinstance(obs, dict) else obs


def _state_part(obs: Any) -> Any:
    """What a camera mode kept of the state observation (goals; the state in state+pixels)."""
    if not isinstance(obs, dict):
        return None
    return {k: v for k, v in obs.items() if k != "pixels"}


@pytest.mark.parametrize("env_id, mode", CAMERA_CASES, ids=[f"{e}-{m}" for e, m in CAMERA_CASES])
def test_camera_mode_observes_the_declared_image_beside_the_state(env_id: str, mode: str) -> None:
    """pixels: the image alone (goal envs keep their goals: HER works on pixels); state+pixels: the state too.
    The image is the cameras' capture as declared (uint8, channel order), without wrapping the env's info."""
    kwargs = _kwargs(env_id, mode)
    with closing(gymnasium.make(env_id, **kwargs, channel_order="first")) as camera:  # one SUMO at a time
        obs, _ = camera.reset(seed=2)
        base = camera.unwrapped
        expected = base.camera_image(base.params.cameras[0], 32, 32)
        image = _image(obs)
        space = camera.observation_space["pixels"] if isinstance(obs, dict) else camera.observation_space
        assert image.dtype == np.uint8 and space.dtype == np.uint8 and image.shape == space.shape
        assert image.shape[1:] == (32, 32) and image.shape[0] == _pipeline_env(camera).layout.n_channels
        first = expected.rgb if expected.rgb is not None else expected.semantic
        np.testing.assert_array_equal(np.moveaxis(image[: first.shape[-1]], 0, -1), first)
        assert camera.observation_space.contains(camera.step(camera.action_space.sample())[0])
    with closing(gymnasium.make(env_id, **{**kwargs, "obs_mode": "state"})) as state:
        vector, _ = state.reset(seed=2)
    kept = _state_part(obs)
    if isinstance(vector, dict):  # goal-conditioned
        expected_keys = {"achieved_goal", "desired_goal"} | ({"observation"} if mode == "state+pixels" else set())
        assert set(kept) == expected_keys
        for key in expected_keys:
            np.testing.assert_array_equal(kept[key], vector[key])
    elif mode == "state+pixels":
        assert set(kept) == {"state"}
        np.testing.assert_array_equal(kept["state"], vector)
    else:
        assert kept is None


@pytest.mark.parametrize("env_id, mode", CAMERA_CASES, ids=[f"{e}-{m}" for e, m in CAMERA_CASES])
def test_camera_modes_leave_the_episode_unchanged(env_id: str, mode: str) -> None:
    """Same seed and actions: rewards, flags and infos as in state mode, degraded camera or not (the sensor
    never draws from the env's np_random); the same seed repeats the same degraded images, another seed differs."""
    kwargs = _kwargs(env_id, mode)
    runs = {}
    for name, extra in (("state", {"obs_mode": "state"}), ("camera", DEGRADED), ("again", DEGRADED)):
        with closing(gymnasium.make(env_id, **{**kwargs, **extra})) as env:
            runs[name] = _rollout(env, 11, _actions(env.action_space, 11, _steps(env_id)))
    with closing(gymnasium.make(env_id, **{**kwargs, **DEGRADED})) as env:
        other = env.reset(seed=12)[0]
    assert len(runs["state"]) == len(runs["camera"]) > 1
    for t, (state, camera) in enumerate(zip(runs["state"], runs["camera"])):
        _assert_same(state[1:], camera[1:], f"{env_id} {mode} step {t}")  # reward, flags, info (reset: info)
        if mode == "state+pixels":
            kept = _state_part(camera[0])
            _assert_same(state[0], kept.get("state", kept), f"{env_id} step {t} state")
    _assert_same(runs["camera"], runs["again"])
    assert not np.array_equal(_image(runs["camera"][0][0]), _image(other))


NATIVE_CAMERA_CASES = [
    (env_id, mode)
    for env_id, mode in CAMERA_CASES
    if LEPTON_ENVS[env_id].vector_entry_point and native_vector_form(env_id, mode)
]
AUTORESET = (AutoresetMode.NEXT_STEP, AutoresetMode.SAME_STEP, AutoresetMode.DISABLED)


def _drive(venv: Any, mode: AutoresetMode, actions: list[Any], seed: int) -> list[tuple]:
    """A vector env's outputs over ``actions``, resetting finished worlds by mask when autoreset is DISABLED."""
    out = [venv.reset(seed=seed)]
    for action in actions:
        out.append(venv.step(action))
        done = out[-1][2] | out[-1][3]
        if mode == AutoresetMode.DISABLED and done.any():
            out.append(venv.reset(options={"reset_mask": done}))
    return out


def _same_vector_output(a: list[tuple], b: list[tuple], same_step: bool) -> None:
    assert len(a) == len(b)
    for t, (x, y) in enumerate(zip(a, b)):
        _assert_same(x[0], y[0], f"step {t} observation")
        if len(x) == 5:
            _assert_same(tuple(np.asarray(v) for v in x[1:4]), tuple(np.asarray(v) for v in y[1:4]), f"step {t}")
            if same_step and "final_obs" in y[4]:
                for i, done in enumerate(y[4]["_final_obs"]):
                    if done:
                        _assert_same(x[4]["final_obs"][i], y[4]["final_obs"][i], f"step {t} final_obs {i}")


@pytest.mark.parametrize("autoreset", AUTORESET, ids=[m.name for m in AUTORESET])
@pytest.mark.parametrize("env_id, mode", NATIVE_CAMERA_CASES, ids=[f"{e}-{m}" for e, m in NATIVE_CAMERA_CASES])
def test_batched_camera_images_equal_single_envs_across_autoresets(
    env_id: str, mode: str, autoreset: AutoresetMode
) -> None:
    """World i of the native vector env (cameras batched, degraded) equals a single env seeded seed + i, through
    episode ends (8-step episodes) in every autoreset mode; SAME_STEP's final observation includes the image."""
    kwargs = {**_kwargs(env_id, mode), **DEGRADED, "autoreset_mode": autoreset}
    common = {"num_envs": 3, "max_episode_steps": 8, **kwargs}
    native = gymnasium.make_vec(env_id, vectorization_mode="vector_entry_point", **common)
    sync = gymnasium.make_vec(
        env_id,
        vectorization_mode="sync",
        **{k: v for k, v in common.items() if k != "autoreset_mode"},
        vector_kwargs={"autoreset_mode": autoreset},
    )
    try:
        actions = _actions(native.action_space, 4, 20)
        _same_vector_output(
            _drive(native, autoreset, actions, 40),
            _drive(sync, autoreset, actions, 40),
            autoreset == AutoresetMode.SAME_STEP,
        )
    finally:
        native.close()
        sync.close()


def test_the_old_rgb_mode_names_its_new_name(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="obs_mode 'rgb' was renamed to 'pixels'"):
        gymnasium.make("lepton/ArmReach-v0", obs_mode="rgb")
    old = (builtin_root() / "manufacturing" / "reach.yaml").read_text().replace("params:", "params:\n  obs_mode: rgb")
    (tmp_path / "old.yaml").write_text(old)
    with pytest.raises(ScenarioError, match=r"params\.obs_mode: .*obs_mode 'rgb' was renamed to 'pixels'"):
        lepton_sim.load_scenario(tmp_path / "old.yaml")


# ------------------------------------------------------------------------------ the pipeline on a fake camera env
FAKE_LAYOUTS = {
    "one-rgb": {},
    "all-channels-first": {
        "obs_camera": ["cam", "grid"],
        "camera_depth": True,
        "camera_segmentation": True,
        "channel_order": "first",
    },
    "degraded": {"obs_camera": ["grid", "cam"], "sensor": {"severity": 4}},
}
FAKE_CASES = [(m, g, name) for m in ("pixels", "state+pixels") for g in (False, True) for name in FAKE_LAYOUTS]


def _fake(mode: str, goal: bool = False, **kwargs: Any) -> gymnasium.Env:
    return STAGES[mode].single(FakeCameraEnv(obs_mode=mode, camera_size=20, goal=goal, **kwargs))


@pytest.mark.parametrize(
    "mode, goal, layout", FAKE_CASES, ids=[f"{m}-{'goal' if g else 'box'}-{n}" for m, g, n in FAKE_CASES]
)
def test_fake_camera_modes_pass_the_checker_with_the_declared_layout(mode: str, goal: bool, layout: str) -> None:
    env = _fake(mode, goal, **FAKE_LAYOUTS[layout])
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*different from the unwrapped version.*")
        check_env(env, skip_render_check=True)
    obs, _ = env.reset(seed=0)
    keys = {"pixels"} | ({"achieved_goal", "desired_goal"} if goal else set())
    keys |= ({"observation"} if goal else {"state"}) if mode == "state+pixels" else set()
    assert (set(obs) if isinstance(obs, dict) else {"pixels"}) == keys
    assert env.observation_space.contains(obs) and _image(obs).dtype == np.uint8


def test_channels_stack_per_camera_rgb_or_semantic_then_depth_then_segmentation() -> None:
    env = _fake("pixels", **FAKE_LAYOUTS["all-channels-first"])
    image, _ = env.reset(seed=3)
    base = env.unwrapped
    cam = base.camera_image("cam", 20, 20, depth=True, segmentation=True)
    grid = base.camera_image("grid", 20, 20, depth=True, segmentation=True)
    depth = lambda d: np.clip((d - 0.0) * (255.0 / 2.0) + 0.5, 0, 255).astype(np.uint8)  # noqa: E731
    expected = np.concatenate(
        [cam.rgb, depth(cam.depth)[..., None], cam.segmentation[..., None].astype(np.uint8)]
        + [grid.semantic, depth(grid.depth)[..., None], grid.segmentation[..., None].astype(np.uint8)],
        axis=-1,
    )
    assert image.shape == (9, 20, 20)
    np.testing.assert_array_equal(image, np.moveaxis(expected, -1, 0))


def test_only_the_cameras_asked_for_are_rendered_and_every_observation_is_a_fresh_array() -> None:
    state = FakeCameraEnv(obs_mode="state")
    assert STAGES["state"].single(state) is state  # no wrapper at all
    state.reset(seed=0)
    state.step(state.action_space.sample())
    assert state.renders == 0
    env = _fake("pixels", obs_camera="grid")
    first, _ = env.reset(seed=0)
    second = env.step(env.action_space.sample())[0]
    assert env.unwrapped.renders == 2  # one camera, once per reset/step
    assert not np.shares_memory(first, second)  # SB3 keeps the last observation while stepping


@pytest.mark.parametrize("autoreset", AUTORESET, ids=[m.name for m in AUTORESET])
@pytest.mark.parametrize("mode", ["pixels", "state+pixels"])
@pytest.mark.parametrize("layout", ["degraded", "all-channels-first"])
def test_fake_vector_stage_equals_single_envs(mode: str, layout: str, autoreset: AutoresetMode) -> None:
    """The native vector stage, with its own SAME_STEP (inner env DISABLED), equals SyncVectorEnv over single
    pipeline envs: observations, rewards, flags, final observations and infos, through many autoresets."""
    kwargs = {"obs_mode": mode, "camera_size": 20, "goal": layout == "degraded", **FAKE_LAYOUTS[layout]}
    stage = STAGES[mode]
    inner = AutoresetMode.DISABLED if autoreset == AutoresetMode.SAME_STEP and stage.same_step_inside else autoreset
    assert stage.vector is not None
    native = stage.vector(FakeCameraVectorEnv(3, autoreset_mode=inner, **kwargs), autoreset)
    sync = SyncVectorEnv([lambda: stage.single(FakeCameraEnv(**kwargs)) for _ in range(3)], autoreset_mode=autoreset)
    assert native.metadata["autoreset_mode"] == autoreset
    assert native.single_observation_space == sync.single_observation_space
    actions = [np.random.default_rng(t).uniform(-0.2, 0.2, (3, 2)).astype(np.float32) for t in range(40)]
    a, b = _drive(native, autoreset, actions, 5), _drive(sync, autoreset, actions, 5)
    _same_vector_output(a, b, autoreset == AutoresetMode.SAME_STEP)
    if autoreset == AutoresetMode.SAME_STEP:
        for x, y in zip(a[1:], b[1:]):
            _assert_same(x[4], y[4], "infos")  # final_info, final_obs and the reset worlds' infos included
    assert sum(bool(np.any(x[2] | x[3])) for x in a if len(x) == 5) >= 3  # episodes did end


def _fake_spec(vector: str) -> LeptonEnvSpec:
    return LeptonEnvSpec(
        id="lepton/FakeCamera-v0",
        domain="driving",
        entry_point="fake_camera_env:FakeCameraEnv",
        params_model=FakeParams,
        vector_entry_point=f"fake_camera_env:{vector}",
    )


@pytest.mark.parametrize(
    "vector, camera_mode", [("FakeCameraVectorEnv", "vector_entry_point"), ("NoBatchVectorEnv", "sync")]
)
def test_vectorization_falls_back_to_sync_where_the_vector_env_has_no_batched_cameras(
    vector: str, camera_mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = _fake_spec(vector)
    monkeypatch.setitem(LEPTON_ENVS, spec.id, spec)
    for mode, expected in (("state", "vector_entry_point"), ("pixels", camera_mode), ("state+pixels", camera_mode)):
        scenario = SimpleNamespace(spec=spec, params={"obs_mode": mode})
        assert vectorization_mode(scenario, 4) == expected  # type: ignore[arg-type]


def test_gymnasium_make_vec_builds_the_camera_stage_and_its_same_step(monkeypatch: pytest.MonkeyPatch) -> None:
    spec = _fake_spec("FakeCameraVectorEnv")
    monkeypatch.setitem(LEPTON_ENVS, spec.id, spec)
    monkeypatch.setitem(
        gymnasium.registry,
        spec.id,
        EnvSpec(
            id=spec.id,
            entry_point=f"{PIPELINE}:make_env",
            vector_entry_point=f"{PIPELINE}:make_vector_env",
            kwargs={ENV_ID_KWARG: spec.id},
        ),
    )
    kwargs = {"obs_mode": "pixels", "camera_size": 16, **DEGRADED}
    venv = gymnasium.make_vec(spec.id, 2, vectorization_mode="vector_entry_point", autoreset_mode="SameStep", **kwargs)
    assert isinstance(venv, VectorPixelObservation) and venv.metadata["autoreset_mode"] == AutoresetMode.SAME_STEP
    assert venv.env.metadata["autoreset_mode"] == AutoresetMode.DISABLED  # the stage performs SAME_STEP itself
    obs, _ = venv.reset(seed=0)
    assert obs.shape == (2, 16, 16, 3)
    with pytest.raises(ValueError, match="no native vector form"):
        NoBatch = _fake_spec("NoBatchVectorEnv")
        monkeypatch.setitem(LEPTON_ENVS, spec.id, NoBatch)
        gymnasium.make_vec(spec.id, 2, vectorization_mode="vector_entry_point", **kwargs)


def test_her_replay_buffer_needs_no_observation_key_beside_pixels() -> None:
    """SB3's HerReplayBuffer relabels from achieved_goal / desired_goal only, so pixels mode drops 'observation'."""
    import torch
    from stable_baselines3.common.vec_env import DummyVecEnv
    from stable_baselines3.her import HerReplayBuffer

    threads = torch.get_num_threads()
    try:
        venv = DummyVecEnv([lambda: _fake("pixels", goal=True)])
        buffer = HerReplayBuffer(64, venv.observation_space, venv.action_space, env=venv, n_sampled_goal=4)
        obs = venv.reset()
        for _ in range(30):
            action = np.array([venv.action_space.sample()])
            next_obs, reward, done, infos = venv.step(action)
            buffer.add(obs, next_obs, action, reward, done, infos)
            obs = next_obs
        sample = buffer.sample(8)
        assert set(sample.observations) == {"achieved_goal", "desired_goal", "pixels"}
        assert tuple(sample.observations["pixels"].shape) == (8, 20, 20, 3)
    finally:
        torch.set_num_threads(threads)
