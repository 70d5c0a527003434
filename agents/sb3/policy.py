"""Stable-Baselines3 models behind lepton-sim's policy interface."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import numpy as np

from lepton_sim.agents.sb3.algorithms import ALGORITHMS, algorithm_class
from lepton_sim.agents.sb3.model_files import load_normalizer
from lepton_sim.errors import LeptonError
from lepton_sim.policy import Policy

INFERENCE_ONLY = {"replay_buffer_class": None, "replay_buffer_kwargs": {}, "buffer_size": 1}


class SB3Policy(Policy):
    """A trained SB3 model; deterministic actions by default (as SB3's evaluate_policy). Recurrent models
    (sb3-contrib's RecurrentPPO) carry their LSTM state through ``act``, as through SB3's ``predict``."""

    def __init__(self, model: Any, name: str, deterministic: bool = True, obs_normalizer: Any = None) -> None:
        self.model = model
        self.name = name
        self.deterministic = deterministic
        self.obs_normalizer = obs_normalizer  # a VecNormalize saved with the run, if training normalised obs
        self.observation_space = model.observation_space
        self.action_space = model.action_space

    @classmethod
    def load(cls, path: str | Path, algo: str | None = None, device: str = "auto",
             normalized: bool = False) -> "SB3Policy":
        """Load a model .zip; ``algo`` comes from the run's config when known, else each algorithm is tried.
        ``normalized``: the run normalised observations, so the statistics beside the model must be there."""
        path = Path(path)
        normalizer = load_normalizer(path, required=normalized)
        candidates = [algo] if algo else list(ALGORITHMS)
        errors = []
        for name in candidates:
            try:
                # a HER replay buffer needs the env to be rebuilt; inference needs no buffer at all
                model = algorithm_class(name).load(path, device=device, custom_objects=INFERENCE_ONLY)
            except Exception as err:  # noqa: BLE001  (SB3 raises various errors for a mismatched class)
                errors.append(f"{name}: {type(err).__name__}: {err}")
                continue
            return cls(model, name=f"{name}:{path.parent.name}/{path.stem}", obs_normalizer=normalizer)
        raise LeptonError(f"could not load {path} as an SB3 model ({'; '.join(errors)})")

    def act(self, observation: Any, state: Any = None, episode_start: np.ndarray | None = None,
            *, info: Mapping[str, Any] | None = None) -> tuple[np.ndarray, Any]:
        if self.obs_normalizer is not None:
            observation = self.obs_normalizer.normalize_obs(observation)
        return self.model.predict(observation, state=state, episode_start=episode_start,
                                  deterministic=self.deterministic)
