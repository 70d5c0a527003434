"""The ``random`` baseline, for every domain: uniformly random actions, seeded per episode."""

from __future__ import annotations

import copy
from typing import Any, Mapping

import gymnasium
import numpy as np

from lepton_sim.baselines import register_baseline
from lepton_sim.policy import Policy, PolicyContext


class RandomPolicy(Policy):
    """Uniformly random actions; each sub-env draws from its own space seeded with its episode seed, so results
    repeat exactly whatever the batch size."""

    name = "random"

    def __init__(self, action_space: gymnasium.Space) -> None:
        self.single_action_space = action_space
        self._spaces: list[gymnasium.Space] = []

    def reset(self, context: PolicyContext) -> None:
        self._spaces = []
        for seed in context.seeds:
            space = copy.deepcopy(context.action_space)
            space.seed(int(seed))
            self._spaces.append(space)

    def act(
        self,
        observation: Any,
        state: Any = None,
        episode_start: np.ndarray | None = None,
        *,
        info: Mapping[str, Any] | None = None,
    ) -> tuple[np.ndarray, Any]:
        return np.stack([np.asarray(space.sample()) for space in self._spaces]), None


register_baseline(
    "random", "any", lambda env_id, obs_space, act_space: RandomPolicy(act_space), "uniformly random actions (seeded)"
)
