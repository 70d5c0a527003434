"""Evaluation reports: per-episode results, per-scenario rows with confidence intervals, and the report as JSON
and Markdown. Two reports on the same suite and split hold the same seeds, so they compare row by row."""

from __future__ import annotations

import datetime as _dt
import json
import logging
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from lepton_sim.envs.registration import LEPTON_ENVS
from lepton_sim.errors import LeptonError
from lepton_sim.io import write_json_atomic, write_text_atomic
from lepton_sim.runs import git_commit, package_versions
from lepton_sim.scenario import Scenario
from lepton_sim.stats import mean_interval, metric_interval, wilson_interval

_LOG = logging.getLogger(__name__)


@dataclass
class EpisodeResult:
    seed: int
    episode_return: float
    length: int
    success: bool
    metrics: dict[str, float]


@dataclass
class ScenarioResult:
    label: str
    scenario: str
    env: str
    seeds: list[int]
    success_rate: float
    success_ci: tuple[float, float]
    return_mean: float
    return_ci: tuple[float, float]
    length_mean: float
    metrics: dict[str, tuple[float, float, float]]  # name -> (mean, low, high)
    episodes: list[EpisodeResult] = field(repr=False)
    skipped: str | None = None  # why the policy could not run here (e.g. another action space)
    env_overrides: dict[str, Any] = field(default_factory=dict)  # scenario params the policy changed to run
    # why the row could not finish (its simulator was lost twice); ``episodes`` keeps those that did finish, the
    # statistics stay NaN because a subset of the seeds is not the row's result
    failed: str | None = None

    @classmethod
    def skipped_row(
        cls,
        label: str,
        scenario: Scenario,
        seeds: list[int],
        reason: str,
        env_overrides: Mapping[str, Any] | None = None,
    ) -> "ScenarioResult":
        nan2 = (math.nan, math.nan)
        return cls(
            label=label,
            scenario=scenario.name,
            env=scenario.env,
            seeds=seeds,
            success_rate=math.nan,
            success_ci=nan2,
            return_mean=math.nan,
            return_ci=nan2,
            length_mean=math.nan,
            metrics={},
            episodes=[],
            skipped=reason,
            env_overrides=dict(env_overrides or {}),
        )

    @classmethod
    def failed_row(
        cls,
        label: str,
        scenario: Scenario,
        seeds: list[int],
        completed: list[EpisodeResult],
        reason: str,
        env_overrides: Mapping[str, Any] | None = None,
    ) -> "ScenarioResult":
        """A row whose episodes could not all run: the finished ones are kept, the reason recorded."""
        row = cls.skipped_row(label, scenario, seeds, "", env_overrides)
        row.skipped, row.failed, row.episodes = None, reason, list(completed)
        return row

    @classmethod
    def from_episodes(
        cls,
        label: str,
        scenario: Scenario,
        episodes: list[EpisodeResult],
        env_overrides: Mapping[str, Any] | None = None,
    ) -> "ScenarioResult":
        n = len(episodes)
        successes = sum(e.success for e in episodes)
        ret_mean, ret_lo, ret_hi = mean_interval([e.episode_return for e in episodes])
        return cls(
            label=label,
            scenario=scenario.name,
            env=scenario.env,
            seeds=[e.seed for e in episodes],
            success_rate=successes / n if n else math.nan,
            success_ci=wilson_interval(successes, n),
            return_mean=ret_mean,
            return_ci=(ret_lo, ret_hi),
            length_mean=float(np.mean([e.length for e in episodes])) if n else math.nan,
            metrics=_metric_intervals(scenario, episodes),
            episodes=episodes,
            env_overrides=dict(env_overrides or {}),
        )


def _metric_intervals(scenario: Scenario, episodes: list[EpisodeResult]) -> dict[str, tuple[float, float, float]]:
    """Each metric's mean and 95% interval, of the kind the env declares for it (see lepton_sim.stats).

    A value that contradicts the declaration gets a plain Student-t interval and a warning, not an error: the
    episodes are already run and are worth more than the interval."""
    spec = scenario.spec
    out = {}
    for m in scenario.metrics:
        values = [e.metrics[m] for e in episodes]
        try:
            out[m] = metric_interval(values, spec.metric_bounds.get(m), binary=m in spec.binary_metrics)
        except ValueError as err:
            _LOG.warning(
                f"{scenario.source or scenario.name}: metric {m} of {spec.id}: {err}; its interval is "
                "plain Student-t (fix metric_bounds / binary_metrics in the env's registration)"
            )
            out[m] = mean_interval(values)
    return out


@dataclass
class Report:
    policy: str
    target: str  # suite or scenario name
    split: str | None
    rows: list[ScenarioResult]
    created: str = field(default_factory=lambda: _dt.datetime.now().isoformat(timespec="seconds"))
    versions: dict[str, str] = field(default_factory=package_versions)
    git: dict[str, Any] = field(default_factory=git_commit)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_markdown(self) -> str:
        metric_names = list(dict.fromkeys(m for row in self.rows for m in row.metrics))
        units = [metric_unit(self.rows, m) for m in metric_names]
        head = ["scenario", "episodes", "success [95% CI]", "return [95% CI]", "length"]
        head += [metric_column(m, unit) for m, unit in zip(metric_names, units)]
        title = f"### {self.policy} on {self.target}" + (f" ({self.split})" if self.split else "")
        lines = [one_line(title), "", _table_row(head), "|" + "---|" * len(head)]
        for row in self.rows:
            if row.skipped or row.failed:
                note = (
                    f"skipped: {row.skipped}"
                    if row.skipped
                    else f"failed after {len(row.episodes)} of {len(row.seeds)} episodes: {row.failed}"
                )
                lines.append(_table_row([row.label, note] + [""] * (len(head) - 2)))
                continue
            cells = [
                row.label,
                str(len(row.seeds)),
                f"{row.success_rate:.0%} [{row.success_ci[0]:.0%}, {row.success_ci[1]:.0%}]",
                f"{row.return_mean:.2f} [{row.return_ci[0]:.2f}, {row.return_ci[1]:.2f}]",
                f"{row.length_mean:.0f}",
            ]
            cells += [_fmt_metric(row.metrics.get(m)) for m in metric_names]
            lines.append(_table_row(cells))
        lines += [
            "",
            "95% CIs: Wilson for success and 0/1 metrics, Student-t otherwise (clipped to each metric's "
            "range where the env declares one).",
        ]
        if any(row.failed for row in self.rows):
            lines.append("Failed rows: the episodes that finished are in report.json.")
        overrides = {_fmt_overrides(row.env_overrides) for row in self.rows if row.env_overrides}
        if overrides:  # a report never hides that the scenario was changed for this policy
            lines += ["", one_line(f"Scenario parameters set by the policy: {'; '.join(sorted(overrides))}")]
        return "\n".join(lines) + "\n"

    @classmethod
    def load(cls, path: str | Path) -> "Report":
        """Read a report.json written by :meth:`save` (or the folder holding it); JSON nulls are NaN again."""
        path = Path(path)
        path = path / "report.json" if path.is_dir() else path
        try:
            data = json.loads(path.read_text())
            rows = [_row_from_dict(row) for row in data["rows"]]
            return cls(
                policy=data["policy"],
                target=data["target"],
                split=data.get("split"),
                rows=rows,
                created=data.get("created", ""),
                versions=data.get("versions", {}),
                git=data.get("git", {}),
            )
        except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as err:
            raise LeptonError(f"{path}: not a lepton-sim report ({type(err).__name__}: {err})") from None

    def save(self, out_dir: str | Path) -> tuple[Path, Path]:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        json_path, md_path = out / "report.json", out / "report.md"
        write_json_atomic(json_path, self.to_dict())
        write_text_atomic(md_path, self.to_markdown())
        return json_path, md_path


def _nan(value: Any) -> Any:
    if value is None:
        return math.nan
    if isinstance(value, list):
        return tuple(_nan(v) for v in value)
    return value


def _row_from_dict(row: dict[str, Any]) -> ScenarioResult:
    episodes = [
        EpisodeResult(
            seed=e["seed"],
            episode_return=_nan(e["episode_return"]),
            length=e["length"],
            success=e["success"],
            metrics={k: _nan(v) for k, v in e["metrics"].items()},
        )
        for e in row["episodes"]
    ]
    numbers = ("success_rate", "success_ci", "return_mean", "return_ci", "length_mean")  # NaN was written as null
    fields = {
        k: _nan(v) if k in numbers else v
        for k, v in row.items()
        if k not in ("episodes", "metrics", "seeds", "env_overrides")
    }
    return ScenarioResult(
        **fields,
        seeds=list(row["seeds"]),
        episodes=episodes,
        metrics={k: _nan(v) for k, v in row["metrics"].items()},
        env_overrides=dict(row.get("env_overrides") or {}),
    )


def metric_unit(rows: list[ScenarioResult], metric: str) -> str | None:
    """The unit the rows' envs declare for ``metric`` (LeptonEnvSpec.metric_units; the first that declares one),
    None for a share, a 0/1 flag or an env that is not registered here."""
    for row in rows:
        spec = LEPTON_ENVS.get(row.env)
        if spec is not None and metric in spec.metric_units:
            return spec.metric_units[metric]
    return None


def metric_column(metric: str, unit: str | None) -> str:
    """A column name with its unit, as tables show it: ``mean_delay [s]``; no brackets without a unit."""
    return f"{metric} [{unit}]" if unit else metric


def one_line(text: str) -> str:
    """Whitespace (newlines of multi-line reprs such as a Dict space's) collapsed to single spaces."""
    return " ".join(str(text).split())


def _table_row(cells: list[str]) -> str:
    """One Markdown table row: each cell on one line and without '|', which would split it into two cells."""
    return "| " + " | ".join(one_line(c).replace("|", "¦") for c in cells) + " |"


def _fmt_overrides(overrides: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in overrides.items())


def _fmt_metric(value: tuple[float, float, float] | None) -> str:
    if value is None or math.isnan(value[0]):
        return "-"
    mean, lo, hi = value
    if mean == lo == hi:
        return f"{mean:.3g}"
    return f"{mean:.3g} [{lo:.3g}, {hi:.3g}]"
