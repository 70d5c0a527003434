"""A per-agent policy acting for every agent of a joint multi-agent env (parameter sharing at evaluation).

Training with one policy shared by every agent (``multi_agent: shared``) gives a model that sees one agent's
padded observation and picks one agent's action. :class:`SharedPolicy` runs any such per-agent
:class:`~lepton_sim.policy.Policy` on the joint env's stacked observation ``(n_envs, n_agents, D)`` (or a
single-agent env's ``(n_envs, D)``), so it evaluates with the ordinary loop. Padding: lepton_sim.envs.padding.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
from gymnasium import spaces

from lepton_sim.envs.padding import agent_actions, pad_batch
from lepton_sim.policy import Policy, PolicyContext


class SharedPolicy(Policy):
    """Every agent's padded observation row goes through the same per-agent policy."""

    def __init__(self, agent_policy: Policy, name: str | None = None) -> None:
        if not isinstance(agent_policy.observation_space, spaces.Box):
            raise ValueError("a shared policy needs a per-agent policy that declares its Box observation space")
        self.agent_policy = agent_policy
        self.name = name or f"shared-{agent_policy.name}"
        self.env_overrides = dict(agent_policy.env_overrides)
        self.width = int(agent_policy.observation_space.shape[0])
        self._num_actions: np.ndarray | None = None
        self._discrete = False

    def reset(self, context: PolicyContext) -> None:
        space = context.action_space
        self._discrete = isinstance(space, spaces.Discrete)
        if isinstance(space, spaces.Discrete):
            self._num_actions = np.atleast_1d(space.n).astype(np.int64)
        elif isinstance(space, spaces.MultiDiscrete):
            self._num_actions = np.asarray(space.nvec, np.int64).reshape(-1)
        else:
            raise ValueError(f"a shared policy acts in Discrete or MultiDiscrete action spaces, not {space}")
        self.agent_policy.reset(context)

    def act(
        self,
        observation: Any,
        state: Any = None,
        episode_start: np.ndarray | None = None,
        *,
        info: Mapping[str, Any] | None = None,
    ) -> tuple[np.ndarray, Any]:
        obs = np.asarray(observation, np.float32)
        if obs.ndim == 2:  # a single-agent env: (n_envs, D) -> one agent per env
            obs = obs[:, None, :]
        n_envs, n_agents, _ = obs.shape
        rows = pad_batch(obs, self.width).reshape(n_envs * n_agents, self.width)
        starts = None if episode_start is None else np.repeat(np.asarray(episode_start), n_agents)
        action, state = self.agent_policy.act(rows, state, starts)
        action = np.asarray(action, np.int64).reshape(n_envs, n_agents)
        if self._num_actions is not None:
            action = agent_actions(action, self._num_actions[None, :])
        return (action[:, 0] if self._discrete else action), state
