"""Named non-learning policies for ``lepton-sim evaluate NAME``: ``random`` everywhere, plus each domain's own.

Domains register their baselines from ``lepton_sim.agents.<domain>`` (imported lazily here, so that listing
baselines never starts a simulator). A name may exist for several domains (``scripted``); the env's domain picks.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Callable

import gymnasium

from lepton_sim.agents.policy import Policy, RandomPolicy

# factory(env_id, observation_space, action_space) -> Policy
BaselineFactory = Callable[[str, gymnasium.Space, gymnasium.Space], Policy]


@dataclass(frozen=True)
class Baseline:
    name: str
    domain: str  # "driving" | "manufacturing" | "traffic" | "any"
    factory: BaselineFactory
    description: str


_BASELINES: dict[tuple[str, str], Baseline] = {}
_DOMAIN_MODULES = ("lepton_sim.agents.driving", "lepton_sim.agents.manufacturing", "lepton_sim.agents.traffic")


def register_baseline(name: str, domain: str, factory: BaselineFactory, description: str) -> None:
    _BASELINES[(name, domain)] = Baseline(name, domain, factory, description)


def _load_domains() -> None:
    for module in _DOMAIN_MODULES:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as err:
            if err.name != module:  # a real missing dependency, not an absent domain package
                raise


def available_baselines(domain: str | None = None) -> list[Baseline]:
    _load_domains()
    return sorted(
        (b for b in _BASELINES.values() if domain is None or b.domain in (domain, "any")),
        key=lambda b: (b.domain, b.name),
    )


def is_baseline(name: str) -> bool:
    _load_domains()
    return any(key[0] == name for key in _BASELINES)


def make_baseline(name: str, env_id: str, domain: str, observation_space: gymnasium.Space,
                  action_space: gymnasium.Space) -> Policy:
    """Build baseline ``name`` for an env of ``domain``; a clear error lists the names that domain offers."""
    _load_domains()
    baseline = _BASELINES.get((name, domain)) or _BASELINES.get((name, "any"))
    if baseline is None:
        names = ", ".join(b.name for b in available_baselines(domain))
        raise ValueError(f"no baseline named {name!r} for the {domain} domain (env {env_id}); available: {names}")
    return baseline.factory(env_id, observation_space, action_space)


register_baseline("random", "any", lambda env_id, obs_space, act_space: RandomPolicy(act_space),
                  "uniformly random actions (seeded)")
