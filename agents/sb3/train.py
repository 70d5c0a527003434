"""Train a Stable-Baselines3 agent on a scenario into a run folder (see lepton_sim.runs for the layout)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from stable_baselines3.common.callbacks import CallbackList, EvalCallback
from stable_baselines3.common.logger import configure
from stable_baselines3.common.vec_env import VecEnv, VecMonitor, VecNormalize

from lepton_sim.agents.sb3.algorithms import OFF_POLICY, algorithm_class
from lepton_sim.agents.sb3.callbacks import (CheckpointCallback, EvalCsvCallback, PolicyEvalCallback,
                                             SaveBestCallback, StopAfterWallTime, latest_checkpoint,
                                             normalizer_path, save_model_atomic)
from lepton_sim.agents.sb3.hyperparams import sb3_kwargs
from lepton_sim.agents.sb3.vec_env import make_sb3_vec_env, uses_shared_policy
from lepton_sim.errors import LeptonError
from lepton_sim.scenario import Scenario

EVAL_SEED_OFFSET = 50_000  # periodic evaluation seeds, away from training (seed+i) and test (seed+100000+k)


def _make_env(scenario: Scenario, hp: dict[str, Any], n_envs: int, seed: int, monitor_file: Path | None,
              stats_path: Path | None = None, training: bool = True) -> VecEnv:
    venv = VecMonitor(make_sb3_vec_env(scenario, n_envs, seed), filename=str(monitor_file) if monitor_file else None)
    if hp.get("normalize"):
        if stats_path is not None and stats_path.is_file():
            venv = VecNormalize.load(str(stats_path), venv)
        else:
            venv = VecNormalize(venv, gamma=hp.get("gamma", 0.99))
        venv.training = training
        venv.norm_reward = training
    return venv


def train_sb3(run_dir: Path, scenario: Scenario, algo: str, hp: dict[str, Any], steps: int, seed: int, n_envs: int,
              device: str, eval_freq: int, eval_episodes: int, checkpoint_freq: int, progress_bar: bool,
              resume: bool = False, time_limit: float | None = None) -> Path:
    """Train (or, with ``resume``, continue from the latest checkpoint) and save model.zip in ``run_dir``."""
    cls = algorithm_class(algo)
    checkpoint = latest_checkpoint(run_dir) if resume else None
    if resume and checkpoint is None:
        raise LeptonError(f"{run_dir}: nothing to resume from (no checkpoints/ckpt_*_steps.zip)")
    done_steps = checkpoint[1] if checkpoint else 0
    normalizer = normalizer_path(checkpoint[0]) if checkpoint else None
    part = len(list((run_dir / "logs").glob("part*"))) if resume else 0  # each resume logs to a new part
    log_dir = run_dir / "logs" / f"part{part}"
    log_dir.mkdir(parents=True, exist_ok=True)
    env = _make_env(scenario, hp, n_envs, seed + done_steps, log_dir / "monitor.csv", normalizer)
    shared = uses_shared_policy(scenario)  # its simulation lives in this process: evaluate elsewhere
    eval_env = None if eval_freq <= 0 or shared else _make_env(scenario, hp, min(n_envs, eval_episodes),
                                                               seed + EVAL_SEED_OFFSET, None, normalizer,
                                                               training=False)

    if checkpoint is not None:
        model = cls.load(checkpoint[0], env=env, device=device)
        buffers = sorted((run_dir / "checkpoints").glob(f"replay_buffer_{done_steps}.pkl"))
        if algo in OFF_POLICY and buffers:
            model.load_replay_buffer(buffers[-1])
    else:
        kwargs = sb3_kwargs(algo, hp)
        model = cls(hp.get("policy", "MlpPolicy"), env, seed=seed, device=device, verbose=0, **kwargs)
    model.set_logger(configure(str(log_dir), ["csv", "tensorboard"]))
    if model.device.type == "cpu" and "Cnn" not in str(hp.get("policy", "")):
        torch.set_num_threads(1)  # small MLPs: one thread is faster than several competing with the envs

    previous_wall = _last_wall_time(run_dir)
    callbacks: list = [CheckpointCallback(run_dir, checkpoint_freq)]
    if time_limit:
        callbacks.append(StopAfterWallTime(time_limit))
    if eval_freq > 0 and shared:
        from lepton_sim.agents.traffic.pettingzoo_vec import SharedPolicy

        seeds = [seed + EVAL_SEED_OFFSET + k for k in range(eval_episodes)]
        callbacks.append(PolicyEvalCallback(
            run_dir, scenario, lambda m: SharedPolicy(m, obs_normalizer=m.get_vec_normalize_env()), eval_freq,
            seeds, previous_wall))
    elif eval_freq > 0:
        callbacks.append(EvalCallback(
            eval_env, n_eval_episodes=eval_episodes, eval_freq=max(eval_freq // n_envs, 1),
            callback_on_new_best=SaveBestCallback(run_dir),
            callback_after_eval=EvalCsvCallback(run_dir, previous_wall), log_path=str(log_dir),
            deterministic=True, verbose=0))
    try:
        model.learn(total_timesteps=max(steps - done_steps, 0), callback=CallbackList(callbacks),
                    progress_bar=progress_bar, reset_num_timesteps=checkpoint is None)
        save_model_atomic(model, run_dir / "model.zip")
        callbacks[0].save()  # a final checkpoint, so a later --resume with more --steps continues from here
    finally:
        env.close()
        if eval_env is not None:
            eval_env.close()
    return run_dir


def _last_wall_time(run_dir: Path) -> float:
    path = run_dir / "evaluations.csv"
    if not path.exists():
        return 0.0
    import csv

    rows = list(csv.DictReader(path.open()))
    return float(rows[-1]["wall_time_s"]) if rows else 0.0


__all__ = ["train_sb3"]
