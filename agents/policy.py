"""The one policy interface that every evaluator, rollout and benchmark uses, whatever made the policy.

A policy maps a *batch* of observations (leading axis = number of envs in a Gymnasium vector env) to a batch of
actions. Trained models (SB3 now, RLlib later), scripted controllers and the random baseline all implement it,
so one evaluation loop serves every domain and back end.
"""
from __future__ import annotations

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
    """Uniformly random actions from the action space; seeded so evaluations repeat exactly."""

    name = "random"

    def __init__(self, action_space: gymnasium.Space, seed: int = 0) -> None:
        self.single_action_space = action_space
        self.seed = seed

    def reset(self, env: gymnasium.vector.VectorEnv, seeds: list[int]) -> None:
        self.single_action_space = env.single_action_space
        self.single_action_space.seed(int(seeds[0]) + self.seed if seeds else self.seed)
        self._num_envs = env.num_envs

    def act(self, observation: Any, info: Mapping[str, Any] | None = None) -> np.ndarray:
        n = getattr(self, "_num_envs", 1)
        return np.stack([np.asarray(self.single_action_space.sample()) for _ in range(n)])
