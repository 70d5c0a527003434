"""Frame stacking inside a loaded policy, exactly as SB3's VecFrameStack stacked the training observations.

Why in the policy: evaluation, rollouts, compare and serve run the scenario's plain env and hand the policy one
observation per step; a model trained on the last k observations then stacks them itself, carrying the stack
through ``act`` like a recurrent state (a new one for the sub-envs whose ``episode_start`` is set), so every
consumer of the policy interface works unchanged.

The layout is VecFrameStack's (``StackedObservations``): frames along the channel axis (the first axis of a
channels-first image, else the last), oldest first, zeros before an episode's first observation.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import gymnasium
import numpy as np
from gymnasium import spaces


class StackState(NamedTuple):
    """What a frame-stacking policy carries between calls: the stacks (one row per sub-env) and the model's
    own recurrent state, if any."""

    frames: Any  # np.ndarray, or a dict of them for a Dict observation
    inner: Any = None


def stacked_space(space: gymnasium.Space, n_stack: int) -> gymnasium.Space:
    """The observation space VecFrameStack gives for ``space`` (what the model was built with)."""
    from stable_baselines3.common.vec_env.stacked_observations import StackedObservations

    return StackedObservations(1, n_stack, space).stacked_observation_space  # type: ignore[arg-type]


def _layout(space: spaces.Box, n_stack: int) -> tuple[int, tuple[int, ...]]:
    """The batch axis frames stack along and the stacked shape of one observation."""
    from stable_baselines3.common.vec_env.stacked_observations import StackedObservations

    channels_first, _, shape, _ = StackedObservations.compute_stacking(n_stack, space, None)
    return (1 if channels_first else len(space.shape)), shape


def push(frames: Any, observation: Any, episode_start: np.ndarray | None, space: gymnasium.Space, n_stack: int) -> Any:
    """The stacks after ``observation`` (a batch); ``frames`` None (or of another batch size) starts new stacks.
    Returns new arrays: a state handed out earlier (a serving session's) is never changed."""
    if isinstance(space, spaces.Dict):
        return {
            key: push(None if frames is None else frames[key], observation[key], episode_start, sub, n_stack)
            for key, sub in space.spaces.items()
        }
    obs = np.asarray(observation)
    axis, shape = _layout(space, n_stack)  # type: ignore[arg-type]
    n, channels = obs.shape[0], obs.shape[axis]
    if frames is None or frames.shape[0] != n:
        stacked = np.zeros((n, *shape), dtype=space.dtype)
    else:
        stacked = np.roll(frames, -channels, axis=axis)
        if episode_start is not None:
            stacked[np.asarray(episode_start, dtype=bool)] = 0
    index = [slice(None)] * stacked.ndim
    index[axis] = slice(stacked.shape[axis] - channels, None)
    stacked[tuple(index)] = obs
    return stacked
