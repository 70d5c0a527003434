"""Camera modes on a native vector env: every world's cameras rendered in one batched call (``camera_images``).

Why a vector wrapper and not N single renders: the driving vector env draws all worlds in one numpy pass. World
``i`` gets its own sensor model, seeded like a single env reset with ``seed + i``, so the batched images equal
the single envs' (``tests/test_env_contract.py`` checks it).

Autoreset: with NEXT_STEP the wrapper starts the new sensor episode of worlds that ended on the previous step;
with DISABLED it re-renders only the worlds in ``reset_mask``. SAME_STEP needs the final observation (image
included) of a world that ends *before* it is reset, which only exists inside the step: so the inner env runs
with DISABLED autoreset and this wrapper performs SAME_STEP itself (render the final frames, reset the ended
worlds with their mask, render their first frames), giving Gymnasium's ``final_obs`` / ``final_info``.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv, VectorWrapper
from gymnasium.vector.utils import batch_space

from lepton_sim.envs.camera_image import CameraConditions
from lepton_sim.envs.pixel_observation import (
    CameraLayout,
    combine,
    compose,
    is_goal_space,
    observation_space,
    sensor_for,
    to_order,
)
from lepton_sim.envs.sensor_realism import SensorModel, is_nominal


def has_batched_cameras(venv_class: Any) -> bool:
    """Whether a native vector env class renders its cameras batched (the contract's ``camera_images``)."""
    return callable(getattr(venv_class, "camera_images", None))


def _index(batch: Any, i: int) -> Any:
    return {k: _index(v, i) for k, v in batch.items()} if isinstance(batch, dict) else batch[i]


def _seeds(seed: int | Sequence[int | None] | None, n: int) -> list[int | None]:
    """Gymnasium's vector seeding: an int seeds world i with seed + i; a list gives each world its own."""
    if seed is None:
        return [None] * n
    if isinstance(seed, (int, np.integer)):
        return [int(seed) + i for i in range(n)]
    return list(seed)


def _masked(values: dict[str, Any], mask: np.ndarray) -> dict[str, Any]:
    """A vector info dict restricted to ``mask`` (Gymnasium layout: ``key`` values, ``_key`` flags)."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        if key.startswith("_"):
            continue
        if isinstance(value, dict):
            out[key] = _masked(value, mask)
        else:
            value = np.asarray(value)
            out[key] = np.where(mask.reshape((-1,) + (1,) * (value.ndim - 1)), value, np.zeros_like(value))
        out[f"_{key}"] = mask & np.asarray(values.get(f"_{key}", np.ones_like(mask)), dtype=bool)
    return out


def _merged(step: dict[str, Any], reset: dict[str, Any], reset_mask: np.ndarray) -> dict[str, Any]:
    """Step infos with the reset worlds' values replaced by their reset infos (SyncVectorEnv's SAME_STEP)."""
    out = dict(step)
    for key, value in reset.items():
        if key.startswith("_"):
            continue
        flags = np.asarray(reset.get(f"_{key}", reset_mask), dtype=bool) & reset_mask
        if key in step and not isinstance(value, dict):
            old = np.asarray(step[key])
            value = np.asarray(value)
            out[key] = np.where(flags.reshape((-1,) + (1,) * (value.ndim - 1)), value, old)
            out[f"_{key}"] = np.asarray(step.get(f"_{key}", np.ones_like(flags)), dtype=bool) | flags
        else:
            out[key] = value
            out[f"_{key}"] = flags
    return out


class VectorPixelObservation(VectorWrapper):
    """``pixels`` / ``state+pixels`` for a native vector env with ``camera_images``.

    ``autoreset_mode`` is the mode the caller asked for; for SAME_STEP the inner env must run DISABLED.
    """

    def __init__(self, env: VectorEnv, include_state: bool, autoreset_mode: AutoresetMode) -> None:
        super().__init__(env)
        if not has_batched_cameras(type(env.unwrapped)):
            raise ValueError(f"{type(env.unwrapped).__name__} has no batched camera_images; vectorise with 'sync'")
        inner = env.metadata.get("autoreset_mode", AutoresetMode.NEXT_STEP)
        expected = AutoresetMode.DISABLED if autoreset_mode == AutoresetMode.SAME_STEP else autoreset_mode
        if inner != expected:
            raise ValueError(f"autoreset_mode {autoreset_mode.name} needs the inner vector env in {expected.name}")
        params = env.unwrapped.params  # type: ignore[attr-defined]
        self.include_state = include_state
        self.autoreset_mode = autoreset_mode
        self.layout = CameraLayout.of(params, env.unwrapped)
        self.sensors: list[SensorModel | None] = [sensor_for(params, self.layout) for _ in range(self.num_envs)]
        self._degraded = self.sensors[0] is not None
        self._goal = is_goal_space(env.single_observation_space)
        self.single_observation_space = observation_space(
            env.single_observation_space, self.layout.space(), include_state
        )
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.metadata = {**env.metadata, "autoreset_mode": autoreset_mode}
        self._needs_reset = np.zeros(self.num_envs, dtype=bool)
        self._last: np.ndarray | None = None  # last images (H, W, C staging), for DISABLED partial resets
        self._kwargs = self.layout.capture_kwargs()  # depth / segmentation, only where asked for

    # ------------------------------------------------------------------------------------------- images
    def _conditions(self, k: int) -> list[CameraConditions | tuple[CameraConditions, ...]] | None:
        if not self._degraded:
            return None
        conditions = [s.conditions(k) for s in self.sensors if s is not None]
        return None if all(is_nominal(c) for c in conditions) else conditions

    def _render(self, out: np.ndarray, worlds: Sequence[int] | None = None) -> None:
        images = []
        for k, name in enumerate(self.layout.cameras):
            conditions = self._conditions(k)
            kwargs = self._kwargs if conditions is None else {**self._kwargs, "conditions": conditions}
            size = self.layout.size
            images.append(self.env.unwrapped.camera_images(name, size, size, **kwargs))  # type: ignore[attr-defined]
        compose(self.layout, images, out, self.sensors, worlds)

    def _images(self, worlds: Sequence[int] | None = None) -> np.ndarray:
        """Fresh (N, H, W, C) images; with ``worlds``, only those re-rendered (the others as last returned)."""
        if worlds is None or self._last is None:
            out = np.empty((self.num_envs, *self.layout.hwc), np.uint8)
            worlds = None
        else:
            out = self._last.copy()
        self._render(out, worlds)
        self._last = out
        return out

    def _observe(self, state: Any, hwc: np.ndarray) -> Any:
        return combine(state, to_order(self.layout, hwc), self.include_state, self._goal)

    def _begin(self, worlds: Sequence[int], seeds: Sequence[int | None]) -> None:
        for i, seed in zip(worlds, seeds):
            sensor = self.sensors[i]
            if sensor is not None:
                sensor.begin_episode(seed)

    # --------------------------------------------------------------------------------------- vector API
    def reset(
        self, *, seed: int | Sequence[int | None] | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        mask = np.ones(self.num_envs, dtype=bool)
        if options and "reset_mask" in options:  # read first: SyncVectorEnv pops it from the options
            mask = np.array(options["reset_mask"], dtype=bool)
        obs, info = self.env.reset(seed=seed, options=options)  # type: ignore[arg-type]
        seeds = _seeds(seed, self.num_envs)
        worlds = [int(i) for i in np.flatnonzero(mask)]
        self._begin(worlds, [seeds[i] for i in worlds])
        self._needs_reset[worlds] = False
        return self._observe(obs, self._images(None if mask.all() else worlds)), info

    def step(self, actions: Any) -> tuple[Any, Any, Any, Any, dict[str, Any]]:
        if self.autoreset_mode == AutoresetMode.NEXT_STEP:  # the inner env resets these worlds in this step
            pending = [int(i) for i in np.flatnonzero(self._needs_reset)]
            self._begin(pending, [None] * len(pending))
        obs, reward, terminated, truncated, info = self.env.step(actions)
        done = np.asarray(terminated) | np.asarray(truncated)
        images = self._images()
        if self.autoreset_mode != AutoresetMode.SAME_STEP or not done.any():
            self._needs_reset = done if self.autoreset_mode == AutoresetMode.NEXT_STEP else self._needs_reset
            return self._observe(obs, images), reward, terminated, truncated, info
        ended = [int(i) for i in np.flatnonzero(done)]
        final_obs = np.full(self.num_envs, None, dtype=object)
        final_hwc = to_order(self.layout, images)
        for i in ended:
            final_obs[i] = combine(_index(obs, i), final_hwc[i], self.include_state, self._goal)
        final_info = _masked(info, done)
        obs, reset_info = self.env.reset(options={"reset_mask": done})
        self._begin(ended, [None] * len(ended))
        images = self._images(ended)
        infos = _merged(info, reset_info, done)
        infos.update({"final_obs": final_obs, "_final_obs": done.copy()})
        infos.update({"final_info": final_info, "_final_info": done.copy()})
        return self._observe(obs, images), reward, terminated, truncated, infos


def vector_pixel_observation(include_state: bool) -> Any:
    """The stage factory ``observation_pipeline`` registers for ``pixels`` / ``state+pixels``."""

    def stage(venv: VectorEnv, autoreset_mode: AutoresetMode) -> VectorEnv:
        return VectorPixelObservation(venv, include_state, autoreset_mode)

    return stage
