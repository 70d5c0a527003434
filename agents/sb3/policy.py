"""Stable-Baselines3 models behind lepton-sim's policy interface.

Two ways to load a model file:

- :meth:`SB3Policy.load_weights` (what evaluation and rollouts use): nothing from the file is unpickled. The
  network is built from the run's config.yaml (algorithm, policy name, policy_kwargs), the spaces from the run's
  scenario passed through the same SB3 wrappers as in training, and only ``policy.pth`` is read
  (``torch.load(weights_only=True)``); normalisation statistics come from the npz beside the model.
- :meth:`SB3Policy.load`: SB3's own loader, which unpickles entries of the zip's data (and the VecNormalize
  pickle). Only for files from a trusted source (``--trust-pickle``), e.g. old runs without npz statistics.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

import gymnasium
import numpy as np
from stable_baselines3.common.vec_env import VecEnv, VecNormalize

from lepton_sim.agents.sb3.algorithms import ALGORITHMS, algorithm_class
from lepton_sim.agents.sb3.model_files import (
    TRUST_HINT,
    load_normalizer,
    plain_fields,
    read_plain_data,
    read_policy_weights,
)
from lepton_sim.errors import LeptonError
from lepton_sim.policy import Policy

if TYPE_CHECKING:
    from lepton_sim.training_config import TrainConfig

INFERENCE_ONLY: dict[str, Any] = {"replay_buffer_class": None, "replay_buffer_kwargs": {}, "buffer_size": 1}
ON_POLICY = {"ppo"}  # use_sde goes to the policy constructor as its own argument
SDE_IN_POLICY_KWARGS = {"sac", "tqc"}  # OffPolicyAlgorithm adds use_sde to policy_kwargs (sde_support=True)


class SB3Policy(Policy):
    """A trained SB3 model (or just its policy network); deterministic actions by default (as SB3's
    evaluate_policy). Recurrent models (sb3-contrib's RecurrentPPO) carry their LSTM state through ``act``, as
    through SB3's ``predict``; a model trained with ``frame_stack: k`` stacks its last k observations itself and
    carries the stacks the same way (agents/sb3/frame_stack.py).

    ``model``: an SB3 algorithm or a ``BasePolicy`` (both predict the same way: the algorithm's ``predict`` is its
    policy's). ``obs_normalizer``: anything with ``normalize_obs`` (a VecNormalize or an ObsNormalizer).
    ``observation_space``: the env's single observation space, if it is not the model's (stacked frames,
    channels-first images); ``env_overrides``: the observation parameters it was trained on (camera modes)."""

    def __init__(
        self,
        model: Any,
        name: str,
        deterministic: bool = True,
        obs_normalizer: Any = None,
        frame_stack: int = 1,
        observation_space: gymnasium.Space | None = None,
        action_space: gymnasium.Space | None = None,
        env_overrides: Mapping[str, Any] | None = None,
    ) -> None:
        self.model = model
        self.name = name
        self.deterministic = deterministic
        self.obs_normalizer = obs_normalizer  # the statistics saved with the run, if training normalised obs
        self.frame_stack = frame_stack
        self.observation_space = observation_space if observation_space is not None else model.observation_space
        self.action_space = action_space if action_space is not None else model.action_space
        self.env_overrides = dict(env_overrides or {})

    def configure_observations(self, config: "TrainConfig") -> None:
        """Take the run's frame stacking and, for a camera obs mode, its observation parameters as
        ``env_overrides`` (so a state suite row renders the camera it was trained on)."""
        from lepton_sim.agents.sb3.pixels import observation_overrides

        self.frame_stack = int(config.hyperparams.get("frame_stack", 1))
        self.env_overrides = observation_overrides(config.scenario)

    @classmethod
    def load(
        cls, path: str | Path, algo: str | None = None, device: str = "auto", normalized: bool = False
    ) -> "SB3Policy":
        """SB3's loader (unpickles the zip's data and the VecNormalize pickle: trusted files only). ``algo``
        comes from the run's config when known, else each algorithm is tried. ``normalized``: the run normalised
        observations, so the statistics beside the model must be there."""
        path = Path(path)
        normalizer = load_normalizer(path, required=normalized, trust_pickle=True)
        candidates = [algo] if algo else list(ALGORITHMS)
        errors = []
        for name in candidates:
            try:
                # a HER replay buffer needs the env to be rebuilt; inference needs no buffer at all
                model = algorithm_class(name).load(path, device=device, custom_objects=INFERENCE_ONLY)
            except Exception as err:  # noqa: BLE001  (SB3 raises various errors for a mismatched class)
                errors.append(f"{name}: {type(err).__name__}: {err}")
                continue
            return cls(model, name=_display_name(name, path), obs_normalizer=normalizer)
        raise LeptonError(f"could not load {path} as an SB3 model ({'; '.join(errors)})")

    @classmethod
    def load_weights(cls, path: str | Path, config: "TrainConfig", device: str = "auto") -> "SB3Policy":
        """Load without unpickling anything: network from the run's configuration, weights from ``policy.pth``,
        normalisation statistics from the npz. Raises a LeptonError naming ``--trust-pickle`` where that is
        impossible (statistics only as a pickle, a run whose scenario no longer builds)."""
        from stable_baselines3.common.utils import get_device

        path = Path(path)
        hp = config.hyperparams
        normalizer = load_normalizer(path, required=bool(hp.get("normalize")))
        declared = env_spaces(config, path)
        observation_space, action_space = training_spaces(
            *declared, normalizer, frame_stack=int(hp.get("frame_stack", 1))
        )
        torch_device = get_device(device)
        policy = build_policy(
            config.algo, hp, observation_space, action_space, recorded=read_plain_data(path), where=str(path)
        )
        state = read_policy_weights(path, device=torch_device)
        try:
            policy.load_state_dict(state, strict=True)  # as SB3's set_parameters(exact_match=True)
        except RuntimeError as err:
            raise LeptonError(
                f"{path}: the weights do not fit the network that config.yaml describes "
                f"({' '.join(str(err).split())[:300]})"
            ) from None
        policy = policy.to(torch_device)
        if getattr(policy, "use_sde", False):
            policy.reset_noise()  # as SB3's load
        policy.set_training_mode(False)
        # declare what the env gives (SB3's predict transposes channels-last images itself; frames are stacked
        # by act, as VecFrameStack stacked them in training)
        loaded = cls(
            policy,
            name=_display_name(config.algo, path),
            obs_normalizer=normalizer,
            observation_space=declared[0],
            action_space=declared[1],
        )
        loaded.configure_observations(config)
        return loaded

    def act(
        self,
        observation: Any,
        state: Any = None,
        episode_start: np.ndarray | None = None,
        *,
        info: Mapping[str, Any] | None = None,
    ) -> tuple[np.ndarray, Any]:
        if self.obs_normalizer is not None:
            observation = self.obs_normalizer.normalize_obs(observation)
        if self.frame_stack <= 1:
            return self.model.predict(
                observation, state=state, episode_start=episode_start, deterministic=self.deterministic
            )
        from lepton_sim.agents.sb3.frame_stack import StackState, push

        assert self.observation_space is not None  # set by __init__; normalisation keeps its shapes
        previous = state.frames if isinstance(state, StackState) else None
        frames = push(previous, observation, episode_start, self.observation_space, self.frame_stack)
        inner = state.inner if isinstance(state, StackState) else None
        action, inner = self.model.predict(
            frames, state=inner, episode_start=episode_start, deterministic=self.deterministic
        )
        return action, StackState(frames, inner)


def _display_name(algo: str, path: Path) -> str:
    return f"{algo}:{path.parent.name}/{path.stem}"


# ---------------------------------------------------------------------------------------------- network
def build_policy(
    algo: str,
    hp: Mapping[str, Any],
    observation_space: gymnasium.Space,
    action_space: gymnasium.Space,
    recorded: Mapping[str, Any] | None = None,
    where: str = "",
) -> Any:
    """The algorithm's policy network, built as its ``_setup_model`` builds it (untrained weights).

    ``recorded``: the model file's plain data; the policy keyword arguments it records (plain values, and the
    names of classes such as the activation) must match the ones built from ``hp``, so a run folder whose
    config.yaml does not describe its model is refused instead of giving other numbers."""
    from lepton_sim.agents.sb3.hyperparams import _policy_kwargs

    cls = algorithm_class(algo)
    name = hp.get("policy", "MlpPolicy")
    if name not in cls.policy_aliases:
        raise LeptonError(f"{where}: policy {name!r} is not one of {algo}'s policies ({', '.join(cls.policy_aliases)})")
    policy_kwargs = _policy_kwargs(dict(hp))
    use_sde = bool(hp.get("use_sde", False))
    extra: dict[str, Any] = {}
    if algo in ON_POLICY:
        extra["use_sde"] = use_sde
    elif algo in SDE_IN_POLICY_KWARGS:
        policy_kwargs["use_sde"] = use_sde
    if recorded is not None and "policy_kwargs" in recorded:
        _check_recorded_kwargs(policy_kwargs, plain_fields(recorded["policy_kwargs"]), where)
    return cls.policy_aliases[name](observation_space, action_space, lambda _: 0.0, **extra, **policy_kwargs)


def _check_recorded_kwargs(built: Mapping[str, Any], recorded: Any, where: str) -> None:
    def as_recorded(value: Any) -> Any:  # how SB3's data_to_json writes one item
        try:
            return json.loads(json.dumps(value))
        except TypeError:
            return str(value)

    mine = {k: as_recorded(v) for k, v in built.items()}
    if not isinstance(recorded, dict) or mine != recorded:
        raise LeptonError(
            f"{where}: config.yaml's policy_kwargs {mine} differ from the ones recorded in the model "
            f"{recorded}; the run folder does not describe this model"
        )


# ---------------------------------------------------------------------------------------------- spaces
def training_spaces(
    observation_space: gymnasium.Space, action_space: gymnasium.Space, normalizer: Any, frame_stack: int = 1
) -> tuple[gymnasium.Space, gymnasium.Space]:
    """The observation and action spaces the model was built with: the run's scenario's env spaces (one agent's
    padded spaces for a shared multi-agent run), through VecNormalize, VecFrameStack and SB3's own env wrapping
    (which transposes images to channels-first), exactly as in training."""
    from stable_baselines3.common.base_class import BaseAlgorithm
    from stable_baselines3.common.vec_env import VecFrameStack

    venv: Any = _SpacesOnly(copy.deepcopy(observation_space), copy.deepcopy(action_space))
    if normalizer is not None:
        venv = VecNormalize(
            venv,
            training=False,
            norm_obs=normalizer.norm_obs,
            norm_reward=False,
            clip_obs=normalizer.clip_obs,
            norm_obs_keys=normalizer.norm_obs_keys,
        )
    if frame_stack > 1:
        venv = VecFrameStack(venv, frame_stack)
    venv = BaseAlgorithm._wrap_env(venv, verbose=0, monitor_wrapper=False)
    return venv.observation_space, venv.action_space


def env_spaces(config: "TrainConfig", where: Path | str) -> tuple[gymnasium.Space, gymnasium.Space]:
    """The single-env spaces of the run's scenario (no episode is run)."""
    from pydantic import ValidationError

    from lepton_sim.make import make, make_vec
    from lepton_sim.scenario import scenario_from_dict

    try:
        scenario = scenario_from_dict(config.scenario, source=f"{where}: config.yaml scenario")
        if config.multi_agent == "shared":
            from lepton_sim.agents.sb3.pettingzoo_vec import make_shared_vec_env

            env: Any = make_shared_vec_env(scenario, seed=config.seed, monitor=False)
            spaces = env.observation_space, env.action_space
        elif scenario.spec.vector_entry_point is not None:  # training's native vector env
            env = make_vec(scenario, 1)
            spaces = env.single_observation_space, env.single_action_space
        else:
            env = make(scenario)
            spaces = env.observation_space, env.action_space
    except (LeptonError, ValidationError, ValueError) as err:
        raise LeptonError(
            f"{where}: the run's scenario no longer builds, so the model's spaces are known only "
            f"from pickled entries in the file ({' '.join(str(err).split())[:300]}); "
            f"{TRUST_HINT}"
        ) from None
    env.close()
    return spaces


class _SpacesOnly(VecEnv):
    """Stands in for the training VecEnv where only its spaces matter (SB3's wrappers read nothing else)."""

    def __init__(self, observation_space: gymnasium.Space, action_space: gymnasium.Space) -> None:
        super().__init__(1, observation_space, action_space)

    def reset(self) -> Any:
        raise NotImplementedError("spaces only")

    def step_async(self, actions: np.ndarray) -> None:
        raise NotImplementedError("spaces only")

    def step_wait(self) -> Any:
        raise NotImplementedError("spaces only")

    def close(self) -> None:
        pass

    def get_attr(self, attr_name: str, indices: Any = None) -> list[Any]:
        if attr_name == "render_mode":
            return [None]
        raise AttributeError(attr_name)

    def set_attr(self, attr_name: str, value: Any, indices: Any = None) -> None:
        raise NotImplementedError("spaces only")

    def env_method(self, method_name: str, *args: Any, indices: Any = None, **kwargs: Any) -> list[Any]:
        raise NotImplementedError("spaces only")

    def env_is_wrapped(self, wrapper_class: type, indices: Any = None) -> list[bool]:
        return [False]
