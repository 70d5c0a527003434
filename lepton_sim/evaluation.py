"""One evaluation loop for every domain and policy: episodes on fixed seeds -> a report with confidence intervals.

Success comes from the scenario's ``success`` info key and the domain metrics from its ``metrics`` info keys, read
from each episode's final info, so the evaluator has no domain special cases. Two policies evaluated on the same
suite and split run the same seeds, so their reports compare row by row.
"""
from __future__ import annotations

import datetime as _dt
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal, Mapping

import numpy as np
from tqdm.auto import tqdm

from lepton_sim.errors import LeptonError
from lepton_sim.io import write_json_atomic, write_text_atomic
from lepton_sim.loading import load_policy
from lepton_sim.make import make_vec
from lepton_sim.policy import IncompatiblePolicy, Policy, PolicyContext, check_compatible
from lepton_sim.runs import git_commit, package_versions
from lepton_sim.scenario import Scenario, SuiteItem, is_suite, load_scenario, load_suite, suite_items
from lepton_sim.stats import mean_interval, wilson_interval

StepCallback = Callable[[Any, Mapping[str, Any], np.ndarray], None]  # (vector env, info, still-running mask)


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

    @classmethod
    def skipped_row(cls, label: str, scenario: Scenario, seeds: list[int], reason: str,
                    env_overrides: Mapping[str, Any] | None = None) -> "ScenarioResult":
        nan2 = (math.nan, math.nan)
        return cls(label=label, scenario=scenario.name, env=scenario.env, seeds=seeds, success_rate=math.nan,
                   success_ci=nan2, return_mean=math.nan, return_ci=nan2, length_mean=math.nan, metrics={},
                   episodes=[], skipped=reason, env_overrides=dict(env_overrides or {}))

    @classmethod
    def from_episodes(cls, label: str, scenario: Scenario, episodes: list[EpisodeResult],
                      env_overrides: Mapping[str, Any] | None = None) -> "ScenarioResult":
        n = len(episodes)
        successes = sum(e.success for e in episodes)
        ret_mean, ret_lo, ret_hi = mean_interval([e.episode_return for e in episodes])
        metrics = {m: mean_interval([e.metrics[m] for e in episodes]) for m in scenario.metrics}
        return cls(label=label, scenario=scenario.name, env=scenario.env, seeds=[e.seed for e in episodes],
                   success_rate=successes / n if n else math.nan, success_ci=wilson_interval(successes, n),
                   return_mean=ret_mean, return_ci=(ret_lo, ret_hi),
                   length_mean=float(np.mean([e.length for e in episodes])), metrics=metrics, episodes=episodes,
                   env_overrides=dict(env_overrides or {}))


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
        head = ["scenario", "episodes", "success [95% CI]", "return [95% CI]", "length", *metric_names]
        lines = [f"### {self.policy} on {self.target}" + (f" ({self.split})" if self.split else ""), "",
                 "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for row in self.rows:
            if row.skipped:
                lines.append(f"| {row.label} | skipped: {row.skipped} |" + " |" * (len(head) - 2))
                continue
            cells = [row.label, str(len(row.seeds)),
                     f"{row.success_rate:.0%} [{row.success_ci[0]:.0%}, {row.success_ci[1]:.0%}]",
                     f"{row.return_mean:.2f} [{row.return_ci[0]:.2f}, {row.return_ci[1]:.2f}]",
                     f"{row.length_mean:.0f}"]
            cells += [_fmt_metric(row.metrics.get(m)) for m in metric_names]
            lines.append("| " + " | ".join(cells) + " |")
        overrides = {_fmt_overrides(row.env_overrides) for row in self.rows if row.env_overrides}
        if overrides:  # a report never hides that the scenario was changed for this policy
            lines += ["", f"Scenario parameters set by the policy: {'; '.join(sorted(overrides))}"]
        return "\n".join(lines) + "\n"

    def save(self, out_dir: str | Path) -> tuple[Path, Path]:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        json_path, md_path = out / "report.json", out / "report.md"
        write_json_atomic(json_path, self.to_dict())
        write_text_atomic(md_path, self.to_markdown())
        return json_path, md_path


def _fmt_overrides(overrides: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in overrides.items())


def _fmt_metric(value: tuple[float, float, float] | None) -> str:
    if value is None or math.isnan(value[0]):
        return "-"
    mean, lo, hi = value
    if mean == lo == hi:
        return f"{mean:.3g}"
    return f"{mean:.3g} [{lo:.3g}, {hi:.3g}]"


def default_num_envs(scenario: Scenario, episodes: int) -> int:
    if scenario.spec.max_envs_per_process is not None:  # one simulation per process: one subprocess per core
        return max(1, min(episodes, os.cpu_count() or 1))
    return max(1, min(episodes, 16))


def sub_env_info(info: Mapping[str, Any], i: int) -> dict[str, Any]:
    """Sub-env ``i``'s entries of a Gymnasium vector info dict (keys with a ``_key`` mask; the nested
    ``final_info`` and ``final_obs`` of same-step autoreset are left out)."""
    out = {}
    for key, value in info.items():
        if key.startswith("_") or key in ("final_obs", "final_info") or isinstance(value, dict):
            continue
        mask = info.get(f"_{key}")
        if mask is None or mask[i]:
            out[key] = value[i]
    return out


def run_episodes(policy: Policy, scenario: Scenario, seeds: list[int], num_envs: int | None = None,
                 render_mode: str | None = None, on_step: StepCallback | None = None,
                 progress: tqdm | None = None, isolate: bool | None = None) -> list[EpisodeResult]:
    """Run one episode per seed, ``num_envs`` at a time, and return their results in seed order.

    ``isolate`` (default: the env spec's ``isolate_episodes``) runs each batch in fresh worker processes, for
    simulators whose episodes are not independent inside one process (libsumo)."""
    scenario = scenario.with_params(dict(policy.env_overrides))
    num_envs = min(num_envs or default_num_envs(scenario, len(seeds)), len(seeds))
    isolate = scenario.spec.isolate_episodes if isolate is None else isolate
    results: list[EpisodeResult] = []
    env = None
    try:
        for start in range(0, len(seeds), num_envs):
            if env is None:
                env = make_vec(scenario, num_envs, render_mode=render_mode, mode="async" if isolate else None)
                check_compatible(policy, env.single_observation_space, env.single_action_space,
                                 scenario.source or scenario.name)
            batch = seeds[start:start + num_envs]
            padded = batch + [seeds[-1] + 1 + k for k in range(num_envs - len(batch))]  # extra envs: discarded
            results += _run_batch(policy, env, scenario, padded, on_step)[:len(batch)]
            if progress is not None:
                progress.update(len(batch))
            if isolate:
                env.close()
                env = None
    finally:
        if env is not None:
            env.close()
    return results


def _run_batch(policy: Policy, env: Any, scenario: Scenario, seeds: list[int],
               on_step: StepCallback | None) -> list[EpisodeResult]:
    n = len(seeds)
    policy.reset(PolicyContext(observation_space=env.single_observation_space,
                               action_space=env.single_action_space, seeds=list(seeds), env_id=scenario.env,
                               scenario=scenario.name, params=dict(scenario.params)))
    obs, info = env.reset(seed=seeds)
    returns, lengths = np.zeros(n), np.zeros(n, dtype=int)
    running = np.ones(n, dtype=bool)
    finished: list[EpisodeResult | None] = [None] * n
    state, episode_start = None, np.ones(n, dtype=bool)
    while running.any():
        action, state = policy.act(obs, state, episode_start, info=info)
        episode_start = np.zeros(n, dtype=bool)
        obs, reward, terminated, truncated, info = env.step(action)
        returns += np.where(running, reward, 0.0)
        lengths += running
        if on_step is not None:
            on_step(env, info, running.copy())
        for i in np.flatnonzero(running & (terminated | truncated)):
            finished[i] = _episode_result(seeds[i], returns[i], lengths[i], sub_env_info(info, i), scenario)
            running[i] = False
    return finished  # type: ignore[return-value]


def _episode_result(seed: int, ret: float, length: int, info: dict[str, Any], scenario: Scenario) -> EpisodeResult:
    missing = [k for k in [scenario.success, *scenario.metrics] if k not in info]
    if missing:
        raise LeptonError(f"{scenario.source or scenario.name}: the env's info has no {', '.join(missing)} "
                          f"(success/metrics must be info keys); available: {', '.join(sorted(info))}")
    metrics = {m: float(info[m]) for m in scenario.metrics}
    return EpisodeResult(seed=int(seed), episode_return=float(ret), length=int(length),
                         success=bool(info[scenario.success]), metrics=metrics)


def evaluate(policy: str | Path | Policy, suite: str | Path | None = None, scenario: str | Path | None = None,
             split: Literal["train", "test"] = "test", episodes: int | None = None, seed: int | None = None,
             num_envs: int | None = None, out: str | Path | None = None, device: str = "auto",
             progress: bool = True, trust_pickle: bool = False) -> Report:
    """Evaluate ``policy`` (run folder, model file, baseline name or a Policy) on a suite split or one scenario.

    With a scenario, episodes default to 20 on seeds from ``seed`` (default: scenario seed + 100000, away from
    training seeds). ``out`` saves report.json and report.md there. ``trust_pickle``: allow loading a model by
    unpickling its files (old files from a trusted source; see lepton_sim.loading).
    """
    if (suite is None) == (scenario is None):
        raise LeptonError("give exactly one of a suite or a scenario to evaluate on")
    if scenario is not None and is_suite(scenario):
        suite, scenario = scenario, None
    if suite is not None:
        suite_obj = load_suite(suite)
        items = suite_items(suite_obj, split)
        if not items:
            raise LeptonError(f"{suite_obj.source}: split {split!r} is empty")
        if episodes is not None:
            items = [item.model_copy(update={"episodes": episodes}) for item in items]
        target, shown_split = suite_obj.name, split
    else:
        sc = load_scenario(scenario)
        n = episodes or 20
        items = [SuiteItem(label=sc.name, scenario=sc, episodes=n, seed=sc.seed + 100_000 if seed is None else seed)]
        target, shown_split = sc.name, None

    rows = []
    total = sum(item.episodes for item in items)
    with tqdm(total=total, desc="evaluating", unit="ep", disable=not progress) as bar:
        for item in items:
            pol = policy if isinstance(policy, Policy) else load_policy(policy, item.scenario, device=device,
                                                                          trust_pickle=trust_pickle)
            bar.set_postfix_str(item.label)
            name = pol.name
            try:
                episodes_run = run_episodes(pol, item.scenario, item.seeds, num_envs=num_envs, progress=bar)
            except IncompatiblePolicy as err:
                if suite is None:
                    raise
                bar.write(f"skipping {item.label}: {err}")  # a suite may mix action modes; report the gap
                rows.append(ScenarioResult.skipped_row(item.label, item.scenario, item.seeds, err.reason,
                                                       pol.env_overrides))
                bar.update(item.episodes)
                continue
            rows.append(ScenarioResult.from_episodes(item.label, item.scenario, episodes_run, pol.env_overrides))
    report = Report(policy=str(policy) if not isinstance(policy, Policy) else name, target=target,
                    split=shown_split, rows=rows)
    if out is not None:
        report.save(out)
    return report
