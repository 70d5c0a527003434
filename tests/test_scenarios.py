"""Scenario and suite files: every built-in loads, and each kind of mistake gets its own clear message
(file, field path, what is allowed), never a traceback from deep inside."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

import lepton_sim
from lepton_sim.cli import main
from lepton_sim.scenario import builtin_names, is_suite, load_scenario, load_suite, suite_items

GOOD = """
description: test scenario
env: lepton/Driving-v0
params: {lanes: 2, obstacles: [1, 2], route_length: 150}
max_episode_steps: 100
metrics: [collision, off_road]
"""


def write(tmp_path: Path, text: str, name: str = "s.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


@pytest.mark.parametrize("name", builtin_names())
def test_every_builtin_scenario_and_suite_loads(name: str) -> None:
    if is_suite(name):
        suite = load_suite(name)
        assert suite.test, f"{name}: a suite needs a held-out test split"
        train_seeds = {s for item in suite_items(suite, "train") for s in item.seeds}
        test_seeds = {s for item in suite_items(suite, "test") for s in item.seeds}
        assert not train_seeds & test_seeds, f"{name}: test seeds must be held out from train seeds"
    else:
        scenario = load_scenario(name)
        assert scenario.name == name and scenario.description


def test_a_good_user_file_loads_with_its_name_and_overrides(tmp_path: Path) -> None:
    scenario = load_scenario(write(tmp_path, GOOD), lanes=3)
    assert scenario.name == "s" and scenario.params["lanes"] == 3 and scenario.params["obstacles"] == [1, 2]


MALFORMED = [
    ("unknown top-level key", GOOD + "episodes: 5\n", ["unknown field 'episodes'", "allowed:", "max_episode_steps"]),
    ("unknown env param", GOOD.replace("lanes: 2", "lanse: 2"), ["params: unknown field 'lanse'", "allowed:", "lanes"]),
    (
        "wrong type",
        GOOD.replace("max_episode_steps: 100", "max_episode_steps: many"),
        ["max_episode_steps", "integer", "'many'"],
    ),
    (
        "negative episode limit",
        GOOD.replace("max_episode_steps: 100", "max_episode_steps: -5"),
        ["max_episode_steps", "greater than 0"],
    ),
    (
        "unknown env id",
        GOOD.replace("lepton/Driving-v0", "lepton/Drivng-v0"),
        ["env: unknown env id 'lepton/Drivng-v0'", "Did you mean lepton/Driving-v0", "Known ids"],
    ),
    ("lanes out of range", GOOD.replace("lanes: 2", "lanes: 7"), ["params.lanes", "lanes must be within [1, 4]"]),
    (
        "bad obs mode",
        GOOD.replace("lanes: 2", "lanes: 2, obs_mode: lidar"),
        ["params.obs_mode", "'lidar'", "allowed: state"],
    ),
    (
        "bad action mode",
        GOOD.replace("lanes: 2", "lanes: 2, action_mode: joystick"),
        ["params.action_mode", "'continuous' or 'discrete'"],
    ),
    (
        "inverted range",
        GOOD.replace("obstacles: [1, 2]", "obstacles: [3, 1]"),
        ["params.obstacles", "low (3.0) is greater than high (1.0)"],
    ),
    (
        "range of three numbers",
        GOOD.replace("obstacles: [1, 2]", "obstacles: [1, 2, 3]"),
        ["params.obstacles", "[low, high]"],
    ),
    ("inconsistent params", GOOD.replace("lanes: 2", "lanes: 1"), ["obstacles need at least 2 lanes"]),
    (
        "YAML syntax",
        GOOD.replace("metrics: [collision, off_road]", "metrics: [collision, off_road"),
        ["invalid YAML", "s.yaml:"],
    ),
    ("not a mapping", "- env: lepton/Driving-v0\n", ["expected a mapping"]),
    ("missing env", "description: x\nparams: {}\n", ["env: required field is missing", "Known ids"]),
]


@pytest.mark.parametrize("case,text,expected", MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_scenarios_give_specific_messages(tmp_path: Path, case: str, text: str, expected: list[str]) -> None:
    path = write(tmp_path, text)
    with pytest.raises(lepton_sim.ScenarioError) as err:
        load_scenario(path)
    message = str(err.value)
    assert str(path) in message, f"{case}: the message must name the file"
    for fragment in expected:
        assert fragment in message, f"{case}: {fragment!r} not in {message!r}"
    assert "Traceback" not in message


def test_unknown_scenario_name_suggests_close_ones() -> None:
    with pytest.raises(lepton_sim.ScenarioError, match="Did you mean: driving/obstacle-avoid"):
        load_scenario("driving/obstacle-avoidd")


def test_override_out_of_range_names_the_field() -> None:
    with pytest.raises(lepton_sim.ScenarioError, match="params.max_speed"):
        lepton_sim.make("driving/lane-keep", max_speed=-1)


def test_suite_with_a_bad_entry_names_split_index_and_field(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        description: s
        suite: true
        train: [{scenario: driving/lane-keep, episodes: 2}]
        test:
          - {scenario: driving/lane-keep, episodes: 2, seed: 100}
          - {scenario: driving/lane-keep, episodes: 2, seed: 200, params: {lanes: 9}}
        """,
        "suite.yaml",
    )
    with pytest.raises(lepton_sim.ScenarioError) as err:
        load_suite(path)
    assert "test[1]" in str(err.value) and "lanes" in str(err.value) and str(path) in str(err.value)


def test_suite_and_scenario_are_not_interchangeable(tmp_path: Path) -> None:
    with pytest.raises(lepton_sim.ScenarioError, match="this is a suite"):
        load_scenario("driving/standard")
    with pytest.raises(lepton_sim.ScenarioError, match="not a suite"):
        load_suite("driving/lane-keep")


def test_cli_lists_and_shows_scenarios(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["scenarios"]) == 0
    listing = capsys.readouterr().out
    assert "driving/obstacle-avoid" in listing and "suites:" in listing
    assert main(["scenarios", "show", "driving/lane-keep"]) == 0
    shown = capsys.readouterr().out
    assert "wheelbase:" in shown  # defaults filled in, not only what the file sets


def test_cli_reports_bad_scenario_without_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, GOOD.replace("lanes: 2", "lanes: 7"))
    assert main(["evaluate", "random", "--scenario", str(path), "--episodes", "1", "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "params.lanes" in err and "Traceback" not in err
