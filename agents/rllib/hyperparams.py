"""RLlib hyperparameters are data: ``agents/hyperparams/rllib/<algo>.yaml``, keyed by scenario name with a
``default`` entry (the same format as the SB3 files). Algorithm keys are the keyword arguments of the
algorithm's ``AlgorithmConfig.training()`` (``lr``, ``gamma``, ``train_batch_size_per_learner``, ``num_epochs``,
``minibatch_size``, ``clip_param``, ``lambda_``; SAC: ``actor_lr``, ``critic_lr``, ``alpha_lr``, ``tau``,
``replay_buffer_config``, ...). The other keys are lepton-sim's:

- ``n_timesteps``: default training budget; ``multi_agent``: ``joint`` | ``shared`` | ``independent``;
- ``env_runners`` (``--env-runners``), ``envs_per_runner`` (``--envs-per-runner``), ``learners``
  (``--learners``), ``gpus_per_learner`` (``--gpus-per-learner``): where sampling and learning run;
- ``rollout_fragment_length``: env steps per runner and sample call (default ``auto``);
- ``model``: the RLModule's ``DefaultModelConfig`` fields (``fcnet_hiddens``, ``fcnet_activation``, ...);
- ``perception``: ``{checkpoint: PATH, freeze: true|false}``, a pretrained perception encoder over the camera
  images as the PPO module's encoder (lepton_sim.agents.rllib.perception_encoder);
- ``normalize``: observations through RLlib's ``MeanStdFilter`` env-to-module connector (running mean and std per
  observation dimension, clipped to +-10, as SB3's VecNormalize; per agent in multi-agent runs; camera images are
  left as they are, as SB3 does), its statistics saved in every checkpoint and applied frozen when evaluating;
- ``max_restarts`` / ``restart_delay_s``: a failed env runner is restarted after this delay, at most this many
  times; ``max_empty_iterations``: this many iterations in a row that sample nothing stop training with an
  error; ``sample_timeout_s``: how long an iteration waits for its runners.

``her`` exists only in SB3: RLlib has no hindsight relabelling, so asking for it is an error that says so.
Every key and value is checked before the run folder exists (names against the real signatures, values by
pydantic against their annotations, then RLlib's own ``validate()``).
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import ConfigDict, TypeAdapter, ValidationError

from lepton_sim.backends import read_hyperparameter_entries
from lepton_sim.errors import LeptonError

ALGORITHMS = ("ppo", "sac")
LAYOUT_KEYS = {"env_runners": 1, "envs_per_runner": 1, "learners": 0, "gpus_per_learner": 0}  # key -> default
FAULT_KEYS = {"max_restarts": 3, "restart_delay_s": 2.0, "max_empty_iterations": 3, "sample_timeout_s": 60.0}
RUNNER_KEYS = {
    "n_timesteps",
    "multi_agent",
    "her",
    "normalize",
    "model",
    "perception",
    "rollout_fragment_length",
    *LAYOUT_KEYS,
    *FAULT_KEYS,
}
HER_MESSAGE = (
    "her: RLlib has no hindsight experience replay (HER; its replay buffers do no goal relabelling); "
    "goal-conditioned envs train on RLlib through observation flattening without it. Drop her, or train "
    "with --backend sb3 (SAC/TD3/TQC with her: true)"
)


def hyperparams_file(algo: str) -> Path:
    return Path(str(resources.files("lepton_sim.agents"))) / "hyperparams" / "rllib" / f"{algo}.yaml"


def load_hyperparams(algo: str, scenario_name: str, path: str | Path | None = None) -> dict[str, Any]:
    """``default`` merged with the scenario's own entry (``model`` merged one level deeper)."""
    if algo not in ALGORITHMS:
        raise LeptonError(f"unknown algorithm {algo!r} for the rllib back end; allowed: {', '.join(ALGORITHMS)}")
    path = Path(path) if path else hyperparams_file(algo)
    default, entry = read_hyperparameter_entries(path, scenario_name, f"rllib {algo!r}")
    hp = dict(default)
    for key, value in entry.items():
        if key == "model" and isinstance(value, dict) and isinstance(hp.get(key), dict):
            hp[key] = {**hp[key], **value}
        else:
            hp[key] = value
    return hp


@cache
def config_class(algo: str) -> type:
    if algo == "ppo":
        from ray.rllib.algorithms.ppo import PPOConfig

        return PPOConfig
    if algo == "sac":
        from ray.rllib.algorithms.sac import SACConfig

        return SACConfig
    raise LeptonError(f"unknown algorithm {algo!r} for the rllib back end; allowed: {', '.join(ALGORITHMS)}")


@cache
def training_arguments(algo: str) -> dict[str, Any]:
    """``training()``'s keyword arguments (the algorithm's own and AlgorithmConfig's) and their annotations."""
    from ray.rllib.algorithms.algorithm_config import AlgorithmConfig

    out: dict[str, Any] = {}
    for cls in (AlgorithmConfig, config_class(algo)):
        signature = inspect.signature(cls.training)
        for name, p in signature.parameters.items():
            if name in ("self", "kwargs") or p.kind is inspect.Parameter.VAR_KEYWORD:
                continue
            out[name] = p.annotation
    for name in RUNNER_KEYS:  # lepton-sim's keys win (``model`` is the old API stack's model config there)
        out.pop(name, None)
    return out


@cache
def model_fields() -> tuple[str, ...]:
    from ray.rllib.core.rl_module.default_model_config import DefaultModelConfig

    return tuple(f.name for f in dataclasses.fields(DefaultModelConfig))


def _unknown(names: list[str], allowed: set[str] | tuple[str, ...], what: str) -> LeptonError:
    hints = []
    for name in names:
        close = difflib.get_close_matches(name, list(allowed), n=1)
        hints.append(f"{name} (did you mean {close[0]}?)" if close else name)
    return LeptonError(f"unknown {what} {', '.join(hints)}; allowed: {', '.join(sorted(allowed))}")


def check_hyperparams(algo: str, hp: dict[str, Any]) -> None:
    """Raise a LeptonError naming the first bad key or value."""
    if hp.get("her"):
        raise LeptonError(HER_MESSAGE)
    allowed = training_arguments(algo)
    unknown = sorted(set(hp) - set(allowed) - RUNNER_KEYS)
    if unknown:
        raise _unknown(unknown, set(allowed) | RUNNER_KEYS, f"hyperparameter(s) for rllib {algo}:")
    for key, value in hp.items():
        if key in allowed and value is not None:
            _check_value(algo, key, value, allowed[key])
    for key in ("n_timesteps", "envs_per_runner"):
        if key in hp and not _int_at_least(hp[key], 1):
            raise LeptonError(f"hyperparameter {key}={hp[key]!r} must be a positive integer")
    for key in ("env_runners", "learners", "max_restarts"):
        if key in hp and not _int_at_least(hp[key], 0):
            raise LeptonError(f"hyperparameter {key}={hp[key]!r} must be a whole number >= 0")
    if "max_empty_iterations" in hp and not _int_at_least(hp["max_empty_iterations"], 1):
        raise LeptonError(f"hyperparameter max_empty_iterations={hp['max_empty_iterations']!r} must be >= 1")
    for key in ("gpus_per_learner", "restart_delay_s", "sample_timeout_s"):
        value = hp.get(key, 0)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < float("inf"):
            raise LeptonError(f"hyperparameter {key}={value!r} must be a number >= 0")
    fragment = hp.get("rollout_fragment_length", "auto")
    if fragment != "auto" and not _int_at_least(fragment, 1):
        raise LeptonError(f"rollout_fragment_length={fragment!r} must be auto or a positive integer")
    for key in ("her", "normalize"):
        if key in hp and not isinstance(hp[key], bool):
            raise LeptonError(f"hyperparameter {key}={hp[key]!r} must be true or false")
    if hp.get("perception") is not None:
        from lepton_sim.agents.rllib.perception_encoder import check_spec

        check_spec(hp["perception"], algo)
    model = hp.get("model") or {}
    if not isinstance(model, dict):
        raise LeptonError(f"hyperparameter model must be a mapping of DefaultModelConfig fields, got {model!r}")
    bad = sorted(set(model) - set(model_fields()))
    if bad:
        raise _unknown(bad, model_fields(), "model field(s) (RLlib's DefaultModelConfig):")


def _int_at_least(value: Any, low: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= low


def _check_value(algo: str, key: str, value: Any, annotation: Any) -> None:
    if annotation is inspect.Parameter.empty:
        return
    try:
        adapter = TypeAdapter(annotation, config=ConfigDict(arbitrary_types_allowed=True))
    except Exception:  # noqa: BLE001  (an annotation pydantic cannot read: RLlib's validate() still checks)
        return
    try:
        adapter.validate_python(value, strict=isinstance(value, bool))
    except ValidationError:
        shown = str(annotation).replace("typing.", "")
        raise LeptonError(
            f"hyperparameter {key}={value!r} is not a valid value for rllib {algo} (expected {shown})"
        ) from None


def training_kwargs(algo: str, hp: dict[str, Any]) -> dict[str, Any]:
    """The keyword arguments for ``AlgorithmConfig.training()``."""
    allowed = training_arguments(algo)
    return {k: v for k, v in hp.items() if k in allowed}


def layout(hp: dict[str, Any]) -> dict[str, Any]:
    """Runners, envs per runner, learners and GPUs per learner, defaults filled in."""
    return {key: hp.get(key, default) for key, default in LAYOUT_KEYS.items()}


def fault_settings(hp: dict[str, Any]) -> dict[str, Any]:
    return {key: hp.get(key, default) for key, default in FAULT_KEYS.items()}
