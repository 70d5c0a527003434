"""Training on pixels (issue 10): the image policy comes from the observation space (CnnPolicy for an image,
MultiInputPolicy for a Dict), the YAML's ``pixels:`` block applies in camera obs modes only, ``frame_stack`` and
``augment: random_shift`` come from the hyperparameters, and a pixel run folder reloads without unpickling and
evaluates anywhere: the loaded policy declares the observation parameters it was trained on (so a state-mode
scenario renders its camera) and stacks frames itself. Also lepton_sim.augmentation's random shift.

Tiny runs (a few hundred steps, 40x40 images: NatureCNN needs >= 36 pixels) on the manufacturing cameras."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pytest
import torch
import yaml
from gymnasium import spaces
from stable_baselines3.common.vec_env import DummyVecEnv, VecFrameStack

import lepton_sim
from lepton_sim.agents.sb3.frame_stack import StackState, push, stacked_space
from lepton_sim.agents.sb3.pixels import (
    OBSERVATION_PARAMS,
    image_policy,
    observation_overrides,
    training_device,
    uses_cnn,
)
from lepton_sim.agents.sb3.policy import SB3Policy
from lepton_sim.augmentation import RandomShift, random_shift, shift_images
from lepton_sim.errors import LeptonError
from lepton_sim.loading import load_policy
from lepton_sim.scenario import Scenario, load_scenario
from lepton_sim.training import plan_training

SIZE = 40
PIXELS = {"params.obs_mode": "pixels", "params.camera_size": SIZE}
TINY_PPO = {"n_steps": 32, "batch_size": 32, "n_epochs": 1}


@pytest.fixture(autouse=True)
def _torch_threads() -> Iterator[None]:
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def short(name: str, steps: int) -> Scenario:
    """The scenario with short episodes, so a tiny run finishes some and evaluation is quick."""
    return load_scenario(name).model_copy(update={"max_episode_steps": steps})


@pytest.fixture(scope="module")
def reach_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """PPO on reach's camera (a goal Dict: MultiInputPolicy), no stacking."""
    threads = torch.get_num_threads()
    try:
        return lepton_sim.train(
            short("manufacturing/reach", 20),
            algo="ppo",
            steps=64,
            n_envs=2,
            out=tmp_path_factory.mktemp("pixels") / "reach",
            overrides={**PIXELS, **TINY_PPO},
            eval_freq=64,
            eval_episodes=1,
            progress_bar=False,
        )
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def stacked_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """PPO on conveyor-pick's camera (an image Box: CnnPolicy) with frame_stack 2 and random-shift augmentation."""
    threads = torch.get_num_threads()
    try:
        return lepton_sim.train(
            short("manufacturing/conveyor-pick", 12),
            algo="ppo",
            steps=64,
            n_envs=2,
            out=tmp_path_factory.mktemp("pixels") / "stacked",
            overrides={**PIXELS, **TINY_PPO, "frame_stack": 2, "augment": "random_shift"},
            eval_freq=0,
            progress_bar=False,
        )
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def driving_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """PPO on driving's top-down camera (native vector env, cameras batched) with the YAML's normalize: true."""
    threads = torch.get_num_threads()
    try:
        return lepton_sim.train(
            short("driving/lane-keep", 20),
            algo="ppo",
            steps=64,
            n_envs=2,
            out=tmp_path_factory.mktemp("pixels") / "driving",
            overrides={**PIXELS, **TINY_PPO, "frame_stack": 1},
            eval_freq=0,
            progress_bar=False,
        )
    finally:
        torch.set_num_threads(threads)


def config_of(run: Path) -> dict[str, Any]:
    return yaml.safe_load((run / "config.yaml").read_text())


# ---------------------------------------------------------------------------------------------- policy choice
def test_the_image_policy_follows_the_observation_space() -> None:
    image = spaces.Box(0, 255, (SIZE, SIZE, 3), np.uint8)
    state = spaces.Box(-1.0, 1.0, (5,), np.float32)
    assert image_policy(image) == "CnnPolicy"
    assert image_policy(spaces.Dict({"pixels": image, "state": state})) == "MultiInputPolicy"
    assert image_policy(state) is None and image_policy(spaces.Dict({"state": state})) is None
    assert uses_cnn("CnnPolicy", image) and not uses_cnn("MlpPolicy", image) and not uses_cnn("MultiInputPolicy", state)


def test_train_picks_cnn_for_an_image_and_multi_input_for_a_dict(capsys: pytest.CaptureFixture[str]) -> None:
    box, _ = plan_training("manufacturing/conveyor-pick", algo="ppo", overrides=PIXELS)
    goal, _ = plan_training("manufacturing/reach", algo="ppo", overrides=PIXELS)
    state, _ = plan_training("manufacturing/conveyor-pick", algo="ppo")
    assert box.hyperparams["policy"] == "CnnPolicy" and goal.hyperparams["policy"] == "MultiInputPolicy"
    assert state.hyperparams["policy"] == "MlpPolicy" and "pixels" not in state.hyperparams
    assert "the hyperparameters' MlpPolicy replaced" in capsys.readouterr().err
    explicit, _ = plan_training("manufacturing/conveyor-pick", algo="ppo", overrides={**PIXELS, "policy": "MlpPolicy"})
    assert explicit.hyperparams["policy"] == "MlpPolicy"  # the user's --set policy wins


def test_the_pixels_block_applies_in_camera_modes_under_the_overrides(tmp_path: Path) -> None:
    path = tmp_path / "ppo.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "default": {
                    "n_steps": 256,
                    "n_epochs": 10,
                    "policy_kwargs": {"net_arch": [64]},
                    "pixels": {"n_epochs": 3},
                },
                "manufacturing/reach": {
                    "batch_size": 64,
                    "pixels": {"n_steps": 128, "frame_stack": 2, "policy_kwargs": {"activation_fn": "relu"}},
                },
            }
        )
    )
    camera, _ = plan_training(
        "manufacturing/reach", algo="ppo", hyperparams_file=path, overrides={**PIXELS, "frame_stack": 3}
    )
    hp = camera.hyperparams
    assert (hp["n_steps"], hp["n_epochs"], hp["batch_size"], hp["frame_stack"]) == (128, 3, 64, 3)
    assert hp["policy_kwargs"] == {"net_arch": [64], "activation_fn": "relu"}
    state, _ = plan_training("manufacturing/reach", algo="ppo", hyperparams_file=path)
    assert (state.hyperparams["n_steps"], state.hyperparams["n_epochs"]) == (256, 10)
    assert "frame_stack" not in state.hyperparams and "pixels" not in state.hyperparams


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"frame_stack": 0}, "frame_stack=0 must be a whole number >= 1"),
        ({"frame_stack": 2.5}, "frame_stack=2.5 must be a whole number >= 1"),
        ({"frame_stack": True}, "frame_stack=True must be a whole number >= 1"),
        ({"augment": "crop"}, "augment='crop'; allowed: random_shift"),
        ({"pixels": [1]}, "pixels: must be a mapping"),
        ({"pixels": {"n_steps": 64}}, "pixels: a block of the hyperparameter files"),
    ],
)
def test_bad_pixel_hyperparameters_are_one_line(overrides: dict[str, Any], message: str, tmp_path: Path) -> None:
    with pytest.raises(LeptonError) as err:
        lepton_sim.train("manufacturing/reach", algo="ppo", overrides={**PIXELS, **overrides}, out=tmp_path / "run")
    assert message in str(err.value) and "\n" not in str(err.value)
    assert not (tmp_path / "run").exists()


def test_augment_needs_camera_images_and_frame_stack_refuses_her() -> None:
    with pytest.raises(LeptonError, match="obs_mode state; set params.obs_mode=pixels"):
        plan_training("manufacturing/reach", algo="ppo", overrides={"augment": "random_shift"})
    with pytest.raises(LeptonError, match="frame_stack > 1 with her: true"):
        plan_training("manufacturing/reach", algo="sac", overrides={**PIXELS, "frame_stack": 2})


def test_shared_multi_agent_training_on_camera_images_is_one_line(tmp_path: Path) -> None:
    # the parameter-sharing adapter pads flat state rows; camera images train with the joint agent instead
    with pytest.raises(LeptonError, match="shared trains on state observations only") as err:
        lepton_sim.train(
            "traffic/2x2-grid",
            multi_agent="shared",
            overrides={"params.obs_mode": "pixels", "params.camera_size": 32},
            steps=64,
            out=tmp_path / "run",
        )
    assert "\n" not in str(err.value) and not (tmp_path / "run").exists()


def test_device_auto_puts_cnns_on_cuda_and_mlps_on_the_cpu() -> None:
    image = spaces.Box(0, 255, (SIZE, SIZE, 3), np.uint8)
    goal = spaces.Dict({"observation": image, "desired_goal": spaces.Box(-1, 1, (3,), np.float32)})
    state = spaces.Box(-1.0, 1.0, (5,), np.float32)
    assert training_device("auto", "CnnPolicy", image, cuda_available=True) == "cuda"
    assert training_device("auto", "MultiInputPolicy", goal, cuda_available=True) == "cuda"
    assert training_device("auto", "MlpPolicy", state, cuda_available=True) == "cpu"
    assert training_device("auto", "MultiInputPolicy", spaces.Dict({"s": state}), cuda_available=True) == "cpu"
    assert training_device("auto", "CnnPolicy", image, cuda_available=False) == "cpu"
    assert training_device("cuda:1", "MlpPolicy", state, cuda_available=True) == "cuda:1"  # asked for: kept
    assert training_device("cpu", "CnnPolicy", image, cuda_available=True) == "cpu"


# ---------------------------------------------------------------------------------------------- runs
def test_a_pixel_run_trains_reloads_without_unpickling_and_evaluates(
    reach_run: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = config_of(reach_run)
    assert config["hyperparams"]["policy"] == "MultiInputPolicy"
    assert (reach_run / "model.zip").is_file() and (reach_run / "evaluations.csv").is_file()

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the safe path unpickled something")

    with monkeypatch.context() as m:
        m.setattr(pickle, "load", refuse)
        m.setattr(pickle, "loads", refuse)
        policy = load_policy(str(reach_run), load_scenario("manufacturing/reach"))
    assert isinstance(policy, SB3Policy) and isinstance(policy.model, torch.nn.Module)
    assert policy.observation_space["pixels"].shape == (SIZE, SIZE, 3)  # type: ignore[index]
    assert {"obs_mode": "pixels", "camera_size": SIZE}.items() <= policy.env_overrides.items()
    # a state-mode scenario renders the camera the policy was trained on
    report = lepton_sim.evaluate(str(reach_run), scenario=short("manufacturing/reach", 20), episodes=2, progress=False)
    row = report.rows[0]
    assert len(row.episodes) == 2 and row.env_overrides["camera_size"] == SIZE


def test_observation_overrides_name_the_camera_never_the_sensor() -> None:
    scenario = load_scenario("manufacturing/reach", obs_mode="pixels", camera_size=SIZE, obs_camera="front")
    overrides = observation_overrides(scenario.with_params({"sensor": {"severity": 3}}).model_dump())
    assert overrides == {
        "obs_mode": "pixels",
        "obs_camera": "front",
        "camera_size": SIZE,
        "channel_order": "last",
        "camera_depth": False,
        "camera_segmentation": False,
    }
    assert set(overrides) == set(OBSERVATION_PARAMS) - {"camera_footprint"} and "sensor" not in overrides
    assert observation_overrides(load_scenario("manufacturing/reach").model_dump()) == {}
    driving = load_scenario("driving/lane-keep", obs_mode="pixels", camera_footprint=32)  # driving's own field
    assert observation_overrides(driving.model_dump())["camera_footprint"] == 32


def test_normalize_scales_rewards_and_never_camera_images(driving_run: Path) -> None:
    from lepton_sim.agents.sb3.model_files import ObsNormalizer

    config = config_of(driving_run)
    assert config["hyperparams"]["normalize"] is True and config["hyperparams"]["policy"] == "CnnPolicy"
    stats = ObsNormalizer.load(driving_run / "model_vecnormalize.npz")
    assert stats.norm_reward and not stats.norm_obs
    policy = load_policy(str(driving_run), load_scenario("driving/lane-keep"))
    assert isinstance(policy, SB3Policy) and policy.env_overrides["obs_mode"] == "pixels"
    report = lepton_sim.evaluate(str(driving_run), scenario=short("driving/lane-keep", 20), episodes=2, progress=False)
    assert len(report.rows[0].episodes) == 2


def test_frame_stack_trains_and_evaluates_with_the_stacked_shapes(stacked_run: Path) -> None:
    config = config_of(stacked_run)
    assert config["hyperparams"]["policy"] == "CnnPolicy" and config["hyperparams"]["frame_stack"] == 2
    scenario = short("manufacturing/conveyor-pick", 12)
    policy = load_policy(str(stacked_run), scenario)
    assert isinstance(policy, SB3Policy) and policy.frame_stack == 2
    assert policy.observation_space.shape == (SIZE, SIZE, 3)  # what the env gives
    assert policy.model.observation_space.shape == (6, SIZE, SIZE)  # two frames, channels first, as trained
    env = lepton_sim.make(scenario, **policy.env_overrides)
    obs, _ = env.reset(seed=0)
    action, state = policy.act(obs[None], None, np.ones(1, bool))
    assert action.shape == (1, *env.action_space.shape) and isinstance(state, StackState)
    assert state.frames.shape == (1, SIZE, SIZE, 6) and not state.frames[..., :3].any()  # zeros before the first
    obs2 = env.step(action[0])[0]
    _, state = policy.act(obs2[None], state, np.zeros(1, bool))
    assert np.array_equal(state.frames[0, ..., :3], obs) and np.array_equal(state.frames[0, ..., 3:], obs2)
    env.close()
    report = lepton_sim.evaluate(str(stacked_run), scenario=scenario, episodes=2, progress=False)
    assert len(report.rows[0].episodes) == 2


def test_the_in_policy_stack_equals_vec_frame_stack() -> None:
    """Same frames as SB3's VecFrameStack gave in training, episode starts included (Box and Dict)."""
    rng = np.random.default_rng(0)
    image = spaces.Box(0, 255, (4, 4, 3), np.uint8)
    goal = spaces.Dict({"observation": image, "desired_goal": spaces.Box(-1, 1, (2,), np.float32)})
    for space in (image, goal, spaces.Box(0, 255, (3, 4, 4), np.uint8)):
        from stable_baselines3.common.vec_env.stacked_observations import StackedObservations

        reference = StackedObservations(2, 3, space)  # type: ignore[arg-type]
        assert stacked_space(space, 3) == reference.stacked_observation_space
        frames, expected = None, None
        for t in range(7):
            obs = _sample(space, rng, 2)
            starts = np.array([t == 0, t == 4])
            if t == 0:
                expected = reference.reset(obs)
            else:
                infos: list[dict[str, Any]] = [{"terminal_observation": _index(obs, i)} for i in range(2)]
                expected, _ = reference.update(obs, starts, infos)
            frames = push(frames, obs, starts, space, 3)
            for key in space.spaces if isinstance(space, spaces.Dict) else [None]:
                mine = frames if key is None else frames[key]
                theirs = expected if key is None else expected[key]  # type: ignore[index]
                assert np.array_equal(mine, theirs), (space, t, key)


def _sample(space: spaces.Space, rng: np.random.Generator, n: int) -> Any:
    if isinstance(space, spaces.Dict):
        return {k: _sample(s, rng, n) for k, s in space.spaces.items()}
    return rng.integers(0, 255, size=(n, *space.shape)).astype(space.dtype)


def _index(obs: Any, i: int) -> Any:
    return {k: v[i] for k, v in obs.items()} if isinstance(obs, dict) else obs[i]


def test_random_shift_changes_training_observations_but_not_evaluation_ones(stacked_run: Path) -> None:
    from lepton_sim.agents.sb3.train import _make_env
    from lepton_sim.runs import RunFolder

    config = RunFolder(stacked_run).read_config()
    scenario = short("manufacturing/conveyor-pick", 12).with_params({"obs_mode": "pixels", "camera_size": SIZE})
    training = _make_env(scenario, config, 5, stacked_run / "monitor-test.csv", None)
    plain = VecFrameStack(DummyVecEnv([lambda: lepton_sim.make(scenario)] * 2), 2)
    plain.seed(5)
    augmented, clean = training.reset(), plain.reset()
    training.close()
    plain.close()
    assert augmented.shape == clean.shape == (2, SIZE, SIZE, 6) and not np.array_equal(augmented, clean)
    for i in range(2):  # each image is the clean one moved by at most 4 pixels (both frames the same way)
        assert any(
            np.array_equal(augmented[i], shift_images(clean[i : i + 1], np.array([dy]), np.array([dx]))[0])
            for dy in range(9)
            for dx in range(9)
        )
    # evaluation acts on the camera's images as they are
    seen: list[np.ndarray] = []
    policy = load_policy(str(stacked_run), scenario)
    act = policy.act

    def record(obs: Any, *args: Any, **kwargs: Any) -> Any:
        seen.append(np.array(obs))
        return act(obs, *args, **kwargs)

    policy.act = record  # type: ignore[method-assign]
    lepton_sim.evaluate(policy, scenario=scenario, episodes=1, seed=7, progress=False)
    env = lepton_sim.make(scenario)
    first, _ = env.reset(seed=7)
    env.close()
    assert np.array_equal(seen[0][0], first)


def test_a_frame_stacked_policy_refuses_export_in_one_line(stacked_run: Path, tmp_path: Path) -> None:
    from lepton_sim.exporting import export_policy

    with pytest.raises(LeptonError) as err:
        export_policy(stacked_run, "torchscript", tmp_path / "export")
    assert "frame_stack 2" in str(err.value) and "\n" not in str(err.value)


def test_a_cnn_policy_exports_with_its_image_preprocessing(reach_run: Path, tmp_path: Path) -> None:
    from lepton_sim.exported import ExportedPolicy
    from lepton_sim.exporting import export_policy, sample_observations

    folder = export_policy(reach_run, "torchscript", tmp_path / "export")
    exported = ExportedPolicy.load(folder)
    original = load_policy(str(reach_run), load_scenario("manufacturing/reach"))
    obs = sample_observations(original.observation_space, 4)
    assert np.allclose(exported.act(obs)[0], original.act(obs)[0], atol=1e-5)


# ---------------------------------------------------------------------------------------------- augmentation
def test_random_shift_moves_each_image_within_the_pad() -> None:
    images = np.arange(2 * 12 * 12 * 3, dtype=np.int64).reshape(2, 12, 12, 3).astype(np.uint8)
    same = shift_images(images, np.array([4, 4]), np.array([4, 4]))
    assert np.array_equal(same, images)  # offset == pad: unchanged
    moved = shift_images(images, np.array([0, 8]), np.array([8, 2]))
    assert moved.shape == images.shape and moved.dtype == images.dtype
    # image 0 moved down 4 and left 4: its pixel (r, c) is the original's (r - 4, c + 4) away from the borders
    assert np.array_equal(moved[0, 4:, :8], images[0, :8, 4:])
    assert np.array_equal(moved[1, :8, 2:], images[1, 4:, :10])
    assert np.array_equal(moved[0, :4, 0], np.repeat(images[0, :1, 4], 4, axis=0))  # replicated border
    with pytest.raises(ValueError, match="0..8"):
        shift_images(images, np.array([9, 0]), np.array([0, 0]))


def test_random_shift_is_deterministic_for_a_seed_and_keeps_shape_and_layout() -> None:
    rng = np.random.default_rng(1)
    images = rng.integers(0, 255, size=(16, 20, 20, 6)).astype(np.uint8)
    a = RandomShift(seed=3)(images)
    b = RandomShift(seed=3)(images)
    c = RandomShift(seed=4)(images)
    assert a.shape == images.shape and a.dtype == np.uint8
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    first = random_shift(images.transpose(0, 3, 1, 2), np.random.default_rng(7), channels_first=True)
    last = random_shift(images, np.random.default_rng(7))
    assert np.array_equal(first.transpose(0, 2, 3, 1), last)  # same shifts in either channel order
    shifted = random_shift(images, np.random.default_rng(0), pad=4)
    inner = shifted[:, 4:-4, 4:-4]  # every pixel away from the border comes from within 4 pixels of itself
    padded = np.pad(images, ((0, 0), (4, 4), (4, 4), (0, 0)), mode="edge")
    for i in range(len(images)):
        assert any(
            np.array_equal(inner[i], padded[i, 4 + dy : 16 + dy, 4 + dx : 16 + dx])  # offsets dy - 4, dx - 4
            for dy in range(9)
            for dx in range(9)
        )


def test_the_compact_cnn_is_chosen_by_name_and_rebuilt_on_reload(tmp_path: Path) -> None:
    from lepton_sim.agents.sb3.compact_cnn import CompactCNN

    run = lepton_sim.train(
        short("driving/lane-keep", 20),
        algo="ppo",
        steps=64,
        n_envs=2,
        out=tmp_path / "compact",
        overrides={
            **PIXELS,
            **TINY_PPO,
            "frame_stack": 2,
            "policy_kwargs": {"features_extractor_class": "compact", "net_arch": [32]},
        },
        eval_freq=0,
        progress_bar=False,
    )
    assert config_of(run)["hyperparams"]["policy_kwargs"]["features_extractor_class"] == "compact"  # YAML stays data
    policy = load_policy(str(run), load_scenario("driving/lane-keep"))
    assert isinstance(policy, SB3Policy)
    extractor = policy.model.features_extractor
    assert isinstance(extractor, CompactCNN) and extractor.features_dim == 256
    assert extractor.cnn[0].in_channels == 6  # two stacked RGB frames, channels first
    report = lepton_sim.evaluate(str(run), scenario=short("driving/lane-keep", 20), episodes=2, progress=False)
    assert len(report.rows[0].episodes) == 2


def test_the_compact_cnn_refuses_a_state_vector() -> None:
    from gymnasium import spaces

    from lepton_sim.agents.sb3.compact_cnn import CompactCNN

    with pytest.raises(LeptonError, match="needs camera images"):
        CompactCNN(spaces.Box(-1.0, 1.0, (8,)))
