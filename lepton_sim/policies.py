"""Turn what the user typed (a run folder, a model file, a baseline name) into a :class:`Policy`."""
from __future__ import annotations

from pathlib import Path

import yaml

from lepton_sim.agents.baselines import available_baselines, is_baseline, make_baseline
from lepton_sim.agents.policy import Policy
from lepton_sim.errors import LeptonError
from lepton_sim.scenario import Scenario

RUN_CONFIG = "config.yaml"
FINAL_MODEL = "model.zip"
BEST_MODEL = "best_model.zip"


def read_run_config(run_dir: Path) -> dict:
    path = run_dir / RUN_CONFIG
    if not path.is_file():
        raise LeptonError(f"{run_dir} is not a lepton-sim run folder (no {RUN_CONFIG})")
    return yaml.safe_load(path.read_text())


def load_policy(spec: str | Path, scenario: Scenario, device: str = "auto") -> Policy:
    """``spec``: a run folder (its final model), a model file inside one, or a baseline name for the
    scenario's domain (``random``, ``scripted``, ``max-pressure``, ...)."""
    path = Path(spec).expanduser()
    if path.exists():
        if path.is_dir():
            config = read_run_config(path)
            model_path = path / FINAL_MODEL
            if not model_path.is_file():
                raise LeptonError(f"{path}: run folder has no {FINAL_MODEL} (training unfinished?); pass a "
                                  f"checkpoint instead, e.g. {path / 'checkpoints'}/<file>.zip, or resume it")
        else:
            model_path = path
            run_dir = path.parent.parent if path.parent.name == "checkpoints" else path.parent
            config = read_run_config(run_dir) if (run_dir / RUN_CONFIG).is_file() else {}
        return _load_model(model_path, config, device)
    if is_baseline(str(spec)):
        env = _probe_spaces(scenario)
        return make_baseline(str(spec), scenario.env, scenario.domain, *env)
    names = ", ".join(sorted({b.name for b in available_baselines(scenario.domain)}))
    raise LeptonError(f"policy {str(spec)!r} is neither an existing run folder or model file nor a baseline; "
                      f"baselines for {scenario.domain}: {names}")


def _load_model(model_path: Path, config: dict, device: str) -> Policy:
    backend = config.get("backend", "sb3")
    if backend != "sb3":
        raise LeptonError(f"{model_path}: back end {backend!r} is not supported yet; supported: sb3")
    from lepton_sim.agents.sb3.callbacks import normalizer_path
    from lepton_sim.agents.sb3.policy import SB3Policy

    stats = normalizer_path(model_path)
    if (config.get("hyperparams") or {}).get("normalize") and not stats.is_file():
        raise LeptonError(f"{model_path}: the run normalised observations but {stats.name} is missing beside the "
                          "model; without it the policy would see unnormalised observations")
    if config.get("policy_sharing"):  # one per-agent network acting for every agent (multi-agent traffic)
        from lepton_sim.agents.traffic.pettingzoo_vec import SharedPolicy

        return SharedPolicy.load(model_path, device=device)
    try:
        return SB3Policy.load(model_path, algo=config.get("algo"), device=device)
    except ValueError as err:
        raise LeptonError(str(err)) from None


def _probe_spaces(scenario: Scenario) -> tuple:
    """Single-env observation and action spaces, from the env's own constructor (no episode is run)."""
    from lepton_sim.make import make

    env = make(scenario)
    try:
        return env.observation_space, env.action_space
    finally:
        env.close()


class IncompatiblePolicy(LeptonError):
    """The policy cannot act in this scenario (other observation or action space)."""

    def __init__(self, where: str, reason: str) -> None:
        super().__init__(f"{where}: {reason}")
        self.reason = reason


def check_compatible(policy: Policy, observation_space: object, action_space: object, where: str) -> None:
    """A trained model must see the observation space it was trained on and act in the same action space."""
    for kind, expected, actual in (("observations", getattr(policy, "observation_space", None), observation_space),
                                   ("actions", getattr(policy, "action_space", None), action_space)):
        if expected is None:
            continue
        if type(expected) is not type(actual) or getattr(expected, "shape", None) != getattr(actual, "shape", None):
            raise IncompatiblePolicy(where, f"the policy was trained on {kind} {expected} but this scenario has "
                                            f"{actual}")
