"""How the RLlib back end scales: sampled env steps/s with 1 and 2 env runners (sampling only, and whole
training iterations with learner updates), next to SB3 on the same scenario in the same process; evaluation
episodes/s with 1 and 2 Ray workers; and a projection to N nodes from the measured per-runner rate.

Scenarios: ``driving/obstacle-avoid`` (native numpy vector env, ``--envs-per-runner`` sub-envs per runner) and
``traffic/single-intersection`` (libsumo, one simulation per runner process). Everything runs on one private
local Ray instance sized to the machine. Shared machines drift by tens of percent: compare ratios measured in
the same run. SB3 runs in this process: PPO with the same total number of envs (native vector env for driving,
SubprocVecEnv for SUMO); "sampling" is the vector env stepped with the policy's deterministic actions, "training"
is ``model.learn`` with the default hyperparameters' update sizes.

Projection (printed, and what it assumes): a node of C cores runs C - 1 env runners (one core for the driver and
learner), each at the measured 1-runner rate, so sampling grows linearly with runners (true while every runner
has a core and the env, not the network, bounds sampling; the measured 2-runner efficiency says how far this
machine is from that); a training iteration adds the measured learner time per sampled step, which does not
shrink with more runners (one local learner; ``--learners`` split it only for large batches), so training
steps/s level off at 1 / learner time (Amdahl's law).

Usage: python benchmarks/rllib_scaling.py [--seconds 15] [--envs-per-runner 16] [--nodes 1 2 4 8 --cores 16]
       python benchmarks/rllib_scaling.py --learning 20 [--learning-run RUN]   (the obstacle-avoid learning bar)
"""

from __future__ import annotations

import argparse
import json
import os
import time
from typing import Any

DRIVING = "driving/obstacle-avoid"
TRAFFIC = "traffic/single-intersection"


def _config(scenario: str, runners: int, envs: int, batch: int) -> tuple[Any, Any]:
    from lepton_sim.agents.rllib.algo_config import build_algo_config, register_env
    from lepton_sim.training import plan_training

    overrides = {
        "env_runners": runners,
        "envs_per_runner": envs,
        "train_batch_size_per_learner": batch,
        "minibatch_size": min(256, batch),
        "num_epochs": 2,
    }
    config, sc = plan_training(scenario, algo="ppo", backend="rllib", overrides=overrides, eval_freq=0)
    import lepton_sim

    env = lepton_sim.make(sc)
    space = env.observation_space
    env.close()
    register_env()
    return build_algo_config(config, sc, space), sc


def rllib_rates(scenario: str, runners: int, envs: int, seconds: float) -> dict[str, float]:
    """Sampling-only and training env steps/s for one runner layout (warm-up excluded)."""
    batch = max(runners, 1) * envs * 64
    algo_config, _ = _config(scenario, runners, envs, batch)
    algo = algo_config.build_algo()
    try:
        group = algo.env_runner_group
        chunk = envs * 64

        def sample(runner: Any) -> int:
            episodes = runner.sample(num_timesteps=chunk, random_actions=False)
            return sum(len(e) for e in episodes)

        group.foreach_env_runner(sample, local_env_runner=False)  # warm-up: env start, first resets
        steps, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            steps += sum(group.foreach_env_runner(sample, local_env_runner=False))
        sampling = steps / (time.perf_counter() - start)
        algo.train()  # warm-up of the learner
        steps, learn_time, start = 0, 0.0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            result = algo.train()
            steps += int(result["env_runners"].get("num_env_steps_sampled", 0))
            learn_time += float(result.get("timers", {}).get("learner_update_timer", 0.0) or 0.0)
        elapsed = time.perf_counter() - start
        return {"sampling": sampling, "training": steps / elapsed, "learn_s_per_step": learn_time / max(steps, 1)}
    finally:
        algo.stop()


def sb3_rates(scenario: str, n_envs: int, seconds: float) -> dict[str, float]:
    """SB3 PPO on the same scenario and number of envs: sampling (deterministic actions) and learn()."""
    import numpy as np
    from stable_baselines3 import PPO

    from lepton_sim.agents.sb3.vec_env import make_sb3_vec_env
    from lepton_sim.scenario import load_scenario

    sc = load_scenario(scenario)
    venv = make_sb3_vec_env(sc, n_envs, seed=0)
    try:
        model = PPO("MlpPolicy", venv, n_steps=64, batch_size=min(256, 64 * n_envs), n_epochs=2, seed=0, device="cpu")
        obs = venv.reset()
        steps, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            action, _ = model.predict(obs, deterministic=True)
            obs, _, _, _ = venv.step(np.asarray(action))
            steps += n_envs
        sampling = steps / (time.perf_counter() - start)
        model.learn(64 * n_envs)  # warm-up
        start = time.perf_counter()
        total = 0
        while time.perf_counter() - start < seconds:
            model.learn(64 * n_envs, reset_num_timesteps=False)
            total += 64 * n_envs
        return {"sampling": sampling, "training": total / (time.perf_counter() - start)}
    finally:
        venv.close()


def eval_rates(policy: str, scenario: str, episodes: int, num_envs: int) -> dict[int, float]:
    """Evaluation episodes/s in this process and over 1 and 2 Ray workers (same seeds, same reports)."""
    import lepton_sim
    from lepton_sim.agents.rllib.distributed import RayEpisodeExecutor

    rates: dict[int, float] = {}
    reports = {}
    for workers in (0, 1, 2):
        executor = RayEpisodeExecutor(workers) if workers else None
        start = time.perf_counter()
        report = lepton_sim.evaluate(
            policy, scenario=scenario, episodes=episodes, num_envs=num_envs, progress=False, executor=executor
        )
        rates[workers] = episodes / (time.perf_counter() - start)
        reports[workers] = json.dumps(report.to_dict()["rows"], default=str)  # NaN metrics compare as null
    same = reports[0] == reports[1] == reports[2]
    print(f"  evaluation reports identical with 0/1/2 workers: {same}")
    return rates


def project(one: dict[str, float], two: dict[str, float], nodes: list[int], cores: int) -> None:
    """N nodes x (cores - 1) runners at the measured 1-runner rate (linear: each runner on a core of its own,
    sampling bound by the env); training adds the measured learner time per sampled step (one learner)."""
    efficiency = two["sampling"] / (2 * one["sampling"]) if one["sampling"] else 0.0
    per_runner, learn = one["sampling"], one["learn_s_per_step"]
    print(
        f"  per-runner rate {per_runner:,.0f} steps/s; learner {learn * 1e6:.1f} us per sampled step; measured "
        f"2-runner efficiency here {efficiency:.2f} (below 1 where 2 runners and the driver share fewer cores)"
    )
    print("  | nodes | runners | sampled steps/s (projected) | training steps/s (projected, one learner) |")
    print("  |---|---|---|---|")
    for n in nodes:
        runners = n * (cores - 1)
        sampled = runners * per_runner
        training = 1.0 / (1.0 / sampled + learn) if sampled else 0.0
        print(f"  | {n} | {runners} | {sampled:,.0f} | {training:,.0f} |")


def learning(minutes: float, out: str, run: str | None, episodes: int) -> None:
    """RLlib PPO on driving/obstacle-avoid against the SB3 learning bar (benchmarks/driving_learning.py's held-out
    protocol: the obstacle-avoid test entries of driving/standard, every checkpoint)."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    from driving_learning import BAR, held_out_curve, held_out_items

    import lepton_sim
    from lepton_sim.runs import RunFolder

    if run is None:
        run = str(
            lepton_sim.train(
                DRIVING,
                algo="ppo",
                backend="rllib",
                steps=5_000_000,
                out=out,
                time_limit=minutes * 60,
                checkpoint_freq=250_000,
                eval_freq=250_000,
                eval_episodes=20,
                progress_bar=False,
            )
        )
    items = held_out_items(episodes)
    found = RunFolder(run, "").checkpoints()
    t0 = (Path(run) / "config.yaml").stat().st_mtime  # written when the run began (before Ray started)
    print(
        f"RLlib PPO run {run}: {found[-1][0]:,} steps; held-out success per checkpoint ({len(items)} rows, {sum(i.episodes for i in items)} episodes):"
    )
    results = held_out_curve(found, items, t0)
    hit = next(((s, w, r) for s, w, r in results if r >= BAR), None)
    best = max(r for _, _, r in results)
    print(f"PASS: {hit[2]:.1%} after {hit[0]:,} steps, {hit[1] / 60:.1f} min" if hit else f"MISS: best {best:.1%}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=15.0, help="measuring time per figure")
    parser.add_argument("--envs-per-runner", type=int, default=16, help="driving sub-envs per runner")
    parser.add_argument("--nodes", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--cores", type=int, default=16, help="cores per node in the projection")
    parser.add_argument("--skip", nargs="*", default=[], choices=["driving", "traffic", "eval", "sb3"])
    parser.add_argument("--learning", type=float, metavar="MINUTES", help="instead: the obstacle-avoid learning run")
    parser.add_argument("--learning-run", metavar="RUN", help="with --learning: evaluate this run, do not train")
    parser.add_argument("--learning-episodes", type=int, default=50, help="held-out episodes per test entry")
    parser.add_argument("--out", default=f"runs/bench-rllib-driving-{time.strftime('%Y%m%d-%H%M%S')}")
    args = parser.parse_args()
    if args.learning is not None:
        learning(args.learning, args.out, args.learning_run, args.learning_episodes)
        return

    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    import torch

    torch.set_num_threads(1)  # as both back ends train small MLPs on the CPU (Ray gives each runner one thread)
    from lepton_sim.agents.rllib.cluster import local_cpus, ray_session

    print(f"machine: {local_cpus()} CPUs, load average {os.getloadavg()[0]:.1f}")
    with ray_session(num_cpus=max(local_cpus(), 3)):
        for name, scenario, envs in (("driving", DRIVING, args.envs_per_runner), ("traffic", TRAFFIC, 1)):
            if name in args.skip:
                continue
            print(f"{scenario}: env steps/s ({envs} env(s) per runner)")
            one = rllib_rates(scenario, 1, envs, args.seconds)
            two = rllib_rates(scenario, 2, envs, args.seconds)
            print(f"  rllib 1 runner : sampling {one['sampling']:,.0f}, training {one['training']:,.0f}")
            print(f"  rllib 2 runners: sampling {two['sampling']:,.0f}, training {two['training']:,.0f}")
            if "sb3" not in args.skip:
                for n in (envs, 2 * envs):
                    sb3 = sb3_rates(scenario, n, args.seconds)
                    print(f"  sb3 {n:>3} envs  : sampling {sb3['sampling']:,.0f}, training {sb3['training']:,.0f}")
            project(one, two, args.nodes, args.cores)
        if "eval" not in args.skip:
            for policy, scenario, episodes, num_envs in (
                ("scripted", "driving/lane-keep", 8, 2),
                ("fixed-time", TRAFFIC, 2, 1),
            ):
                rates = eval_rates(policy, scenario, episodes, num_envs)
                print(
                    f"{policy} on {scenario}: episodes/s in-process {rates[0]:.2f}, "
                    f"1 worker {rates[1]:.2f}, 2 workers {rates[2]:.2f}"
                )


if __name__ == "__main__":
    main()
