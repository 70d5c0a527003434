"""Multi-agent padding, in one place: agents whose observations or action sets differ in size (traffic signals
with other lane and phase counts) are stacked into fixed-size arrays, and one policy's padded action is mapped
back into each agent's own range. Used by the joint traffic env, the PettingZoo env's shared-policy adapter and
policies that act for every agent."""

from __future__ import annotations

from typing import Sequence

import numpy as np
from gymnasium import spaces


def pad_rows(rows: Sequence[np.ndarray], width: int, fill: float = 0.0, dtype: type = np.float32) -> np.ndarray:
    """Stack 1-D arrays into ``(len(rows), width)``, right-padded with ``fill`` (longer rows are cut)."""
    out = np.full((len(rows), width), fill, dtype)
    for i, row in enumerate(rows):
        row = np.asarray(row).ravel()[:width]
        out[i, : len(row)] = row
    return out


def pad_batch(obs: np.ndarray, width: int) -> np.ndarray:
    """``(..., D)`` observations right-padded with zeros (or cut) to ``(..., width)``."""
    obs = np.asarray(obs, np.float32)
    out = np.zeros((*obs.shape[:-1], width), np.float32)
    n = min(width, obs.shape[-1])
    out[..., :n] = obs[..., :n]
    return out


def padded_observation_space(agent_spaces: Sequence[spaces.Box]) -> spaces.Box:
    """One flat Box wide enough for every agent's observation (zeros included in its bounds)."""
    width = max(int(np.prod(s.shape)) for s in agent_spaces)
    low = min(float(np.min(s.low)) for s in agent_spaces)
    high = max(float(np.max(s.high)) for s in agent_spaces)
    return spaces.Box(min(low, 0.0), max(high, 0.0), (width,), np.float32)


def padded_action_space(agent_spaces: Sequence[spaces.Discrete]) -> spaces.Discrete:
    """``Discrete(max n)``: an action ``a`` means ``a mod n_i`` for an agent with ``n_i`` actions."""
    if not all(isinstance(s, spaces.Discrete) for s in agent_spaces):
        raise ValueError("a shared policy needs Discrete actions for every agent")
    return spaces.Discrete(max(int(s.n) for s in agent_spaces))


def agent_actions(padded: np.ndarray, num_actions: np.ndarray) -> np.ndarray:
    """Map padded actions (last axis = agents) into each agent's own range: ``a mod n_i``."""
    return np.asarray(padded, np.int64) % np.asarray(num_actions, np.int64)
