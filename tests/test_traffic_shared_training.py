"""Multi-agent traffic through the CLI's training path: one PPO policy shared by every signal of a network
(PettingZoo-to-VecEnv adapter), saved in a run folder and evaluated on the joint env like any other policy."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import yaml

import lepton_sim
from lepton_sim.loading import load_policy
from lepton_sim.multi_agent import SharedPolicy


def test_shared_ppo_trains_on_a_grid_and_evaluates_on_the_joint_env(tmp_path: Path) -> None:
    short = {"duration": 300}  # 30 decisions of 10 s
    run = lepton_sim.train(
        "traffic/2x2-grid",
        algo="ppo",
        steps=256,
        out=tmp_path / "run",
        progress_bar=False,
        eval_freq=128,
        eval_episodes=2,
        overrides={"params.duration": 300, "n_steps": 32, "batch_size": 64, "n_epochs": 2},
    )
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["multi_agent"] == "shared"
    assert (run / "model.zip").is_file() and (run / "model_vecnormalize.pkl").is_file()
    # periodic evaluation on the joint env, in worker processes beside the training simulation (4 signals x 32
    # decisions = 128 agent steps per rollout)
    curve = list(csv.DictReader((run / "evaluations.csv").open()))
    assert [int(r["timesteps"]) for r in curve] == [128, 256]
    assert all(float(r["mean_length"]) == 30 and float(r["mean_return"]) < 0 for r in curve)
    assert (run / "best_model.zip").is_file() and (run / "best_model_vecnormalize.pkl").is_file()

    scenario = lepton_sim.load_scenario("traffic/2x2-grid", max_episode_steps=30, **short)
    policy = load_policy(str(run), scenario)
    assert isinstance(policy, SharedPolicy)
    path = tmp_path / "grid.yaml"
    path.write_text(yaml.safe_dump({**scenario.model_dump(exclude={"name"}), "params": scenario.params}))
    report = lepton_sim.evaluate(str(run), scenario=path, episodes=1, progress=False)
    row = report.rows[0]
    assert row.length_mean == 30 and not math.isnan(row.metrics["mean_delay"][0])
    assert row.metrics["throughput"][0] > 0


def test_joint_agent_trains_on_a_network_with_multidiscrete_actions(tmp_path: Path) -> None:
    """multi_agent: joint: one agent acts for every signal (MultiDiscrete) on lepton/TrafficNetwork-v0 itself."""
    run = lepton_sim.train(
        "traffic/2x2-grid",
        algo="ppo",
        steps=64,
        n_envs=1,
        out=tmp_path / "run",
        progress_bar=False,
        eval_freq=0,
        multi_agent="joint",
        overrides={"params.duration": 300, "n_steps": 32, "batch_size": 32, "n_epochs": 1},
    )
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["multi_agent"] == "joint" and config["n_envs"] == 1
    scenario = lepton_sim.load_scenario("traffic/2x2-grid", duration=300)
    policy = load_policy(str(run), scenario)
    assert not isinstance(policy, SharedPolicy)
    assert str(policy.action_space) == "MultiDiscrete([4 4 4 4])"  # one green-phase choice per signal
    (episode,) = lepton_sim.evaluation.run_episodes(policy, scenario, [5], num_envs=1)
    assert episode.length == 30 and math.isfinite(episode.metrics["mean_delay"])


def test_multi_agent_modes_are_checked_against_the_env_and_back_end(tmp_path: Path) -> None:
    import pytest

    with pytest.raises(lepton_sim.LeptonError, match="supports joint, shared, not 'independent'"):
        lepton_sim.train("traffic/2x2-grid", steps=64, out=tmp_path / "a", multi_agent="independent")
    with pytest.raises(lepton_sim.LeptonError, match="has a single agent"):
        lepton_sim.train("traffic/single-intersection", steps=64, out=tmp_path / "b", multi_agent="shared")
    with pytest.raises(lepton_sim.LeptonError, match="multi_agent: shared trains PPO"):
        lepton_sim.train("traffic/2x2-grid", algo="sac", steps=64, out=tmp_path / "c")
    assert not any((tmp_path / name).exists() for name in "abc")
