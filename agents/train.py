"""``train()``: scenario + algorithm -> a run folder. Resolves hyperparameters, seeds and the run record, then
hands over to a back end (SB3 now; RLlib plugs in beside it with the same scenario files and run layout)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import yaml

from lepton_sim.agents.sb3.algorithms import ALGORITHMS
from lepton_sim.agents.sb3.callbacks import latest_checkpoint
from lepton_sim.agents.sb3.hyperparams import load_hyperparams, sb3_kwargs
from lepton_sim.agents.sb3.vec_env import uses_shared_policy
from lepton_sim.errors import LeptonError
from lepton_sim.runs import new_run_dir, write_run_record
from lepton_sim.scenario import Scenario, load_scenario, scenario_from_dict

ENV_PREFIX = "params."  # overrides starting with this set env params, e.g. params.lanes=3
BACKENDS = ("sb3",)  # RLlib joins here with the same scenario files, run layout and policy interface


def train(scenario: str | Path | Scenario | None = None, algo: str = "ppo", steps: int | None = None,
          seed: int | None = None, n_envs: int | None = None, device: str = "auto", out: str | Path | None = None,
          overrides: Mapping[str, Any] | None = None, hyperparams_file: str | Path | None = None,
          resume: str | Path | None = None, eval_freq: int | None = None, eval_episodes: int = 10,
          checkpoint_freq: int | None = None, time_limit: float | None = None, progress_bar: bool = True,
          runs_root: str | Path = "runs") -> Path:
    """Train ``algo`` on ``scenario`` and return the run folder (model.zip, best_model.zip, checkpoints, logs).

    Args:
        overrides: hyperparameters (``learning_rate``, ``n_steps``...) and env params as ``params.<name>``.
        steps: total env steps (default: the hyperparameter file's ``n_timesteps``).
        eval_freq / checkpoint_freq: in env steps over all envs (default: steps/10 and steps/5).
        time_limit: stop after this many seconds of wall-clock time (the model is saved as usual).
        resume: a run folder; training continues from its latest checkpoint up to ``steps`` (default: the
            run's own total). Everything else comes from the run's config.yaml.
    """
    if resume is not None:
        return _resume(Path(resume), steps, device, progress_bar)
    if scenario is None:
        raise LeptonError("train needs a scenario (or resume=RUN_DIR)")
    if algo not in ALGORITHMS:
        raise LeptonError(f"unknown algorithm {algo!r}; allowed: {', '.join(ALGORITHMS)}")
    overrides = dict(overrides or {})
    env_overrides = {k[len(ENV_PREFIX):]: v for k, v in overrides.items() if k.startswith(ENV_PREFIX)}
    sc = load_scenario(scenario, **env_overrides)
    hp = load_hyperparams(algo, sc.name, hyperparams_file)
    hp.update({k: v for k, v in overrides.items() if not k.startswith(ENV_PREFIX)})
    sb3_kwargs(algo, hp)  # unknown hyperparameters fail here, before a run folder is created

    seed = sc.seed if seed is None else seed
    steps = int(steps or hp.get("n_timesteps", 100_000))
    n_envs = int(n_envs or hp.get("n_envs", 1))
    shared = uses_shared_policy(sc)
    if shared:  # one policy for every signal of one in-process simulation (periodic evaluation in subprocesses)
        n_envs = 1
    run_dir = Path(out) if out else new_run_dir(sc.name, algo, seed, runs_root)
    if (run_dir / "config.yaml").exists():
        raise LeptonError(f"{run_dir} already holds a run; choose another --out or --resume it")
    run_dir.mkdir(parents=True, exist_ok=True)
    config = {
        "backend": "sb3", "algo": algo, "scenario": sc.model_dump(), "scenario_source": sc.source,
        "hyperparams": hp, "steps": steps, "seed": seed, "n_envs": n_envs, "device": device,
        "eval_freq": int(eval_freq if eval_freq is not None else max(steps // 10, 1)),
        "eval_episodes": eval_episodes,
        "checkpoint_freq": int(checkpoint_freq or max(steps // 5, 1)),
        "time_limit": time_limit,
        "policy_sharing": shared,
    }
    write_run_record(run_dir, config)
    return _run(run_dir, config, sc, device, progress_bar, resume=False)


def _run(run_dir: Path, config: dict[str, Any], sc: Scenario, device: str, progress_bar: bool, resume: bool) -> Path:
    """Hand the resolved run over to its back end. Each back end reads the same config and writes the same run
    layout (model.zip, checkpoints/, evaluations.csv, logs/), so evaluation and plotting need not know which."""
    backend = config.get("backend", "sb3")
    if backend not in BACKENDS:
        raise LeptonError(f"unknown training back end {backend!r}; available: {', '.join(BACKENDS)}")
    from lepton_sim.agents.sb3.train import train_sb3

    return train_sb3(run_dir, sc, config["algo"], config["hyperparams"], config["steps"], config["seed"],
                     config["n_envs"], device, config["eval_freq"], config["eval_episodes"],
                     config["checkpoint_freq"], progress_bar, resume=resume, time_limit=config.get("time_limit"))


def _resume(run_dir: Path, steps: int | None, device: str, progress_bar: bool) -> Path:
    config_path = run_dir / "config.yaml"
    if not config_path.is_file():
        raise LeptonError(f"cannot resume {run_dir}: not a run folder (no config.yaml)")
    config = yaml.safe_load(config_path.read_text())
    if steps is not None:
        config["steps"] = int(steps)
    sc = scenario_from_dict(config["scenario"], source=config.get("scenario_source") or str(config_path))
    if latest_checkpoint(run_dir) is None:  # fail before the run record is touched
        raise LeptonError(f"{run_dir}: nothing to resume from (no checkpoints/ckpt_*_steps.zip)")
    write_run_record(run_dir, config, append_command=True)
    return _run(run_dir, config, sc, device, progress_bar, resume=True)
