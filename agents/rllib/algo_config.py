"""TrainConfig + scenario -> RLlib's AlgorithmConfig (new API stack): env, runners, learners, modules, faults.

Every setting that RLlib's defaults get wrong for lepton-sim is set here explicitly:

- envs: :func:`lepton_sim.agents.rllib.envs.create_env` registered under one name, ``vector_entry_point``
  vectorisation (NEXT_STEP autoreset), per-sub-env seeds derived from the runner's seed;
- Dict (goal-conditioned) and 2-D observations: RLlib's default catalog has no encoder for them, so an
  env-to-module ``FlattenObservations`` connector flattens them (the replay buffer and learner see flat vectors);
- ``normalize: true``: an env-to-module ``MeanStdFilter`` after the flattening (SB3 VecNormalize's observation half:
  running mean/std, clip 10; one filter per agent in multi-agent runs). It writes the normalised observations back
  into the episodes, so the learner trains on what the module saw; RLlib merges the runners' statistics after every
  iteration and broadcasts them back, and keeps them in the checkpoint (``--resume`` continues with them);
- fault tolerance: a failed env runner restarts after ``restart_delay_s`` (RLlib: 60 s), at most
  ``max_restarts`` times (RLlib: 1000); sub-envs are never recreated in place (RLlib's
  ``restart_failed_sub_environments`` livelocks on an env that crashes deterministically);
- the RLModule's ``model_config`` as a plain dict on top of the algorithm's own defaults (PPO: separate actor and
  critic networks, as SB3's MlpPolicy); ``perception: {checkpoint, freeze}``: a pretrained perception encoder as
  the module's encoder (lepton_sim.agents.rllib.perception_encoder, through PPO's catalog subclass).
"""

from __future__ import annotations

from functools import partial
from typing import Any, Callable

from gymnasium import spaces

from lepton_sim.agents.rllib.envs import env_config, is_uint8_image, make_parallel_env
from lepton_sim.agents.rllib.hyperparams import config_class, fault_settings, layout, training_kwargs
from lepton_sim.errors import LeptonError
from lepton_sim.scenario import Scenario
from lepton_sim.training_config import TrainConfig

ENV_NAME = "lepton_sim"
SHARED_MODULE = "shared"
NORMALIZE_CLIP = 10.0  # SB3 VecNormalize's clip_obs (and RLlib's MeanStdFilter default)


def register_env() -> None:
    from ray.tune.registry import register_env as _register

    from lepton_sim.agents.rllib.envs import create_env

    _register(ENV_NAME, create_env)


def needs_flattening(space: spaces.Space) -> bool:
    """RLlib's default catalog has encoders for 1-D Boxes (MLP) and 3-D Boxes (CNN) only: Dict (goal-conditioned)
    and 2-D observations (the joint traffic env's stacked rows) go through ``FlattenObservations``."""
    return isinstance(space, spaces.Dict) or (isinstance(space, spaces.Box) and len(space.shape) == 2)


def normalizes_observations(hp: dict[str, Any], observation_space: spaces.Space, multi_agent: str | None) -> bool:
    """``normalize: true``, except on camera images (left as they are, as SB3's VecNormalize leaves them)."""
    return bool(hp.get("normalize")) and not (multi_agent is None and is_uint8_image(observation_space))


def _env_to_module_pieces(
    env: Any, spaces_: Any, device: Any, *, flatten: bool, normalize: bool, multi_agent: bool, update_stats: bool
) -> list[Any]:
    from ray.rllib.connectors.env_to_module import FlattenObservations, MeanStdFilter

    pieces: list[Any] = [FlattenObservations()] if flatten else []
    if normalize:
        pieces.append(MeanStdFilter(multi_agent=multi_agent, clip_by_value=NORMALIZE_CLIP, update_stats=update_stats))
    return pieces


def env_to_module_connector(
    hp: dict[str, Any], observation_space: spaces.Space, multi_agent: str | None, update_stats: bool = True
) -> Callable[..., list[Any]] | None:
    """The custom env-to-module pieces of a run (None: RLlib's defaults only); ``update_stats=False``: the
    normalisation frozen, as for inference."""
    flatten = multi_agent is None and needs_flattening(observation_space)
    normalize = normalizes_observations(hp, observation_space, multi_agent)
    if not flatten and not normalize:
        return None
    return partial(
        _env_to_module_pieces,
        flatten=flatten,
        normalize=normalize,
        multi_agent=multi_agent is not None,
        update_stats=update_stats,
    )


def agent_ids(scenario: Scenario) -> list[str]:
    """The agents of a multi-agent scenario in env order (reading the network starts no simulation)."""
    par_env = make_parallel_env(scenario, padded=False)
    try:
        return list(par_env.possible_agents)
    finally:
        par_env.close()


def _shared_mapping(agent_id: Any, episode: Any = None, **kwargs: Any) -> str:
    return SHARED_MODULE


def _own_mapping(agent_id: Any, episode: Any = None, **kwargs: Any) -> str:
    return str(agent_id)


def build_algo_config(
    config: TrainConfig,
    scenario: Scenario,
    observation_space: spaces.Space,
    run_id: str = "",
    seed: int | None = None,
    fail_after: int | None = None,
) -> Any:
    """The AlgorithmConfig of a run (built, not yet an algorithm); ``observation_space``: the scenario env's."""
    from ray.rllib.core.rl_module.multi_rl_module import MultiRLModuleSpec
    from ray.rllib.core.rl_module.rl_module import RLModuleSpec

    hp = config.hyperparams
    where = layout(hp)
    faults = fault_settings(hp)
    mode = config.multi_agent if config.multi_agent in ("shared", "independent") else None
    algo_config = config_class(config.algo)()
    algo_config = algo_config.environment(
        ENV_NAME, env_config=env_config(scenario, mode, run_id, fail_after), disable_env_checking=True
    )
    runner_kwargs: dict[str, Any] = dict(
        num_env_runners=int(where["env_runners"]),
        num_envs_per_env_runner=int(where["envs_per_runner"]),
        rollout_fragment_length=hp.get("rollout_fragment_length", "auto"),
        sample_timeout_s=float(faults["sample_timeout_s"]),
    )
    if mode is None:
        runner_kwargs["gym_env_vectorize_mode"] = "vector_entry_point"
    connector = env_to_module_connector(hp, observation_space, mode)
    if connector is not None:
        runner_kwargs["env_to_module_connector"] = connector
    algo_config = algo_config.env_runners(**runner_kwargs)
    algo_config = algo_config.learners(
        num_learners=int(where["learners"]), num_gpus_per_learner=float(where["gpus_per_learner"])
    )
    algo_config = algo_config.training(**training_kwargs(config.algo, hp))
    model_config = dict(hp.get("model") or {})
    single_spec = None
    if hp.get("perception") is not None:
        from lepton_sim.agents.rllib.perception_encoder import PerceptionPPOCatalog, with_perception

        if mode is not None:
            raise LeptonError(f"perception: a pretrained encoder trains single-agent runs only, not multi_agent {mode}")
        model_config = with_perception(model_config, hp["perception"], observation_space)
        single_spec = RLModuleSpec(catalog_class=PerceptionPPOCatalog)
    if mode == "shared":
        algo_config = algo_config.multi_agent(policies={SHARED_MODULE}, policy_mapping_fn=_shared_mapping)
        algo_config = algo_config.rl_module(
            rl_module_spec=MultiRLModuleSpec(rl_module_specs={SHARED_MODULE: RLModuleSpec()}),
            model_config=model_config,
        )
    elif mode == "independent":
        agents = agent_ids(scenario)
        algo_config = algo_config.multi_agent(policies=set(agents), policy_mapping_fn=_own_mapping)
        algo_config = algo_config.rl_module(
            rl_module_spec=MultiRLModuleSpec(rl_module_specs={a: RLModuleSpec() for a in agents}),
            model_config=model_config,
        )
    else:
        algo_config = algo_config.rl_module(rl_module_spec=single_spec, model_config=model_config)
    restarts = int(faults["max_restarts"])
    algo_config = algo_config.fault_tolerance(
        restart_failed_env_runners=restarts > 0,
        max_num_env_runner_restarts=restarts,
        delay_between_env_runner_restarts_s=float(faults["restart_delay_s"]),
        restart_failed_sub_environments=False,
        num_consecutive_env_runner_failures_tolerance=max(restarts, 1),
    )
    algo_config = algo_config.debugging(seed=int(config.seed if seed is None else seed), log_level="WARN")
    algo_config = algo_config.reporting(metrics_num_episodes_for_smoothing=10)
    return algo_config


def validate(algo_config: Any, what: str) -> None:
    """RLlib's own checks of the settings as one LeptonError."""
    try:
        algo_config.validate()
    except (ValueError, TypeError, KeyError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise LeptonError(f"{what}: RLlib refuses the settings: {first}") from None
