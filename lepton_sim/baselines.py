"""Named non-learning policies for ``lepton-sim evaluate NAME``: ``random`` everywhere, plus each domain's own.

The registry lives in the core; the baselines themselves live in ``lepton_sim.agents`` (and in any package that
declares a ``lepton_sim.baselines`` entry point), whose modules call :func:`register_baseline` when imported.
They are imported only when a baseline is looked up, so listing scenarios never starts a simulator. A name may
exist for several domains (``scripted``); the env's domain picks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import gymnasium

from lepton_sim import plugins
from lepton_sim.errors import LeptonError
from lepton_sim.policy import Policy

# factory(env_id, observation_space, action_space) -> Policy
BaselineFactory = Callable[[str, gymnasium.Space, gymnasium.Space], Policy]


@dataclass(frozen=True)
class Baseline:
    name: str
    domain: str  # "driving" | "manufacturing" | "traffic" | "any"
    factory: BaselineFactory
    description: str


_BASELINES: dict[tuple[str, str], Baseline] = {}


def register_baseline(name: str, domain: str, factory: BaselineFactory, description: str) -> None:
    _BASELINES[(name, domain)] = Baseline(name, domain, factory, description)


def _load_providers() -> None:
    for name in plugins.entry_points(plugins.BASELINES):
        plugins.load(plugins.BASELINES, name)


def available_baselines(domain: str | None = None) -> list[Baseline]:
    _load_providers()
    return sorted(
        (b for b in _BASELINES.values() if domain is None or b.domain in (domain, "any")),
        key=lambda b: (b.domain, b.name),
    )


def is_baseline(name: str) -> bool:
    _load_providers()
    return any(key[0] == name for key in _BASELINES)


def make_baseline(
    name: str, env_id: str, domain: str, observation_space: gymnasium.Space, action_space: gymnasium.Space
) -> Policy:
    """Build baseline ``name`` for an env of ``domain``; a clear error lists the names that domain offers."""
    _load_providers()
    baseline = _BASELINES.get((name, domain)) or _BASELINES.get((name, "any"))
    if baseline is None:
        names = ", ".join(b.name for b in available_baselines(domain))
        raise LeptonError(f"no baseline named {name!r} for the {domain} domain (env {env_id}); available: {names}")
    return baseline.factory(env_id, observation_space, action_space)
