"""Training back ends behind one small interface, found by name through entry points (lepton_sim.plugins).

A back end trains or resumes a run into a :class:`~lepton_sim.runs.RunFolder`, stores its model files through
it, and loads a :class:`~lepton_sim.policy.Policy` from one of them. Everything else (scenarios, the training
configuration, run records, evaluation, rollouts, plots) is the core's and the same for every back end. SB3 is
the first entry (``lepton_sim.agents.sb3.backend``); RLlib plugs in beside it without a core change.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from functools import cache
from pathlib import Path
from typing import Any, Callable, ClassVar, Sequence

import numpy as np
import yaml

from lepton_sim import plugins
from lepton_sim.errors import LeptonError
from lepton_sim.export_format import GraphSpec
from lepton_sim.policy import Policy
from lepton_sim.runs import RunFolder
from lepton_sim.scenario import Scenario
from lepton_sim.search_space import SearchSpace
from lepton_sim.training_config import TrainConfig


class Backend(ABC):
    name: ClassVar[str]
    model_suffix: ClassVar[str] = ".zip"  # "" where a model is a folder (an RLlib checkpoint)
    algorithms: ClassVar[tuple[str, ...]]
    multi_agent_modes: ClassVar[tuple[str, ...]] = ("joint", "shared")
    # what the back end's training builds from a TrainConfig beyond one scenario: "suite" (config.rows and
    # config.validation, lepton_sim.suite_training), "train_env_params" (the training envs' own params)
    train_features: ClassVar[frozenset[str]] = frozenset()

    def run_folder(self, path: str | Path) -> RunFolder:
        return RunFolder(path, self.model_suffix)

    @abstractmethod
    def hyperparameters(self, algo: str, scenario_name: str, path: str | Path | None = None) -> dict[str, Any]:
        """The default hyperparameters for ``algo`` on a scenario (from the back end's files, or ``path``)."""

    def observation_hyperparameters(self, algo: str, hp: dict[str, Any], scenario: Scenario) -> dict[str, Any]:
        """The file's hyperparameters adapted to the scenario's observation mode (e.g. an image policy for
        camera observations), before ``--set`` overrides apply; unchanged by default."""
        return hp

    @abstractmethod
    def check(self, config: TrainConfig, scenario: Scenario) -> TrainConfig:
        """Validate the hyperparameters against the algorithm's real constructor (names and values); raise a
        LeptonError naming the key and what is allowed. Called before the run folder exists."""

    @abstractmethod
    def train(self, run: RunFolder, config: TrainConfig, scenario: Scenario, resume: bool, progress_bar: bool) -> None:
        """Train (or continue from the latest checkpoint) and write the final model into ``run``."""

    def check_resume(self, run: RunFolder, config: TrainConfig) -> None:
        """Raise a LeptonError if the run cannot be resumed; called before its record is touched."""
        if not self.checkpoints(run):
            raise LeptonError(f"{run.path}: nothing to resume from (no checkpoints in {run.checkpoints_dir})")

    def checkpoints(self, run: RunFolder) -> list[tuple[int, Path]]:
        """The run's checkpoints, oldest first."""
        return run.checkpoints()

    def search_space(self, algo: str, path: str | Path | None = None) -> SearchSpace:
        """The hyperparameter search space for ``algo`` (the back end's file, or ``path``), every name and value
        checked as :meth:`check` would; for ``lepton-sim tune``. Back ends without spaces refuse in one line."""
        raise LeptonError(f"the {self.name} back end has no hyperparameter search spaces (lepton-sim tune)")

    @abstractmethod
    def load_policy(
        self, model_path: Path, config: TrainConfig | None, device: str = "auto", trust_pickle: bool = False
    ) -> Policy:
        """A policy for inference from a model file of this back end (``config``: its run's, if known). Without
        ``trust_pickle`` no code from the files may run (no unpickling): refuse, naming --trust-pickle, where
        that is impossible."""

    export_formats: ClassVar[tuple[str, ...]] = ()  # graph formats ``export`` writes (lepton_sim.export_format)

    def export(self, model_path: Path, config: TrainConfig, fmt: str, out_dir: Path) -> GraphSpec:
        """Write the model's deterministic policy into ``out_dir`` as one graph of format ``fmt`` that takes the
        env's observation and gives the final action (normalisation and action post-processing inside), and say
        how to call it; the core writes spec.json around it and checks it against :meth:`load_policy`. Loads
        without unpickling, as ``load_policy``."""
        raise LeptonError(f"the {self.name} back end cannot export models")

    def graph_runner(
        self, graph_path: Path, fmt: str, device: str = "cpu"
    ) -> Callable[[Sequence[np.ndarray]], np.ndarray]:
        """Run an exported graph of a format the core has no runtime for (TorchScript needs torch): a function
        from the graph's inputs, in order, to its batched actions."""
        raise LeptonError(f"the {self.name} back end cannot run {fmt} graphs")


@cache
def get_backend(name: str) -> Backend:
    """The back end registered as ``name``; a clear error lists the installed ones."""
    try:
        cls = plugins.load(plugins.BACKENDS, name)
    except KeyError:
        raise LeptonError(f"unknown training back end {name!r}; available: {', '.join(available_backends())}") from None
    except ImportError as err:
        raise LeptonError(f"back end {name!r} is not installed ({err}); install lepton-sim[{name}]") from None
    return cls()


def available_backends() -> list[str]:
    return sorted(plugins.entry_points(plugins.BACKENDS))


def read_hyperparameter_entries(path: Path, scenario_name: str, label: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The ``default`` and ``scenario_name`` entries of a back end's hyperparameter YAML (rl-zoo3's layout: a
    mapping of scenario name -> hyperparameters), each a mapping, or a one-line LeptonError naming the file.
    ``label`` names the file's back end and algorithm in the message when it is missing (``rllib 'ppo'``)."""
    if not path.is_file():
        raise LeptonError(f"no hyperparameter file for {label} at {path}")
    try:
        table = yaml.safe_load(path.read_text()) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise LeptonError(f"{path}: invalid YAML: {err}") from None
    if not isinstance(table, dict):
        raise LeptonError(f"{path}: expected a mapping of scenario name -> hyperparameters")
    default, entry = table.get("default") or {}, table.get(scenario_name) or {}
    for name, part in (("default", default), (scenario_name, entry)):
        if not isinstance(part, dict):
            raise LeptonError(f"{path}: {name}: expected a mapping of hyperparameters, got {part!r}")
    return default, entry
