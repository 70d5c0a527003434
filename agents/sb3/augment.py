"""``augment: random_shift``: the training env's camera images shifted by DrQ's random shift (pad 4, random crop).

Why a VecEnv wrapper: the training loop of every SB3 algorithm reads observations from its env, so shifting them
there augments PPO's rollouts and an off-policy replay buffer alike, with no change to SB3. Only the training env
is wrapped: periodic and final evaluation see the camera's images as they are. Terminal observations (the value
bootstrap of a truncated episode) are shifted as well, so the model only ever sees augmented images in training.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from stable_baselines3.common.preprocessing import is_image_space_channels_first
from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper
from stable_baselines3.common.vec_env.base_vec_env import VecEnvObs, VecEnvStepReturn

from lepton_sim.agents.sb3.pixels import image_keys
from lepton_sim.augmentation import DEFAULT_PAD, RandomShift
from lepton_sim.errors import LeptonError

AUGMENT_STREAM = 0xA06  # the shifts' generator: np.random.default_rng([seed, AUGMENT_STREAM]), never the envs'


class VecRandomShift(VecEnvWrapper):
    """Random shift of every image (image keys of a Dict observation) the wrapped env returns."""

    def __init__(self, venv: VecEnv, seed: int = 0, pad: int = DEFAULT_PAD) -> None:
        super().__init__(venv)
        self.keys = image_keys(venv.observation_space)
        if not self.keys:
            raise LeptonError(
                f"augment: random_shift needs camera images, but the observations are {venv.observation_space}"
            )
        rng = np.random.default_rng([seed, AUGMENT_STREAM])
        self.shifts: dict[str | None, RandomShift] = {}
        for key in self.keys:
            space = venv.observation_space if key is None else venv.observation_space[key]  # type: ignore[index]
            first = is_image_space_channels_first(space)  # type: ignore[arg-type]
            self.shifts[key] = RandomShift(pad, seed=int(rng.integers(2**63)), channels_first=first)

    def reset(self) -> VecEnvObs:
        return self._augment(self.venv.reset())

    def step_wait(self) -> VecEnvStepReturn:
        obs, rewards, dones, infos = self.venv.step_wait()
        for info in infos:
            if "terminal_observation" in info:
                info["terminal_observation"] = self._augment_one(info["terminal_observation"])
        return self._augment(obs), rewards, dones, infos

    def _augment(self, obs: Any) -> Any:
        if None in self.shifts:
            return self.shifts[None](obs)
        return {k: self.shifts[k](v) if k in self.shifts else v for k, v in obs.items()}

    def _augment_one(self, obs: Any) -> Any:
        """One env's observation (a terminal observation), shifted as a batch of one."""
        if isinstance(obs, dict):
            return {k: self.shifts[k](v[None])[0] if k in self.shifts else v for k, v in obs.items()}
        return self.shifts[None](np.asarray(obs)[None])[0]
