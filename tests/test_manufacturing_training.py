"""Smoke test of the whole path on a manufacturing task: SAC + HER trains through lepton_sim.train, the run
reloads, evaluates through lepton_sim.evaluate and renders a video through lepton_sim.rollout."""

from __future__ import annotations

from pathlib import Path

import pytest

import lepton_sim

SAC_HER_TINY = {
    "policy": "MultiInputPolicy",
    "her": True,
    "her_kwargs": {"n_sampled_goal": 4, "goal_selection_strategy": "future"},
    "learning_starts": 100,
    "batch_size": 32,
    "buffer_size": 5000,
    "gamma": 0.95,
    "policy_kwargs": {"net_arch": [32, 32]},
}


@pytest.mark.slow
def test_sac_her_trains_reloads_evaluates_and_renders_on_reach(tmp_path: Path) -> None:
    run_dir = lepton_sim.train(
        "manufacturing/reach",
        algo="sac",
        steps=300,
        seed=0,
        n_envs=1,
        device="cpu",
        out=tmp_path / "run",
        overrides=SAC_HER_TINY,
        eval_freq=150,
        eval_episodes=2,
        progress_bar=False,
    )
    assert (run_dir / "model.zip").is_file()
    assert (run_dir / "evaluations.csv").read_text().count("\n") >= 2  # header + at least one evaluation

    report = lepton_sim.evaluate(str(run_dir), scenario="manufacturing/reach", episodes=2, progress=False)
    row = report.rows[0]
    assert len(row.seeds) == 2 and 0.0 <= row.success_rate <= 1.0
    assert -50.0 <= row.return_mean <= 0.0  # sparse reward: -1 per step away from the target, 50 steps at most

    video = tmp_path / "reach.mp4"
    result = lepton_sim.rollout(str(run_dir), "manufacturing/reach", episodes=1, out=video)
    assert video.is_file() and video.stat().st_size > 1000
    assert result is not None
