"""lepton-sim: RL simulation suite for driving, robot-arm manufacturing and traffic-signal control.

Quick use::

    import lepton_sim
    env = lepton_sim.make("driving/obstacle-avoid")           # a Gymnasium env
    venv = lepton_sim.make_vec("driving/obstacle-avoid", 16)  # a Gymnasium vector env
    run_dir = lepton_sim.train("driving/obstacle-avoid", algo="ppo", steps=50_000)
    report = lepton_sim.evaluate(str(run_dir), suite="driving/standard", split="test")
"""

from __future__ import annotations

__version__ = "0.1.0"

from lepton_sim import envs as _envs  # noqa: F401,E402  (registers every env id with Gymnasium)
from lepton_sim import perceived as _perceived  # noqa: F401,E402  (obs_mode 'perceived' loads models through it)
from lepton_sim.errors import LeptonError, ScenarioError  # noqa: E402
from lepton_sim.make import make, make_vec  # noqa: E402
from lepton_sim.scenario import Scenario, Suite, load_scenario, load_suite  # noqa: E402

_LAZY = {
    "train": "lepton_sim.training",
    "train_experiment": "lepton_sim.experiments",
    "evaluate": "lepton_sim.evaluation",
    "rollout": "lepton_sim.rollouts",
    "tune": "lepton_sim.tuning",
}


def __getattr__(name: str):  # noqa: ANN202  (PEP 562: training and evaluation load their back end only when used)
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'lepton_sim' has no attribute {name!r}")


__all__ = [
    "LeptonError",
    "Scenario",
    "ScenarioError",
    "Suite",
    "evaluate",
    "load_scenario",
    "load_suite",
    "make",
    "make_vec",
    "rollout",
    "train",
    "tune",
    "train_experiment",
]
