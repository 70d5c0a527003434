"""The SB3 algorithms lepton-sim trains, by name."""

from __future__ import annotations

import importlib

ALGORITHMS = {
    "ppo": "stable_baselines3:PPO",
    "sac": "stable_baselines3:SAC",
    "td3": "stable_baselines3:TD3",
    "tqc": "sb3_contrib:TQC",
}
OFF_POLICY = {"sac", "td3", "tqc"}


def algorithm_class(name: str) -> type:
    if name not in ALGORITHMS:
        raise ValueError(f"unknown algorithm {name!r}; allowed: {', '.join(ALGORITHMS)}")
    module, cls = ALGORITHMS[name].split(":")
    return getattr(importlib.import_module(module), cls)
