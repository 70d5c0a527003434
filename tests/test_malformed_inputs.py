"""Every malformed scenario or suite file is one clear error: the file, the field path and what is allowed, from
``lepton-sim scenarios show`` and ``lepton-sim evaluate`` alike, before any simulator starts; never a traceback,
a silent acceptance (NaN passing every bound, 2.5 lanes driving as 2) or gigabytes allocated for a count.

The corpus is ``tests/data/malformed/`` (driving, manufacturing, traffic scenarios and suites); ``expected.yaml``
there maps each file to a fragment of its message.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import yaml

import lepton_sim
from lepton_sim.cli import main
from lepton_sim.errors import ScenarioError
from lepton_sim.scenario import load_scenario, load_suite

REPO = Path(__file__).resolve().parent.parent
CORPUS = REPO / "tests" / "data" / "malformed"
EXPECTED: dict[str, str] = yaml.safe_load((CORPUS / "expected.yaml").read_text())
FILES = sorted(str(p.relative_to(CORPUS)) for p in CORPUS.glob("*/*.yaml"))
SI_NET = "sumo_rl:nets/single-intersection/single-intersection.net.xml"


def test_the_corpus_covers_every_domain_and_every_file_has_its_message() -> None:
    assert set(FILES) == set(EXPECTED), "every corpus file needs an entry in expected.yaml, and only those"
    folders = ("driving", "manufacturing", "traffic", "suites")
    per_folder = {d: sum(f.startswith(f"{d}/") for f in FILES) for d in folders}
    assert len(FILES) >= 60 and min(per_folder.values()) >= 10, per_folder


def _argv(command: str, rel: str, out: Path) -> list[str]:
    if command == "show":
        return ["scenarios", "show", rel]
    target = "--suite" if rel.startswith("tests/data/malformed/suites/") else "--scenario"
    return ["evaluate", "random", target, rel, "--episodes", "1", "--no-progress", "--out", str(out)]


@pytest.mark.parametrize("command", ["show", "evaluate"])
@pytest.mark.parametrize("name", FILES)
def test_a_malformed_file_is_one_clear_error(
    name: str, command: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(REPO)  # the files name SUMO files and other scenarios relative to the repository root
    rel = f"tests/data/malformed/{name}"
    code = main(_argv(command, rel, tmp_path / "report"))
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    assert code == 1, f"{name}: accepted (exit {code}); stdout: {out[-500:]}"
    assert err.startswith(f"lepton-sim {'scenarios' if command == 'show' else 'evaluate'}: error: {rel}"), err
    assert EXPECTED[name] in err, f"{name}: {EXPECTED[name]!r} not in {err!r}"
    assert sum("error:" in line for line in err.splitlines()) == 1, err
    assert len(err.splitlines()) <= 12, f"{name}: keep it readable: {len(err.splitlines())} lines"
    assert not (tmp_path / "report").exists(), "nothing may run for a malformed file"


# ----------------------------------------------------------------------------------- what must still load


def _write(tmp_path: Path, text: str, name: str = "s.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def test_whole_numbers_written_as_floats_are_integers(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        """
        env: lepton/Driving-v0
        params: {lanes: 2.0, obstacles: [1.0, 2], route_length: 200, sim_steps_per_action: 2.0}
        max_episode_steps: 100.0
        """,
    )
    scenario = load_scenario(path)
    params = scenario.spec.params_model(**scenario.params)
    assert (params.lanes.low, params.obstacles.high, params.sim_steps_per_action) == (2, 2, 2)
    assert scenario.max_episode_steps == 100


def test_yaml_merge_keys_are_not_duplicates(tmp_path: Path) -> None:
    """``<<: *entry`` then a key of the merged mapping is an override, not a repeated key."""
    path = _write(
        tmp_path,
        """
        suite: true
        test:
          - &base {scenario: driving/lane-keep, episodes: 2, seed: 100000}
          - {<<: *base, seed: 200000, label: lane-keep-again}
        """,
    )
    assert [e.seed for e in load_suite(path).test] == [100000, 200000]


def test_a_utf8_byte_order_mark_is_fine(tmp_path: Path) -> None:
    path = tmp_path / "bom.yaml"
    path.write_bytes(b"\xef\xbb\xbfenv: lepton/Driving-v0\nparams: {lanes: 2}\n")
    assert load_scenario(path).params == {"lanes": 2}


def test_the_largest_allowed_counts_load(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        """
        suite: true
        test: [{scenario: driving/lane-keep, episodes: 100000, seed: 1000000000}]
        """,
    )
    assert load_suite(path).test[0].episodes == 100_000


def test_untimed_departures_and_open_ended_flows_count_as_demand(tmp_path: Path) -> None:
    """Only plain departure seconds are checked against the window; anything SUMO resolves at run time
    (``triggered``, a flow without an end) is assumed to be due."""
    routes = tmp_path / "r.rou.xml"
    routes.write_text(
        '<routes>\n  <route id="r" edges="n_t t_s"/>\n  <vehicle id="v" route="r" depart="triggered"/>\n</routes>\n'
    )
    flows = tmp_path / "f.rou.xml"
    flows.write_text('<routes>\n  <flow id="f" from="n_t" to="t_s" begin="0" period="10"/>\n</routes>\n')
    for route in (routes, flows):
        scenario = load_scenario(
            _write(
                tmp_path,
                f"""
            env: lepton/TrafficSignal-v0
            params: {{net: "{SI_NET}", route: "{route}", begin: 500000, duration: 3600}}
            """,
            )
        )
        assert scenario.params["begin"] == 500000


# ----------------------------------------------------------------------------------- beyond the corpus files


def test_a_huge_file_is_refused_before_it_is_parsed(tmp_path: Path) -> None:
    path = tmp_path / "huge.yaml"
    path.write_text("env: lepton/Driving-v0\ndescription: " + "x" * (2 << 20) + "\n")
    with pytest.raises(ScenarioError, match=r"huge\.yaml: file is \d+ bytes; a scenario or suite file is at most"):
        load_scenario(path)


def test_overrides_from_python_are_checked_like_files() -> None:
    with pytest.raises(ScenarioError, match=r"params\.obstacles: .*a range needs finite numbers, got \[nan, 3\]"):
        lepton_sim.make("driving/obstacle-avoid", obstacles=[float("nan"), 3])
    with pytest.raises(ScenarioError, match=r"params\.lanes: .*an integer range needs whole numbers"):
        lepton_sim.make("driving/lane-keep", lanes=2.5)
    with pytest.raises(ScenarioError, match=r"max_episode_steps must be an integer in \[1, 1000000\]"):
        load_scenario("driving/lane-keep", max_episode_steps=True)


def test_a_scenario_file_in_a_directory_named_like_yaml_is_not_found(tmp_path: Path) -> None:
    (tmp_path / "dir.yaml").mkdir()
    with pytest.raises(ScenarioError, match="scenario file not found"):
        load_scenario(tmp_path / "dir.yaml")
