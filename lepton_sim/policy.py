"""The one policy interface that every evaluator, rollout, periodic evaluation and benchmark uses.

A policy maps a *batch* of observations (leading axis = number of envs in a Gymnasium vector env) to a batch of
actions. Trained models of any back end, scripted controllers and the random baseline all implement it, so one
evaluation loop serves every domain and back end. A policy never sees the live env: :meth:`Policy.reset` gets a
:class:`PolicyContext` (spaces, resolved scenario parameters, seeds), which a Ray task or an HTTP endpoint can
build as well as the evaluator. ``act`` follows SB3's ``predict`` signature, so recurrent and frame-stacking
policies carry their state through it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Mapping

import gymnasium
import numpy as np

from lepton_sim.errors import LeptonError


@dataclass(frozen=True)
class PolicyContext:
    """What a policy may know about the episodes it is about to act in (one per sub-env, in order)."""

    observation_space: gymnasium.Space  # of one env
    action_space: gymnasium.Space  # of one env
    seeds: list[int]  # one episode seed per sub-env
    env_id: str = ""
    scenario: str = ""  # scenario name
    params: Mapping[str, Any] = field(default_factory=dict)  # the scenario's env parameters, overrides included

    @property
    def num_envs(self) -> int:
        return len(self.seeds)


class Policy(ABC):
    """Batched ``act(observation, state, episode_start) -> (action, state)``.

    Attributes:
        name: shown in reports ("ppo", "scripted", "max-pressure", ...).
        observation_space / action_space: the single-env spaces the policy was made for (a trained model's), or
            None where it adapts to the scenario; evaluation checks them before any episode runs.
        env_overrides: env parameters this policy needs, merged into the scenario's ``params`` when it is
            evaluated (e.g. a fixed-time traffic baseline lets SUMO run the signal program itself); reports
            record them.
    """

    name: str = "policy"
    observation_space: gymnasium.Space | None = None
    action_space: gymnasium.Space | None = None
    env_overrides: Mapping[str, Any] = {}

    def reset(self, context: PolicyContext) -> None:  # noqa: B027 (optional hook, not abstract)
        """Called before each batch of episodes. Stateless policies ignore it."""

    @abstractmethod
    def act(
        self,
        observation: Any,
        state: Any = None,
        episode_start: np.ndarray | None = None,
        *,
        info: Mapping[str, Any] | None = None,
    ) -> tuple[np.ndarray, Any]:
        """One action per sub-env, and the policy's new recurrent state (None for stateless policies).

        ``episode_start`` flags the sub-envs whose episode starts with this observation; ``info`` is the vector
        env's batched info dict of the last step or reset (some classical controllers read it)."""


class IncompatiblePolicy(LeptonError):
    """The policy cannot act in this scenario (other observation or action space)."""

    def __init__(self, where: str, reason: str) -> None:
        super().__init__(f"{where}: {reason}")
        self.reason = reason


def check_compatible(
    policy: Policy, observation_space: gymnasium.Space, action_space: gymnasium.Space, where: str
) -> None:
    """A policy that declares spaces must see the observation space it was made for and act in the same action
    space (type and shape)."""
    for kind, expected, actual in (
        ("observations", policy.observation_space, observation_space),
        ("actions", policy.action_space, action_space),
    ):
        if expected is not None and not _same_layout(expected, actual):
            raise IncompatiblePolicy(
                where, f"the policy was trained on {kind} {_short(expected)} but this scenario has {_short(actual)}"
            )


def _same_layout(expected: gymnasium.Space, actual: gymnasium.Space) -> bool:
    """Same space type and shape, key by key for Dict spaces (a camera image and a state vector differ)."""
    if type(expected) is not type(actual):
        return False
    if isinstance(expected, gymnasium.spaces.Dict) and isinstance(actual, gymnasium.spaces.Dict):
        return list(expected.spaces) == list(actual.spaces) and all(
            _same_layout(expected[k], actual[k]) for k in expected.spaces
        )
    return getattr(expected, "shape", None) == getattr(actual, "shape", None)


def _short(space: gymnasium.Space) -> str:
    """A one-line description of a space (Dict spaces' reprs span lines and break Markdown tables)."""
    return " ".join(str(space).split())
