"""Statistics over training seeds (Agarwal et al. 2021, "Deep RL at the edge of the statistical precipice"), and
the experiment report that shows them beside each seed's own row.

One training run says little about an algorithm: seeds differ more than episodes do. An experiment trains one run
per seed, evaluates each on the same episodes, and this module sums the per-seed results up as rliable does:

- the interquartile mean (IQM): the mean of the middle 50% of the scores, ``scipy.stats.trim_mean(x, 0.25)``
  (rliable's ``aggregate_iqm``), robust to one outlying seed yet less noisy than the median; and the plain mean;
- 95% percentile intervals from a stratified bootstrap: each resample draws, within every task (scenario row),
  as many seeds as it has, with replacement, and computes the statistic over all of them. With one task it is a
  plain bootstrap over seeds, and draws exactly the resamples ``scipy.stats.bootstrap(..., method="percentile")``
  draws from the same generator seed.

The bootstrap generator is seeded (:data:`BOOTSTRAP_SEED`), so a report's intervals are reproducible. rliable
itself is not used: it needs the ``arch`` package, whose releases either fail to import with pandas 3 or no
longer take rliable's arguments; the protocol is small enough to follow here in numpy.
"""

from __future__ import annotations

import datetime as _dt
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal, Mapping, Sequence

import numpy as np
from scipy import stats

from lepton_sim.errors import LeptonError
from lepton_sim.io import write_json_atomic, write_text_atomic
from lepton_sim.report import Report, ScenarioResult, metric_column, metric_unit, one_line
from lepton_sim.runs import git_commit, package_versions

Statistic = Literal["iqm", "mean"]
Scores = Sequence[float] | np.ndarray  # one task's per-seed scores
STATISTICS: tuple[Statistic, ...] = ("iqm", "mean")
BOOTSTRAP_SEED = 0  # fixed, so the same per-seed results always give the same intervals
BOOTSTRAP_REPS = 50_000  # rliable's default number of resamples
CONFIDENCE = 0.95


def iqm(scores: Scores, axis: int | None = None) -> float | np.ndarray:
    """Interquartile mean: the mean after cutting 25% of the scores at each end (``int(0.25 * n)`` of them, as
    ``scipy.stats.trim_mean`` does; below 4 scores nothing is cut and it is the mean)."""
    return stats.trim_mean(np.asarray(scores, dtype=float), 0.25, axis=axis)


def _function(statistic: Statistic) -> Callable[[np.ndarray, int], np.ndarray]:
    if statistic == "iqm":
        return lambda x, axis: np.asarray(iqm(x, axis=axis))
    if statistic == "mean":
        return lambda x, axis: np.asarray(np.mean(x, axis=axis))
    raise ValueError(f"unknown statistic {statistic!r}; allowed: {', '.join(STATISTICS)}")


def point_estimate(tasks: Sequence[Scores], statistic: Statistic) -> float:
    """The statistic over every score of every task (rliable's aggregate over runs x tasks); NaN scores (a metric
    that did not apply) are left out, and NaN is returned when none is left."""
    pooled = np.concatenate([_finite(t) for t in tasks]) if tasks else np.array([])
    return float(_function(statistic)(pooled, 0)) if pooled.size else math.nan


def stratified_bootstrap(
    tasks: Sequence[Scores],
    statistic: Statistic = "iqm",
    reps: int = BOOTSTRAP_REPS,
    confidence: float = CONFIDENCE,
    seed: int = BOOTSTRAP_SEED,
) -> tuple[float, float, float]:
    """(estimate, low, high): the statistic over the scores of all ``tasks`` (one sequence of per-seed scores
    each) with a percentile interval from ``reps`` stratified resamples (seeds resampled within each task).

    NaN scores are left out per task; a task with none left drops out. One score in all gives a zero-width
    interval; none gives NaN."""
    kept = [x for x in map(_finite, tasks) if x.size]
    if not kept:
        return (math.nan, math.nan, math.nan)
    estimate = point_estimate(kept, statistic)
    rng = np.random.default_rng(seed)
    resamples = np.concatenate([x[rng.integers(0, x.size, (reps, x.size))] for x in kept], axis=1)
    values = _function(statistic)(resamples, 1)
    alpha = (1 - confidence) / 2
    low, high = np.percentile(values, [100 * alpha, 100 * (1 - alpha)])
    return (estimate, float(low), float(high))


def curve_band(
    curves: np.ndarray,
    statistic: Statistic = "iqm",
    reps: int = 2_000,
    confidence: float = CONFIDENCE,
    seed: int = BOOTSTRAP_SEED,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Learning curves of several seeds (``curves[seed, point]``) summed up point by point: the statistic over
    seeds and a percentile band from bootstrap resamples of whole seeds (a resampled seed keeps its curve)."""
    curves = np.asarray(curves, dtype=float)
    fn = _function(statistic)
    estimate = fn(curves, 0)
    if curves.shape[0] < 2:
        return estimate, estimate.copy(), estimate.copy()
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, curves.shape[0], (reps, curves.shape[0]))
    values = fn(curves[picks], 1)  # (reps, points)
    alpha = (1 - confidence) / 2
    low, high = np.percentile(values, [100 * alpha, 100 * (1 - alpha)], axis=0)
    return estimate, low, high


@dataclass(frozen=True)
class Aggregate:
    """One quantity summed up over training seeds: each statistic as (estimate, low, high)."""

    iqm: tuple[float, float, float]
    mean: tuple[float, float, float]

    @classmethod
    def of(cls, tasks: Sequence[Scores], reps: int = BOOTSTRAP_REPS, seed: int = BOOTSTRAP_SEED) -> Aggregate:
        return cls(
            iqm=stratified_bootstrap(tasks, "iqm", reps=reps, seed=seed),
            mean=stratified_bootstrap(tasks, "mean", reps=reps, seed=seed),
        )

    def get(self, statistic: Statistic) -> tuple[float, float, float]:
        return self.iqm if statistic == "iqm" else self.mean


def _finite(values: Scores) -> np.ndarray:
    x = np.asarray(values, dtype=float).ravel()
    return x[~np.isnan(x)]


# ------------------------------------------------------------------------------------------------ the report
@dataclass
class AggregateRow:
    """One scenario row of an experiment's evaluation: each training seed's row and their aggregate."""

    label: str
    scenario: str
    env: str
    episode_seeds: list[int]
    seed_rows: dict[int, ScenarioResult] = field(repr=False)
    success_rate: Aggregate | None = None
    return_mean: Aggregate | None = None
    length_mean: Aggregate | None = None
    metrics: dict[str, Aggregate] = field(default_factory=dict)
    skipped: str | None = None  # the same for every seed (the policy's spaces do not fit the scenario)
    failed: str | None = None  # a seed's row could not finish; no aggregate over the seeds that did

    @classmethod
    def of(cls, rows: Mapping[int, ScenarioResult], reps: int = BOOTSTRAP_REPS) -> "AggregateRow":
        first = next(iter(rows.values()))
        row = cls(first.label, first.scenario, first.env, list(first.seeds), dict(rows))
        failed = {seed: r.failed for seed, r in rows.items() if r.failed}
        skipped = {seed: r.skipped for seed, r in rows.items() if r.skipped}
        if failed:
            seed, why = next(iter(failed.items()))
            row.failed = f"seed {seed}: {why}"
            return row
        if skipped:
            row.skipped = next(iter(skipped.values()))
            return row

        def over_seeds(values: Callable[[ScenarioResult], float]) -> Aggregate:
            return Aggregate.of([[values(r) for r in rows.values()]], reps=reps)

        row.success_rate = over_seeds(lambda r: r.success_rate)
        row.return_mean = over_seeds(lambda r: r.return_mean)
        row.length_mean = over_seeds(lambda r: r.length_mean)
        row.metrics = {m: over_seeds(lambda r, m=m: r.metrics[m][0]) for m in first.metrics}  # type: ignore[misc]
        return row


@dataclass
class ExperimentReport:
    """An experiment evaluated on a suite or scenario: per scenario row, every training seed's row (from its
    ordinary :class:`Report`) and IQM and mean over seeds with stratified-bootstrap intervals; for a suite also
    the success rate over all its scenarios (seeds resampled within each scenario)."""

    policy: str  # the experiment folder
    algo: str
    target: str
    split: str | None
    seeds: list[int]
    rows: list[AggregateRow]
    overall_success: Aggregate | None = None  # over every scenario row that ran, when there are several
    reps: int = BOOTSTRAP_REPS
    bootstrap_seed: int = BOOTSTRAP_SEED
    created: str = field(default_factory=lambda: _dt.datetime.now().isoformat(timespec="seconds"))
    versions: dict[str, str] = field(default_factory=package_versions)
    git: dict[str, Any] = field(default_factory=git_commit)

    @classmethod
    def of(
        cls, reports: Mapping[int, Report], policy: str, algo: str = "", reps: int = BOOTSTRAP_REPS
    ) -> "ExperimentReport":
        """Aggregate per-seed reports of one target and split (the same rows and episode seeds in each)."""
        if not reports:
            raise LeptonError("an experiment report needs at least one seed's report")
        first = next(iter(reports.values()))
        shape = [(r.label, r.seeds) for r in first.rows]
        for seed, report in reports.items():
            if (report.target, report.split) != (first.target, first.split) or [
                (r.label, r.seeds) for r in report.rows
            ] != shape:
                raise LeptonError(
                    f"seed {seed}'s report is not on the same target, split, rows and episodes as the others"
                )
        rows = [AggregateRow.of({seed: rep.rows[i] for seed, rep in reports.items()}, reps) for i in range(len(shape))]
        ran = [row for row in rows if row.success_rate is not None]
        overall = None
        if len(ran) > 1:
            tasks = [[r.success_rate for r in row.seed_rows.values()] for row in ran]
            overall = Aggregate.of(tasks, reps=reps)
        return cls(policy, algo, first.target, first.split, list(reports), rows, overall, reps)

    def to_dict(self) -> dict[str, Any]:
        def seed_row(r: ScenarioResult) -> dict[str, Any]:
            return {
                "success_rate": r.success_rate,
                "success_ci": r.success_ci,
                "return_mean": r.return_mean,
                "return_ci": r.return_ci,
                "length_mean": r.length_mean,
                "metrics": r.metrics,
                "skipped": r.skipped,
                "failed": r.failed,
            }

        def row(r: AggregateRow) -> dict[str, Any]:
            return {
                "label": r.label,
                "scenario": r.scenario,
                "env": r.env,
                "episode_seeds": r.episode_seeds,
                "skipped": r.skipped,
                "failed": r.failed,
                "per_seed": {str(seed): seed_row(s) for seed, s in r.seed_rows.items()},
                "aggregate": {
                    "success_rate": _agg_dict(r.success_rate),
                    "return_mean": _agg_dict(r.return_mean),
                    "length_mean": _agg_dict(r.length_mean),
                    "metrics": {m: _agg_dict(a) for m, a in r.metrics.items()},
                },
            }

        return {
            "kind": "experiment-report",
            "policy": self.policy,
            "algo": self.algo,
            "target": self.target,
            "split": self.split,
            "seeds": self.seeds,
            "bootstrap": {
                "method": "percentile",
                "strata": "scenario rows (training seeds resampled within each)",
                "confidence": CONFIDENCE,
                "reps": self.reps,
                "seed": self.bootstrap_seed,
            },
            "rows": [row(r) for r in self.rows],
            "overall": {"success_rate": _agg_dict(self.overall_success)} if self.overall_success else None,
            "created": self.created,
            "versions": self.versions,
            "git": self.git,
        }

    def to_markdown(self) -> str:
        n = len(self.seeds)
        metric_names = list(dict.fromkeys(m for row in self.rows for m in row.metrics))
        all_rows = [r for row in self.rows for r in row.seed_rows.values()]
        head = ["scenario", "training seed", "episodes", "success [95% CI]", "return [95% CI]", "length"]
        head += [metric_column(m, metric_unit(all_rows, m)) for m in metric_names]
        title = f"### {self.algo or 'policy'} on {self.target}" + (f" ({self.split})" if self.split else "")
        title += f": {n} training seed{'s' if n != 1 else ''} ({self.policy})"
        lines = [one_line(title), "", _table_row(head), "|" + "---|" * len(head)]
        blank = [""] * (len(head) - 3)
        for row in self.rows:
            if row.skipped or row.failed:
                note = f"skipped: {row.skipped}" if row.skipped else f"failed: {row.failed}"
                lines.append(_table_row([row.label, "all", note, *blank]))
                continue
            for seed, r in row.seed_rows.items():
                cells = [row.label, f"s{seed}", str(len(r.seeds)), _rate(r.success_rate, r.success_ci)]
                cells += [_num(r.return_mean, r.return_ci, ".2f"), f"{r.length_mean:.0f}"]
                cells += [_metric(r.metrics.get(m)) for m in metric_names]
                lines.append(_table_row(cells))
            for statistic in STATISTICS:
                assert row.success_rate and row.return_mean and row.length_mean
                cells = [row.label, f"**{statistic.upper() if statistic == 'iqm' else statistic} of {n}**"]
                cells += [f"{len(row.episode_seeds)} each", _rate(*_split(row.success_rate.get(statistic)))]
                cells += [_num(*_split(row.return_mean.get(statistic)), ".2f")]
                cells += [_num(*_split(row.length_mean.get(statistic)), ".0f")]
                cells += [_metric(row.metrics[m].get(statistic) if m in row.metrics else None) for m in metric_names]
                lines.append(_table_row(cells))
        if self.overall_success is not None:
            scenarios = sum(row.success_rate is not None for row in self.rows)
            for statistic in STATISTICS:
                name = f"**{statistic.upper() if statistic == 'iqm' else statistic} of {n} x {scenarios}**"
                success = _rate(*_split(self.overall_success.get(statistic)))
                lines.append(_table_row(["all scenarios", name, "", success, *[""] * (len(head) - 4)]))
        lines += [
            "",
            "Rows s<seed>: one training seed's model, 95% CIs over its episodes (Wilson for success and 0/1 "
            "metrics, Student-t otherwise). IQM (interquartile mean) and mean rows: over the training seeds' "
            "values above, with 95% percentile intervals from a stratified bootstrap over training seeds "
            f"(Agarwal et al. 2021; {self.reps} resamples, generator seed {self.bootstrap_seed}). A metric that did "
            "not apply to a seed's episodes (time to goal without a success) is summed up over the seeds it did.",
        ]
        if self.overall_success is not None:
            lines.append(
                "All scenarios: the success rate over every scenario row and seed, seeds resampled within each "
                "scenario (returns differ in scale between scenarios, so they are summed up per row only)."
            )
        return "\n".join(lines) + "\n"

    def save(self, out_dir: str | Path) -> tuple[Path, Path]:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        json_path, md_path = out / "report.json", out / "report.md"
        write_json_atomic(json_path, self.to_dict())
        write_text_atomic(md_path, self.to_markdown())
        return json_path, md_path


def _table_row(cells: list[str]) -> str:
    return "| " + " | ".join(one_line(c).replace("|", "¦") for c in cells) + " |"


def _agg_dict(value: Aggregate | None) -> dict[str, tuple[float, float, float]] | None:
    return {"iqm": value.iqm, "mean": value.mean} if value is not None else None


def _split(value: tuple[float, float, float]) -> tuple[float, tuple[float, float]]:
    return value[0], (value[1], value[2])


def _rate(value: float, ci: tuple[float, float]) -> str:
    return "-" if math.isnan(value) else f"{value:.0%} [{ci[0]:.0%}, {ci[1]:.0%}]"


def _num(value: float, ci: tuple[float, float], fmt: str) -> str:
    return "-" if math.isnan(value) else f"{value:{fmt}} [{ci[0]:{fmt}}, {ci[1]:{fmt}}]"


def _metric(value: tuple[float, float, float] | None) -> str:
    if value is None or math.isnan(value[0]):
        return "-"
    mean, lo, hi = value
    return f"{mean:.3g}" if mean == lo == hi else f"{mean:.3g} [{lo:.3g}, {hi:.3g}]"
