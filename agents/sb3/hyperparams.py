"""Hyperparameters are data: ``agents/hyperparams/<algo>.yaml``, keyed by scenario name with a ``default``
entry (rl-baselines3-zoo's format, without eval-ed strings). Keys that are not SB3 constructor arguments:

- ``n_timesteps``: default training budget; ``n_envs``: parallel envs; ``policy``: SB3 policy name;
- ``her``: use HerReplayBuffer (goal-conditioned Dict envs); ``her_kwargs``: its arguments;
- ``normalize``: wrap the env in VecNormalize (observations and rewards);
- ``policy_kwargs.activation_fn``: a name (``tanh``, ``relu``, ``elu``, ``leaky_relu``).
"""
from __future__ import annotations

import inspect
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from lepton_sim.agents.sb3.algorithms import algorithm_class
from lepton_sim.errors import LeptonError

RUNNER_KEYS = {"n_timesteps", "n_envs", "policy", "her", "her_kwargs", "normalize"}
ACTIVATIONS = {"tanh": "Tanh", "relu": "ReLU", "elu": "ELU", "leaky_relu": "LeakyReLU"}


def hyperparams_file(algo: str) -> Path:
    return Path(str(resources.files("lepton_sim.agents"))) / "hyperparams" / f"{algo}.yaml"


def load_hyperparams(algo: str, scenario_name: str, path: str | Path | None = None) -> dict[str, Any]:
    """``default`` merged with the scenario's own entry (``policy_kwargs`` merged one level deeper)."""
    path = Path(path) if path else hyperparams_file(algo)
    if not path.is_file():
        raise LeptonError(f"no hyperparameter file for {algo!r} at {path}")
    table = yaml.safe_load(path.read_text()) or {}
    hp = dict(table.get("default", {}))
    for key, value in (table.get(scenario_name) or {}).items():
        if key == "policy_kwargs" and isinstance(value, dict):
            hp[key] = {**hp.get(key, {}), **value}
        else:
            hp[key] = value
    return hp


def parse_override(text: str) -> tuple[str, Any]:
    """``key=value`` from the command line; the value is read as YAML (numbers, lists, mappings, booleans)."""
    if "=" not in text:
        raise LeptonError(f"--set expects key=value, got {text!r}")
    key, raw = text.split("=", 1)
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError:
        value = raw
    if isinstance(value, str):  # YAML 1.1 reads 3e-4 as a string
        try:
            value = float(value)
        except ValueError:
            pass
    return key.strip(), value


def sb3_kwargs(algo: str, hp: dict[str, Any]) -> dict[str, Any]:
    """Constructor keyword arguments for the SB3 class; unknown names are reported with the allowed ones."""
    cls = algorithm_class(algo)
    allowed = set(inspect.signature(cls.__init__).parameters) - {"self", "env", "policy", "_init_setup_model"}
    kwargs = {k: v for k, v in hp.items() if k not in RUNNER_KEYS}
    unknown = sorted(set(kwargs) - allowed)
    if unknown:
        raise LeptonError(f"unknown hyperparameter(s) {', '.join(unknown)} for {algo}; allowed: "
                          f"{', '.join(sorted(allowed | RUNNER_KEYS))}")
    policy_kwargs = dict(kwargs.get("policy_kwargs") or {})
    if isinstance(policy_kwargs.get("activation_fn"), str):
        import torch.nn

        name = policy_kwargs["activation_fn"]
        if name not in ACTIVATIONS:
            raise LeptonError(f"policy_kwargs.activation_fn: unknown {name!r}; allowed: {', '.join(ACTIVATIONS)}")
        policy_kwargs["activation_fn"] = getattr(torch.nn, ACTIVATIONS[name])
    if policy_kwargs:
        kwargs["policy_kwargs"] = policy_kwargs
    if hp.get("her"):
        from stable_baselines3 import HerReplayBuffer

        kwargs["replay_buffer_class"] = HerReplayBuffer
        kwargs["replay_buffer_kwargs"] = dict(hp.get("her_kwargs") or {})
    return kwargs
