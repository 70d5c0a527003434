"""SB3 model files in a run folder: the model ``.zip`` and, when training normalises observations, the
VecNormalize statistics that belong to it (``<stem>_vecnormalize.pkl`` beside it). Written atomically."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from lepton_sim.io import write_atomic
from lepton_sim.runs import RunFolder

NORMALIZER = ("vecnormalize", ".pkl")


def normalizer_path(model_path: Path) -> Path:
    """Where the VecNormalize statistics of a model file live."""
    return RunFolder.companion(Path(model_path), *NORMALIZER)


def save_model(model: Any, path: Path) -> None:
    """Save the model and, if training normalises observations, the matching statistics beside it."""
    write_atomic(path, lambda tmp: model.save(tmp))
    normalizer = model.get_vec_normalize_env()
    if normalizer is not None:
        write_atomic(normalizer_path(path), lambda tmp: normalizer.save(tmp))


def load_normalizer(model_path: Path, required: bool = False) -> Any:
    """The model's VecNormalize statistics for inference (not updated by what it sees), or None if there are
    none; ``required`` (the run normalised observations) makes their absence an error."""
    stats_path = normalizer_path(model_path)
    if not stats_path.is_file():
        if required:
            from lepton_sim.errors import LeptonError

            raise LeptonError(f"{model_path}: the run normalised observations but {stats_path.name} is missing "
                              "beside the model; without it the policy would see unnormalised observations")
        return None
    import pickle

    with open(stats_path, "rb") as f:
        normalizer = pickle.load(f)
    normalizer.training = False
    normalizer.norm_reward = False
    return normalizer
