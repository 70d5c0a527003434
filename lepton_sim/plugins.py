"""Where the core finds what the layers above it provide: Python entry points (``pyproject.toml``).

The core never imports a training back end or a baseline module; it looks them up here by name, so a new back
end (RLlib) or a third-party package's baselines plug in by declaring an entry point, without a core change.
"""

from __future__ import annotations

from functools import cache
from importlib import metadata
from typing import Any

BACKENDS = "lepton_sim.backends"  # name -> a Backend class (lepton_sim.backends.Backend)
BASELINES = "lepton_sim.baselines"  # name -> a module that registers baselines when imported


@cache
def entry_points(group: str) -> dict[str, metadata.EntryPoint]:
    """The installed entry points of ``group`` by name."""
    return {ep.name: ep for ep in metadata.entry_points(group=group)}


def load(group: str, name: str) -> Any:
    """Import and return entry point ``name`` of ``group`` (KeyError if there is none)."""
    return entry_points(group)[name].load()
