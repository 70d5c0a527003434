"""Compare several policies on the same suite rows: each input's value per row, and paired differences against a
baseline on the shared episode seeds (lepton_sim.paired_stats).

An input is a report (``report.json``, or the folder holding it) or an experiment's evaluation: ``EXP`` itself
when it has exactly one, or ``EXP/eval/<target>[-<split>]/``, whose ``seeds/s<seed>/report.json`` are the
ordinary reports of each training seed. An experiment's value on a row is the mean over its training seeds (with
a Student-t interval across them), and its per-episode value, for the pairing, the mean over training seeds on
that episode seed. Two experiments also get the probability of improvement across training seeds.

Rows are matched by label. A row whose episode seeds differ between inputs is an error: its numbers would not
be comparable. Skipped and failed rows are shown as such and not compared. Writing the tables and the figure is
lepton_sim.compare_output's job.
"""

from __future__ import annotations

import math
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from lepton_sim.envs.registration import LEPTON_ENVS
from lepton_sim.errors import LeptonError
from lepton_sim.paired_stats import (
    BOOTSTRAP_RESAMPLES,
    BOOTSTRAP_SEED,
    PairedDifference,
    average_probability_of_improvement,
    paired_difference,
    probability_of_improvement_interval,
)
from lepton_sim.report import EpisodeResult, Report, ScenarioResult, metric_unit
from lepton_sim.stats import metric_interval

SUCCESS, RETURN = "success", "return"
Interval = tuple[float, float, float]  # (value, low, high)
_SEED_FOLDER = re.compile(r"s(\d+)")


# ------------------------------------------------------------------------------------------- inputs
@dataclass
class CompareInput:
    """One policy to compare: a single report, or an experiment's reports, one per training seed."""

    name: str
    path: Path  # the report.json, or the experiment's evaluation folder, that was read
    reports: list[Report]
    training_seeds: list[int] | None = None  # an experiment's; None for a single report

    @property
    def is_experiment(self) -> bool:
        return self.training_seeds is not None


def load_input(path: str | Path) -> CompareInput:
    """Read a report.json, a folder holding one, an experiment or an experiment's evaluation folder."""
    path = Path(path)
    if not path.exists():
        raise LeptonError(f"{path}: no such file or folder")
    if path.is_dir() and (path / "seeds").is_dir():
        return _load_experiment_eval(path)
    if path.is_dir() and (path / "experiment.yaml").is_file():
        return _load_experiment_eval(_only_eval_folder(path))
    if path.is_dir() and not (path / "report.json").is_file():
        raise LeptonError(
            f"{path}: not a report folder (no report.json), an experiment (experiment.yaml) or an experiment's "
            "evaluation folder (seeds/s<seed>/report.json)"
        )
    report = Report.load(path)
    return CompareInput(
        name=_policy_name(report.policy), path=path / "report.json" if path.is_dir() else path, reports=[report]
    )


def _only_eval_folder(exp: Path) -> Path:
    evals = sorted(d for d in (exp / "eval").glob("*") if d.is_dir() and (d / "seeds").is_dir())
    if len(evals) == 1:
        return evals[0]
    if not evals:
        raise LeptonError(f"{exp}: experiment has no evaluation yet (no eval/<target>/seeds/s<seed>/report.json)")
    raise LeptonError(
        f"{exp}: experiment has {len(evals)} evaluations; give one of them: {', '.join(str(d) for d in evals)}"
    )


def _load_experiment_eval(folder: Path) -> CompareInput:
    found = [(int(m.group(1)), d) for d in (folder / "seeds").iterdir() if (m := _SEED_FOLDER.fullmatch(d.name))]
    found = sorted((seed, d / "report.json") for seed, d in found if (d / "report.json").is_file())
    if not found:
        raise LeptonError(f"{folder}: no training seed's report (seeds/s<seed>/report.json)")
    reports = [Report.load(p) for _, p in found]
    first_seed, first = found[0][0], reports[0]
    for (_, path), report in zip(found[1:], reports[1:]):
        rows = {row.label: row for row in report.rows}
        for row in first.rows:
            other = rows.get(row.label)
            if other is None:
                raise LeptonError(f"{path}: row {row.label!r} of s{first_seed}'s report is missing")
            if other.seeds != row.seeds:
                raise LeptonError(
                    f"{path}: row {row.label!r} ran episode seeds {_seeds_text(other.seeds)}, s{first_seed} ran "
                    f"{_seeds_text(row.seeds)}; an experiment's seeds must be evaluated alike"
                )
        extra = [label for label in rows if label not in {row.label for row in first.rows}]
        if extra:
            raise LeptonError(f"{path}: row {extra[0]!r} is not in s{first_seed}'s report")
    exp = folder.parent.parent if folder.parent.name == "eval" else folder
    return CompareInput(name=exp.name, path=folder, reports=reports, training_seeds=[seed for seed, _ in found])


def _policy_name(policy: str) -> str:
    """A report's policy as a short column name: a baseline's name, a run folder's name, ``run/model.zip``."""
    if "/" not in policy and "\\" not in policy:
        return policy
    p = Path(policy)
    return f"{p.parent.name}/{p.name}" if p.suffix == ".zip" and p.parent.name else p.name or policy


def _seeds_text(seeds: list[int]) -> str:
    if not seeds:
        return "none"
    if len(seeds) > 3 and seeds == list(range(seeds[0], seeds[0] + len(seeds))):
        return f"{seeds[0]}..{seeds[-1]}"
    return ", ".join(map(str, seeds[:4])) + (f", ... ({len(seeds)})" if len(seeds) > 4 else "")


# ------------------------------------------------------------------------------------------- the comparison
@dataclass
class Cell:
    """One input on one row: its value with an interval, or why it has none (``status``)."""

    status: str | None  # None: comparable; else "skipped: ...", "failed: ...", "not evaluated", "no <metric>"
    value: Interval = (math.nan, math.nan, math.nan)
    per_seed: np.ndarray = field(default_factory=lambda: np.array([]))  # each training seed's row value
    episodes: np.ndarray = field(default_factory=lambda: np.array([]))  # per episode seed, mean over training seeds

    @property
    def short_status(self) -> str:
        """``skipped``, ``failed``, ``not evaluated`` or ``no <metric>``, for a table cell."""
        text = re.sub(r"^s\d+: ", "", self.status or "")
        word = re.match(r"(skipped|failed)\b", text)
        return word.group(1) if word else text


@dataclass
class RowComparison:
    label: str
    seeds: list[int]  # the shared episode seeds
    cells: list[Cell]  # one per input, in input order
    differences: list[PairedDifference | None]  # other - baseline; None for the baseline and rows not compared
    improvement: list[Interval | None]  # P(other > baseline) across training seeds, for two experiments


@dataclass
class Comparison:
    metric: str
    unit: str | None
    inputs: list[CompareInput]
    baseline: int
    rows: list[RowComparison]
    target: str
    split: str | None
    improvement_overall: list[Interval | None]  # mean over rows of P(other > baseline) (rliable's average)
    resamples: int = BOOTSTRAP_RESAMPLES
    seed: int = BOOTSTRAP_SEED

    @property
    def names(self) -> list[str]:
        return [i.name for i in self.inputs]

    def improvement_applies(self, i: int) -> bool:
        """Whether input ``i`` and the baseline both have several training seeds (P(improvement) needs them)."""
        return i != self.baseline and _several_seeds(self.inputs[i]) and _several_seeds(self.inputs[self.baseline])


def _several_seeds(source: CompareInput) -> bool:
    return len(source.training_seeds or []) >= 2


def compare(
    inputs: Sequence[str | Path | CompareInput],
    baseline: str | int | None = None,
    metric: str = SUCCESS,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> Comparison:
    """Compare ``inputs`` on ``metric`` (``success``, ``return`` or a scenario metric) against ``baseline`` (a
    name, an input path or an index; default the first input)."""
    loaded = [i if isinstance(i, CompareInput) else load_input(i) for i in inputs]
    if len(loaded) < 2:
        raise LeptonError(f"compare needs at least two inputs, got {len(loaded)}")
    _unique_names(loaded)
    base = _baseline_index(loaded, baseline, inputs)
    metrics = {SUCCESS, RETURN} | {m for i in loaded for r in i.reports for row in r.rows for m in row.metrics}
    if metric not in metrics:
        allowed = [SUCCESS, RETURN, *sorted(metrics - {SUCCESS, RETURN})]
        raise LeptonError(f"metric {metric!r} is in none of these reports; allowed: {', '.join(allowed)}")
    labels = list(dict.fromkeys(row.label for i in [loaded[base], *loaded] for row in i.reports[0].rows))
    all_rows = [row for i in loaded for r in i.reports for row in r.rows]
    rows = [_compare_row(label, loaded, base, metric, resamples, seed) for label in labels]
    overall: list[Interval | None] = []
    for k in range(len(loaded)):
        samples = [(row.cells[k].per_seed, row.cells[base].per_seed) for row in rows if row.improvement[k]]
        overall.append(average_probability_of_improvement(samples, resamples=resamples, seed=seed) if samples else None)
    first = loaded[base].reports[0]
    return Comparison(
        metric=metric,
        unit=None if metric in (SUCCESS, RETURN) else metric_unit(all_rows, metric),
        inputs=loaded,
        baseline=base,
        rows=rows,
        target=first.target,
        split=first.split,
        improvement_overall=overall,
        resamples=resamples,
        seed=seed,
    )


def _unique_names(inputs: list[CompareInput]) -> None:
    """Give inputs that share a name (one policy's reports from two places) their position as a suffix."""
    names = [i.name for i in inputs]
    for k, i in enumerate(inputs):
        if names.count(i.name) > 1:
            i.name = f"{i.name}#{k}"


def _baseline_index(inputs: list[CompareInput], baseline: str | int | None, given: Sequence[object]) -> int:
    if baseline is None:
        return 0
    text = str(baseline)
    if isinstance(baseline, int) or re.fullmatch(r"\d+", text):
        if int(text) < len(inputs):
            return int(text)
    for k, i in enumerate(inputs):
        if text == i.name or (isinstance(given[k], (str, Path)) and Path(text) == Path(str(given[k]))):
            return k
    raise LeptonError(
        f"baseline {text!r} is not one of the inputs; give a name ({', '.join(i.name for i in inputs)}) or an "
        f"index 0..{len(inputs) - 1}"
    )


def _compare_row(
    label: str, inputs: list[CompareInput], base: int, metric: str, resamples: int, seed: int
) -> RowComparison:
    found = [[_row(r, label) for r in i.reports] for i in inputs]
    seeds_of = [rows[0].seeds if rows[0] is not None else None for rows in found]
    ref = next(k for k, s in enumerate(seeds_of) if s is not None)
    for k, seeds in enumerate(seeds_of):
        if seeds is not None and seeds != seeds_of[ref]:
            raise LeptonError(
                f"row {label!r}: {inputs[k].name} ran episode seeds {_seeds_text(seeds)} but {inputs[ref].name} ran "
                f"{_seeds_text(seeds_of[ref] or [])}; rows compare only on the same seeds (same suite, split and "
                "episodes)"
            )
    cells = [_cell(rows, inputs[k], metric) for k, rows in enumerate(found)]
    differences: list[PairedDifference | None] = [None] * len(inputs)
    improvement: list[Interval | None] = [None] * len(inputs)
    for k, cell in enumerate(cells):
        if k == base or cell.status or cells[base].status:
            continue
        differences[k] = paired_difference(cells[base].episodes, cell.episodes, resamples=resamples, seed=seed)
        if _several_seeds(inputs[k]) and _several_seeds(inputs[base]):
            improvement[k] = probability_of_improvement_interval(
                cell.per_seed, cells[base].per_seed, resamples=resamples, seed=seed
            )
    return RowComparison(
        label=label, seeds=list(seeds_of[ref] or []), cells=cells, differences=differences, improvement=improvement
    )


def _row(report: Report, label: str) -> ScenarioResult | None:
    return next((row for row in report.rows if row.label == label), None)


def _cell(rows: list[ScenarioResult | None], source: CompareInput, metric: str) -> Cell:
    """The metric of one input on one row; for an experiment, over its training seeds."""
    tags = [f"s{seed}: " for seed in source.training_seeds] if source.training_seeds is not None else [""]
    for tag, row in zip(tags, rows):
        if row is None:
            return Cell(f"{tag}not evaluated")
        if row.skipped:
            return Cell(f"{tag}skipped: {row.skipped}")
        if row.failed:
            return Cell(f"{tag}failed after {len(row.episodes)} of {len(row.seeds)} episodes: {row.failed}")
        if metric not in (SUCCESS, RETURN) and metric not in row.metrics:
            return Cell(f"no {metric}")
    present = [row for row in rows if row is not None]
    per_episode = np.array([[_episode_value(e, metric) for e in row.episodes] for row in present])
    per_seed = np.array([_row_value(row, metric)[0] for row in present])
    with warnings.catch_warnings():  # an episode seed where the metric applied on no training seed stays NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        episodes = np.nanmean(per_episode, axis=0)
    if not source.is_experiment:
        return Cell(None, _row_value(present[0], metric), per_seed, episodes)
    spec = LEPTON_ENVS.get(present[0].env)
    binary = metric == SUCCESS or (spec is not None and metric in spec.binary_metrics)
    bounds = (0.0, 1.0) if binary else (spec.metric_bounds.get(metric) if spec and metric != RETURN else None)
    return Cell(None, metric_interval(per_seed.tolist(), bounds), per_seed, episodes)


def _row_value(row: ScenarioResult, metric: str) -> Interval:
    if metric == SUCCESS:
        return (row.success_rate, *row.success_ci)
    if metric == RETURN:
        return (row.return_mean, *row.return_ci)
    mean, low, high = row.metrics[metric]
    return (mean, low, high)


def _episode_value(episode: EpisodeResult, metric: str) -> float:
    if metric == SUCCESS:
        return float(episode.success)
    if metric == RETURN:
        return float(episode.episode_return)
    return float(episode.metrics.get(metric, math.nan))
