"""lepton-sim environments. Importing this package registers every env id with Gymnasium (no simulator starts)."""

from lepton_sim.envs import driving, manufacturing, traffic  # noqa: F401  (registration side effects)
from lepton_sim.envs.registration import LEPTON_ENVS, LeptonEnvSpec, register

__all__ = ["LEPTON_ENVS", "LeptonEnvSpec", "register"]
