"""Loading a model runs no code from its files (issue 9): the network is built from the run's config.yaml, only
the weights are read from the zip (``policy.pth``, ``weights_only=True``) and normalisation statistics come from
an npz. Crafted files (a cloudpickle entry in the zip's data, a ``*_vecnormalize.pkl``, a ``policy.pth`` holding an
object) that touch a marker file when unpickled never touch it without ``--trust-pickle``; with the opt-in, old
files load through SB3's own loader, and both loaders give the same actions and reports."""

from __future__ import annotations

import base64
import json
import pickle
import shutil
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml

import lepton_sim
from lepton_sim.agents.sb3.model_files import ObsNormalizer, normalizer_path, stats_path
from lepton_sim.cli import main
from lepton_sim.loading import load_policy
from lepton_sim.runs import RunFolder

GOLDEN = Path(__file__).parent / "data" / "golden"
GOLDEN_RUN = GOLDEN / "ppo-lane-keep"  # an old-format run: config.yaml + model.zip, no normalisation
LANE_KEEP = "driving/lane-keep"
REACH = "manufacturing/reach"


class Touch:
    """Unpickling this creates a file: the stand-in for arbitrary code in a crafted pickle."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self) -> tuple[Any, tuple[str, str]]:
        return open, (self.path, "a")


def payload(marker: Path) -> str:
    return base64.b64encode(pickle.dumps(Touch(marker))).decode()


def craft_zip(model: Path, marker: Path, entries: tuple[str, ...] = ("_last_episode_starts",)) -> None:
    """Rewrite the zip's data JSON so the named cloudpickled entries hold the payload (``_last_episode_starts`` is
    one SB3's loader unpickles without complaint: a stealthy file loads and reports normally)."""
    with zipfile.ZipFile(model) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    data = json.loads(members["data"])
    for entry in entries:  # the plain items SB3 writes beside the pickle stay as they were
        data[entry] = {**data[entry], ":serialized:": payload(marker)}
    members["data"] = json.dumps(data).encode()
    with zipfile.ZipFile(model, "w") as archive:
        for name, content in members.items():
            archive.writestr(name, content)


def short_scenario(tmp: Path, name: str, steps: int = 20) -> Path:
    """A scenario file of ``name`` with short episodes (what ``lepton-sim evaluate --scenario`` reads)."""
    sc = lepton_sim.load_scenario(name, max_episode_steps=steps)
    path = tmp / f"{name.replace('/', '-')}-short.yaml"
    path.write_text(yaml.safe_dump({**sc.model_dump(exclude={"name"}), "params": sc.params}))
    return path


def episodes(report: Any) -> list[tuple]:
    return [(e.seed, e.episode_return, e.length, e.success) for row in report.rows for e in row.episodes]


def sample_batch(space: Any, n: int = 16) -> Any:
    space.seed(0)
    batch = [space.sample() for _ in range(n)]
    if isinstance(batch[0], dict):
        return {k: np.stack([b[k] for b in batch]) for k in batch[0]}
    return np.stack(batch)


def train(scenario: str, **kwargs: Any) -> Path:
    """A short run. Training sets torch to one thread; the count is restored so later tests in this process
    (the golden training run) build their networks as in a fresh process."""
    threads = torch.get_num_threads()
    try:
        return lepton_sim.train(scenario, eval_freq=0, progress_bar=False, **kwargs)
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def ppo_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """PPO with normalised observations (Box)."""
    return train(
        LANE_KEEP,
        algo="ppo",
        steps=256,
        n_envs=2,
        out=tmp_path_factory.mktemp("ppo") / "run",
        overrides={"n_steps": 64, "batch_size": 64, "normalize": True},
    )


@pytest.fixture(scope="module")
def her_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """SAC+HER (MultiInputPolicy) on goal-conditioned Dict observations, normalised per key."""
    return train(
        REACH,
        algo="sac",
        steps=200,
        out=tmp_path_factory.mktemp("her") / "run",
        overrides={"learning_starts": 100, "batch_size": 64, "buffer_size": 1000, "normalize": True},
    )


def copy_run(run: Path, tmp_path: Path) -> Path:
    target = tmp_path / run.name
    shutil.copytree(run, target)
    return target


# ---------------------------------------------------------------------------------------------- the same numbers
@pytest.mark.parametrize("which, scenario", [("ppo_run", LANE_KEEP), ("her_run", REACH)])
def test_safe_and_trusted_loading_act_and_report_the_same(
    request: pytest.FixtureRequest, tmp_path: Path, which: str, scenario: str
) -> None:
    run = request.getfixturevalue(which)
    sc = lepton_sim.load_scenario(scenario)
    safe, trusted = load_policy(str(run), sc), load_policy(str(run), sc, trust_pickle=True)
    assert isinstance(safe.model, torch.nn.Module)  # the policy network alone, not SB3's unpickled algorithm
    assert isinstance(safe.obs_normalizer, ObsNormalizer)
    assert safe.observation_space == trusted.observation_space and safe.action_space == trusted.action_space
    obs = sample_batch(safe.observation_space)
    assert np.array_equal(safe.act(obs)[0], trusted.act(obs)[0])
    path = short_scenario(tmp_path, scenario, steps=50)
    kwargs = {"scenario": path, "episodes": 3, "progress": False}
    assert episodes(lepton_sim.evaluate(str(run), **kwargs)) == episodes(
        lepton_sim.evaluate(str(run), trust_pickle=True, **kwargs)
    )


@pytest.mark.parametrize("which", ["ppo_run", "her_run"])
def test_every_model_file_gets_plain_statistics_that_normalise_as_vecnormalize(
    request: pytest.FixtureRequest, which: str
) -> None:
    from stable_baselines3.common.vec_env import VecNormalize

    run = request.getfixturevalue(which)
    models = [run / "model.zip", *(path for _, path in RunFolder(run).checkpoints())]
    assert len(models) >= 2
    obs = sample_batch(
        load_policy(str(run), lepton_sim.load_scenario(REACH if which == "her_run" else LANE_KEEP)).observation_space
    )
    for model in models:
        with np.load(stats_path(model), allow_pickle=False) as data:  # plain arrays only
            assert all(data[key].dtype != object for key in data.files)
        plain = ObsNormalizer.load(stats_path(model))
        with open(normalizer_path(model), "rb") as f:  # the pickle resume reads (trusted: written by this test)
            vec_normalize: VecNormalize = pickle.load(f)
        mine, sb3 = plain.normalize_obs(obs), vec_normalize.normalize_obs(obs)
        if isinstance(obs, dict):
            assert mine.keys() == sb3.keys() and all(np.array_equal(mine[k], sb3[k]) for k in obs)
            assert all(mine[k].dtype == sb3[k].dtype for k in obs)
        else:
            assert np.array_equal(mine, sb3) and mine.dtype == sb3.dtype


def test_the_committed_old_run_folder_loads_safely_with_the_recorded_numbers() -> None:
    report = lepton_sim.evaluate(str(GOLDEN_RUN), scenario=LANE_KEEP, episodes=3, progress=False)
    recorded = json.loads((GOLDEN / "ppo-model-lane-keep.json").read_text())
    assert [(e.episode_return, e.length) for e in report.rows[0].episodes] == [
        (e["return"], e["length"]) for e in recorded[0]["episodes"]
    ]


# ---------------------------------------------------------------------------------------------- crafted files
def test_a_crafted_model_zip_runs_no_code(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = copy_run(GOLDEN_RUN, tmp_path)
    marker = tmp_path / "touched"
    craft_zip(run / "model.zip", marker, entries=("_last_episode_starts", "policy_kwargs", "observation_space"))
    scenario = short_scenario(tmp_path, LANE_KEEP)
    expected = episodes(lepton_sim.evaluate(str(GOLDEN_RUN), scenario=scenario, episodes=2, progress=False))

    assert (
        main(
            [
                "evaluate",
                str(run),
                "--scenario",
                str(scenario),
                "--episodes",
                "2",
                "--no-progress",
                "--out",
                str(tmp_path / "report"),
            ]
        )
        == 0
    )
    assert episodes(lepton_sim.evaluate(str(run), scenario=scenario, episodes=2, progress=False)) == expected
    lepton_sim.rollout(str(run), scenario, episodes=1, out=tmp_path / "video.gif")
    assert not marker.exists()
    capsys.readouterr()

    # the payload is live: SB3's own loader (the opt-in) runs it
    assert (
        main(
            [
                "evaluate",
                str(run),
                "--scenario",
                str(scenario),
                "--episodes",
                "1",
                "--no-progress",
                "--out",
                str(tmp_path / "trusted"),
                "--trust-pickle",
            ]
        )
        == 1
    )
    assert marker.exists()


def test_a_stealthy_model_zip_reports_normally_only_with_the_opt_in(tmp_path: Path) -> None:
    run = copy_run(GOLDEN_RUN, tmp_path)
    marker = tmp_path / "touched"
    craft_zip(run / "model.zip", marker)
    scenario = short_scenario(tmp_path, LANE_KEEP)
    safe = episodes(lepton_sim.evaluate(str(run), scenario=scenario, episodes=2, progress=False))
    assert not marker.exists()
    assert (
        episodes(lepton_sim.evaluate(str(run), scenario=scenario, episodes=2, progress=False, trust_pickle=True))
        == safe
    )
    assert marker.exists()  # what the opt-in means: the file's code ran, and the report looked normal


def test_a_crafted_vecnormalize_pickle_runs_no_code(
    ppo_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = copy_run(ppo_run, tmp_path)
    marker = tmp_path / "touched"
    scenario = short_scenario(tmp_path, LANE_KEEP)
    expected = episodes(lepton_sim.evaluate(str(ppo_run), scenario=scenario, episodes=2, progress=False))
    normalizer_path(run / "model.zip").write_bytes(pickle.dumps(Touch(marker)))

    # the npz beside it is what inference reads
    assert episodes(lepton_sim.evaluate(str(run), scenario=scenario, episodes=2, progress=False)) == expected
    assert not marker.exists()

    # an old-format run (statistics only as a pickle) is refused, in one line naming the opt-in
    stats_path(run / "model.zip").unlink()
    assert (
        main(
            [
                "evaluate",
                str(run),
                "--scenario",
                str(scenario),
                "--episodes",
                "1",
                "--no-progress",
                "--out",
                str(tmp_path / "report"),
            ]
        )
        == 1
    )
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    assert "model_vecnormalize.pkl, a pickle" in err and "--trust-pickle" in err and "can run code" in err
    with pytest.raises(lepton_sim.LeptonError, match="trust_pickle=True"):
        lepton_sim.evaluate(str(run), scenario=scenario, episodes=1, progress=False)
    with pytest.raises(lepton_sim.LeptonError, match="--trust-pickle"):
        lepton_sim.rollout(str(run), scenario, episodes=1, out=tmp_path / "video.gif")
    assert main(["rollout", str(run), "--scenario", str(scenario), "--out", str(tmp_path / "v.gif")]) == 1
    assert "--trust-pickle" in capsys.readouterr().err
    assert not marker.exists() and not (tmp_path / "report").exists()

    # with the opt-in the pickle is loaded (and this one is no VecNormalize)
    assert (
        main(
            [
                "evaluate",
                str(run),
                "--scenario",
                str(scenario),
                "--episodes",
                "1",
                "--no-progress",
                "--out",
                str(tmp_path / "trusted"),
                "--trust-pickle",
            ]
        )
        == 1
    )
    assert marker.exists() and "not VecNormalize statistics" in capsys.readouterr().err


def test_weights_that_are_not_plain_tensors_are_refused(tmp_path: Path) -> None:
    run = copy_run(GOLDEN_RUN, tmp_path)
    marker = tmp_path / "touched"
    with zipfile.ZipFile(GOLDEN_RUN / "model.zip") as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    crafted = tmp_path / "policy.pth"
    torch.save({"action_net.weight": Touch(marker)}, crafted)
    members["policy.pth"] = crafted.read_bytes()
    with zipfile.ZipFile(run / "model.zip", "w") as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    with pytest.raises(lepton_sim.LeptonError, match="no readable policy weights"):
        lepton_sim.evaluate(str(run), scenario=LANE_KEEP, episodes=1, progress=False)
    assert not marker.exists()


# ---------------------------------------------------------------------------------------------- the opt-in
def test_an_old_normalised_run_loads_with_the_opt_in(ppo_run: Path, tmp_path: Path) -> None:
    run = copy_run(ppo_run, tmp_path)
    scenario = short_scenario(tmp_path, LANE_KEEP)
    expected = episodes(lepton_sim.evaluate(str(ppo_run), scenario=scenario, episodes=2, progress=False))
    for model in (run / "model.zip", run / "best_model.zip"):
        if stats_path(model).exists():
            stats_path(model).unlink()  # as written before the npz existed
    with pytest.raises(lepton_sim.LeptonError, match="exist only as model_vecnormalize.pkl"):
        lepton_sim.evaluate(str(run), scenario=scenario, episodes=2, progress=False)
    assert (
        episodes(lepton_sim.evaluate(str(run), scenario=scenario, episodes=2, progress=False, trust_pickle=True))
        == expected
    )


def test_a_model_outside_any_run_folder_needs_the_opt_in(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = tmp_path / "model.zip"
    shutil.copy(GOLDEN_RUN / "model.zip", model)
    scenario = short_scenario(tmp_path, LANE_KEEP)
    assert main(["evaluate", str(model), "--scenario", str(scenario), "--episodes", "1", "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "outside any lepton-sim run folder" in err and "--trust-pickle" in err
    assert len(err.strip().splitlines()) == 1, err
    trusted = lepton_sim.evaluate(str(model), scenario=scenario, episodes=2, progress=False, trust_pickle=True)
    assert episodes(trusted) == episodes(
        lepton_sim.evaluate(str(GOLDEN_RUN), scenario=scenario, episodes=2, progress=False)
    )


def test_a_config_that_does_not_describe_the_model_is_refused(tmp_path: Path) -> None:
    """The model records its policy keyword arguments in plain JSON beside the pickle: they must match."""
    run = copy_run(GOLDEN_RUN, tmp_path)
    config = yaml.safe_load((run / "config.yaml").read_text())
    config["hyperparams"]["policy_kwargs"]["activation_fn"] = "relu"  # same weights' shapes, other numbers
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    with pytest.raises(lepton_sim.LeptonError, match="policy_kwargs .* differ from the ones recorded in the model"):
        lepton_sim.evaluate(str(run), scenario=LANE_KEEP, episodes=1, progress=False)


def test_a_camera_model_loads_safely_and_renders_its_camera_on_state_scenarios(tmp_path: Path) -> None:
    """SB3 trains CNNs on channels-first images (VecTransposeImage); the loaded policy declares the env's own
    channels-last space, so it evaluates on the camera scenario, and its observation parameters as env_overrides,
    so a state-mode scenario renders the camera it was trained on (same episodes); a scenario whose observations
    still differ is refused key by key instead of crashing in numpy."""
    run = train(
        REACH,
        algo="ppo",
        steps=64,
        n_envs=1,
        out=tmp_path / "run",
        overrides={
            "policy": "MultiInputPolicy",
            "n_steps": 32,
            "batch_size": 32,
            "params.obs_mode": "pixels",
            "params.camera_size": 36,
        },
    )
    camera = lepton_sim.load_scenario(REACH, obs_mode="pixels", camera_size=36)
    policy = load_policy(str(run), camera)
    assert policy.observation_space["pixels"].shape == (36, 36, 3)
    safe = lepton_sim.evaluate(str(run), scenario=_scenario_file(camera, tmp_path), episodes=2, progress=False)
    trusted = lepton_sim.evaluate(
        str(run), scenario=_scenario_file(camera, tmp_path), episodes=2, progress=False, trust_pickle=True
    )
    assert [e.episode_return for e in safe.rows[0].episodes] == [e.episode_return for e in trusted.rows[0].episodes]
    on_state = lepton_sim.evaluate(str(run), scenario=REACH, episodes=2, progress=False).rows[0]
    assert on_state.env_overrides["obs_mode"] == "pixels" and on_state.env_overrides["camera_size"] == 36
    assert [e.episode_return for e in on_state.episodes] == [e.episode_return for e in safe.rows[0].episodes]
    policy.env_overrides = {}  # without them the state observations do not fit, and say so
    with pytest.raises(lepton_sim.LeptonError, match="trained on observations Dict.*36, 36, 3"):
        lepton_sim.evaluate(policy, scenario=REACH, episodes=1, progress=False)


def _scenario_file(scenario: Any, tmp_path: Path) -> Path:
    path = tmp_path / "camera.yaml"
    path.write_text(yaml.safe_dump({**scenario.model_dump(exclude={"name"}), "params": scenario.params}))
    return path
