"""SB3 model files in a run folder: the model ``.zip`` and, when training normalises observations, the
VecNormalize statistics that belong to it, beside it. Written atomically.

Two copies of the statistics are written: ``<stem>_vecnormalize.npz`` (plain arrays, what inference reads: no code
runs when it is loaded) and ``<stem>_vecnormalize.pkl`` (SB3's pickled VecNormalize, which ``--resume`` needs for
its full state; a pickle runs code when loaded, so it is read only where the user trusts the file).

Reading a model for inference also stays free of pickles: :func:`read_policy_weights` takes only ``policy.pth``
from the zip (``torch.load(weights_only=True)``) and :func:`read_plain_data` the plain JSON fields of its ``data``
entry, never the cloudpickled ``:serialized:`` ones.
"""

from __future__ import annotations

import io
import json
import pickle
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from lepton_sim.errors import LeptonError
from lepton_sim.io import write_atomic
from lepton_sim.runs import RunFolder

NORMALIZER = ("vecnormalize", ".pkl")  # SB3's pickle: resume, and inference with --trust-pickle
STATS = ("vecnormalize", ".npz")  # plain arrays: safe inference
STATS_FORMAT = "lepton-sim/vecnormalize-stats/1"
TRUST_HINT = "pass --trust-pickle (Python: trust_pickle=True) only if the file comes from a trusted source"


def normalizer_path(model_path: Path) -> Path:
    """Where the pickled VecNormalize of a model file lives (read by ``--resume``)."""
    return RunFolder.companion(Path(model_path), *NORMALIZER)


def stats_path(model_path: Path) -> Path:
    """Where the plain (npz) normalisation statistics of a model file live (read for inference)."""
    return RunFolder.companion(Path(model_path), *STATS)


def save_model(model: Any, path: Path) -> None:
    """Save the model and, if training normalises observations, the matching statistics beside it (both the
    npz that inference reads and the pickle that resume reads). The statistics go first: a process killed in
    between leaves no model file without them."""
    normalizer = model.get_vec_normalize_env()
    if normalizer is not None:
        write_atomic(normalizer_path(path), lambda tmp: normalizer.save(tmp))
        stats = ObsNormalizer.from_vec_normalize(normalizer)
        write_atomic(stats_path(path), stats.save)
    write_atomic(path, lambda tmp: model.save(tmp))


@dataclass(frozen=True)
class RunningStats:
    """One RunningMeanStd's numbers (float64, as SB3 keeps them)."""

    mean: np.ndarray
    var: np.ndarray
    count: float


@dataclass(frozen=True)
class ObsNormalizer:
    """VecNormalize's observation statistics as data, applied exactly as ``VecNormalize.normalize_obs``.

    ``obs`` is one RunningStats for a Box observation, or one per normalised key (``norm_obs_keys``) for a Dict
    observation. ``ret`` (return statistics) is kept for completeness; inference never normalises rewards."""

    obs: RunningStats | dict[str, RunningStats]
    ret: RunningStats
    norm_obs: bool
    norm_reward: bool
    clip_obs: float
    clip_reward: float
    gamma: float
    epsilon: float

    @classmethod
    def from_vec_normalize(cls, vec_normalize: Any) -> "ObsNormalizer":
        def stats(rms: Any) -> RunningStats:
            return RunningStats(np.array(rms.mean, np.float64), np.array(rms.var, np.float64), float(rms.count))

        rms = getattr(vec_normalize, "obs_rms", None)  # absent with norm_obs=False (camera images: rewards only)
        if rms is None:
            obs: RunningStats | dict[str, RunningStats] = RunningStats(np.zeros(0), np.ones(0), 0.0)
        elif isinstance(rms, dict):
            obs = {key: stats(rms[key]) for key in vec_normalize.norm_obs_keys}
        else:
            obs = stats(rms)
        return cls(
            obs=obs,
            ret=stats(vec_normalize.ret_rms),
            norm_obs=bool(vec_normalize.norm_obs),
            norm_reward=bool(vec_normalize.norm_reward),
            clip_obs=float(vec_normalize.clip_obs),
            clip_reward=float(vec_normalize.clip_reward),
            gamma=float(vec_normalize.gamma),
            epsilon=float(vec_normalize.epsilon),
        )

    @property
    def norm_obs_keys(self) -> list[str] | None:
        """The normalised keys of a Dict observation (None for a Box)."""
        return list(self.obs) if isinstance(self.obs, dict) else None

    def normalize_obs(self, obs: np.ndarray | Mapping[str, np.ndarray]) -> np.ndarray | dict[str, np.ndarray]:
        """``clip((obs - mean) / sqrt(var + epsilon), -clip_obs, clip_obs)`` as float32; the input is not changed."""
        if not self.norm_obs:
            return {k: np.copy(v) for k, v in obs.items()} if isinstance(obs, Mapping) else np.copy(obs)
        if isinstance(self.obs, dict):
            if not isinstance(obs, Mapping):
                raise LeptonError("the normalisation statistics are for Dict observations but got an array")
            out = {k: np.copy(v) for k, v in obs.items()}
            for key, rms in self.obs.items():
                out[key] = self._normalize(obs[key], rms)
            return out
        return self._normalize(np.asarray(obs), self.obs)

    def _normalize(self, obs: np.ndarray, rms: RunningStats) -> np.ndarray:
        return np.clip((obs - rms.mean) / np.sqrt(rms.var + self.epsilon), -self.clip_obs, self.clip_obs).astype(
            np.float32
        )

    # ------------------------------------------------------------------------------------------ npz file
    def save(self, path: Path) -> None:
        """Write the statistics as an npz of plain arrays (numbers and strings; no objects)."""
        arrays: dict[str, np.ndarray] = {
            "format": np.array(STATS_FORMAT),
            "norm_obs": np.array(self.norm_obs),
            "norm_reward": np.array(self.norm_reward),
            "clip_obs": np.array(self.clip_obs),
            "clip_reward": np.array(self.clip_reward),
            "gamma": np.array(self.gamma),
            "epsilon": np.array(self.epsilon),
            "obs_keys": np.array(self.norm_obs_keys or [], dtype=np.str_),
            "obs_is_dict": np.array(isinstance(self.obs, dict)),
        }
        parts = list(self.obs.values()) if isinstance(self.obs, dict) else [self.obs]
        for prefix, rms in [*((f"obs_{i}", rms) for i, rms in enumerate(parts)), ("ret", self.ret)]:
            arrays.update(
                {
                    f"{prefix}_mean": rms.mean,
                    f"{prefix}_var": rms.var,
                    f"{prefix}_count": np.array(rms.count, np.float64),
                }
            )
        with open(path, "wb") as f:  # a file object: np.savez would append .npz to a temporary name
            np.savez(f, allow_pickle=False, **arrays)  # type: ignore[arg-type]  # no object arrays

    @classmethod
    def load(cls, path: Path) -> "ObsNormalizer":
        """Read statistics written by :meth:`save` (``allow_pickle=False``: object arrays are refused)."""
        try:
            with np.load(path, allow_pickle=False) as data:
                if str(data["format"]) != STATS_FORMAT:
                    raise ValueError(f"unknown format {str(data['format'])!r}, expected {STATS_FORMAT!r}")

                def stats(prefix: str) -> RunningStats:
                    return RunningStats(
                        np.array(data[f"{prefix}_mean"], np.float64),
                        np.array(data[f"{prefix}_var"], np.float64),
                        float(data[f"{prefix}_count"]),
                    )

                keys = [str(k) for k in data["obs_keys"]]
                obs: RunningStats | dict[str, RunningStats] = (
                    {key: stats(f"obs_{i}") for i, key in enumerate(keys)}
                    if bool(data["obs_is_dict"])
                    else stats("obs_0")
                )
                return cls(
                    obs=obs,
                    ret=stats("ret"),
                    norm_obs=bool(data["norm_obs"]),
                    norm_reward=bool(data["norm_reward"]),
                    clip_obs=float(data["clip_obs"]),
                    clip_reward=float(data["clip_reward"]),
                    gamma=float(data["gamma"]),
                    epsilon=float(data["epsilon"]),
                )
        except (OSError, KeyError, ValueError, zipfile.BadZipFile) as err:
            raise LeptonError(f"{path}: not lepton-sim normalisation statistics ({err})") from None


def load_normalizer(model_path: Path, required: bool = False, trust_pickle: bool = False) -> Any:
    """The model's observation statistics for inference, or None if there are none; ``required`` (the run
    normalised observations) makes their absence an error.

    Reads the npz. The pickle is read only with ``trust_pickle`` (today's SB3 VecNormalize, preferred there so
    older files load as they always did); without it, a model whose statistics exist only as a pickle is refused
    with a message naming the opt-in."""
    model_path = Path(model_path)
    npz, pkl = stats_path(model_path), normalizer_path(model_path)
    if trust_pickle and pkl.is_file():
        return _load_pickled_normalizer(pkl)
    if npz.is_file():
        return ObsNormalizer.load(npz)
    if not required:
        return None
    if pkl.is_file():
        raise LeptonError(
            f"{model_path}: its normalisation statistics exist only as {pkl.name}, a pickle "
            f"(written before lepton-sim stored {npz.name}), and loading a pickle can run code "
            f"from the file; {TRUST_HINT}"
        )
    raise LeptonError(
        f"{model_path}: the run normalised observations but {npz.name} is missing beside the "
        "model; without it the policy would see unnormalised observations"
    )


def _load_pickled_normalizer(path: Path) -> Any:
    """SB3's pickled VecNormalize (runs code from the file: only with the user's trust), frozen for inference."""
    from stable_baselines3.common.vec_env import VecNormalize

    with open(path, "rb") as f:
        normalizer = pickle.load(f)
    if not isinstance(normalizer, VecNormalize):
        raise LeptonError(f"{path}: not VecNormalize statistics (a pickled {type(normalizer).__name__})")
    normalizer.training = False
    normalizer.norm_reward = False
    return normalizer


# ---------------------------------------------------------------------------------------------- model zip
def read_plain_data(model_path: Path) -> dict[str, Any]:
    """The model's ``data`` entry parsed as JSON; cloudpickled values stay base64 text and are never loaded."""
    try:
        with zipfile.ZipFile(model_path) as archive:
            data = json.loads(archive.read("data").decode())
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as err:
        raise LeptonError(f"{model_path}: not a stable-baselines3 model file ({err})") from None
    if not isinstance(data, dict):
        raise LeptonError(f"{model_path}: not a stable-baselines3 model file (its data is not a mapping)")
    return data


def plain_fields(entry: Any) -> Any:
    """The plain part of one ``data`` value: a JSON value as is; for a cloudpickled one, the JSON-readable items
    SB3 writes beside the pickle (``:type:`` and ``:serialized:`` left out)."""
    if isinstance(entry, dict) and ":serialized:" in entry:
        return {k: v for k, v in entry.items() if not k.startswith(":")}
    return entry


def read_policy_weights(model_path: Path, device: Any = "cpu") -> dict[str, Any]:
    """The policy's state dict from the zip's ``policy.pth``, with ``weights_only=True`` (tensors only)."""
    import torch

    try:
        with zipfile.ZipFile(model_path) as archive:
            raw = archive.read("policy.pth")
        state = torch.load(io.BytesIO(raw), map_location=device, weights_only=True)
    except (OSError, KeyError, EOFError, RuntimeError, ValueError, zipfile.BadZipFile, pickle.UnpicklingError) as err:
        # UnpicklingError: torch's weights-only reader refused something that is not a tensor
        raise LeptonError(
            f"{model_path}: no readable policy weights ({type(err).__name__}: {' '.join(str(err).split())[:300]})"
        ) from None
    if not isinstance(state, dict):
        raise LeptonError(f"{model_path}: policy.pth is not a state dict")
    return state
