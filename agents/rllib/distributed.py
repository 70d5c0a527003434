"""``lepton-sim evaluate --workers N``: a row's episodes spread over Ray worker processes, for any policy.

A row's seeds are cut into the batches of ``--num-envs`` episodes that a single-process run steps together
(default: the same as without workers), and the batches dealt out in contiguous chunks to at most ``workers``
Ray tasks; each task runs the ordinary episode loop (:func:`lepton_sim.evaluation.run_episodes`) on its
batches, and the results are put back in seed order. Every batch holds the same episodes as in the
single-process run (a short last batch padded the same way), so the report is identical to it, to the last bit
(a batched network gives other rounding for other batch sizes). More batches than workers keep every worker
busy: give a smaller ``--num-envs``. The policy object itself (an SB3 or RLlib model, a
scripted controller) is shipped to the workers once per row (``ray.put``); nothing is read from the run folder
there, so workers on other machines need lepton-sim installed, not the run's files.

Isolation: each task runs in a fresh worker process (``max_calls=1``), one simulator per process where the env
spec says so (libsumo); envs whose episodes must not share a process (``isolate_episodes``) still get fresh
env processes per batch inside the task, exactly as :func:`run_episodes` does locally.
"""

from __future__ import annotations

from typing import Any

from lepton_sim.agents.rllib.cluster import local_cpus
from lepton_sim.errors import LeptonError
from lepton_sim.evaluation import EpisodesFailed, default_num_envs, run_episodes
from lepton_sim.policy import Policy
from lepton_sim.report import EpisodeResult
from lepton_sim.scenario import Scenario


def _run_chunk(policy: Policy, scenario: Scenario, seeds: list[int], num_envs: int | None) -> list[EpisodeResult]:
    import lepton_sim  # noqa: F401  (registers the envs in a fresh worker process)

    return run_episodes(policy, scenario, seeds, num_envs=num_envs)


def batch_chunks(seeds: list[int], batch: int, workers: int) -> list[list[int]]:
    """``seeds`` in batches of ``batch`` (as :func:`run_episodes` runs them), the batches dealt out in
    contiguous chunks to at most ``workers`` workers (no empty ones)."""
    batches = [seeds[i : i + batch] for i in range(0, len(seeds), batch)]
    parts = max(1, min(workers, len(batches)))
    per, extra = divmod(len(batches), parts)
    out, start = [], 0
    for k in range(parts):
        end = start + per + (1 if k < extra else 0)
        out.append([s for b in batches[start:end] for s in b])
        start = end
    return out


def padded(chunk: list[int], batch: int) -> list[int]:
    """A chunk whose last batch is short, filled up with the seeds :func:`run_episodes` pads it with locally, so
    every batch holds the same episodes as in a single-process run (batched networks and simulators then give
    the same numbers to the last bit)."""
    short = -len(chunk) % batch
    return chunk + [chunk[-1] + 1 + k for k in range(short)]


class RayEpisodeExecutor:
    """An :class:`lepton_sim.evaluation.EpisodeExecutor` on Ray: a private local instance sized to the machine,
    or the cluster at ``$RAY_ADDRESS`` (``--ray-address``), started on first use and stopped by :meth:`close`."""

    def __init__(self, workers: int, address: str | None = None) -> None:
        if workers < 1:
            raise LeptonError(f"--workers must be >= 1, got {workers}")
        self.workers, self.address = workers, address
        self._session: Any = None

    def _start(self) -> None:
        if self._session is None:
            from lepton_sim.agents.rllib.cluster import ray_session

            self._session = ray_session(self.address, num_cpus=max(local_cpus(), self.workers))
            self._session.__enter__()

    def close(self) -> None:
        if self._session is not None:
            session, self._session = self._session, None
            session.__exit__(None, None, None)

    def run(
        self, policy: Policy, scenario: Scenario, seeds: list[int], num_envs: int | None, progress: Any
    ) -> list[EpisodeResult]:
        self._start()
        import ray

        seeds = list(seeds)
        size = min(num_envs or default_num_envs(scenario, len(seeds)), len(seeds))
        task = ray.remote(num_cpus=1, max_calls=1)(_run_chunk)
        policy_ref = ray.put(policy)
        parts = batch_chunks(seeds, size, self.workers)
        envs = size
        pending = {task.remote(policy_ref, scenario, padded(part, size), envs): k for k, part in enumerate(parts)}
        results: dict[int, list[EpisodeResult]] = {}
        failure: tuple[int, EpisodesFailed] | None = None
        try:
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1)
                k = pending.pop(done[0])
                try:
                    results[k] = ray.get(done[0])[: len(parts[k])]  # the padding episodes are dropped
                except ray.exceptions.RayTaskError as err:
                    cause = err.cause if isinstance(getattr(err, "cause", None), BaseException) else err
                    if isinstance(cause, EpisodesFailed):
                        failure = failure if failure is not None and failure[0] < k else (k, cause)
                        continue
                    if isinstance(cause, LeptonError):
                        raise cause from None
                    raise LeptonError(
                        f"{scenario.source or scenario.name}: an evaluation worker failed on seeds "
                        f"{parts[k][0]}..{parts[k][-1]}: {type(cause).__name__}: {' '.join(str(cause).split())[:300]}"
                    ) from None
                if progress is not None:
                    progress.update(len(parts[k]))
        finally:
            for ref in pending:
                ray.cancel(ref, force=True)
        if failure is not None:
            k, err = failure
            completed = [e for j in range(k) for e in results.get(j, [])] + list(err.completed)
            raise EpisodesFailed(err.where, err.seeds, err.causes, completed)
        return [episode for k in range(len(parts)) for episode in results[k]]
