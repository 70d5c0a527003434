"""Training SB3 on camera observations: the image policy, the device, the YAML ``pixels:`` block and the
observation parameters a trained pixel policy declares.

Why here and not in each scenario's YAML entry: whether a run sees images is the scenario's ``obs_mode`` (often a
``--set params.obs_mode=pixels`` away from a state run), so the choice of policy follows the observation space:

- a uint8 image ``Box`` -> ``CnnPolicy``; a ``Dict`` (``state+pixels``, goal-conditioned envs) ->
  ``MultiInputPolicy`` (its ``CombinedExtractor`` runs a CNN on the image keys, an MLP input on the others);
- the hyperparameter files' per-scenario ``pixels:`` block (and ``default``'s) is merged over the state entry when
  the obs mode is a camera mode, and may name the policy itself; ``--set policy=...`` wins over both.

``--device auto`` puts a CNN on CUDA when there is one; an MLP stays on the CPU, where SB3 runs it faster.
"""

from __future__ import annotations

import sys
from typing import Any, Mapping

import gymnasium
from gymnasium import spaces

from lepton_sim.errors import LeptonError
from lepton_sim.scenario import Scenario

PIXELS_KEY = "pixels"  # the per-scenario block of image hyperparameters in agents/hyperparams/sb3/<algo>.yaml
CAMERA_MODES_STATE = "state"
# modes whose observation is the state vector (``perceived``: a perception model's estimate of it), trained with
# the state hyperparameters
STATE_VECTOR_MODES = (CAMERA_MODES_STATE, "perceived")
# what a trained pixel policy declares as env_overrides (never ``sensor``: suite rows choose the degradations)
OBSERVATION_PARAMS = (
    "obs_mode",
    "obs_camera",
    "camera_size",
    "channel_order",
    "camera_depth",
    "camera_segmentation",
    "camera_footprint",  # driving's camera: metres the image covers
)
PERCEPTION_PARAM = "perception"  # a policy trained on perceived state also declares the model it perceived with


def is_image(space: gymnasium.Space) -> bool:
    """A camera image as SB3 sees one: a 3-d uint8 Box over 0..255 (any number of channels: stacked frames,
    semantic grids)."""
    from stable_baselines3.common.preprocessing import is_image_space

    return is_image_space(space, check_channels=False)


def image_keys(space: gymnasium.Space) -> list[str | None]:
    """The image parts of an observation space: ``[None]`` for an image Box, the image keys of a Dict."""
    if isinstance(space, spaces.Dict):
        return [key for key, sub in space.spaces.items() if is_image(sub)]
    return [None] if is_image(space) else []


def image_policy(space: gymnasium.Space) -> str | None:
    """The SB3 policy for camera observations: CnnPolicy for an image, MultiInputPolicy for a Dict holding one;
    None where the observations hold no image."""
    if isinstance(space, spaces.Dict):
        return "MultiInputPolicy" if image_keys(space) else None
    return "CnnPolicy" if is_image(space) else None


def uses_cnn(policy: str, space: gymnasium.Space) -> bool:
    """Whether the policy network runs a CNN on these observations (what makes a GPU worth it)."""
    return policy != "MlpPolicy" and bool(image_keys(space))


def training_device(requested: str, policy: str, space: gymnasium.Space, cuda_available: bool | None = None) -> str:
    """The device to train on: ``auto`` is ``cuda`` for a CNN policy when CUDA is there, else ``cpu`` (SB3 runs
    small MLPs faster on the CPU); any other request is kept as it is."""
    if requested != "auto":
        return requested
    if cuda_available is None:
        import torch

        cuda_available = torch.cuda.is_available()
    return "cuda" if cuda_available and uses_cnn(policy, space) else "cpu"


# ---------------------------------------------------------------------------------------------- hyperparameters
def camera_mode(scenario: Scenario) -> str:
    """The scenario's obs mode, its schema's default included (``state`` for envs without cameras)."""
    params = scenario.spec.params_model(**scenario.params)
    return str(getattr(params, "obs_mode", CAMERA_MODES_STATE))


def observation_space_of(scenario: Scenario) -> gymnasium.Space:
    """The scenario's single-env observation space (one env built and closed; no episode is run)."""
    from lepton_sim.make import make

    env = make(scenario)
    try:
        return env.observation_space
    finally:
        env.close()


def observation_hyperparameters(
    algo: str, hp: Mapping[str, Any], scenario: Scenario, space: gymnasium.Space | None = None
) -> dict[str, Any]:
    """The file's hyperparameters for the scenario's obs mode (before ``--set`` overrides apply).

    State mode: the ``pixels`` block is checked and dropped. Camera modes: it is merged over the state entry
    (``policy_kwargs`` one level deeper) and, unless the block names a policy, the policy becomes the image
    policy of the observation space (said on stderr when it replaces the state entry's)."""
    from lepton_sim.agents.sb3.hyperparams import check_hyperparams, merge_hyperparams

    hp = dict(hp)
    block = hp.pop(PIXELS_KEY, None) or {}
    if not isinstance(block, dict):
        raise LeptonError(f"hyperparameter {PIXELS_KEY}: must be a mapping of image hyperparameters, got {block!r}")
    if PIXELS_KEY in block:
        raise LeptonError(f"hyperparameter {PIXELS_KEY}: a {PIXELS_KEY} block cannot hold another one")
    merged = merge_hyperparams(hp, block)
    check_hyperparams(algo, merged)  # a typo in the block fails in state mode too
    if camera_mode(scenario) in STATE_VECTOR_MODES:
        return hp
    space = space if space is not None else observation_space_of(scenario)
    chosen = image_policy(space)
    if chosen is not None and "policy" not in block:
        before = merged.get("policy", "MlpPolicy")
        merged["policy"] = chosen
        if before != chosen:
            print(
                f"{scenario.name}: obs_mode {camera_mode(scenario)} gives image observations, so the policy is "
                f"{chosen} (the hyperparameters' {before} replaced; --set policy=... to choose)",
                file=sys.stderr,
            )
    return merged


# ---------------------------------------------------------------------------------------------- loading
def observation_overrides(scenario_data: Mapping[str, Any]) -> dict[str, Any]:
    """The observation parameters a policy trained on this (resolved) scenario needs wherever it is evaluated:
    its camera, image size and channels, so a state suite row renders what it was trained on. Empty for a
    state-mode run. ``sensor`` is never among them: suite rows choose the degradations."""
    from lepton_sim.scenario import scenario_from_dict

    scenario = scenario_from_dict(scenario_data, source="the run's scenario")
    params = scenario.spec.params_model(**scenario.params)
    if str(getattr(params, "obs_mode", CAMERA_MODES_STATE)) == CAMERA_MODES_STATE:
        return {}
    values = params.model_dump(mode="json")
    overrides = {key: values[key] for key in OBSERVATION_PARAMS if key in type(params).model_fields}
    if values.get(PERCEPTION_PARAM):
        overrides[PERCEPTION_PARAM] = values[PERCEPTION_PARAM]
    return overrides
