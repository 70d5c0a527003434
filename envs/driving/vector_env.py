"""``DrivingVectorEnv``: N driving worlds stepped together in numpy (``gymnasium.make_vec`` entry point).

Behaves like ``SyncVectorEnv`` over N ``DrivingEnv`` copies with a ``TimeLimit`` (same seeds, actions ->
identical observations, rewards and infos), including Gymnasium 1.x's autoreset modes: ``NEXT_STEP``
(default), ``SAME_STEP`` (``final_obs`` / ``final_info`` in the infos) and ``DISABLED`` (reset with
``options={"reset_mask": mask}``). Each world has its own random generator, seeded ``seed + i``.
"""

from __future__ import annotations

from typing import Any, Sequence

import gymnasium
import numpy as np
from gymnasium import spaces
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from lepton_sim.envs.camera_image import CameraConditions, CameraImage
from lepton_sim.envs.driving.camera import DrivingCamera, check_camera
from lepton_sim.envs.driving.observation import observation_bounds
from lepton_sim.envs.driving.params import DrivingParams
from lepton_sim.envs.driving.sim import DrivingSim
from lepton_sim.envs.rendering import check_render_mode


class DrivingVectorEnv(VectorEnv):
    """``num_envs`` copies of ``lepton/Driving-v0`` (see :class:`~lepton_sim.envs.driving.driving_env.DrivingEnv`)."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10, "autoreset_mode": AutoresetMode.NEXT_STEP}

    def __init__(
        self,
        num_envs: int = 1,
        max_episode_steps: int | None = None,
        render_mode: str | None = None,
        autoreset_mode: str | AutoresetMode = AutoresetMode.NEXT_STEP,
        **kwargs: Any,
    ) -> None:
        if num_envs < 1:
            raise ValueError(f"num_envs must be at least 1, got {num_envs}")
        self.params = DrivingParams(**kwargs)
        self.num_envs = num_envs
        self.max_episode_steps = max_episode_steps
        self.render_mode = check_render_mode(render_mode, self.metadata)
        self.autoreset_mode = AutoresetMode(autoreset_mode)
        self.metadata = {
            **self.metadata,
            "render_fps": 1.0 / self.params.policy_dt,
            "autoreset_mode": self.autoreset_mode,
        }
        self.sim = DrivingSim(self.params, num_envs)
        low, high = observation_bounds(self.params)
        self.single_observation_space = spaces.Box(low, high, dtype=np.float32)
        self._discrete = self.params.action_mode == "discrete"
        self.single_action_space = (
            spaces.Discrete(5) if self._discrete else spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)
        )
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self._rngs: list[np.random.Generator | None] = [None] * num_envs
        self._seeds: list[int | None] = [None] * num_envs
        self._elapsed = np.zeros(num_envs, dtype=np.int64)
        self._needs_reset = np.zeros(num_envs, dtype=bool)
        self._camera: DrivingCamera | None = None
        # obs_mode 'pixels': the state observation is not computed (see DrivingEnv); a constant placeholder
        self._state_obs = self.params.obs_mode != "pixels"
        self._placeholder = np.clip(np.zeros((num_envs, len(low)), np.float32), low, high)
        self._placeholder.flags.writeable = False
        self._placed = True

    # ---------------------------------------------------------------------------------------------- reset
    def reset(
        self, *, seed: int | Sequence[int | None] | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Reset all worlds (or those in ``options["reset_mask"]``); ``seed``: int -> seed + i, or a list."""
        n = self.num_envs
        if seed is None:
            seeds: list[int | None] = [None] * n
        elif isinstance(seed, (int, np.integer)):
            seeds = [int(seed) + i for i in range(n)]
        else:
            seeds = list(seed)
            if len(seeds) != n:
                raise ValueError(f"reset(seed=...) got {len(seeds)} seeds for num_envs={n}")
        mask = np.ones(n, dtype=bool)
        if options and "reset_mask" in options:
            mask = np.asarray(options["reset_mask"], dtype=bool)
            if mask.shape != (n,):
                raise ValueError(f"options['reset_mask'] must have shape ({n},), got {mask.shape}")
        worlds = np.flatnonzero(mask)
        self._reset_worlds(worlds, [seeds[i] for i in worlds])
        obs = self._observe()
        info = self._infos(self.sim.info_arrays(), mask)
        return obs, info

    def _observe(self) -> np.ndarray:
        self._placed = self._state_obs
        return self.sim.observe() if self._state_obs else self._placeholder

    def _reset_worlds(self, worlds: np.ndarray, seeds: Sequence[int | None]) -> None:
        for i, seed in zip(worlds, seeds):
            if seed is not None or self._rngs[i] is None:  # like Env.reset: keep the generator without a seed
                self._rngs[i], self._seeds[i] = seeding.np_random(seed)
        self.sim.reset_worlds(worlds, [self._rngs[i] for i in worlds])
        self._elapsed[worlds] = 0
        self._needs_reset[worlds] = False

    # ----------------------------------------------------------------------------------------------- step
    def step(self, actions: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        pending = np.flatnonzero(self._needs_reset) if self.autoreset_mode == AutoresetMode.NEXT_STEP else []
        if self.autoreset_mode == AutoresetMode.DISABLED and self._needs_reset.any():
            raise RuntimeError(
                "autoreset_mode=DISABLED: reset the finished envs (options={'reset_mask': ...}) before stepping them"
            )
        reward, terminated = self.sim.step(actions, self._discrete)
        self._elapsed += 1
        truncated = (self._elapsed >= self.max_episode_steps) if self.max_episode_steps else np.zeros_like(terminated)
        info_values = self.sim.info_arrays()
        done = terminated | truncated
        infos: dict[str, Any] = {}
        if len(pending):  # NEXT_STEP: these worlds ended last step; reset them instead (action ignored)
            self._reset_worlds(pending, [None] * len(pending))
            reward[pending] = 0.0
            terminated[pending] = truncated[pending] = done[pending] = False
            info_values = self.sim.info_arrays()
            obs = self._observe()
        elif self.autoreset_mode == AutoresetMode.SAME_STEP and done.any():
            ended = np.flatnonzero(done)
            final_obs_batch = self._observe()
            final_obs = np.full(self.num_envs, None, dtype=object)
            for i in ended:
                final_obs[i] = final_obs_batch[i]
            infos["final_obs"] = final_obs
            infos["_final_obs"] = done.copy()
            infos["final_info"] = self._infos(info_values, done)
            infos["_final_info"] = done.copy()
            self._reset_worlds(ended, [None] * len(ended))
            info_values = self.sim.info_arrays()
            obs = self._observe()
        else:
            obs = self._observe()
        self._needs_reset = done if self.autoreset_mode != AutoresetMode.SAME_STEP else np.zeros_like(done)
        infos.update(self._infos(info_values, np.ones(self.num_envs, dtype=bool)))
        return obs, reward, terminated, truncated, infos

    def _infos(self, values: dict[str, np.ndarray], mask: np.ndarray) -> dict[str, Any]:
        """Gymnasium's vector info layout: ``key -> values`` and ``_key -> mask`` (zeros where masked out)."""
        out: dict[str, Any] = {}
        full = mask.all()
        for key, value in values.items():
            out[key] = value if full else np.where(mask, value, np.zeros_like(value))
            out[f"_{key}"] = mask.copy()
        return out

    # ------------------------------------------------------------------------------------------- cameras
    def camera_images(
        self,
        name: str,
        width: int,
        height: int,
        *,
        depth: bool = False,
        segmentation: bool = False,
        conditions: Sequence[CameraConditions] | None = None,
    ) -> CameraImage:
        """Camera ``name`` of every world in one batched pass: rgb (N, H, W, 3) or semantic (N, H, W, 5) uint8.

        ``conditions``: one per world (None: all nominal). World i equals ``DrivingEnv.camera_image`` in its state.
        """
        check_camera(name, depth, segmentation)
        if self._camera is None:
            self._camera = DrivingCamera(self.params)
        self._place_vehicles()
        return self._camera.render(self.sim, name, width, height, conditions)

    # ------------------------------------------------------------------------------------- render & plots
    def render(self) -> tuple[np.ndarray, ...] | None:
        if self.render_mode is None:
            gymnasium.logger.warn("render() called without a render_mode; use render_mode='rgb_array'")
            return None
        from lepton_sim.envs.driving.render import render_world

        self._place_vehicles()
        return tuple(render_world(self.sim, i) for i in range(self.num_envs))

    def _place_vehicles(self) -> None:
        """Other vehicles' boxes for pictures, where no state observation placed them this step."""
        if not self._placed:
            self.sim._place_vehicles()
            self._placed = True

    def plot_trajectory(self, ax: Any, infos: Sequence[dict[str, Any]]) -> None:
        """Draw the episode's road and the ego's path from one sub-env's ``infos`` onto ``ax``."""
        from lepton_sim.envs.driving.render import plot_trajectory

        plot_trajectory(ax, infos, self.sim)
