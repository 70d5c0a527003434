"""Report statistics: 0/1 metrics get Wilson intervals, bounded metrics intervals inside their bounds (both as
the env's registration declares), and no skip or failure reason breaks the Markdown table."""

from __future__ import annotations

import math
from pathlib import Path

import gymnasium
import numpy as np
import pytest

import lepton_sim
from lepton_sim.report import EpisodeResult, Report, ScenarioResult
from lepton_sim.stats import mean_interval, metric_interval, wilson_interval

T_975_DF2 = 4.302653  # Student-t 97.5% quantile, 2 degrees of freedom


def test_a_binary_metric_gets_the_wilson_interval() -> None:
    assert metric_interval([1, 0] * 5, binary=True) == pytest.approx((0.5, 0.2366, 0.7634), abs=1e-4)
    mean, low, high = metric_interval([0.0] * 10, binary=True)
    assert (mean, low) == (0.0, 0.0) and high == pytest.approx(0.2775, abs=1e-4)  # Student-t: [0, 0]
    assert mean_interval([0.0] * 10) == (0.0, 0.0, 0.0)
    mean, low, high = metric_interval([1.0, 1.0, math.nan], binary=True)  # NaN: not applicable, ignored
    assert mean == 1.0 and high == 1.0 and low == pytest.approx(wilson_interval(2, 2)[0])


def test_a_bounded_metric_interval_stays_inside_its_bounds() -> None:
    half = T_975_DF2 * 0.3 / math.sqrt(3) / math.sqrt(3)  # std of [1, 1, 0.7] is 0.3 / sqrt(3)
    mean, low, high = metric_interval([1.0, 1.0, 0.7], bounds=(0.0, 1.0))
    assert mean == pytest.approx(0.9) and low == pytest.approx(0.9 - half) and high == 1.0
    assert mean_interval([1.0, 1.0, 0.7])[2] == pytest.approx(0.9 + half)  # 1.33 unclipped
    mean, low, high = metric_interval([0.0, 0.0, 0.3], bounds=(0.0, 1.0))
    assert mean == pytest.approx(0.1) and low == 0.0 and high == pytest.approx(0.1 + half)
    # a count bounded below only: never Wilson, even if every value is 0 or 1
    count = metric_interval([0.0, 0.0, 1.0], bounds=(0.0, math.inf))
    assert count[1] == 0.0 and count[2] == pytest.approx(mean_interval([0.0, 0.0, 1.0])[2])


def test_a_value_that_contradicts_the_declaration_is_an_error() -> None:
    with pytest.raises(ValueError, match="outside the declared bounds"):
        metric_interval([0.5, 1.5], bounds=(0.0, 1.0))
    with pytest.raises(ValueError, match="declared binary"):
        metric_interval([0.0, 0.5], binary=True)


def _episode(seed: int, collision: float, completion: float, speed: float) -> EpisodeResult:
    """A driving episode's result with the given metric values."""
    return EpisodeResult(
        seed=seed,
        episode_return=0.0,
        length=10,
        success=False,
        metrics={
            "route_completion": completion,
            "collision": collision,
            "off_road": 0.0,
            "time_to_goal": math.nan,
            "average_speed": speed,
        },
    )


def test_the_evaluator_uses_the_env_declaration() -> None:
    """lepton/Driving-v0 declares collision and off_road 0/1 and route_completion in [0, 1]; average_speed is
    undeclared and keeps the plain Student-t interval."""
    scenario = lepton_sim.load_scenario("driving/obstacle-avoid")
    episodes = [_episode(0, 1.0, 1.0, 3.0), _episode(1, 0.0, 1.0, 5.0), _episode(2, 1.0, 0.7, 10.0)]
    row = ScenarioResult.from_episodes("row", scenario, episodes)
    wl, wh = wilson_interval(2, 3)
    assert row.metrics["collision"] == pytest.approx((2 / 3, wl, wh))
    assert row.metrics["off_road"] == pytest.approx((0.0, 0.0, wilson_interval(0, 3)[1]))
    assert row.metrics["route_completion"][2] == 1.0
    assert row.metrics["average_speed"] == pytest.approx(mean_interval([3.0, 5.0, 10.0]))
    assert all(math.isnan(v) for v in row.metrics["time_to_goal"])


def test_a_value_against_the_declaration_keeps_the_episodes_and_warns(caplog: pytest.LogCaptureFixture) -> None:
    scenario = lepton_sim.load_scenario("driving/obstacle-avoid")
    episodes = [_episode(0, 1.0, 1.2, 3.0), _episode(1, 0.0, 1.0, 5.0)]
    row = ScenarioResult.from_episodes("row", scenario, episodes)
    assert row.metrics["route_completion"] == pytest.approx(mean_interval([1.2, 1.0]))
    assert "route_completion of lepton/Driving-v0: value 1.2 lies outside the declared bounds [0, 1]" in caplog.text


def test_route_completion_intervals_of_a_real_evaluation_stay_in_0_1() -> None:
    report = lepton_sim.evaluate("random", scenario="driving/lane-keep", episodes=4, progress=False)
    (row,) = report.rows
    mean, low, high = row.metrics["route_completion"]
    assert 0.0 <= low <= mean <= high <= 1.0
    off_road = [e.metrics["off_road"] for e in row.episodes]
    assert row.metrics["off_road"][1:] == pytest.approx(wilson_interval(int(sum(off_road)), len(off_road)))


def test_the_markdown_table_keeps_one_line_per_row_whatever_the_reasons() -> None:
    dict_space = gymnasium.spaces.Dict(
        {
            "observation": gymnasium.spaces.Box(np.zeros(30, np.float32), np.linspace(1, 2, 30, dtype=np.float32)),
            "goal": gymnasium.spaces.Box(-1, 1, (3,)),
        }
    )
    assert "\n" in str(dict_space)  # numpy prints the long bounds over several lines
    scenario = lepton_sim.load_scenario("driving/obstacle-avoid")
    rows = [
        ScenarioResult.from_episodes("a | b", scenario, [_episode(0, 0.0, 1.0, 3.0)]),
        ScenarioResult.skipped_row("skipped", scenario, [0], f"the policy was trained on {dict_space}"),
        ScenarioResult.failed_row(
            "failed", scenario, [0, 1], [_episode(0, 0.0, 1.0, 3.0)], "RuntimeError: first line\nsecond | line"
        ),
    ]
    text = Report(policy="p", target="t", split=None, rows=rows).to_markdown()
    table = [line for line in text.splitlines() if line.startswith("|")]
    assert len(table) == 2 + len(rows)
    assert len({line.count("|") for line in table}) == 1  # every row has the header's cells
    assert all(line.endswith("|") for line in table)
    assert table[2].startswith("| a ¦ b |")
    assert "skipped: the policy was trained on Dict(" in table[3] and "1.0344827" in table[3]
    assert "failed after 1 of 2 episodes: RuntimeError: first line second ¦ line" in table[4]


def test_a_saved_report_loads_back_equal(tmp_path: Path) -> None:
    """Reports are data that other commands (compare, experiments) read back: save -> load is lossless, NaN
    (a metric that did not apply, a skipped row) included."""
    import json

    import lepton_sim
    from lepton_sim.io import _no_nan

    report = lepton_sim.evaluate("scripted", suite="driving/standard", episodes=2, out=tmp_path, progress=False)
    loaded = Report.load(tmp_path)
    assert json.dumps(_no_nan(loaded.to_dict()), sort_keys=True) == json.dumps(
        _no_nan(report.to_dict()), sort_keys=True
    )
    assert loaded.to_markdown() == report.to_markdown()
    with pytest.raises(lepton_sim.LeptonError, match="not a lepton-sim report"):
        Report.load(tmp_path / "report.md")
