"""The core's half of ``obs_mode: perceived``: load ``perception: PATH`` as the env side's state estimator.

Why here: envs know only "a callable from images to a state vector" (``envs/perceived_observation.py``) and never
import the core; loading a checkpoint needs the perception package (and torch). ``import lepton_sim`` imports this
module, which registers :func:`load_estimator` with the env side; torch is imported only when a perceived env is
built (``lepton_sim.perception``'s lazy API), so state envs never load it. Loaded models are shared within a
process (keyed by file, size and modification time): a vector env's worlds, and the single envs an evaluation
or an SB3 run builds, run one copy.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from lepton_sim.envs.perceived_observation import register_estimator_loader
from lepton_sim.errors import LeptonError

STATE_HEAD = "state"
_cache: dict[tuple[str, int, int], "ModelEstimator"] = {}


class ModelEstimator:
    """A trained perception model (``lepton_sim.perception.load_model``) as a state estimator: its ``state``
    head, de-standardised, flattened in the state layout it was trained on."""

    def __init__(self, model: Any) -> None:
        heads = {spec.name: spec for spec in model.labels}
        if STATE_HEAD not in heads or model.state_layout is None:
            names = ", ".join(heads) or "none"
            raise LeptonError(
                f"{model.file}: obs_mode perceived needs a model with a {STATE_HEAD!r} head (the state observation); "
                f"this one has {names} (perception train --head {STATE_HEAD})"
            )
        self.model = model
        self.name = str(model.file)
        h, w, c = model.image_shape
        self.image_shape = (int(h), int(w), int(c))
        self.state_size = int(heads[STATE_HEAD].size)

    def __call__(self, images: np.ndarray) -> np.ndarray:
        return np.asarray(self.model(images)[STATE_HEAD], np.float32).reshape(len(images), self.state_size)


def load_estimator(path: str) -> ModelEstimator:
    """The perception model at ``path`` (a ``perception train`` folder or its ``model.pt``), loaded once per
    process; a missing, corrupt or headless checkpoint is a one-line error."""
    where = Path(path).expanduser()
    file = where / "model.pt" if where.is_dir() else where
    try:
        stat = file.stat()
        key = (str(file.resolve()), stat.st_size, stat.st_mtime_ns)
    except OSError:
        key = None
    if key is not None and key in _cache:
        return _cache[key]
    from lepton_sim import perception  # its lazy API: torch loads here, the first time

    estimator = ModelEstimator(perception.load_model(where))
    if key is not None:
        _cache[key] = estimator
    return estimator


register_estimator_loader(load_estimator)
