"""Observation mode ``perceived``: a perception model turns the camera image into the state observation.

Why: a policy trained on true state should run unchanged on what a vision model sees, and an agent can train on
perceived state, so the perception gap (success on true vs perceived state) is measured with one policy. The
env's cameras are rendered as in ``state+pixels`` (same layout, sensor degradations, seeds), the model estimates
the state from the image, and the agent gets that estimate in exactly the state observation's space (Box, or
the goal-conditioned Dict), clipped to its bounds.

The env side knows only a :class:`StateEstimator`: a callable from a batch of uint8 images (N, H, W, C) to flat
state vectors (N, D), with the image shape it takes. Loading one from a checkpoint is the core's job
(``lepton_sim.perceived`` registers its loader with :func:`register_estimator_loader`), so envs never import
torch or the core. ``perception: ground-truth`` is the built-in reference: the env's own state observation
passed through the same pipeline (images rendered, batched, final observations included), for tests and as the
perception gap's upper bound (a perfect model reproduces the state agent's evaluation exactly).

Batching: on a vector env (:class:`VectorPerceivedObservation`) the model runs once per step on every world's
image; a single env (:class:`PerceivedObservation`) runs it on one image.
"""

from __future__ import annotations

from typing import Any, Callable, Protocol, Sequence

import gymnasium
import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv, VectorWrapper

from lepton_sim.envs.pixel_observation import PIXELS_KEY, STATE_KEY, PixelObservation, is_goal_space

GROUND_TRUTH = "ground-truth"
PERCEIVED = "perceived"


class StateEstimator(Protocol):
    """A perception model as the env sees it: ``estimator(images)`` maps uint8 (N, H, W, C) images to float
    state vectors (N, ``state_size``), flattened in the state space's order (Dict keys in the space's order)."""

    image_shape: tuple[int, int, int]
    state_size: int
    name: str

    def __call__(self, images: np.ndarray) -> np.ndarray: ...


class GroundTruth:
    """The perfect "model": the env's own state observation (the wrapper hands it over instead of an estimate)."""

    name = GROUND_TRUTH

    def __init__(self, image_shape: tuple[int, int, int], state_size: int) -> None:
        self.image_shape = image_shape
        self.state_size = state_size

    def __call__(self, images: np.ndarray) -> np.ndarray:  # pragma: no cover - the wrappers pass the truth
        raise RuntimeError("the ground-truth estimator reads the state, not images")


Loader = Callable[[str], StateEstimator]
_loader: Loader | None = None


def register_estimator_loader(loader: Loader) -> None:
    """Set the function that loads ``perception: PATH`` (the core's, at ``import lepton_sim``)."""
    global _loader
    _loader = loader


def load_estimator(spec: str, image_shape: tuple[int, int, int], state_space: spaces.Space) -> StateEstimator:
    """The estimator that ``perception`` names, checked against what the env renders and observes: a model for
    other images or another state layout is a one-line ValueError, not a shape traceback at the first step."""
    size = flat_size(state_space)
    if spec == GROUND_TRUTH:
        return GroundTruth(image_shape, size)
    if _loader is None:
        raise ValueError("obs_mode 'perceived' needs lepton_sim's perception loader: import lepton_sim first")
    estimator = _loader(spec)
    h, w, c = (int(v) for v in estimator.image_shape)
    if (h, w, c) != tuple(image_shape):
        eh, ew, ec = image_shape
        raise ValueError(
            f"perception model {estimator.name} takes {h}x{w}x{c} images, but this scenario's cameras give "
            f"{eh}x{ew}x{ec}: set camera_size (and obs_camera, camera_depth, camera_segmentation) to what the model "
            "was trained on"
        )
    if int(estimator.state_size) != size:
        raise ValueError(
            f"perception model {estimator.name} estimates a state of {estimator.state_size} values, but this env's "
            f"state observation has {size} (a model trained on another scenario's state?)"
        )
    return estimator


# ---------------------------------------------------------------------------------------------- state layout
def _parts(space: spaces.Space) -> list[tuple[str | None, spaces.Box]]:
    if isinstance(space, spaces.Dict):
        parts = []
        for key, sub in space.spaces.items():
            if not isinstance(sub, spaces.Box):
                raise ValueError(f"obs_mode 'perceived' needs Box state parts, {key!r} is {sub}")
            parts.append((str(key), sub))
        return parts
    if not isinstance(space, spaces.Box):
        raise ValueError(f"obs_mode 'perceived' needs a Box (or Dict of Box) state observation, got {space}")
    return [(None, space)]


def flat_size(space: spaces.Space) -> int:
    """Values in one state observation (what a perception model's state head must give)."""
    return sum(int(np.prod(box.shape, dtype=np.int64)) for _, box in _parts(space))


class StateCodec:
    """Batched state observations <-> flat float32 vectors (N, D), in the space's key order."""

    def __init__(self, space: spaces.Space) -> None:
        self.space = space
        self.parts = _parts(space)
        self.size = flat_size(space)
        # float32, or float64 where the space has it: flattening the true state must lose nothing
        self.dtype = np.result_type(np.float32, *(box.dtype for _, box in self.parts))

    def flatten(self, states: Any) -> np.ndarray:
        if self.parts[0][0] is None:
            states = np.asarray(states)
            return states.reshape(len(states), -1).astype(self.dtype, copy=False)
        return np.concatenate(
            [np.asarray(states[k]).reshape(len(states[k]), -1).astype(self.dtype, copy=False) for k, _ in self.parts],
            axis=1,
        )

    def unflatten(self, flat: np.ndarray) -> Any:
        """Flat (N, D) -> the space's layout, clipped to its bounds and cast to its dtype (fresh arrays)."""
        flat = np.asarray(flat)
        if flat.ndim != 2 or flat.shape[1] != self.size:
            raise ValueError(f"a perception model gave states of shape {flat.shape}, expected (N, {self.size})")
        out: dict[str, np.ndarray] = {}
        start = 0
        for key, box in self.parts:
            stop = start + int(np.prod(box.shape, dtype=np.int64))
            values = np.clip(flat[:, start:stop].reshape(len(flat), *box.shape), box.low, box.high).astype(box.dtype)
            if key is None:
                return values
            out[key] = values
            start = stop
        return out

    def row(self, batch: Any, i: int) -> Any:
        return {k: v[i] for k, v in batch.items()} if isinstance(batch, dict) else batch[i]


def state_space_of(space: spaces.Dict) -> spaces.Space:
    """The state observation space inside a ``state+pixels`` space (goal envs: every key but the image)."""
    if STATE_KEY in space.spaces:
        return space[STATE_KEY]
    return spaces.Dict({k: v for k, v in space.spaces.items() if k != PIXELS_KEY})


def _state_of(obs: Any, goal: bool) -> Any:
    """The true state inside a ``state+pixels`` observation (goal envs: every key but the image)."""
    if goal:
        return {k: v for k, v in obs.items() if k != PIXELS_KEY}
    return obs[STATE_KEY]


def _stack(states: Sequence[Any]) -> Any:
    if isinstance(states[0], dict):
        return {k: np.stack([s[k] for s in states]) for k in states[0]}
    return np.stack(states)


class Perceiver:
    """Images (and the true states, for ground truth) of a batch -> perceived observations in the state layout."""

    def __init__(self, estimator: StateEstimator, state_space: spaces.Space, channel_first: bool) -> None:
        self.estimator = estimator
        self.codec = StateCodec(state_space)
        self.channel_first = channel_first
        self.truth = isinstance(estimator, GroundTruth)

    def __call__(self, images: np.ndarray, states: Any) -> Any:
        """A batch: ``images`` (N, ...) as the pipeline made them, ``states`` the true states (batched)."""
        if self.truth:
            return self.codec.unflatten(self.codec.flatten(states))
        if self.channel_first:
            images = np.moveaxis(images, -3, -1)
        return self.codec.unflatten(self.estimator(np.ascontiguousarray(images)))


def _perceiver(params: Any, layout_hwc: tuple[int, int, int], channel_first: bool, state_space: spaces.Space) -> Any:
    spec = getattr(params, "perception", None)
    if not spec:
        raise ValueError("obs_mode 'perceived' needs perception: a trained model's folder or file, or ground-truth")
    return Perceiver(load_estimator(str(spec), layout_hwc, state_space), state_space, channel_first)


class PerceivedObservation(gymnasium.Wrapper, gymnasium.utils.RecordConstructorArgs):
    """``perceived`` on a single env: renders ``state+pixels`` inside, gives the model's state estimate."""

    def __init__(self, env: gymnasium.Env, estimator: StateEstimator | None = None) -> None:
        gymnasium.utils.RecordConstructorArgs.__init__(self)
        pixels = PixelObservation(env, include_state=True)
        gymnasium.Wrapper.__init__(self, pixels)
        state_space = env.observation_space
        self._goal = is_goal_space(state_space)
        params = env.unwrapped.params  # type: ignore[attr-defined]
        layout = pixels.layout
        if estimator is None:
            self.perceiver = _perceiver(params, layout.hwc, layout.channel_first, state_space)
        else:
            self.perceiver = Perceiver(estimator, state_space, layout.channel_first)
        self.observation_space = state_space

    def _perceive(self, obs: Any) -> Any:
        states = _stack([_state_of(obs, self._goal)])
        return self.perceiver.codec.row(self.perceiver(obs[PIXELS_KEY][None], states), 0)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict]:
        obs, info = self.env.reset(seed=seed, options=options)
        return self._perceive(obs), info

    def step(self, action: Any) -> tuple[Any, Any, bool, bool, dict]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        return self._perceive(obs), reward, terminated, truncated, info


class VectorPerceivedObservation(VectorWrapper):
    """``perceived`` on a vector env whose worlds observe ``state+pixels``: one model call per step for every
    world's image; SAME_STEP's ``final_obs`` are perceived too (one more call, for the worlds that ended)."""

    def __init__(self, env: VectorEnv, params: Any, estimator: StateEstimator | None = None) -> None:
        super().__init__(env)
        inner = env.single_observation_space
        if not isinstance(inner, spaces.Dict) or PIXELS_KEY not in inner.spaces:
            raise ValueError(f"perceived observations need a state+pixels vector env, got {inner}")
        state_space = state_space_of(inner)
        image = inner[PIXELS_KEY]
        channel_first = getattr(params, "channel_order", "last") == "first"
        hwc = tuple(int(v) for v in (image.shape[1:] + image.shape[:1] if channel_first else image.shape))
        self._goal = is_goal_space(state_space)
        if estimator is None:
            self.perceiver = _perceiver(params, hwc, channel_first, state_space)  # type: ignore[arg-type]
        else:
            self.perceiver = Perceiver(estimator, state_space, channel_first)
        self.single_observation_space = state_space
        self.observation_space = gymnasium.vector.utils.batch_space(state_space, self.num_envs)

    def _perceive(self, obs: Any) -> Any:
        return self.perceiver(obs[PIXELS_KEY], _state_of(obs, self._goal))

    def reset(
        self, *, seed: int | Sequence[int | None] | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        obs, info = self.env.reset(seed=seed, options=options)  # type: ignore[arg-type]
        return self._perceive(obs), info

    def step(self, actions: Any) -> tuple[Any, Any, Any, Any, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(actions)
        final = info.get("final_obs")
        if final is not None:
            ended = [i for i, o in enumerate(final) if o is not None]
            if ended:
                finals = _stack([final[i] for i in ended])
                perceived = self.perceiver(finals[PIXELS_KEY], _state_of(finals, self._goal))
                out = np.full(len(final), None, dtype=object)
                for j, i in enumerate(ended):
                    out[i] = self.perceiver.codec.row(perceived, j)
                info = {**info, "final_obs": out}
        return self._perceive(obs), reward, terminated, truncated, info


def perceived_observation(env: gymnasium.Env) -> PerceivedObservation:
    """The ``perceived`` stage for single envs."""
    return PerceivedObservation(env)


def vector_perceived_observation(venv: VectorEnv, autoreset_mode: AutoresetMode) -> VectorEnv:
    """The ``perceived`` stage for native vector envs with batched cameras: ``state+pixels``, then the model."""
    from lepton_sim.envs.vector_pixel_observation import VectorPixelObservation

    pixels = VectorPixelObservation(venv, include_state=True, autoreset_mode=autoreset_mode)
    return VectorPerceivedObservation(pixels, venv.unwrapped.params)  # type: ignore[attr-defined]
