"""Scripted controllers for the visual-inspection tasks: the conveyor sorter, with and without the class.

``OracleSorter`` is the ``scripted`` baseline: it asks for ``oracle_class`` (the env then fills the class one-hot
of the state observation, as a perfect perception model would) and routes part k to bin k. ``BlindSorter``
routes without the class (a bin drawn per part, or always one bin), as any state agent must: it is the chance
level the tests check.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from lepton_sim.agents.manufacturing.scripted import ConveyorController
from lepton_sim.envs.manufacturing.conveyor_env import ROBOT_DIM, SLOT_DIM, SLOTS
from lepton_sim.envs.manufacturing.params import MAX_CLASSES
from lepton_sim.policy import PolicyContext

INSPECTION_IDS = ("lepton/VisualInspection-v0", "lepton/WasteSorting-v0")
CLASS_AT = 8  # class one-hot offset within a slot


class OracleSorter(ConveyorController):
    """Conveyor sorting reading the class from the oracle state (``oracle_class``): the upper bound."""

    env_overrides = {"control_type": "ee", "obs_mode": "state", "oracle_class": True}

    def __init__(self) -> None:
        super().__init__(sorting=True)


class BlindSorter(ConveyorController):
    """Conveyor sorting without the class: each part goes to a bin drawn uniformly (``seed``) or to ``fixed``.

    The draw is per part size in an episode (a part keeps its size, so it is never re-routed midway; sizes are
    drawn independently of the class, so the routing is too).
    """

    env_overrides = {"control_type": "ee", "obs_mode": "state", "oracle_class": False}

    def __init__(self, num_bins: int, seed: int = 0, fixed: int | None = None) -> None:
        super().__init__(sorting=True)
        self.num_bins = num_bins
        self.fixed = fixed
        self.rng = np.random.default_rng(seed)
        self._choices: list[dict[int, int]] = []

    def reset(self, context: PolicyContext) -> None:
        self._choices = [{} for _ in range(context.num_envs)]

    def act(
        self,
        observation: Any,
        state: Any = None,
        episode_start: np.ndarray | None = None,
        *,
        info: Mapping[str, Any] | None = None,
    ) -> tuple[np.ndarray, Any]:
        obs = np.array(observation, dtype=np.float32, copy=True)
        if len(self._choices) != len(obs):
            self._choices = [{} for _ in range(len(obs))]
        for i, row in enumerate(obs):
            if episode_start is not None and episode_start[i]:
                self._choices[i] = {}
            for k in range(SLOTS):
                slot = row[ROBOT_DIM + k * SLOT_DIM : ROBOT_DIM + (k + 1) * SLOT_DIM]
                if slot[0] < 0.5:
                    continue
                choice = self._choice(i, int(round(float(slot[7]) * 1000.0)))  # size in mm
                slot[CLASS_AT : CLASS_AT + MAX_CLASSES] = 0.0
                slot[CLASS_AT + choice] = 1.0
        return super().act(obs, state, episode_start, info=info)

    def _choice(self, world: int, key: int) -> int:
        choices = self._choices[world]
        if key not in choices:
            choices[key] = self.fixed if self.fixed is not None else int(self.rng.integers(self.num_bins))
        return choices[key]
