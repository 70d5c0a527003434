"""``lepton-sim compare`` and its statistics: paired differences on shared episode seeds (bootstrap interval,
Wilcoxon p-value), the probability of improvement across training seeds, metric units in report columns, and
the command end to end on real reports (scripted vs random on driving/standard) and on a fabricated pair of
experiments in the layout lepton_sim.experiments writes."""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

import lepton_sim
from lepton_sim.cli import main
from lepton_sim.compare import compare
from lepton_sim.compare_output import axis_labels, to_csv, to_latex, to_markdown
from lepton_sim.paired_stats import (
    MIN_WILCOXON_PAIRS,
    average_probability_of_improvement,
    bootstrap_mean_interval,
    paired_difference,
    probability_of_improvement,
    probability_of_improvement_interval,
    wilcoxon_p,
)
from lepton_sim.report import EpisodeResult, Report, ScenarioResult


def run_cli(argv: list[str]) -> int:
    """``main`` as the shell sees it: argparse's usage errors arrive as SystemExit."""
    try:
        return main(argv)
    except SystemExit as exit_:
        return exit_.code if isinstance(exit_.code, int) else 1


# ------------------------------------------------------------------------------------------- statistics
def test_paired_difference_of_a_known_sample() -> None:
    d = paired_difference([1.0, 2.0, 3.0, 4.0], [2.0, 2.0, 5.0, 3.0])  # differences 1, 0, 2, -1
    assert d.pairs == 4 and d.mean == pytest.approx(0.5)
    assert d.low <= 0.5 <= d.high
    # a pair where either side has no value (NaN: the metric did not apply) is left out
    d = paired_difference([1.0, math.nan, 3.0], [2.0, 5.0, math.nan])
    assert d.pairs == 1 and d.mean == 1.0 and (d.low, d.high) == (1.0, 1.0)
    with pytest.raises(ValueError, match="one length"):
        paired_difference([1.0, 2.0], [1.0])


def test_the_bootstrap_interval_by_hand_and_as_n_grows() -> None:
    # resamples of [0, 1] have means 0, 1/2, 1 with probabilities 1/4, 1/2, 1/4: the 2.5% and 97.5% points are 0, 1
    assert bootstrap_mean_interval([0.0, 1.0]) == (0.5, 0.0, 1.0)
    assert bootstrap_mean_interval([2.0, 2.0, 2.0]) == (2.0, 2.0, 2.0)
    assert all(math.isnan(v) for v in bootstrap_mean_interval([]))
    rng = np.random.default_rng(7)
    widths = []
    for n in (20, 500):
        x = rng.normal(1.0, 2.0, n)
        mean, low, high = bootstrap_mean_interval(x)
        assert mean == pytest.approx(x.mean()) and low < mean < high
        widths.append(high - low)
        assert bootstrap_mean_interval(x) == (mean, low, high)  # fixed RNG seed: reproducible
    assert widths[1] < widths[0] / 3  # ~1/sqrt(n): 5x narrower for 25x the pairs
    normal_width = 2 * 1.96 * 2.0 / math.sqrt(500)  # the normal approximation for n = 500
    assert widths[1] == pytest.approx(normal_width, rel=0.15)


def test_wilcoxon_matches_scipy_and_says_when_it_cannot_test() -> None:
    d = np.array([0.0, 0.0, 1.5, -0.5, 2.0, 3.0, 2.5, 4.0, -1.0, 0.7])
    p, note = wilcoxon_p(d)
    assert note is None and p == pytest.approx(stats.wilcoxon(d).pvalue)
    d = np.random.default_rng(3).normal(0.4, 1.0, 40)
    assert wilcoxon_p(d)[0] == pytest.approx(stats.wilcoxon(d).pvalue)
    assert paired_difference(np.zeros(40), d).p_value == pytest.approx(stats.wilcoxon(d).pvalue)
    p, note = wilcoxon_p([0.0, 0.0, 0.0])  # scipy cannot rank nothing: a note, no crash
    assert math.isnan(p) and note == "all 3 differences 0"
    p, note = wilcoxon_p([1.0, -2.0, 0.0, 3.0])
    assert math.isnan(p) and note == "only 3 non-zero pairs"
    assert wilcoxon_p([]) == (pytest.approx(math.nan, nan_ok=True), "no pairs")
    assert not math.isnan(wilcoxon_p(np.arange(1.0, MIN_WILCOXON_PAIRS + 1))[0])


def test_probability_of_improvement_of_known_samples() -> None:
    assert probability_of_improvement([5.0, 6.0, 7.0], [1.0, 2.0]) == 1.0  # all of X above all of Y
    assert probability_of_improvement([1.0, 2.0], [5.0, 6.0, 7.0]) == 0.0
    assert probability_of_improvement([1.0, 2.0, 3.0], [1.0, 2.0, 3.0]) == 0.5  # identical
    # 3 > 1, 3 > 2, 3 = 3 (1/2), 4 and 5 above all three: 8.5 of 9 pairs
    x, y = [3.0, 4.0, 5.0], [1.0, 2.0, 3.0]
    assert probability_of_improvement(x, y) == pytest.approx(8.5 / 9)
    assert probability_of_improvement(x, y) == pytest.approx(stats.mannwhitneyu(x, y).statistic / 9)
    assert probability_of_improvement_interval([5.0, 6.0, 7.0], [1.0, 2.0]) == (1.0, 1.0, 1.0)
    p, low, high = probability_of_improvement_interval(x, y)
    assert low <= p <= high <= 1.0 and low < p
    assert average_probability_of_improvement([([5.0, 6.0], [1.0, 2.0]), (x, x)])[0] == pytest.approx(0.75)


# ------------------------------------------------------------------------------------------- units
def _episode(seed: int, success: bool, ret: float = 0.0, speed: float = 10.0) -> EpisodeResult:
    metrics = {"route_completion": 1.0, "off_road": 0.0, "time_to_goal": 20.0 if success else math.nan}
    return EpisodeResult(seed, ret, 100, success, {**metrics, "average_speed": speed})


def test_report_and_compare_columns_carry_units() -> None:
    scenario = lepton_sim.load_scenario("driving/lane-keep")
    row = ScenarioResult.from_episodes("lane-keep", scenario, [_episode(0, True), _episode(1, False)])
    head = Report("p", "t", None, [row]).to_markdown().splitlines()[2]
    assert "| time_to_goal [s] |" in head and "| average_speed [m/s] |" in head
    assert "| route_completion |" in head and "| off_road |" in head  # a share and a 0/1 flag: no unit
    assert lepton_sim.load_scenario("traffic/single-intersection").spec.metric_units["mean_delay"] == "s"
    assert lepton_sim.load_scenario("manufacturing/conveyor-pick").spec.metric_units["parts_per_minute"] == "1/min"
    a, b = Report("a", "t", None, [row]), Report("b", "t", None, [row])
    from lepton_sim.compare import CompareInput

    c = compare([CompareInput("a", Path("a"), [a]), CompareInput("b", Path("b"), [b])], metric="average_speed")
    assert "| Δ b [m/s] |" in to_markdown(c) and c.unit == "m/s"
    assert axis_labels(c) == (
        "average_speed [m/s]\n(mean, 95% CI)",
        "Δ average_speed vs a [m/s]\n(paired, 95% bootstrap CI)",
    )
    c = compare([CompareInput("a", Path("a"), [a]), CompareInput("b", Path("b"), [b])])
    assert axis_labels(c)[1].startswith("Δ success rate vs a [percentage points]")


# ------------------------------------------------------------------------------------------- end to end
@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """scripted and random on driving/standard's test split, 3 episodes a row: the same episode seeds."""
    root = tmp_path_factory.mktemp("reports")
    for policy in ("scripted", "random"):
        lepton_sim.evaluate(policy, suite="driving/standard", episodes=3, out=root / policy, progress=False)
    return {"scripted": root / "scripted", "random": root / "random"}


def _csv(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(path.read_text())))


def test_compare_scripted_and_random_through_the_cli(
    reports: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "cmp"
    code = run_cli(["compare", str(reports["random"]), str(reports["scripted"] / "report.json"), "--out", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    md, tex, table = (out / "success.md").read_text(), (out / "success.tex").read_text(), _csv(out / "success.csv")
    assert md in printed and f"figure: {out / 'success.png'}" in printed
    assert (out / "success.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = len(lepton_sim.load_suite("driving/standard").test)  # the suite's test rows, each compared once
    lines = [line for line in md.splitlines() if line.startswith("|")]
    assert lines[0] == "| row | episodes | random (baseline) | scripted | Δ scripted [pp] | p (scripted) |"
    assert len(lines) == 2 + rows and len({line.count("|") for line in lines}) == 1
    assert "needs several training seeds" in md
    # LaTeX: booktabs, one line per suite row with the header's columns
    body = tex[tex.index(r"\midrule") : tex.index(r"\bottomrule")].splitlines()[1:]
    assert r"\toprule" in tex and r"\begin{tabular}{lrrrrr}" in tex and len(body) == rows
    assert all(line.count("&") == 5 and line.endswith(r"\\") for line in body)
    assert r"$\Delta$ scripted [pp]" in tex and r"100\%" in tex
    # CSV: the raw numbers; scripted succeeds more often than random on the same seeds
    scripted = [r for r in table if r["policy"] == "scripted"]
    assert len(table) == 2 * rows and len(scripted) == rows
    assert all(r["baseline"] == "true" for r in table if r["policy"] == "random")
    assert all(float(r["diff_mean"]) > 0 and r["pairs"] == "3" for r in scripted)
    assert sum(float(r["diff_mean"]) for r in scripted) / rows > 0.5
    random_report = Report.load(reports["random"])
    assert [float(r["mean"]) for r in table if r["policy"] == "random"] == [
        pytest.approx(row.success_rate) for row in random_report.rows
    ]


def test_compare_defaults_baseline_metric_and_figure_format(
    reports: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["compare", str(reports["scripted"]), str(reports["random"]), "--baseline", "scripted", "--metric"]
    assert run_cli([*argv, "return", "--figure", "svg"]) == 0
    out = reports["scripted"] / "compare"  # beside the first input's report.json
    assert b"<svg" in (out / "return.svg").read_bytes()[:1000]
    assert all(float(r["diff_mean"]) < 0 for r in _csv(out / "return.csv") if r["policy"] == "random")
    assert run_cli([*argv, "average_speed", "--baseline", "1"]) == 0  # by index: random is the baseline
    assert "random (baseline)" in (out / "average_speed.md").read_text()
    assert "| Δ scripted [m/s] |" in capsys.readouterr().out


def _one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("lepton-sim compare: error: ") and "\n" not in err and "Traceback" not in err
    return err


def test_rows_on_other_seeds_are_an_error_naming_the_row(
    reports: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    other = Report.load(reports["random"])
    other.rows[1].seeds = [s + 1 for s in other.rows[1].seeds]
    other.save(tmp_path / "shifted")
    assert run_cli(["compare", str(reports["scripted"]), str(tmp_path / "shifted"), "--out", str(tmp_path / "o")]) == 1
    err = _one_error_line(capsys)
    assert "row 'lane-keep-sharp-curves'" in err and "episode seeds 200001, 200002, 200003" in err
    assert not (tmp_path / "o").exists()


def test_skipped_and_failed_rows_are_shown_and_not_compared(
    reports: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = Report.load(reports["random"])
    scenario = lepton_sim.load_scenario("driving/dense-traffic")
    first, last = report.rows[4], report.rows[5]
    report.rows[4] = ScenarioResult.skipped_row(first.label, scenario, first.seeds, "another action space")
    report.rows[5] = ScenarioResult.failed_row(last.label, scenario, last.seeds, last.episodes[:1], "SUMO died")
    report.save(tmp_path / "partial")
    assert run_cli(["compare", str(reports["scripted"]), str(tmp_path / "partial"), "--out", str(tmp_path)]) == 0
    md = (tmp_path / "success.md").read_text()
    assert "| driving/dense-traffic | 3 | 100% [44%, 100%] | skipped | - | - |" in md
    assert "| dense-traffic-two-lanes | 3 | 67% [21%, 94%] | failed | - | - |" in md
    assert "Not compared: driving/dense-traffic, random: skipped: another action space" in md
    assert "Not compared: dense-traffic-two-lanes, random: failed after 1 of 3 episodes: SUMO died" in md
    rows = {r["row"]: r for r in _csv(tmp_path / "success.csv") if r["policy"] == "random"}
    assert (
        rows["driving/dense-traffic"]["status"].startswith("skipped")
        and rows["driving/dense-traffic"]["diff_mean"] == ""
    )
    assert rows["driving/lane-keep"]["diff_mean"] == "-1"


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["{missing}", "{random}"], "no such file or folder"),
        (["{empty}", "{random}"], "not a report folder (no report.json)"),
        (["{notreport}", "{random}"], "not a lepton-sim report"),
        (["{random}"], "compare needs at least two inputs, got 1"),
        (["{random}", "{scripted}", "--metric", "fuel"], "metric 'fuel' is in none of these reports; allowed: success"),
        (["{random}", "{scripted}", "--baseline", "ppo"], "baseline 'ppo' is not one of the inputs"),
        (["{random}", "{scripted}", "--baseline", "7"], "index 0..1"),
    ],
)
def test_bad_input_is_one_line(
    argv: list[str], fragment: str, reports: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "notreport.json").write_text("{}")
    paths = {
        "missing": tmp_path / "missing",
        "empty": tmp_path / "empty",
        "notreport": tmp_path / "notreport.json",
        **{k: v for k, v in reports.items()},
    }
    argv = [a.format(**{k: str(v) for k, v in paths.items()}) for a in argv]
    assert run_cli(["compare", *argv, "--out", str(tmp_path / "out")]) == 1
    assert fragment in _one_error_line(capsys)


def test_a_malformed_command_line_is_a_usage_error(reports: dict[str, Path]) -> None:
    assert run_cli(["compare", str(reports["random"]), str(reports["scripted"]), "--figure", "gif"]) == 2
    assert run_cli(["compare"]) == 2


# ------------------------------------------------------------------------------------------- experiments
# per training seed, the successes of 4 episodes on each row; "clear": every seed of A above every seed of B,
# "tied": the same success rate on every seed
A = {0: {"clear": [1, 1, 1, 1], "tied": [1, 0, 1, 0]}, 1: {"clear": [1, 1, 1, 0], "tied": [1, 0, 1, 0]},
     2: {"clear": [1, 1, 1, 1], "tied": [1, 0, 1, 0]}}  # fmt: skip
B = {0: {"clear": [1, 0, 0, 0], "tied": [0, 1, 0, 1]}, 1: {"clear": [0, 0, 0, 0], "tied": [0, 1, 0, 1]},
     2: {"clear": [1, 1, 0, 0], "tied": [0, 1, 0, 1]}}  # fmt: skip


def _experiment(root: Path, name: str, successes: dict[int, dict[str, list[int]]], seeds_shift: int = 0) -> Path:
    """An experiment folder as lepton_sim.experiments lays it out, with each seed's report written by Report.save."""
    scenario = lepton_sim.load_scenario("driving/lane-keep")
    exp = root / name
    exp.mkdir(parents=True)
    (exp / "experiment.yaml").write_text(f"kind: experiment\nscenario: driving/lane-keep\nseeds: {list(successes)}\n")
    for seed, rows in successes.items():
        (exp / f"s{seed}").mkdir()
        report_rows = []
        for label, flags in rows.items():
            first = 100_000 + (seeds_shift if seed == 2 else 0)
            episodes = [_episode(first + k, bool(f), ret=10.0 * f) for k, f in enumerate(flags)]
            report_rows.append(ScenarioResult.from_episodes(label, scenario, episodes))
        Report(f"runs/{name}/s{seed}", "driving/standard", "test", report_rows).save(
            exp / "eval" / "driving-standard-test" / "seeds" / f"s{seed}"
        )
    return exp


def test_two_experiments_get_the_probability_of_improvement(tmp_path: Path) -> None:
    exp_a, exp_b = _experiment(tmp_path, "ppo-seeds", A), _experiment(tmp_path, "sac-seeds", B)
    # an experiment folder (its only evaluation) and an evaluation folder are both inputs
    c = compare([exp_b / "eval" / "driving-standard-test", exp_a])
    assert c.names == ["sac-seeds", "ppo-seeds"] and c.inputs[1].training_seeds == [0, 1, 2]
    clear, tied = c.rows
    assert clear.improvement[1] == (1.0, 1.0, 1.0)  # every seed of A above every seed of B
    assert tied.improvement[1] == (0.5, 0.5, 0.5)  # the same on every seed
    assert c.improvement_overall[1] == pytest.approx((0.75, 0.75, 0.75))
    # values: the mean over training seeds; pairs: per episode seed, the mean over training seeds
    assert clear.cells[1].value[0] == pytest.approx(np.mean([1.0, 0.75, 1.0]))
    d = clear.differences[1]
    assert d is not None and d.pairs == 4 and d.mean == pytest.approx(np.mean([1 / 3, 2 / 3, 1, 2 / 3]))
    assert d.note == "only 4 non-zero pairs"
    assert tied.differences[1] is not None and tied.differences[1].mean == 0.0
    md = to_markdown(c)
    assert "| P(ppo-seeds > sac-seeds) |" in md.splitlines()[2] and "| 1.00 [1.00, 1.00] |" in md
    assert "Mean over the compared rows: ppo-seeds 0.75 [0.75, 0.75]" in md
    assert "ppo-seeds: experiment, mean over 3 training seeds (s0, s1, s2)" in md
    assert r"P(ppo-seeds $>$ sac-seeds)" in to_latex(c)
    table = {(r["row"], r["policy"]): r for r in csv.DictReader(io.StringIO(to_csv(c)))}
    assert (
        table[("clear", "ppo-seeds")]["p_improvement"] == "1" and table[("tied", "ppo-seeds")]["p_improvement"] == "0.5"
    )
    assert table[("clear", "ppo-seeds")]["training_seeds"] == "0 1 2"


def test_an_experiment_against_a_single_report_says_it_needs_seeds(tmp_path: Path) -> None:
    exp = _experiment(tmp_path, "ppo-seeds", A)
    single = tmp_path / "single"
    Report.load(exp / "eval" / "driving-standard-test" / "seeds" / "s1").save(single)
    c = compare([single, exp])
    assert all(imp is None for row in c.rows for imp in row.improvement)
    assert "needs several training seeds on both sides (experiments); s1 has one" in to_markdown(c)


def test_experiment_layout_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    exp = _experiment(tmp_path, "two-evals", A)
    train = exp / "eval" / "driving-standard-train" / "seeds" / "s0"
    Report.load(exp / "eval" / "driving-standard-test" / "seeds" / "s0").save(train)
    assert run_cli(["compare", str(exp), str(exp / "eval" / "driving-standard-test")]) == 1
    err = _one_error_line(capsys)
    assert "experiment has 2 evaluations; give one of them: " in err and "driving-standard-train" in err
    # a training seed evaluated on other episode seeds: its reports do not pair with the others'
    shifted = _experiment(tmp_path, "shifted", A, seeds_shift=1)
    assert run_cli(["compare", str(shifted), str(exp / "eval" / "driving-standard-test")]) == 1
    err = _one_error_line(capsys)
    assert "s2/report.json: row 'clear' ran episode seeds 100001" in err and "s0 ran 100000..100003" in err
    (tmp_path / "fresh").mkdir()
    (tmp_path / "fresh" / "experiment.yaml").write_text("kind: experiment\n")
    assert run_cli(["compare", str(tmp_path / "fresh"), str(shifted)]) == 1
    assert "experiment has no evaluation yet" in _one_error_line(capsys)
