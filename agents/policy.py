"""The one policy interface that every evaluator, rollout and benchmark uses, whatever made the policy.

A policy maps a *batch* of observations (leading axis = number of envs in a Gymnasium vector env) to a batch of
actions. Trained models (SB3 now, RLlib later), scripted controllers and the random baseline all implement it,
so one evaluation loop serves every domain and back end.
"""
from __future__ import annotations

import copy
from abc import ABC, abstractmethod
from typing import Any, Mapping

import gymnasium
import numpy as np


class Policy(ABC):
    """Batched ``act(observation) -> action``.

    Attributes:
        name: shown in reports ("ppo", "scripted", "max-pressure", ...).
        env_overrides: env parameters this policy needs, merged into the scenario's ``params`` when it is
            evaluated (e.g. a fixed-time traffic baseline lets SUMO run the signal program itself).
    """

    name: str = "policy"
    env_overrides: Mapping[str, Any] = {}

    def reset(self, env: gymnasium.vector.VectorEnv, seeds: list[int]) -> None:
        """Called before each batch of episodes (one per sub-env, with these seeds). Stateless policies ignore it."""

    @abstractmethod
    def act(self, observation: Any, info: Mapping[str, Any] | None = None) -> np.ndarray:
        """Return one action per sub-env. ``info`` is the vector env's batched info dict from the last step/reset."""


class RandomPolicy(Policy):
    """Uniformly random actions; each sub-env draws from its own space seeded with its episode seed, so results
    repeat exactly whatever the batch size."""

    name = "random"

    def __init__(self, action_space: gymnasium.Space) -> None:
        self.single_action_space = action_space
        self._spaces: list[gymnasium.Space] = []

    def reset(self, env: gymnasium.vector.VectorEnv, seeds: list[int]) -> None:
        self._spaces = []
        for seed in seeds:
            space = copy.deepcopy(env.single_action_space)
            space.seed(int(seed))
            self._spaces.append(space)

    def act(self, observation: Any, info: Mapping[str, Any] | None = None) -> np.ndarray:
        return np.stack([np.asarray(space.sample()) for space in self._spaces])
