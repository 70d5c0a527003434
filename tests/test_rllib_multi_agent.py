"""Multi-agent traffic on the RLlib back end (PettingZoo parallel env through RLlib's wrapper, libsumo one
simulation per env runner process) and distributed evaluation (``evaluate --workers``) equal to the
single-process report on the same seeds, for traffic and driving. One local Ray instance for the module."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("ray.rllib")

import lepton_sim  # noqa: E402
import lepton_sim.scenario  # noqa: E402
from lepton_sim.cli import main  # noqa: E402
from lepton_sim.errors import LeptonError  # noqa: E402
from lepton_sim.runs import RunFolder  # noqa: E402

GRID_FILE = Path(str(lepton_sim.scenario.builtin_root())) / "traffic" / "2x2-grid.yaml"
SMALL = {
    "env_runners": 1,
    "train_batch_size_per_learner": 40,
    "minibatch_size": 20,
    "num_epochs": 1,
    "rollout_fragment_length": 20,
    "model": {"fcnet_hiddens": [16, 16]},
}


@pytest.fixture(scope="module")
def grid(tmp_path_factory) -> str:
    """traffic/2x2-grid with a 5-minute window (30 decisions): the same network and spaces, short episodes."""
    import yaml

    data = yaml.safe_load(GRID_FILE.read_text())
    data["params"]["duration"] = 300
    data["max_episode_steps"] = 30
    path = tmp_path_factory.mktemp("scenario") / "short-grid.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


@pytest.fixture(scope="module")
def ray_instance():
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    import ray

    temp = tempfile.mkdtemp(prefix="lepton-ray-test-")
    ray.init(num_cpus=2, include_dashboard=False, _temp_dir=temp, configure_logging=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def _train(grid: str, mode: str, out: Path) -> Path:
    return lepton_sim.train(
        grid,
        algo="ppo",
        backend="rllib",
        steps=40,
        out=out,
        multi_agent=mode,
        overrides=SMALL,
        eval_freq=0,
        progress_bar=False,
    )


@pytest.fixture(scope="module")
def shared_run(ray_instance, grid: str, tmp_path_factory) -> Path:
    return _train(grid, "shared", tmp_path_factory.mktemp("ma") / "shared")


def test_shared_policy_trains_one_iteration_and_evaluates(shared_run: Path, grid: str) -> None:
    record = json.loads((RunFolder(shared_run, "").final_model / "lepton.json").read_text())
    assert record["multi_agent"] == "shared" and list(record["modules"]) == ["shared"]
    assert set(record["agent_to_module"].values()) == {"shared"} and len(record["agents"]) == 4
    assert record["action_space"]["type"] == "MultiDiscrete"  # the joint env, where evaluation runs
    progress = (RunFolder(shared_run).log_parts()[0] / "progress.csv").read_text().splitlines()
    assert len(progress) == 2 and progress[1].split(",")[1] == "40"
    report = lepton_sim.evaluate(str(shared_run), scenario=grid, episodes=1, progress=False)
    assert report.rows[0].episodes[0].length == 30 and "mean_delay" in report.rows[0].episodes[0].metrics


def test_independent_policies_one_per_signal(ray_instance, grid: str, tmp_path: Path) -> None:
    run = _train(grid, "independent", tmp_path / "independent")
    record = json.loads((RunFolder(run, "").final_model / "lepton.json").read_text())
    assert record["multi_agent"] == "independent"
    assert sorted(record["modules"]) == sorted(record["agents"]) and len(record["agents"]) == 4
    assert record["agent_to_module"] == {a: a for a in record["agents"]}
    report = lepton_sim.evaluate(str(run), scenario=grid, episodes=1, progress=False)
    assert report.policy == str(run) and report.rows[0].episodes[0].length == 30


def test_two_libsumo_simulations_in_one_process_are_refused(grid: str, tmp_path: Path) -> None:
    out = tmp_path / "never"
    with pytest.raises(LeptonError, match="at most 1 simulation"):
        lepton_sim.train("traffic/single-intersection", backend="rllib", out=out, overrides={"envs_per_runner": 2})
    with pytest.raises(LeptonError, match="envs_per_runner must be 1"):
        lepton_sim.train(grid, backend="rllib", multi_agent="independent", out=out, overrides={"envs_per_runner": 2})
    with pytest.raises(LeptonError, match="env_runners=0 would run it in the training process"):
        lepton_sim.train(grid, backend="rllib", out=out, overrides={"env_runners": 0})
    assert not out.exists()


def _same_report(tmp_path: Path, argv: list[str]) -> None:
    single, spread = tmp_path / "single", tmp_path / "spread"
    assert main([*argv, "--out", str(single), "--no-progress"]) == 0
    assert main([*argv, "--out", str(spread), "--workers", "2", "--no-progress"]) == 0
    a = json.loads((single / "report.json").read_text())
    b = json.loads((spread / "report.json").read_text())
    assert a["rows"] == b["rows"]  # every episode, metric and interval, to the last bit


def test_distributed_evaluation_equals_single_process_traffic(shared_run: Path, grid: str, tmp_path: Path) -> None:
    _same_report(tmp_path, ["evaluate", str(shared_run), "--scenario", grid, "--episodes", "2", "--num-envs", "1"])


def test_distributed_evaluation_equals_single_process_driving(ray_instance, tmp_path: Path) -> None:
    argv = ["evaluate", "scripted", "--scenario", "driving/lane-keep", "--episodes", "5", "--num-envs", "2"]
    _same_report(tmp_path, argv)


def test_joint_agent_trains_through_flattening(ray_instance, grid: str, tmp_path: Path) -> None:
    """``joint``: one agent sets every signal (MultiDiscrete), its stacked 2-D observation flattened for RLlib."""
    run = _train(grid, "joint", tmp_path / "joint")
    record = json.loads((RunFolder(run, "").final_model / "lepton.json").read_text())
    assert record["multi_agent"] is None and record["flatten_observations"] is True
    assert record["modules"]["default_policy"]["action_space"]["type"] == "MultiDiscrete"
    report = lepton_sim.evaluate(str(run), scenario=grid, episodes=1, progress=False)
    assert report.rows[0].episodes[0].length == 30


def test_an_iteration_that_returns_no_samples_is_empty_not_a_crash() -> None:
    """When every runner misses ``sample_timeout_s`` after earlier iterations sampled (grid4x4 on a loaded machine),
    RLlib reports the iteration's env steps as NaN; training counts it as an empty iteration (0 steps) instead of
    failing on ``int(nan)``."""
    from lepton_sim.agents.rllib.train import _count

    assert _count(float("nan")) == 0 and _count(None) == 0
    assert _count(720.0) == 720 and _count(np.int64(5)) == 5
