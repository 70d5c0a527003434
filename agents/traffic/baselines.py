"""Classical signal control as lepton-sim policies: fixed-time, actuated, max-pressure, greedy (longest queue).

Fixed-time and actuated let SUMO run the signals (``env_overrides = {"control": ...}``; actions are ignored).
Max-pressure and greedy need per-phase lane counts, which the env puts in ``info`` when ``phase_info=True``
(their ``env_overrides``); they work with ``lepton/TrafficSignal-v0`` (Discrete actions, info arrays (P,)) and
``lepton/TrafficNetwork-v0`` (MultiDiscrete, info arrays (N, max P) padded with -inf), batched over envs.
"""

from __future__ import annotations

from typing import Any, Mapping

import gymnasium
import numpy as np

from lepton_sim.policy import Policy, PolicyContext


class _TrafficPolicy(Policy):
    def __init__(self, action_space: gymnasium.Space) -> None:
        if not isinstance(action_space, (gymnasium.spaces.Discrete, gymnasium.spaces.MultiDiscrete)):
            raise ValueError(
                f"{self.name} controls traffic signals (Discrete or MultiDiscrete actions), got {action_space}"
            )
        self.space = action_space  # adapts to the scenario's signals: no declared action_space

    def reset(self, context: PolicyContext) -> None:
        self.space = context.action_space

    @property
    def _phases(self) -> np.ndarray:
        """Number of green phases per signal (1-D: one entry for Discrete)."""
        space = self.space
        return np.atleast_1d(space.nvec if isinstance(space, gymnasium.spaces.MultiDiscrete) else space.n)

    def _shape(self, observation: np.ndarray) -> tuple[int, ...]:
        n = np.asarray(observation).shape[0]
        return (n,) if isinstance(self.space, gymnasium.spaces.Discrete) else (n, len(self._phases))


class ProgramPolicy(_TrafficPolicy):
    """SUMO runs the signals itself; the actions sent are placeholders the env ignores."""

    def __init__(self, action_space: gymnasium.Space, control: str) -> None:
        super().__init__(action_space)
        self.name = control
        self.env_overrides = {"control": control}

    def act(
        self,
        observation: Any,
        state: Any = None,
        episode_start: np.ndarray | None = None,
        *,
        info: Mapping[str, Any] | None = None,
    ) -> tuple[np.ndarray, Any]:
        return np.zeros(self._shape(observation), np.int64), None


class PhaseScorePolicy(_TrafficPolicy):
    """Pick, per signal, the green phase with the highest score from ``info[key]``; on a tie keep the current
    phase (read from the observation's phase one-hot) to avoid needless yellow time."""

    env_overrides = {"phase_info": True}

    def __init__(self, action_space: gymnasium.Space, name: str, key: str) -> None:
        super().__init__(action_space)
        self.name, self.key = name, key

    def act(
        self,
        observation: Any,
        state: Any = None,
        episode_start: np.ndarray | None = None,
        *,
        info: Mapping[str, Any] | None = None,
    ) -> tuple[np.ndarray, Any]:
        if info is None or self.key not in info:
            raise ValueError(
                f"{self.name} reads info[{self.key!r}]: create the env with phase_info=True "
                "(evaluation does this through the policy's env_overrides)"
            )
        scores = np.asarray(info[self.key], float)
        obs = np.asarray(observation, float)
        discrete = isinstance(self.space, gymnasium.spaces.Discrete)
        if discrete:  # (n, P) -> (n, 1, P) so one code path serves both env kinds
            scores, obs = scores[:, None, :], obs[:, None, :]
        return choose_phases(scores, obs, self._phases).reshape(self._shape(observation)), None


def choose_phases(scores: np.ndarray, observation: np.ndarray, phases: np.ndarray) -> np.ndarray:
    """argmax over each signal's phases of ``scores`` (n_envs, N, >=P), keeping the current phase on ties.

    ``observation`` rows start with the phase one-hot (sumo-rl's layout), so the current phase is known.
    """
    n_envs, n_signals = scores.shape[:2]
    width = int(phases.max())
    valid = np.arange(width)[None, :] < phases[:, None]  # (N, width)
    s = np.where(valid[None], scores[..., :width], -np.inf)
    best = s.max(axis=-1, keepdims=True)
    current = np.where(valid[None], observation[..., :width], -1.0).argmax(axis=-1)  # (n_envs, N)
    keep = np.take_along_axis(s, current[..., None], axis=-1) >= best
    choice = np.where(keep[..., 0], current, s.argmax(axis=-1))
    return choice.astype(np.int64).reshape(n_envs, n_signals)


def fixed_time(env_id: str, observation_space: gymnasium.Space, action_space: gymnasium.Space) -> Policy:
    return ProgramPolicy(action_space, "fixed-time")


def actuated(env_id: str, observation_space: gymnasium.Space, action_space: gymnasium.Space) -> Policy:
    return ProgramPolicy(action_space, "actuated")


def max_pressure(env_id: str, observation_space: gymnasium.Space, action_space: gymnasium.Space) -> Policy:
    return PhaseScorePolicy(action_space, "max-pressure", "phase_pressure")


def greedy(env_id: str, observation_space: gymnasium.Space, action_space: gymnasium.Space) -> Policy:
    return PhaseScorePolicy(action_space, "greedy", "phase_demand")
