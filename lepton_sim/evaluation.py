"""One evaluation loop for every domain and policy: episodes on fixed seeds -> a report with confidence intervals.

Success comes from the scenario's ``success`` info key and the domain metrics from its ``metrics`` info keys, read
from each episode's final info, so the evaluator has no domain special cases. Two policies evaluated on the same
suite and split run the same seeds, so their reports compare row by row.

A simulator lost mid-way (a worker process dies, an env raises) costs one retry, not the evaluation: the batch of
episodes runs again in a fresh vector env (fresh worker processes). If the retry fails too, the rows and episodes
finished so far are saved as a partial report, the failed row marked ``failed`` with the cause, and a
:class:`EvaluationFailed` names the scenario, the seeds, the cause and the report's path in one line.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Mapping, Protocol

import numpy as np
from gymnasium.vector import AsyncVectorEnv
from tqdm.auto import tqdm

from lepton_sim.errors import LeptonError
from lepton_sim.loading import load_policy
from lepton_sim.make import make_vec
from lepton_sim.policy import IncompatiblePolicy, Policy, PolicyContext, check_compatible
from lepton_sim.report import EpisodeResult, Report, ScenarioResult, one_line
from lepton_sim.scenario import Scenario, SuiteItem, SuiteSplit, is_suite, load_scenario, load_suite, suite_items

_LOG = logging.getLogger(__name__)
# (vector env, info, still-running mask, observation and reward after the step): rollout videos draw from them
StepCallback = Callable[[Any, Mapping[str, Any], np.ndarray, Any, np.ndarray], None]


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


# ---------------------------------------------------------------------------------------------- lost simulators


class EpisodesFailed(LeptonError):
    """A batch of episodes lost its simulator on every attempt (normally two: a retry in a fresh vector env).

    ``completed`` holds every episode that did finish (earlier batches and the failed batch's finished ones), in
    seed order, so a caller can keep them; ``seeds`` the seeds that did not finish; ``causes`` one line each."""

    def __init__(self, where: str, seeds: list[int], causes: list[str], completed: list[EpisodeResult]) -> None:
        super().__init__(f"{where}: the batch of {_seeds_text(seeds)} failed{_attempts_text(causes)}")
        self.where, self.seeds, self.causes, self.completed = where, seeds, causes, completed

    @property
    def cause(self) -> str:
        """The last attempt's cause."""
        return self.causes[-1]


class EvaluationFailed(LeptonError):
    """An evaluation stopped on a lost simulator; ``report`` is the partial report saved at ``report_dir``."""

    def __init__(self, message: str, report: "Report", report_dir: Path, failure: EpisodesFailed) -> None:
        super().__init__(message)
        self.report, self.report_dir, self.failure = report, report_dir, failure


class _BatchFailed(Exception):
    """Internal: the vector env failed during a batch; carries the cause and the episodes finished before it."""

    def __init__(self, cause: str, finished: list[EpisodeResult | None]) -> None:
        super().__init__(cause)
        self.cause, self.finished = cause, finished


def _attempts_text(causes: list[str]) -> str:
    """', also when retried in a fresh env: <cause>', with the first attempt's cause where it differs by more
    than numbers (pids, times)."""
    if len(causes) == 1:
        return f": {causes[0]}"
    same = re.sub(r"\d+", "#", causes[-1]) == re.sub(r"\d+", "#", causes[0])
    return f", also when retried in a fresh env: {causes[-1]}" + ("" if same else f" (first attempt: {causes[0]})")


def _seeds_text(seeds: list[int]) -> str:
    return f"seed {seeds[0]}" if len(seeds) == 1 else f"seeds {', '.join(map(str, seeds))}"


def _describe_failure(err: BaseException, env: Any, seeds: list[int]) -> str:
    """One line: which sub-env (and seed) failed and why: a dead worker process's exit, or the env's exception."""
    text = one_line(f"{type(err).__name__}: {err}" if str(err) else type(err).__name__).rstrip(".")
    if len(text) > 300:
        text = text[:297] + "..."
    if not isinstance(env, AsyncVectorEnv):
        return text
    if isinstance(err, (EOFError, OSError)):  # a worker died: its end of the pipe closed (EOF, reset, broken)
        dead = []
        for i, proc in enumerate(env.processes):
            proc.join(timeout=0.5 if proc.is_alive() else 0)  # (it may need a moment to be reaped)
            if proc.exitcode is not None:
                code = proc.exitcode
                how = (
                    f"killed by {signal.Signals(-code).name}"
                    if code < 0 and -code in signal.valid_signals()
                    else f"exit code {code}"
                )
                dead.append(f"worker process {proc.pid} of sub-env {i} (seed {seeds[i]}) died ({how})")
        if dead:
            return "; ".join(dead)
        return text
    raised = [i for i, pipe in enumerate(env.parent_pipes) if pipe is None]  # gymnasium drops a raising worker's
    if len(raised) == 1:
        return f"sub-env {raised[0]} (seed {seeds[raised[0]]}) raised {text}"
    return text


def _discard(env: Any, timeout: float = 30.0) -> None:
    """Close a vector env after a failure, without hanging, raising or printing more tracebacks: live workers are
    asked to close (so they stop their simulators and delete their temporary files), the rest are reaped and any
    that do not finish in ``timeout`` s killed."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if isinstance(env, AsyncVectorEnv):
            try:
                _close_workers(env, timeout)
            except Exception:  # noqa: BLE001  (best effort; terminate below)
                pass
            for proc in env.processes:
                if proc.is_alive():
                    proc.kill()
        try:
            env.close(**({"terminate": True} if isinstance(env, AsyncVectorEnv) else {}))
        except Exception:  # noqa: BLE001  (the env is broken; the failure itself is what gets reported)
            pass


def _close_workers(env: AsyncVectorEnv, timeout: float) -> None:
    pipes, procs = env.parent_pipes, env.processes
    for pipe, proc in zip(pipes, procs):
        if pipe is None or pipe.closed:
            continue
        try:
            if proc.is_alive():
                pipe.send(("close", None))  # queued behind any pending step/reset, which it finishes first
                continue
        except OSError:
            pass
        pipe.close()
    deadline = time.monotonic() + timeout
    for pipe in pipes:
        if pipe is None or pipe.closed:
            continue
        try:
            while pipe.poll(max(0.0, deadline - time.monotonic())):
                if pipe.recv() == (None, True):  # the close acknowledgement (pending results come first)
                    break
        except (EOFError, OSError):
            pass
        pipe.close()
    for proc in procs:
        proc.join(max(0.0, deadline - time.monotonic()))


# gymnasium logs a failed worker's traceback and two more lines as warnings; the failure is reported once, by us
_WORKER_LOG = r".*ERROR: (Received the following error from Worker|Traceback|Raising the last exception)"


def run_episodes(
    policy: Policy,
    scenario: Scenario,
    seeds: list[int],
    num_envs: int | None = None,
    render_mode: str | None = None,
    on_step: StepCallback | None = None,
    progress: tqdm | None = None,
    isolate: bool | None = None,
    retries: int | None = None,
) -> list[EpisodeResult]:
    """Run one episode per seed, ``num_envs`` at a time, and return their results in seed order.

    ``isolate`` (default: the env spec's ``isolate_episodes``) runs each batch in fresh worker processes, for
    simulators whose episodes are not independent inside one process (libsumo). A batch whose env fails (a worker
    dies, an env raises) runs again in a fresh vector env, ``retries`` times (default 1; 0 with ``on_step``,
    whose observer cannot unsee the failed attempt's steps); failing every time, :class:`EpisodesFailed` carries
    the episodes finished so far. Seeded episodes do not depend on batching, so a retried batch gives the numbers
    of a clean run."""
    retries = (0 if on_step is not None else 1) if retries is None else retries
    scenario = scenario.with_params(dict(policy.env_overrides))
    num_envs = min(num_envs or default_num_envs(scenario, len(seeds)), len(seeds))
    isolate = scenario.spec.isolate_episodes if isolate is None else isolate
    where = scenario.source or scenario.name
    results: list[EpisodeResult] = []
    env = None
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=_WORKER_LOG)
            for start in range(0, len(seeds), num_envs):
                batch = seeds[start : start + num_envs]
                padded = batch + [seeds[-1] + 1 + k for k in range(num_envs - len(batch))]  # extras: discarded
                causes: list[str] = []
                done: dict[int, EpisodeResult] = {}  # finished episodes of this batch, over attempts
                while True:
                    try:
                        if env is None:
                            env = _make_env(
                                policy, scenario, num_envs, render_mode, isolate, first=not results and not causes
                            )
                        episodes = _run_batch(policy, env, scenario, padded, on_step)
                        break
                    except _BatchFailed as failure:
                        if env is not None:
                            _discard(env)
                            env = None
                        causes.append(failure.cause)
                        done.update({e.seed: e for e in failure.finished[: len(batch)] if e is not None})
                        if len(causes) > retries:
                            completed = results + [done[s] for s in batch if s in done]
                            raise EpisodesFailed(
                                where, [s for s in batch if s not in done], causes, completed
                            ) from None
                        _notify(
                            progress,
                            f"{where}: the batch of {_seeds_text(batch)} lost its simulator "
                            f"({failure.cause}); running it again in a fresh env",
                        )
                results += episodes[: len(batch)]
                if progress is not None:
                    progress.update(len(batch))
                if isolate:
                    env.close()
                    env = None
    except BaseException:
        if env is not None:
            _discard(env)
            env = None
        raise
    finally:
        if env is not None:
            env.close()
    return results


def _notify(progress: tqdm | None, text: str) -> None:
    """One line on stderr (above the progress bar if there is one): a retry is never silent."""
    if progress is not None:
        progress.write(text, file=sys.stderr)
    else:
        _LOG.warning(text)


def _make_env(
    policy: Policy, scenario: Scenario, num_envs: int, render_mode: str | None, isolate: bool, first: bool
) -> Any:
    """A vector env the policy fits. Only the very first one may fail as is (a scenario or policy that cannot
    start at all is no lost simulator); later ones failing to start count as a failed attempt."""
    try:
        env = make_vec(scenario, num_envs, render_mode=render_mode, mode="async" if isolate else None)
    except Exception as err:
        if first:
            raise
        raise _BatchFailed(f"could not start a fresh env: {_describe_failure(err, None, [])}", []) from err
    try:
        check_compatible(
            policy, env.single_observation_space, env.single_action_space, scenario.source or scenario.name
        )
    except BaseException:
        env.close()
        raise
    return env


def _run_batch(
    policy: Policy, env: Any, scenario: Scenario, seeds: list[int], on_step: StepCallback | None
) -> list[EpisodeResult]:
    n = len(seeds)
    policy.reset(
        PolicyContext(
            observation_space=env.single_observation_space,
            action_space=env.single_action_space,
            seeds=list(seeds),
            env_id=scenario.env,
            scenario=scenario.name,
            params=dict(scenario.params),
        )
    )
    finished: list[EpisodeResult | None] = [None] * n
    try:
        obs, info = env.reset(seed=seeds)
    except Exception as err:  # noqa: BLE001  (the simulator failed: the caller retries in a fresh env)
        raise _BatchFailed(_describe_failure(err, env, seeds), finished) from err
    returns, lengths = np.zeros(n), np.zeros(n, dtype=int)
    running = np.ones(n, dtype=bool)
    state, episode_start = None, np.ones(n, dtype=bool)
    while running.any():
        action, state = policy.act(obs, state, episode_start, info=info)
        episode_start = np.zeros(n, dtype=bool)
        try:
            obs, reward, terminated, truncated, info = env.step(action)
        except Exception as err:  # noqa: BLE001
            raise _BatchFailed(_describe_failure(err, env, seeds), finished) from err
        returns += np.where(running, reward, 0.0)
        lengths += running
        if on_step is not None:
            on_step(env, info, running.copy(), obs, reward)
        for i in np.flatnonzero(running & (terminated | truncated)):
            finished[i] = _episode_result(seeds[i], returns[i], lengths[i], sub_env_info(info, int(i)), scenario)
            running[i] = False
    return finished  # type: ignore[return-value]


def _episode_result(seed: int, ret: float, length: int, info: dict[str, Any], scenario: Scenario) -> EpisodeResult:
    missing = [k for k in [scenario.success, *scenario.metrics] if k not in info]
    if missing:
        raise LeptonError(
            f"{scenario.source or scenario.name}: the env's info has no {', '.join(missing)} "
            f"(success/metrics must be info keys); available: {', '.join(sorted(info))}"
        )
    metrics = {m: float(info[m]) for m in scenario.metrics}
    return EpisodeResult(
        seed=int(seed),
        episode_return=float(ret),
        length=int(length),
        success=bool(info[scenario.success]),
        metrics=metrics,
    )


MAX_EPISODES = 100_000  # per scenario row, as in suite files


class EpisodeExecutor(Protocol):
    """Runs one row's episodes elsewhere (other processes, a cluster: lepton_sim.agents.rllib.distributed) and
    returns what :func:`run_episodes` would: one result per seed, in seed order, equal to a local run on the same
    seeds (raising EpisodesFailed / IncompatiblePolicy as it would). ``evaluate(..., executor=...)`` uses it."""

    def run(
        self, policy: Policy, scenario: Scenario, seeds: list[int], num_envs: int | None, progress: tqdm | None
    ) -> list[EpisodeResult]: ...

    def close(self) -> None: ...


def evaluate(
    policy: str | Path | Policy,
    suite: str | Path | None = None,
    scenario: str | Path | Scenario | None = None,
    split: SuiteSplit = "test",
    episodes: int | None = None,
    seed: int | None = None,
    num_envs: int | None = None,
    out: str | Path | None = None,
    device: str = "auto",
    progress: bool = True,
    trust_pickle: bool = False,
    executor: EpisodeExecutor | None = None,
) -> Report:
    """Evaluate ``policy`` (run folder, model file, baseline name or a Policy) on a suite split or one scenario.

    With a scenario, episodes default to 20 on seeds from ``seed`` (default: scenario seed + 100000, away from
    training seeds). ``out`` saves report.json and report.md there. If a batch of episodes fails even after a
    retry, the partial report is saved (to ``out``, else a new temporary folder) and :class:`EvaluationFailed`
    raised. ``trust_pickle``: allow loading a model by unpickling its files (old files from a trusted source; see
    lepton_sim.loading). ``executor``: run each row's episodes through it (:class:`EpisodeExecutor`, e.g. Ray
    workers) instead of in this process; the report is the same.
    """
    if (suite is None) == (scenario is None):
        raise LeptonError("give exactly one of a suite or a scenario to evaluate on")
    for name, value, low in (("episodes", episodes, 1), ("num_envs", num_envs, 1), ("seed", seed, 0)):
        if value is not None and (
            not isinstance(value, int)
            or isinstance(value, bool)
            or value < low
            or (name == "episodes" and value > MAX_EPISODES)
        ):
            allowed = f"{low}..{MAX_EPISODES}" if name == "episodes" else f">= {low}"
            raise LeptonError(f"{name} must be a whole number {allowed}, got {value!r}")
    if scenario is not None and not isinstance(scenario, Scenario) and is_suite(scenario):
        suite, scenario = scenario, None
    if suite is not None:
        suite_obj = load_suite(suite)
        items = suite_items(suite_obj, split)
        if not items:
            raise LeptonError(f"{suite_obj.source}: split {split!r} is empty")
        if episodes is not None:
            items = [item.model_copy(update={"episodes": episodes}) for item in items]
        target, shown_split = suite_obj.name, split
    elif scenario is not None:
        sc = load_scenario(scenario)
        n = 20 if episodes is None else episodes
        items = [SuiteItem(label=sc.name, scenario=sc, episodes=n, seed=sc.seed + 100_000 if seed is None else seed)]
        target, shown_split = sc.name, None

    rows: list[ScenarioResult] = []
    total = sum(item.episodes for item in items)

    def report_of(name: str) -> Report:
        return Report(
            policy=str(policy) if not isinstance(policy, Policy) else name, target=target, split=shown_split, rows=rows
        )

    with tqdm(total=total, desc="evaluating", unit="ep", disable=not progress) as bar:
        for item in items:
            pol = (
                policy
                if isinstance(policy, Policy)
                else load_policy(policy, item.scenario, device=device, trust_pickle=trust_pickle)
            )
            bar.set_postfix_str(item.label)
            name = pol.name
            try:
                if executor is not None:  # elsewhere (Ray workers): the same episodes, the same results
                    episodes_run = executor.run(pol, item.scenario, item.seeds, num_envs, bar)
                else:
                    episodes_run = run_episodes(pol, item.scenario, item.seeds, num_envs=num_envs, progress=bar)
            except IncompatiblePolicy as err:
                if suite is None:
                    raise
                bar.write(f"skipping {item.label}: {err}")  # a suite may mix action modes; report the gap
                rows.append(
                    ScenarioResult.skipped_row(item.label, item.scenario, item.seeds, err.reason, pol.env_overrides)
                )
                bar.update(item.episodes)
                continue
            except EpisodesFailed as err:
                rows.append(
                    ScenarioResult.failed_row(
                        item.label, item.scenario, item.seeds, err.completed, err.cause, pol.env_overrides
                    )
                )
                report = report_of(name)
                report_dir = Path(out) if out is not None else Path(tempfile.mkdtemp(prefix="lepton-partial-report-"))
                try:
                    report.save(report_dir)
                    saved = f"written to {report_dir / 'report.md'} and report.json"
                except OSError as save_err:  # the failure still gets reported, with why nothing was saved
                    saved = f"NOT written to {report_dir} ({save_err})"
                label = item.label if item.label == item.scenario.name else f"{item.label} ({item.scenario.name})"
                raise EvaluationFailed(
                    f"evaluation of {report.policy} on {label} failed on the batch of {_seeds_text(err.seeds)}"
                    f"{_attempts_text(err.causes)}; partial report ({len(rows) - 1} of {len(items)} rows done, "
                    f"{len(err.completed)} of {item.episodes} episodes of this row) {saved}",
                    report,
                    report_dir,
                    err,
                ) from None
            rows.append(ScenarioResult.from_episodes(item.label, item.scenario, episodes_run, pol.env_overrides))
    report = report_of(name)
    if out is not None:
        report.save(out)
    return report
