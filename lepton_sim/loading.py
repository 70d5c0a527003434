"""Turn what the user typed (a run folder, a model file, a baseline name) into a :class:`Policy`.

A run folder is recognised by its training configuration; its back end (recorded there) loads the model, and a
run trained with one policy shared by every agent is wrapped to act for all of them. Loading runs no code from the
model files unless ``trust_pickle`` says they come from a trusted source (back ends that can only unpickle an old
file refuse it without the opt-in, naming ``--trust-pickle``).
"""

from __future__ import annotations

from pathlib import Path

import gymnasium

from lepton_sim.backends import get_backend
from lepton_sim.baselines import available_baselines, is_baseline, make_baseline
from lepton_sim.errors import LeptonError
from lepton_sim.export_format import is_export
from lepton_sim.exported import ExportedPolicy
from lepton_sim.multi_agent import SharedPolicy
from lepton_sim.policy import Policy
from lepton_sim.runs import RunFolder
from lepton_sim.scenario import Scenario
from lepton_sim.training_config import TrainConfig

DEFAULT_BACKEND = "sb3"  # for a model file outside any run folder


def load_policy(spec: str | Path, scenario: Scenario, device: str = "auto", trust_pickle: bool = False) -> Policy:
    """``spec``: a run folder (its final model), a model file inside one (best model, checkpoint), a model file
    of the default back end, an export folder (``lepton-sim export``), or a baseline name
    for the scenario's domain (``random``, ``scripted``, ...).
    ``trust_pickle``: allow the back end to unpickle the model files (old files from a trusted source only)."""
    path = Path(spec).expanduser()
    if path.exists():
        if is_export(path):  # an exported graph (lepton-sim export): runs no code from its files
            return ExportedPolicy.load(path, device)
        return _load_model(path, device, trust_pickle)
    if is_baseline(str(spec)):
        return make_baseline(str(spec), scenario.env, scenario.domain, *_probe_spaces(scenario))
    names = ", ".join(sorted({b.name for b in available_baselines(scenario.domain)}))
    raise LeptonError(
        f"policy {str(spec)!r} is neither an existing run folder or model file nor a baseline; "
        f"baselines for {scenario.domain}: {names}"
    )


def _load_model(path: Path, device: str, trust_pickle: bool) -> Policy:
    config: TrainConfig | None
    if RunFolder.is_run(path):
        config = RunFolder(path).read_config()
        run = get_backend(config.backend).run_folder(path)
        model_path = run.final_model
        if not model_path.exists():
            raise LeptonError(
                f"{path}: run folder has no {model_path.name} (training unfinished?); pass a "
                f"checkpoint instead, e.g. {run.checkpoints_dir}/<file>, or resume it"
            )
    else:
        owner = RunFolder.containing(path)
        config = owner.read_config() if owner is not None else None
        if config is None and path.is_dir():
            raise LeptonError(f"{path} is not a lepton-sim run folder (no config.yaml) nor a model file")
        model_path = path
    backend = get_backend(config.backend if config is not None else DEFAULT_BACKEND)
    policy = backend.load_policy(model_path, config, device, trust_pickle=trust_pickle)
    if config is not None and config.multi_agent == "shared":  # one per-agent network acting for every agent
        return SharedPolicy(policy)
    return policy


def _probe_spaces(scenario: Scenario) -> tuple[gymnasium.Space, gymnasium.Space]:
    """Single-env observation and action spaces, from the env's own constructor (no episode is run)."""
    from lepton_sim.make import make

    env = make(scenario)
    try:
        return env.observation_space, env.action_space
    finally:
        env.close()
