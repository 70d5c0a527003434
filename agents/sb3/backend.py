"""The stable-baselines3 back end: PPO, SAC, TD3 (stable-baselines3) and TQC (sb3-contrib)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from lepton_sim.agents.sb3.algorithms import ALGORITHMS
from lepton_sim.agents.sb3.hyperparams import check_hyperparams, load_hyperparams
from lepton_sim.backends import Backend
from lepton_sim.errors import LeptonError
from lepton_sim.export_format import GraphSpec
from lepton_sim.policy import Policy
from lepton_sim.runs import RunFolder
from lepton_sim.scenario import Scenario
from lepton_sim.search_space import SearchSpace
from lepton_sim.training_config import TrainConfig


class SB3Backend(Backend):
    name = "sb3"
    model_suffix = ".zip"
    algorithms = tuple(ALGORITHMS)
    multi_agent_modes = ("joint", "shared")
    train_features = frozenset({"suite", "train_env_params"})
    export_formats = ("onnx", "torchscript")

    def hyperparameters(self, algo: str, scenario_name: str, path: str | Path | None = None) -> dict[str, Any]:
        return load_hyperparams(algo, scenario_name, path)

    def search_space(self, algo: str, path: str | Path | None = None) -> SearchSpace:
        from lepton_sim.agents.sb3.search_space import load_search_space

        if algo not in self.algorithms:
            raise LeptonError(f"unknown algorithm {algo!r} for the sb3 back end; allowed: {', '.join(self.algorithms)}")
        return load_search_space(algo, path)

    def observation_hyperparameters(self, algo: str, hp: dict[str, Any], scenario: Scenario) -> dict[str, Any]:
        """The ``pixels`` block and the image policy for camera obs modes (agents/sb3/pixels.py)."""
        from lepton_sim.agents.sb3.pixels import observation_hyperparameters

        return observation_hyperparameters(algo, hp, scenario)

    def check(self, config: TrainConfig, scenario: Scenario) -> TrainConfig:
        check_hyperparams(config.algo, config.hyperparams)
        if "pixels" in config.hyperparams:  # the files' blocks are merged (or dropped) before overrides apply
            raise LeptonError(
                "pixels: a block of the hyperparameter files, merged in camera obs modes; set its keys directly "
                "(e.g. --set n_steps=128)"
            )
        if config.hyperparams.get("augment") is not None:
            from lepton_sim.agents.sb3.pixels import STATE_VECTOR_MODES, camera_mode

            if camera_mode(scenario) in STATE_VECTOR_MODES:
                raise LeptonError(
                    f"augment: {config.hyperparams['augment']} shifts camera images, but {scenario.name} observes "
                    f"obs_mode {camera_mode(scenario)}; set params.obs_mode=pixels (or state+pixels), or drop augment"
                )
        if config.device.startswith("cuda"):  # SB3 would fall back to the CPU without a word
            import torch

            index = int(config.device.partition(":")[2] or 0)
            if not torch.cuda.is_available() or index >= torch.cuda.device_count():
                raise LeptonError(
                    f"device {config.device!r}: no such CUDA device here "
                    f"({torch.cuda.device_count()} found); use --device auto or cpu"
                )
        if config.multi_agent == "shared" and config.algo != "ppo":
            raise LeptonError(f"multi_agent: shared trains PPO over every agent's experience; got {config.algo}")
        mode = scenario.params.get("obs_mode", "state")
        if config.multi_agent == "shared" and mode != "state":  # the adapter pads flat state rows only
            raise LeptonError(
                f"multi_agent: shared trains on state observations only (obs_mode {mode!r} given); use "
                "--multi-agent joint for one policy over every signal's stacked camera images"
            )
        return config

    def check_resume(self, run: RunFolder, config: TrainConfig) -> None:
        from lepton_sim.agents.sb3.train import check_resume

        check_resume(run, config)

    def train(self, run: RunFolder, config: TrainConfig, scenario: Scenario, resume: bool, progress_bar: bool) -> None:
        from lepton_sim.agents.sb3.train import train_sb3

        train_sb3(run, config, scenario, resume=resume, progress_bar=progress_bar)

    def load_policy(
        self, model_path: Path, config: TrainConfig | None, device: str = "auto", trust_pickle: bool = False
    ) -> Policy:
        """Without ``trust_pickle`` nothing from the files is unpickled (network from the run's config.yaml,
        weights only, npz statistics); a model outside any run folder has its architecture only in pickled form
        and is refused. ``trust_pickle``: SB3's own loader, for old files from a trusted source."""
        from lepton_sim.agents.sb3.model_files import TRUST_HINT
        from lepton_sim.agents.sb3.policy import SB3Policy, env_spaces

        if trust_pickle:
            normalized = bool(config is not None and config.hyperparams.get("normalize"))
            policy = SB3Policy.load(
                model_path, algo=config.algo if config else None, device=device, normalized=normalized
            )
            if config is not None:  # declare the env's spaces (SB3 keeps images channels-first internally)
                policy.observation_space, policy.action_space = env_spaces(config, model_path)
                policy.configure_observations(config)
            return policy
        if config is None:
            raise LeptonError(
                f"{model_path} is outside any lepton-sim run folder (no config.yaml), so its network "
                "is described only by pickled entries in the file, and loading those can run code "
                f"from it; evaluate it from its run folder, or {TRUST_HINT}"
            )
        return SB3Policy.load_weights(model_path, config, device=device)

    def export(self, model_path: Path, config: TrainConfig, fmt: str, out_dir: Path) -> GraphSpec:
        """The policy network with normalisation and action post-processing inside (agents/sb3/export.py)."""
        from lepton_sim.agents.sb3.export import export_sb3

        return export_sb3(model_path, config, fmt, out_dir)

    def graph_runner(
        self, graph_path: Path, fmt: str, device: str = "cpu"
    ) -> Callable[[Sequence[np.ndarray]], np.ndarray]:
        if fmt != "torchscript":
            return super().graph_runner(graph_path, fmt, device)
        from lepton_sim.agents.sb3.export import torchscript_runner

        return torchscript_runner(graph_path, device)
