"""Evaluation: correct statistics, identical numbers for identical seeds whatever the batching, comparable rows
between policies, reports written, and clear errors for a missing policy or metric."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

import lepton_sim
from lepton_sim.cli import main
from lepton_sim.evaluation import run_episodes
from lepton_sim.loading import load_policy
from lepton_sim.stats import mean_interval, wilson_interval

SCENARIO = "driving/lane-keep"


def test_wilson_interval_matches_known_values() -> None:
    low, high = wilson_interval(5, 10)
    assert low == pytest.approx(0.2366, abs=1e-4) and high == pytest.approx(0.7634, abs=1e-4)
    low, high = wilson_interval(0, 10)
    assert low == 0.0 and high == pytest.approx(0.2775, abs=1e-4)
    low, high = wilson_interval(10, 10)
    assert high == 1.0 and low == pytest.approx(0.7225, abs=1e-4)
    assert all(math.isnan(v) for v in wilson_interval(0, 0))


def test_mean_interval_uses_student_t_and_ignores_nan() -> None:
    mean, low, high = mean_interval([1.0, 2.0, 3.0, math.nan])
    assert mean == 2.0
    assert high - mean == pytest.approx(4.303 * 1.0 / math.sqrt(3), rel=1e-3)  # t(0.975, df=2) = 4.303
    assert mean_interval([5.0]) == (5.0, 5.0, 5.0)
    assert all(math.isnan(v) for v in mean_interval([math.nan]))


def test_same_seeds_give_identical_results_whatever_the_batch_size() -> None:
    scenario = lepton_sim.load_scenario(SCENARIO, max_episode_steps=60)
    seeds = [100, 101, 102, 103, 104]
    for name in ("random", "scripted"):
        one = run_episodes(load_policy(name, scenario), scenario, seeds, num_envs=1)
        batched = run_episodes(load_policy(name, scenario), scenario, seeds, num_envs=3)
        assert [e.seed for e in one] == seeds
        assert [_comparable(e) for e in one] == [_comparable(e) for e in batched], name


def _comparable(episode: object) -> tuple:
    metrics = {k: None if math.isnan(v) else v for k, v in episode.metrics.items()}  # NaN != NaN
    return (episode.episode_return, episode.length, episode.success, metrics)


def test_suite_report_rows_compare_between_policies(tmp_path: Path) -> None:
    reports = {
        name: lepton_sim.evaluate(
            name, suite="driving/standard", split="test", episodes=3, out=tmp_path / name, progress=False
        )
        for name in ("random", "scripted")
    }
    random_rows, scripted_rows = reports["random"].rows, reports["scripted"].rows
    assert [r.label for r in random_rows] == [r.label for r in scripted_rows]
    assert [r.seeds for r in random_rows] == [r.seeds for r in scripted_rows]
    # the classical controller drives; random steering does not
    assert sum(r.success_rate for r in scripted_rows) > sum(r.success_rate for r in random_rows)
    for row in scripted_rows:
        assert row.success_ci[0] <= row.success_rate <= row.success_ci[1]
        assert set(row.metrics) >= {"off_road", "route_completion"}
        _, low, high = row.metrics["route_completion"]
        assert 0.0 <= low <= high <= 1.0  # declared bounds (lepton_sim.stats)
    saved = json.loads((tmp_path / "scripted" / "report.json").read_text())
    assert saved["target"] == "driving/standard" and saved["split"] == "test"
    assert len(saved["rows"]) == len(scripted_rows)
    table = (tmp_path / "scripted" / "report.md").read_text()
    assert "success [95% CI]" in table and scripted_rows[0].label in table
    rows = [line for line in table.splitlines() if line.startswith("|")]
    assert len(rows) == 2 + len(scripted_rows) and len({line.count("|") for line in rows}) == 1


def test_metric_missing_from_info_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text("env: lepton/Driving-v0\nmax_episode_steps: 5\nmetrics: [fuel_used]\n")
    with pytest.raises(lepton_sim.LeptonError, match="no fuel_used.*available: .*collision"):
        lepton_sim.evaluate("random", scenario=path, episodes=1, progress=False)


def test_missing_policy_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["evaluate", "runs/does-not-exist", "--scenario", SCENARIO, "--episodes", "1", "--no-progress"])
    assert code == 1
    err = capsys.readouterr().err
    assert "neither an existing run folder or model file nor a baseline" in err and "scripted" in err
