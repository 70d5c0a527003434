"""Driving throughput: ``driving/dense-traffic`` against highway-env's ``highway-fast-v0``, in one process.

Equal work: both simulate 20 other vehicles (IDM car-following + MOBIL lane changes) on a multi-lane road and
advance 1 s of simulated time per env step (highway-fast: 5 x 0.2 s; ours: 10 x 0.1 s), with discrete
lane-change / speed meta-actions drawn at random, resets included (random driving crashes often, so resets
are part of the work: episodes last about 8-10 steps in both).

Peer figure (../shared/reference/peers.md, 2-core machine): highway-fast-v0 runs 25-50 steps/s.
Targets: our single env >= 10x and our vector env (256 envs) >= 500x highway-fast-v0, in env steps/s on one
core. Absolute figures drift on shared machines, so the three are measured in turns, several rounds, and the
ratios are taken from each env's median.

    .venv/bin/python benchmarks/driving_throughput.py [--seconds 5] [--rounds 3] [--num-envs 256]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Any, Callable

os.environ.setdefault("OMP_NUM_THREADS", "1")  # one core: no BLAS threads anywhere

import gymnasium as gym  # noqa: E402
import numpy as np  # noqa: E402
import yaml  # noqa: E402

SCENARIO = "driving/dense-traffic"
PEER_ID = "highway-fast-v0"
PEER_REFERENCE = "highway-fast-v0: 25-50 steps/s (shared/reference/peers.md)"


def make_ours(num_envs: int | None) -> Any:
    """Our scenario through lepton_sim.make / make_vec; falls back to reading the YAML if the core is absent."""
    try:
        import lepton_sim

        return lepton_sim.make(SCENARIO) if num_envs is None else lepton_sim.make_vec(SCENARIO, num_envs)
    except ImportError:
        import lepton_sim.envs  # noqa: F401

        path = Path(__file__).resolve().parents[1] / "scenarios" / f"{SCENARIO}.yaml"
        data = yaml.safe_load(path.read_text())
        if num_envs is None:
            return gym.make(data["env"], max_episode_steps=data["max_episode_steps"], **data["params"])
        return gym.make_vec(
            data["env"],
            num_envs=num_envs,
            vectorization_mode="vector_entry_point",
            max_episode_steps=data["max_episode_steps"],
            **data["params"],
        )


def time_single(env: gym.Env, seconds: float, seed: int) -> tuple[float, float]:
    """Random actions for ``seconds`` -> (env steps/s, mean episode length)."""
    rng = np.random.default_rng(seed)
    n_actions = env.action_space.n
    env.reset(seed=seed)
    steps, episodes = 0, 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        for _ in range(10):
            _, _, terminated, truncated, _ = env.step(int(rng.integers(n_actions)))
            steps += 1
            if terminated or truncated:
                env.reset()
                episodes += 1
    elapsed = time.perf_counter() - start
    return steps / elapsed, steps / max(episodes, 1)


def time_vector(venv: gym.vector.VectorEnv, seconds: float, seed: int) -> tuple[float, float]:
    """Random actions for ``seconds`` (autoreset) -> (env steps/s over all envs, mean episode length)."""
    rng = np.random.default_rng(seed)
    n, n_actions = venv.num_envs, venv.single_action_space.n
    venv.reset(seed=seed)
    actions = rng.integers(n_actions, size=(64, n))
    steps, episodes = 0, 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        for k in range(8):
            _, _, terminated, truncated, _ = venv.step(actions[(steps // n + k) % 64])
            episodes += int(np.count_nonzero(terminated | truncated))
        steps += 8 * n
    elapsed = time.perf_counter() - start
    return steps / elapsed, steps / max(episodes, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="measuring time per env and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--num-envs", type=int, default=256)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()

    import highway_env  # noqa: F401  (benchmark-only dependency: registers highway-fast-v0)

    peer = gym.make(PEER_ID)
    single = make_ours(None)
    vector = make_ours(args.num_envs)
    runs: dict[str, Callable[[int], tuple[float, float]]] = {
        PEER_ID: lambda r: time_single(peer, args.seconds, r),
        f"{SCENARIO} (single env)": lambda r: time_single(single, args.seconds, r),
        f"{SCENARIO} (vector env, {args.num_envs} envs)": lambda r: time_vector(vector, args.seconds, r),
    }
    rates: dict[str, list[float]] = {name: [] for name in runs}
    lengths: dict[str, list[float]] = {name: [] for name in runs}
    for r in range(args.rounds):
        for name, run in runs.items():
            rate, length = run(r)
            rates[name].append(rate)
            lengths[name].append(length)
            print(f"round {r + 1}: {name:52s} {rate:12.1f} steps/s  (episodes ~{length:.1f} steps)", flush=True)

    median = {name: statistics.median(values) for name, values in rates.items()}
    peer_rate = median[PEER_ID]
    targets = {PEER_ID: 1.0, f"{SCENARIO} (single env)": 10.0, f"{SCENARIO} (vector env, {args.num_envs} envs)": 500.0}
    print(
        f"\nmedian of {args.rounds} rounds x {args.seconds:g} s on {platform.processor() or platform.machine()}"
        f" (peer reference: {PEER_REFERENCE})"
    )
    print(f"{'env':56s} {'steps/s':>12s} {'x peer':>9s} {'target':>8s}")
    for name, rate in median.items():
        ratio = rate / peer_rate
        verdict = "ok" if ratio >= targets[name] else "MISSED"
        print(f"{name:56s} {rate:12.1f} {ratio:9.1f} {targets[name]:7.0f}x {verdict}")
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "median_steps_per_s": median,
                    "rounds": rates,
                    "episode_length": lengths,
                    "seconds": args.seconds,
                    "peer_reference": PEER_REFERENCE,
                },
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
