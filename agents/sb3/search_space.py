"""SB3 search spaces for ``lepton-sim tune``: ``agents/hyperparams/sb3/search/<algo>.yaml`` (after rl-zoo3's
``hyperparams_opt.py``), in the core's format (lepton_sim.search_space), with every name and value checked
against the algorithm's constructor the way hyperparameter files are, before any trial runs."""

from __future__ import annotations

import inspect
from pathlib import Path

import yaml

from lepton_sim.agents.sb3.algorithms import algorithm_class
from lepton_sim.agents.sb3.hyperparams import check_hyperparams, hyperparams_file, load_hyperparams
from lepton_sim.errors import LeptonError
from lepton_sim.search_space import SearchSpace, nested

POLICY_ARGS_SET_BY_SB3 = {"self", "observation_space", "action_space", "lr_schedule"}


def search_space_file(algo: str) -> Path:
    return hyperparams_file(algo).parent / "search" / f"{algo}.yaml"


def load_search_space(algo: str, path: str | Path | None = None) -> SearchSpace:
    """The space for ``algo`` (the built-in file, or ``path``); one LeptonError naming the file and field."""
    path = Path(path) if path else search_space_file(algo)
    if not path.is_file():
        raise LeptonError(f"no search space for {algo!r} at {path}")
    try:
        data = yaml.safe_load(path.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise LeptonError(f"{path}: invalid YAML: {' '.join(str(err).split())}") from None
    space = SearchSpace.from_mapping(data, str(path))
    policy_args = _policy_arguments(algo)
    defaults = load_hyperparams(algo, "default")  # the context a value is checked in (TD3's noise_type...)
    for param in space.params:
        top, _, key = param.name.partition(".")
        if top == "policy_kwargs" and key and key not in policy_args:
            raise LeptonError(
                f"{path}: {param.name}: unknown policy argument {key!r} for {algo}; allowed: {', '.join(policy_args)}"
            )
        for value in param.candidates():
            try:
                check_hyperparams(algo, {**defaults, **nested({param.name: value}, defaults)})
            except LeptonError as err:
                raise LeptonError(f"{path}: {param.name}: {err}") from None
    return space


def _policy_arguments(algo: str) -> list[str]:
    """What ``policy_kwargs`` may set: the arguments of the algorithm's MlpPolicy (MultiInputPolicy takes the
    same), less those SB3 passes itself."""
    policy = algorithm_class(algo).policy_aliases["MlpPolicy"]
    names = inspect.signature(policy.__init__).parameters
    return sorted(name for name in names if name not in POLICY_ARGS_SET_BY_SB3)
