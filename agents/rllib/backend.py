"""The RLlib back end (Ray RLlib's new API stack): PPO and SAC, single-agent and multi-agent, on a local Ray
instance or an existing cluster. Ray is imported by this package only, and only when it is used."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lepton_sim.agents.rllib.hyperparams import ALGORITHMS, check_hyperparams, layout, load_hyperparams
from lepton_sim.backends import Backend
from lepton_sim.errors import LeptonError
from lepton_sim.policy import Policy
from lepton_sim.runs import RunFolder
from lepton_sim.scenario import Scenario
from lepton_sim.training_config import TrainConfig


class RLlibBackend(Backend):
    name = "rllib"
    model_suffix = ""  # a model is a folder: an RLlib checkpoint with the lepton-sim record inside
    algorithms = ALGORITHMS
    multi_agent_modes = ("joint", "shared", "independent")

    def hyperparameters(self, algo: str, scenario_name: str, path: str | Path | None = None) -> dict[str, Any]:
        return load_hyperparams(algo, scenario_name, path)

    def check(self, config: TrainConfig, scenario: Scenario) -> TrainConfig:
        """Hyperparameters, runner layout, libsumo's one simulation per process, GPUs, RLlib's own checks; the
        checked config records n_envs as runners x envs per runner (the envs that sample)."""
        hp = dict(config.hyperparams)
        check_hyperparams(config.algo, hp)
        if config.device.startswith("cuda") and "gpus_per_learner" not in hp:
            hp["gpus_per_learner"] = 1
        if config.device == "cpu" and layout(hp)["gpus_per_learner"]:
            raise LeptonError("--device cpu and gpus_per_learner > 0 contradict each other; give one")
        where = layout(hp)
        if config.algo == "sac" and config.multi_agent in ("shared", "independent"):
            raise LeptonError("multi-agent training on the rllib back end is PPO (traffic signals act in Discrete)")
        if config.multi_agent in ("shared", "independent") and where["envs_per_runner"] != 1:
            raise LeptonError(
                f"multi_agent: {config.multi_agent}: RLlib's multi-agent env runner vectorises only synchronously, in "
                f"one process; envs_per_runner must be 1 (got {where['envs_per_runner']}); scale with --env-runners"
            )
        limit = scenario.spec.max_envs_per_process
        if limit is not None and where["envs_per_runner"] > limit:
            raise LeptonError(
                f"{scenario.env} runs at most {limit} simulation(s) per process (libsumo), but envs_per_runner="
                f"{where['envs_per_runner']} would put {where['envs_per_runner']} in each env runner process; "
                "use --envs-per-runner 1 and more --env-runners"
            )
        if limit is not None and where["env_runners"] == 0:
            raise LeptonError(
                f"{scenario.env} runs one simulation per process (libsumo); env_runners=0 would run it in the "
                "training process itself; use --env-runners 1 or more"
            )
        total = max(int(where["env_runners"]), 1) * int(where["envs_per_runner"])
        if config.n_envs not in (1, total):
            raise LeptonError(
                f"--num-envs {config.n_envs}: on the rllib back end the sampling envs are --env-runners x "
                f"--envs-per-runner ({total} here); give those instead"
            )
        if where["gpus_per_learner"] and not _cluster_requested():
            from lepton_sim.agents.rllib.cluster import local_gpus

            if local_gpus() < where["gpus_per_learner"] * max(int(where["learners"]), 1):
                raise LeptonError(
                    f"gpus_per_learner={where['gpus_per_learner']:g}: this machine has {local_gpus()} CUDA GPU(s); "
                    "train on a cluster with GPUs (--ray-address) or drop --gpus-per-learner"
                )
        config = config.model_copy(update={"hyperparams": hp, "n_envs": total})
        from lepton_sim.agents.rllib.algo_config import build_algo_config, validate
        from lepton_sim.agents.rllib.train import _env_spaces

        observation_space, _ = _env_spaces(scenario)
        validate(build_algo_config(config, scenario, observation_space), f"rllib {config.algo}")
        return TrainConfig(**config.model_dump())

    def check_resume(self, run: RunFolder, config: TrainConfig) -> None:
        from lepton_sim.agents.rllib.train import check_resume

        check_resume(run, config)

    def train(self, run: RunFolder, config: TrainConfig, scenario: Scenario, resume: bool, progress_bar: bool) -> None:
        from lepton_sim.agents.rllib.train import train_rllib

        train_rllib(run, config, scenario, resume=resume, progress_bar=progress_bar)

    def load_policy(
        self, model_path: Path, config: TrainConfig | None, device: str = "auto", trust_pickle: bool = False
    ) -> Policy:
        """From the checkpoint's lepton-sim record and npz weights (nothing unpickled, no Ray running);
        ``trust_pickle``: RLlib's ``RLModule.from_checkpoint``."""
        from lepton_sim.agents.rllib.policy import load_rllib_policy

        if not Path(model_path).is_dir():
            raise LeptonError(f"{model_path}: an RLlib model is a checkpoint folder")
        return load_rllib_policy(Path(model_path), trust_pickle=trust_pickle)


def _cluster_requested() -> bool:
    from lepton_sim.agents.rllib.cluster import cluster_address

    return cluster_address() is not None
