"""A simulator lost mid-evaluation, on real SUMO: a killed libsumo worker process or a killed traci SUMO process
costs one retry in a fresh env and the report equals a clean run's; killed on every attempt, the evaluation
raises one line naming scenario, seeds and cause, and leaves a partial report and no temporary SUMO folders.

Nothing is mocked: a real :class:`~lepton_sim.policy.Policy` wraps the max-pressure baseline and, at a given
step, SIGKILLs the AsyncVectorEnv worker (libsumo runs SUMO inside it) or the SUMO child process (traci), found
through /proc. libsumo and traci give bit-identical results for a seed, so one clean libsumo run serves both.
"""

from __future__ import annotations

import json
import math
import os
import signal
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pytest

import lepton_sim
from lepton_sim.evaluation import EvaluationFailed, run_episodes
from lepton_sim.loading import load_policy
from lepton_sim.policy import Policy, PolicyContext
from lepton_sim.report import Report

pytestmark = pytest.mark.skipif(not os.path.isdir("/proc"), reason="finds the processes to kill through /proc")

DURATION = 300  # simulated s: 30 decisions of 10 s
SEED = 100_000  # evaluate's default for the scenario (its seed + 100000)


def _children(pid: int) -> list[tuple[int, str]]:
    """(pid, command line) of the processes whose parent is ``pid``, oldest first."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                ppid = int(f.read().rsplit(b")", 1)[1].split()[1])
            with open(f"/proc/{name}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, IndexError, ValueError):
            continue
        if ppid == pid:
            found.append((int(name), cmd))
    return sorted(found)


def _workers() -> set[int]:
    return {pid for pid, cmd in _children(os.getpid()) if "spawn_main" in cmd}


class KillingPolicy(Policy):
    """max-pressure that, at step ``at_step`` of a batch holding ``seed``, kills its simulator (at most ``times``).

    ``target``: 'worker' kills the newest AsyncVectorEnv worker (libsumo simulates inside it), 'sumo' the SUMO
    process of the newest worker (traci), 'own-sumo' a SUMO child of this process (traci in a sync vector env)."""

    def __init__(
        self, scenario: lepton_sim.Scenario, seed: int, target: str, times: float = 1, at_step: int = 5
    ) -> None:
        self.inner = load_policy("max-pressure", scenario)
        self.name, self.env_overrides = self.inner.name, self.inner.env_overrides
        self.observation_space, self.action_space = self.inner.observation_space, self.inner.action_space
        self.seed, self.target, self.times, self.at_step = seed, target, times, at_step
        self.kills: list[int] = []  # pids killed
        self.seen_workers: set[int] = set()  # every worker of every batch (for the temporary-folder check)
        self._new_workers: set[int] = set()
        self._steps = 0
        self._armed = False

    def reset(self, context: PolicyContext) -> None:
        self.inner.reset(context)
        workers = _workers()
        self._new_workers = workers - self.seen_workers  # this batch's (the vector env exists by now)
        self.seen_workers |= workers
        self._steps, self._armed = 0, self.seed in context.seeds and self.times > 0

    def act(
        self,
        observation: Any,
        state: Any = None,
        episode_start: np.ndarray | None = None,
        *,
        info: Mapping[str, Any] | None = None,
    ) -> tuple[np.ndarray, Any]:
        self._steps += 1
        if self._armed and self._steps == self.at_step:
            self._armed, self.times = False, self.times - 1
            self._kill()
        return self.inner.act(observation, state, episode_start, info=info)

    def _kill(self) -> None:
        if self.target == "worker":
            victim = max(self._new_workers)
        else:
            parent = os.getpid() if self.target == "own-sumo" else max(self._new_workers)
            (victim,) = [pid for pid, cmd in _children(parent) if "/sumo " in cmd]
        os.kill(victim, signal.SIGKILL)
        self.kills.append(victim)


def _scenario(backend: str = "libsumo") -> lepton_sim.Scenario:
    return lepton_sim.load_scenario("traffic/single-intersection", duration=DURATION, backend=backend)


def _rows(report: Report) -> str:
    """The rows as JSON text (NaN-safe equality); the creation time and versions are not compared."""
    return json.dumps([asdict(row) for row in report.rows])


def _workdirs_of(pids: set[int]) -> list[str]:
    return [
        name
        for name in os.listdir(tempfile.gettempdir())
        if any(name.startswith(f"lepton-sumo-pid{pid}-") for pid in pids)
    ]


@pytest.fixture(scope="module")
def clean_report() -> Report:
    sc = _scenario()
    return lepton_sim.evaluate(load_policy("max-pressure", sc), scenario=sc, episodes=2, num_envs=1, progress=False)


@pytest.mark.slow
def test_a_killed_libsumo_worker_is_retried_and_the_report_equals_a_clean_run(
    clean_report: Report, capfd: pytest.CaptureFixture[str]
) -> None:
    sc = _scenario()
    policy = KillingPolicy(sc, seed=SEED + 1, target="worker")  # the second of two batches
    report = lepton_sim.evaluate(policy, scenario=sc, episodes=2, num_envs=1, progress=False)
    assert len(policy.kills) == 1
    assert _rows(report) == _rows(clean_report)
    assert [e.seed for e in report.rows[0].episodes] == [SEED, SEED + 1]
    err = capfd.readouterr().err
    assert "Traceback" not in err
    assert (
        f"single-intersection.yaml: the batch of seed {SEED + 1} lost its simulator (worker process "
        f"{policy.kills[0]} of sub-env 0 (seed {SEED + 1}) died (killed by SIGKILL)); running it again"
    ) in err
    assert _workdirs_of(policy.seen_workers) == []  # the killed worker's folder too


@pytest.mark.slow
def test_a_killed_traci_sumo_process_is_retried_and_the_report_equals_a_clean_run(
    clean_report: Report, capfd: pytest.CaptureFixture[str]
) -> None:
    sc = _scenario("traci")
    policy = KillingPolicy(sc, seed=SEED, target="sumo")
    report = lepton_sim.evaluate(policy, scenario=sc, episodes=2, num_envs=1, progress=False)
    assert len(policy.kills) == 1
    assert _rows(report) == _rows(clean_report)
    err = capfd.readouterr().err
    assert "Traceback" not in err
    assert (
        f"the batch of seed {SEED} lost its simulator (sub-env 0 (seed {SEED}) raised SumoConnectionError: "
        "the SUMO process (traci back end) stopped at simulated time"
    ) in err and "(exit code -9)" in err
    assert _workdirs_of(policy.seen_workers) == []


def test_an_env_that_raises_in_this_process_is_retried_in_a_fresh_env(clean_report: Report) -> None:
    """traci in a sync vector env: SUMO is this process's child, the env raises SumoConnectionError here."""
    sc = _scenario("traci")
    policy = KillingPolicy(sc, seed=SEED, target="own-sumo")
    (episode,) = run_episodes(policy, sc, [SEED], num_envs=1, isolate=False)
    assert len(policy.kills) == 1
    assert episode == clean_report.rows[0].episodes[0]


@pytest.mark.slow
def test_a_worker_killed_on_every_attempt_gives_a_one_line_error_and_a_partial_report(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    suite = tmp_path / "suite.yaml"
    suite.write_text(
        f"suite: true\ntest:\n"
        f"  - {{scenario: traffic/single-intersection, label: first, episodes: 1, seed: 0, "
        f"params: {{duration: {DURATION}}}}}\n"
        f"  - {{scenario: traffic/single-intersection, label: second, episodes: 2, seed: 10, "
        f"params: {{duration: {DURATION}}}}}\n"
    )
    policy = KillingPolicy(_scenario(), seed=11, target="worker", times=math.inf)
    out = tmp_path / "report"
    with pytest.raises(EvaluationFailed) as caught:
        lepton_sim.evaluate(policy, suite=suite, num_envs=2, out=out, progress=False)
    message = str(caught.value)
    assert "\n" not in message and len(policy.kills) == 2
    for part in (
        "second (traffic/single-intersection)",
        "seeds 10, 11",
        "killed by SIGKILL",
        "partial report (1 of 2 rows done",
        str(out / "report.md"),
    ):
        assert part in message, message
    assert "Traceback" not in capfd.readouterr().err

    saved = json.loads((out / "report.json").read_text())
    first, second = saved["rows"]
    assert first["failed"] is None and [e["seed"] for e in first["episodes"]] == [0]
    assert second["seeds"] == [10, 11] and second["episodes"] == [] and "SIGKILL" in second["failed"]
    assert second["success_rate"] is None or math.isnan(second["success_rate"])  # no result
    assert [row.label for row in caught.value.report.rows] == ["first", "second"]

    table = [ln for ln in (out / "report.md").read_text().splitlines() if ln.startswith("|")]
    assert len(table) == 4  # header, rule, two rows
    assert len({ln.count("|") for ln in table}) == 1
    assert "| second | failed after 0 of 2 episodes: worker process" in table[3]

    assert _workdirs_of(policy.seen_workers) == []  # killed workers' folders removed, the last one's too
