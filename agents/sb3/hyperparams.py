"""SB3 hyperparameters are data: ``agents/hyperparams/sb3/<algo>.yaml``, keyed by scenario name with a
``default`` entry (rl-baselines3-zoo's format, without eval-ed strings). Keys that are not constructor arguments:

- ``n_timesteps``: default training budget; ``n_envs``: parallel envs; ``policy``: SB3 policy name;
- ``her``: use HerReplayBuffer (goal-conditioned Dict envs); ``her_kwargs``: its arguments;
- ``normalize``: wrap the env in VecNormalize (observations and rewards);
- ``noise_type`` (``normal`` | ``ornstein-uhlenbeck``) and ``noise_std``: action noise for off-policy algorithms
  (rl-zoo3's keys; TD3 explores only through it);
- ``multi_agent``: ``joint`` | ``shared`` for envs with several agents;
- ``policy_kwargs.activation_fn``: a name (``tanh``, ``relu``, ``elu``, ``leaky_relu``);
- ``policy_kwargs.features_extractor_class: perception`` with ``features_extractor_kwargs: {checkpoint: PATH,
  freeze: true|false}``: a pretrained perception encoder over camera images (agents/sb3/perception_extractor.py);
- ``policy_kwargs.features_extractor_class: compact``: the 2013 DQN network (agents/sb3/compact_cnn.py), a CNN
  that trains several times faster than SB3's NatureCNN on a CPU;
- ``frame_stack``: stack the last k observations (SB3's VecFrameStack, as rl-zoo3; 1 = none), re-applied by the
  loaded policy at evaluation;
- ``augment``: ``random_shift`` (DrQ: pad 4, random crop; lepton_sim.augmentation) on the training env's images;
- ``pixels``: a block of hyperparameters merged over the entry when the scenario's obs mode is a camera mode
  (``default``'s block first, then the scenario's; see agents/sb3/pixels.py).

Values may be rl-zoo3's linear schedules, ``lin_<initial value>`` (``learning_rate: lin_3e-4``).
Every key and value is checked against the algorithm's constructor signature before a run starts.
"""

from __future__ import annotations

import inspect
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, Callable

import numpy as np
from gymnasium import spaces
from pydantic import ConfigDict, TypeAdapter, ValidationError

from lepton_sim.agents.sb3.algorithms import OFF_POLICY, algorithm_class
from lepton_sim.backends import read_hyperparameter_entries
from lepton_sim.errors import LeptonError

RUNNER_KEYS = {
    "n_timesteps",
    "n_envs",
    "policy",
    "her",
    "her_kwargs",
    "normalize",
    "noise_type",
    "noise_std",
    "multi_agent",
    "frame_stack",
    "augment",
    "pixels",
}
AUGMENTATIONS = ("random_shift",)
ACTIVATIONS = {"tanh": "Tanh", "relu": "ReLU", "elu": "ELU", "leaky_relu": "LeakyReLU"}
NOISE_TYPES = ("normal", "ornstein-uhlenbeck")
SCHEDULE_PREFIX = "lin_"
PIXELS = "pixels"
NOT_CONFIGURABLE = {"self", "env", "policy", "_init_setup_model", "seed", "device"}  # the run sets these


def hyperparams_file(algo: str) -> Path:
    return Path(str(resources.files("lepton_sim.agents"))) / "hyperparams" / "sb3" / f"{algo}.yaml"


def load_hyperparams(algo: str, scenario_name: str, path: str | Path | None = None) -> dict[str, Any]:
    """``default`` merged with the scenario's own entry (``policy_kwargs`` merged one level deeper)."""
    path = Path(path) if path else hyperparams_file(algo)
    default, entry = read_hyperparameter_entries(path, scenario_name, repr(algo))
    hp = merge_hyperparams(default, entry)
    blocks = [part[PIXELS] for part in (default, entry) if part.get(PIXELS) is not None]
    if blocks:  # kept apart: only camera obs modes apply it (agents/sb3/pixels.py)
        if not all(isinstance(block, dict) for block in blocks):
            raise LeptonError(f"{path}: {PIXELS}: expected a mapping of image hyperparameters")
        hp[PIXELS] = merge_hyperparams(*blocks)
    return hp


def merge_hyperparams(*entries: dict[str, Any]) -> dict[str, Any]:
    """Later entries win key by key; ``policy_kwargs`` merged one level deeper (rl-zoo3 keeps one entry)."""
    hp: dict[str, Any] = {}
    for entry in entries:
        for key, value in entry.items():
            if key == "policy_kwargs" and isinstance(value, dict) and isinstance(hp.get(key), dict):
                hp[key] = {**hp[key], **value}
            else:
                hp[key] = value
    return hp


def linear_schedule(initial: float) -> Callable[[float], float]:
    """rl-zoo3's ``lin_<value>``: from ``initial`` at the start down to 0 at the end of training."""

    def schedule(progress_remaining: float) -> float:
        return progress_remaining * initial

    return schedule


@cache
def _constructor(algo: str) -> dict[str, Any]:
    """The algorithm's configurable constructor arguments and their annotations."""
    signature = inspect.signature(algorithm_class(algo).__init__, eval_str=True)
    return {name: p.annotation for name, p in signature.parameters.items() if name not in NOT_CONFIGURABLE}


def check_hyperparams(algo: str, hp: dict[str, Any]) -> None:
    """Raise a LeptonError naming the first bad key or value (names, types, schedules, noise, activation)."""
    allowed = _constructor(algo)
    unknown = sorted(set(hp) - set(allowed) - RUNNER_KEYS)
    if unknown:
        raise LeptonError(
            f"unknown hyperparameter(s) {', '.join(unknown)} for {algo}; allowed: "
            f"{', '.join(sorted(set(allowed) | RUNNER_KEYS))}"
        )
    for key, value in hp.items():
        if key in allowed:
            value = _schedule(key, value)
            if callable(value):
                continue
            try:
                TypeAdapter(allowed[key], config=ConfigDict(arbitrary_types_allowed=True)).validate_python(value)
            except ValidationError:
                raise LeptonError(
                    f"hyperparameter {key}={value!r} is not a valid value for {algo} "
                    f"(expected {_type_name(allowed[key])})"
                ) from None
    _checked_runner_keys(algo, hp)
    _policy_kwargs(hp)


def _checked_runner_keys(algo: str, hp: dict[str, Any]) -> None:
    for key in ("n_timesteps", "n_envs"):
        if key in hp and (not isinstance(hp[key], int) or isinstance(hp[key], bool) or hp[key] <= 0):
            raise LeptonError(f"hyperparameter {key}={hp[key]!r} must be a positive integer")
    for key in ("her", "normalize"):
        if key in hp and not isinstance(hp[key], bool):
            raise LeptonError(f"hyperparameter {key}={hp[key]!r} must be true or false")
    if "policy" in hp and not isinstance(hp["policy"], str):
        raise LeptonError(f"hyperparameter policy={hp['policy']!r} must be an SB3 policy name (MlpPolicy, ...)")
    if "frame_stack" in hp and (
        not isinstance(hp["frame_stack"], int) or isinstance(hp["frame_stack"], bool) or hp["frame_stack"] < 1
    ):
        raise LeptonError(
            f"hyperparameter frame_stack={hp['frame_stack']!r} must be a whole number >= 1 (1: no stacking)"
        )
    if hp.get("augment") is not None and hp["augment"] not in AUGMENTATIONS:
        raise LeptonError(f"hyperparameter augment={hp['augment']!r}; allowed: {', '.join(AUGMENTATIONS)} (or null)")
    if hp.get("her") and hp.get("frame_stack", 1) > 1:
        raise LeptonError(
            "frame_stack > 1 with her: true: HER relabels single-step goals, which a frame stack would stack "
            "too; use frame_stack: 1"
        )
    if PIXELS in hp and not isinstance(hp[PIXELS], dict):
        raise LeptonError(f"hyperparameter {PIXELS}: must be a mapping of image hyperparameters, got {hp[PIXELS]!r}")
    if hp.get("her") and algo not in OFF_POLICY:
        raise LeptonError(f"her: true needs an off-policy algorithm ({', '.join(sorted(OFF_POLICY))}), not {algo}")
    if "noise_type" in hp or "noise_std" in hp:
        if algo not in OFF_POLICY:
            raise LeptonError(
                f"noise_type/noise_std apply to off-policy algorithms ({', '.join(sorted(OFF_POLICY))}), not {algo}"
            )
        if hp.get("noise_type") not in NOISE_TYPES:
            raise LeptonError(f"noise_type={hp.get('noise_type')!r}; allowed: {', '.join(NOISE_TYPES)}")
        std = hp.get("noise_std", 0.1)
        if not isinstance(std, (int, float)) or isinstance(std, bool) or not 0 <= std < float("inf"):
            raise LeptonError(f"noise_std={std!r} must be a non-negative number")


def _schedule(key: str, value: Any) -> Any:
    if isinstance(value, str) and value.startswith(SCHEDULE_PREFIX):
        try:
            initial = float(value[len(SCHEDULE_PREFIX) :])
        except ValueError:
            raise LeptonError(
                f"hyperparameter {key}={value!r}: a linear schedule is lin_<number>, e.g. lin_3e-4"
            ) from None
        if not np.isfinite(initial):
            raise LeptonError(f"hyperparameter {key}={value!r}: the schedule's value must be finite")
        return linear_schedule(initial)
    return value


def _type_name(annotation: Any) -> str:
    return str(annotation).replace("collections.abc.", "").replace("typing.", "")


def _policy_kwargs(hp: dict[str, Any]) -> dict[str, Any]:
    policy_kwargs = hp.get("policy_kwargs") or {}
    if not isinstance(policy_kwargs, dict):
        raise LeptonError(f"policy_kwargs must be a mapping, got {policy_kwargs!r}")
    policy_kwargs = dict(policy_kwargs)
    if isinstance(policy_kwargs.get("activation_fn"), str):
        import torch.nn

        name = policy_kwargs["activation_fn"]
        if name not in ACTIVATIONS:
            raise LeptonError(f"policy_kwargs.activation_fn: unknown {name!r}; allowed: {', '.join(ACTIVATIONS)}")
        policy_kwargs["activation_fn"] = getattr(torch.nn, ACTIVATIONS[name])
    if policy_kwargs.get("features_extractor_class") == "compact":  # the 2013 DQN network, cheaper than NatureCNN
        from lepton_sim.agents.sb3.compact_cnn import CompactCNN

        policy_kwargs["features_extractor_class"] = CompactCNN
    if policy_kwargs.get("features_extractor_class") == "perception":  # a pretrained perception encoder
        from lepton_sim.agents.sb3.perception_extractor import resolve

        policy_kwargs = resolve(policy_kwargs)
    return policy_kwargs


def sb3_kwargs(algo: str, hp: dict[str, Any], action_space: spaces.Space | None = None) -> dict[str, Any]:
    """Constructor keyword arguments for the SB3 class (schedules, activation, HER and action noise resolved)."""
    check_hyperparams(algo, hp)
    allowed = _constructor(algo)
    kwargs = {k: _schedule(k, v) for k, v in hp.items() if k in allowed}
    policy_kwargs = _policy_kwargs(hp)
    if policy_kwargs:
        kwargs["policy_kwargs"] = policy_kwargs
    if hp.get("her"):
        from stable_baselines3 import HerReplayBuffer

        kwargs["replay_buffer_class"] = HerReplayBuffer
        kwargs["replay_buffer_kwargs"] = dict(hp.get("her_kwargs") or {})
    if hp.get("noise_type") and action_space is not None:
        kwargs["action_noise"] = _action_noise(hp["noise_type"], float(hp.get("noise_std", 0.1)), action_space)
    return kwargs


def _action_noise(noise_type: str, std: float, action_space: spaces.Space) -> Any:
    from stable_baselines3.common.noise import NormalActionNoise, OrnsteinUhlenbeckActionNoise

    n = int(np.prod(action_space.shape))
    cls = NormalActionNoise if noise_type == "normal" else OrnsteinUhlenbeckActionNoise
    return cls(mean=np.zeros(n), sigma=std * np.ones(n))
