"""Stable-Baselines3 models behind lepton-sim's policy interface."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import numpy as np

from lepton_sim.agents.policy import Policy
from lepton_sim.agents.sb3.algorithms import ALGORITHMS, algorithm_class
from lepton_sim.agents.sb3.callbacks import normalizer_path


INFERENCE_ONLY = {"replay_buffer_class": None, "replay_buffer_kwargs": {}, "buffer_size": 1}


class SB3Policy(Policy):
    """A trained SB3 model; deterministic actions by default (as SB3's evaluate_policy)."""

    def __init__(self, model: Any, name: str, deterministic: bool = True, obs_normalizer: Any = None) -> None:
        self.model = model
        self.name = name
        self.deterministic = deterministic
        self.obs_normalizer = obs_normalizer  # a VecNormalize saved with the run, if training normalised obs

    @classmethod
    def load(cls, path: str | Path, algo: str | None = None, device: str = "auto") -> "SB3Policy":
        """Load a model .zip; ``algo`` comes from the run's config when known, else each algorithm is tried."""
        path = Path(path)
        candidates = [algo] if algo else list(ALGORITHMS)
        errors = []
        for name in candidates:
            try:
                # a HER replay buffer needs the env to be rebuilt; inference needs no buffer at all
                model = algorithm_class(name).load(path, device=device, custom_objects=INFERENCE_ONLY)
            except Exception as err:  # noqa: BLE001  (SB3 raises various errors for a mismatched class)
                errors.append(f"{name}: {type(err).__name__}: {err}")
                continue
            return cls(model, name=f"{name}:{path.parent.name}/{path.stem}", obs_normalizer=_load_normalizer(path))
        raise ValueError(f"could not load {path} as an SB3 model ({'; '.join(errors)})")

    @property
    def observation_space(self) -> Any:
        return self.model.observation_space

    @property
    def action_space(self) -> Any:
        return self.model.action_space

    def act(self, observation: Any, info: Mapping[str, Any] | None = None) -> np.ndarray:
        if self.obs_normalizer is not None:
            observation = self.obs_normalizer.normalize_obs(observation)
        action, _ = self.model.predict(observation, deterministic=self.deterministic)
        return action


def _load_normalizer(model_path: Path) -> Any:
    stats_path = normalizer_path(model_path)
    if not stats_path.is_file():
        return None
    import pickle

    with open(stats_path, "rb") as f:
        normalizer = pickle.load(f)
    normalizer.training = False
    return normalizer
