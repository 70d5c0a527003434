"""Train a Stable-Baselines3 agent on a scenario into a run folder (see lepton_sim.runs for the layout)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import gymnasium
import torch
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback, CallbackList
from stable_baselines3.common.logger import configure
from stable_baselines3.common.utils import get_device
from stable_baselines3.common.vec_env import VecEnv, VecFrameStack, VecMonitor, VecNormalize

from lepton_sim.agents.sb3.algorithms import OFF_POLICY, algorithm_class
from lepton_sim.agents.sb3.augment import VecRandomShift
from lepton_sim.agents.sb3.callbacks import CheckpointCallback, PeriodicEvalCallback, StopAfterWallTime
from lepton_sim.agents.sb3.hyperparams import sb3_kwargs
from lepton_sim.agents.sb3.model_files import normalizer_path, save_model
from lepton_sim.agents.sb3.pixels import image_keys, training_device
from lepton_sim.agents.sb3.policy import SB3Policy
from lepton_sim.agents.sb3.vec_env import make_sb3_mixture, make_sb3_vec_env
from lepton_sim.errors import LeptonError
from lepton_sim.io import uninterrupted
from lepton_sim.multi_agent import SharedPolicy
from lepton_sim.periodic_evaluation import PeriodicEvaluator
from lepton_sim.policy import Policy
from lepton_sim.runs import MONITOR, RunFolder
from lepton_sim.scenario import Scenario
from lepton_sim.suite_training import evaluation_rows, training_scenarios, with_train_params
from lepton_sim.training_config import TrainConfig


def _make_env(
    scenario: Scenario, config: TrainConfig, seed: int, monitor_file: Path, stats_path: Path | None
) -> VecEnv:
    """The training env: the scenario's VecEnv (a suite run: its rows' side by side; ``train_env_params`` applied),
    monitored, then (as the hyperparameters say) VecNormalize (never of camera images: the CNN scales them
    itself), VecFrameStack and the random-shift augmentation."""
    hp = config.hyperparams
    if config.rows:
        rows = [(sc, n) for _, sc, n in training_scenarios(config, str(monitor_file.parent))]
        base = make_sb3_mixture(rows, seed, config.multi_agent)
    else:
        trained = with_train_params(scenario, config.train_env_params, scenario.name)
        base = make_sb3_vec_env(trained, config.n_envs, seed, config.multi_agent)
    venv = VecMonitor(base, filename=str(monitor_file))
    if hp.get("normalize"):
        if stats_path is not None and stats_path.is_file():
            venv = VecNormalize.load(str(stats_path), venv)
        else:
            venv = VecNormalize(venv, gamma=hp.get("gamma", 0.99), **_normalized_observations(venv.observation_space))
        venv.training = True
        venv.norm_reward = True
    if hp.get("frame_stack", 1) > 1:
        venv = VecFrameStack(venv, int(hp["frame_stack"]))
    if hp.get("augment") == "random_shift":
        venv = VecRandomShift(venv, seed=seed)
    return venv


def _normalized_observations(space: gymnasium.Space) -> dict[str, Any]:
    """VecNormalize's observation settings: every key but the images of a Dict; nothing of an image."""
    keys = image_keys(space)
    if not keys:
        return {}
    if keys == [None]:
        return {"norm_obs": False}
    assert isinstance(space, gymnasium.spaces.Dict)
    return {"norm_obs_keys": [k for k in space.spaces if k not in keys]}


def _as_policy(model: BaseAlgorithm, config: TrainConfig, env: VecEnv) -> Policy:
    """The model being trained, as a Policy seeing what it sees (live normalisation statistics, its frame stack)."""
    plain = env.unwrapped  # the env's own spaces: before stacking, channels-last images as they come
    policy = SB3Policy(
        model,
        name=config.algo,
        obs_normalizer=model.get_vec_normalize_env(),
        frame_stack=int(config.hyperparams.get("frame_stack", 1)),
        observation_space=plain.observation_space,
        action_space=plain.action_space,
    )
    return SharedPolicy(policy) if config.multi_agent == "shared" else policy


def check_resume(run: RunFolder, config: TrainConfig) -> None:
    """Refuse a resume that could not continue the run as it was trained (before anything is written)."""
    checkpoint = run.latest_checkpoint()
    if checkpoint is None:
        raise LeptonError(f"{run.path}: nothing to resume from (no checkpoints in {run.checkpoints_dir})")
    stats = normalizer_path(checkpoint[1])
    if config.hyperparams.get("normalize") and not stats.is_file():
        raise LeptonError(
            f"{checkpoint[1]}: the run normalises observations but {stats.name} is missing; "
            "resuming would start fresh statistics the model was not trained with"
        )


def train_sb3(
    run: RunFolder, config: TrainConfig, scenario: Scenario, resume: bool = False, progress_bar: bool = True
) -> None:
    """Train (or, with ``resume``, continue from the latest checkpoint) and save the final model in ``run``.

    A KeyboardInterrupt (Ctrl-C; SIGTERM too, see lepton_sim.training) saves a checkpoint at the current step
    and the current model, says so on stderr and is raised again, so ``--resume`` loses no training."""
    algo, hp, seed = config.algo, config.hyperparams, config.seed
    cls = algorithm_class(algo)
    if resume:
        check_resume(run, config)
    checkpoint = run.latest_checkpoint() if resume else None
    done_steps = checkpoint[0] if checkpoint else 0
    stats = normalizer_path(checkpoint[1]) if checkpoint else None
    if checkpoint:  # rows past the checkpoint (a run killed between checkpoints) are evaluated again
        run.truncate_evaluations(done_steps)
    log_dir = run.new_log_dir()  # each resume logs to a new part
    env = _make_env(scenario, config, seed + done_steps, log_dir / MONITOR, stats)
    threads = torch.get_num_threads()
    try:
        policy_name = str(hp.get("policy", "MlpPolicy"))
        device = training_device(config.device, policy_name, env.observation_space)
        if get_device(device).type == "cpu":
            # one thread is faster than several competing with the envs in this process (small MLPs, and CNNs:
            # PPO on 64x64 pixels ran 165 steps/s with one thread, 32 with two, on a loaded 2-core machine); set
            # before the network is built, because its initial weights depend on the thread count (same seed,
            # same model, any machine)
            torch.set_num_threads(1)
        if checkpoint is not None:
            model = cls.load(checkpoint[1], env=env, device=device)
            buffer = run.replay_buffer(done_steps)
            if algo in OFF_POLICY and buffer.is_file():
                model.load_replay_buffer(buffer)
        else:
            kwargs = sb3_kwargs(algo, hp, env.action_space)
            kwargs.setdefault("verbose", 0)
            model = cls(policy_name, env, seed=seed, device=device, **kwargs)
        run.record_device(str(model.device))
        if image_keys(env.observation_space):
            _say_images(model, config, env)
        model.set_logger(configure(str(log_dir), ["csv", "tensorboard"]))

        checkpoints = CheckpointCallback(run, config.checkpoint_freq)
        callbacks: list[BaseCallback] = [checkpoints]
        if config.time_limit:
            callbacks.append(StopAfterWallTime(config.time_limit))
        if config.eval_freq > 0:
            evaluator = PeriodicEvaluator(
                run, scenario, seed, config.eval_episodes, rows=evaluation_rows(config, str(run.config_path))
            )
            callbacks.append(
                PeriodicEvalCallback(evaluator, lambda m: _as_policy(m, config, env), config.eval_freq, env.num_envs)
            )
        try:
            model.learn(
                total_timesteps=max(config.steps - done_steps, 0),
                callback=CallbackList(callbacks),
                progress_bar=progress_bar,
                reset_num_timesteps=checkpoint is None,
            )
        except KeyboardInterrupt:
            _save_interrupted(model, run, checkpoints, done_steps)
            raise
        except (EOFError, ConnectionError) as err:  # a SubprocVecEnv worker died (a killed simulator)
            _save_interrupted(
                model,
                run,
                checkpoints,
                done_steps,
                why=f"a training env worker process died ({type(err).__name__}: {err})",
            )
            raise LeptonError(
                f"{run.path}: training stopped because a training env worker process died "
                f"({type(err).__name__}); what was learnt is saved (see above)"
            ) from None
        finally:
            model.logger.close()  # flushes TensorBoard's events, interrupted or not
        with uninterrupted():
            save_model(model, run.final_model)
            checkpoints.save()  # a final checkpoint, so a later --resume with more --steps continues from here
    except BaseException:
        _close_quietly(env)  # worker processes a terminal's Ctrl-C reached may be gone already
        raise
    finally:
        torch.set_num_threads(threads)  # the caller's process (a notebook, a test session) keeps its own
    env.close()


def _say_images(model: BaseAlgorithm, config: TrainConfig, env: VecEnv) -> None:
    """One line on stderr: what a camera run trains (policy, device, image shape, stacking, augmentation)."""
    hp = config.hyperparams
    space = env.unwrapped.observation_space
    shapes = {k: space[k].shape for k in image_keys(space)} if isinstance(space, gymnasium.spaces.Dict) else space.shape
    extras = [f"frame_stack {hp['frame_stack']}"] if hp.get("frame_stack", 1) > 1 else []
    extras += [f"augment {hp['augment']}"] if hp.get("augment") else []
    print(
        f"training {config.algo} {hp.get('policy', 'MlpPolicy')} on images {shapes} (uint8) on {model.device}"
        f" (--device {config.device}){'; ' + ', '.join(extras) if extras else ''}",
        file=sys.stderr,
        flush=True,
    )


def _save_interrupted(
    model: BaseAlgorithm, run: RunFolder, checkpoints: CheckpointCallback, resumed_from: int, why: str = "interrupted"
) -> None:
    """Save a checkpoint at the current step and the current model, and say on stderr what was saved (one line).
    Signals wait until the files are written, so a second Ctrl-C cannot leave half a checkpoint."""
    steps = model.num_timesteps
    with uninterrupted():
        try:
            checkpoint = run.checkpoint(steps)
            if steps not in (checkpoints.last_saved, resumed_from) or not checkpoint.is_file():
                checkpoint = checkpoints.save()
            save_model(model, run.final_model)
        except Exception as err:  # noqa: BLE001 - the interrupt still ends the run; say what is left
            last = run.latest_checkpoint()
            kept = f"the latest checkpoint is {last[1]}" if last else "there is no checkpoint to resume from"
            print(f"{why} at {steps} steps; saving failed ({err}); {kept}", file=sys.stderr)
            return
        extras = [
            name
            for name, present in (
                ("normalisation statistics", model.get_vec_normalize_env()),
                ("replay buffer", getattr(model, "replay_buffer", None)),
            )
            if present is not None
        ]
        beside = f" (with its {' and '.join(extras)})" if extras else ""
        print(
            f"{why} at {steps} steps: saved checkpoint {checkpoint}{beside} and model {run.final_model}; "
            f"continue with: lepton-sim train --resume {run.path}",
            file=sys.stderr,
            flush=True,
        )


def _close_quietly(env: VecEnv) -> None:
    try:
        env.close()
    except Exception:  # noqa: BLE001 - the error being raised matters, not a second one from closing
        pass
