"""Env steps per second of lepton-sim's traffic envs against raw sumo-rl on the same scenario, same process.

Both sides run the same net, seed, timing (sumo-rl's defaults: 5 s decisions, 2 s yellow) and random actions,
whole 1 h episodes (resets included). libsumo runs one simulation per process, so the envs take turns, each
closed before the next, interleaved over rounds; the best round of each is reported (shared machines drift).

Reference (../shared/reference/traffic.md, 2-core machine, sumo-rl 1.4.5 + libsumo 1.28, single-intersection):
~1,100-1,200 steps/s with sumo-rl's info on, ~1,450 with it off; traci 28-29 / 80-116 steps/s, ~1 s per reset.

Usage: python benchmarks/traffic_throughput.py [--episodes 2] [--rounds 3] [--traci]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from typing import Any, Callable

import numpy as np

SINGLE = (
    "nets/single-intersection/single-intersection.net.xml",
    "nets/single-intersection/single-intersection.rou.xml",
)
GRID = ("nets/RESCO/grid4x4/grid4x4.net.xml", "nets/RESCO/grid4x4/grid4x4_1.rou.xml")
TIMING = {"delta_time": 5, "yellow_time": 2, "min_green": 5}


def _sumo_rl_path(rel: str) -> str:
    from lepton_sim.envs.traffic.params import resolve_sumo_file

    return str(resolve_sumo_file(f"sumo_rl:{rel}"))


def _time_episodes(
    make: Callable[[], Any], episodes: int, seed: int, play_episode: Callable[[Any, np.random.Generator], int]
) -> tuple[float, int, float]:
    """(steps/s, steps, mean reset seconds) over whole episodes; ``play_episode`` returns its env steps."""
    env = make()
    rng = np.random.default_rng(seed)
    steps, reset_time = 0, 0.0
    start = time.perf_counter()
    for ep in range(episodes):
        t = time.perf_counter()
        env.reset(seed=seed + ep)
        reset_time += time.perf_counter() - t
        steps += play_episode(env, rng)
    elapsed = time.perf_counter() - start
    env.close()
    return steps / elapsed, steps, reset_time / episodes


def _random_gym_episode(env: Any, rng: np.random.Generator) -> int:
    n, steps = env.action_space.n, 0
    while True:
        *_, terminated, truncated, _ = env.step(int(rng.integers(n)))
        steps += 1
        if terminated or truncated:
            return steps


def _random_parallel_episode(env: Any, rng: np.random.Generator) -> int:
    steps = 0
    while env.agents:  # one env step = one joint step of all agents
        env.step({a: int(rng.integers(env.action_space(a).n)) for a in env.agents})
        steps += 1
    return steps


def run_gym(make: Callable[[], Any], episodes: int, seed: int = 0) -> tuple[float, int, float]:
    """Random actions over whole episodes of a Gymnasium-style env."""
    return _time_episodes(make, episodes, seed, _random_gym_episode)


def run_parallel(make: Callable[[], Any], episodes: int, seed: int = 0) -> tuple[float, int, float]:
    """The same for a PettingZoo Parallel env."""
    return _time_episodes(make, episodes, seed, _random_parallel_episode)


def single_cases(backend: str) -> dict[str, tuple[Callable[[], Any], Callable]]:
    from lepton_sim.envs.traffic.signal_env import TrafficSignalEnv
    from lepton_sim.envs.traffic.sumo_setup import import_sumo_rl

    net, route = (_sumo_rl_path(p) for p in SINGLE)
    sumo_rl = import_sumo_rl()

    def raw(info: bool) -> Callable[[], Any]:
        return lambda: sumo_rl.SumoEnvironment(
            net_file=net,
            route_file=route,
            single_agent=True,
            num_seconds=3600,
            sumo_warnings=False,
            add_system_info=info,
            add_per_agent_info=info,
            reward_fn="diff-waiting-time",
            **TIMING,
        )

    def ours(**kw: Any) -> Callable[[], Any]:
        return lambda: TrafficSignalEnv(
            net=net, route=route, duration=3600, backend=backend, **{"reward": "diff-waiting-time", **TIMING, **kw}
        )

    cases = {"lepton TrafficSignal-v0 (tripinfo metrics, per-step info)": (ours(), run_gym)}
    if backend == "libsumo":
        cases["lepton TrafficSignal-v0, episode_metrics=False"] = (ours(episode_metrics=False), run_gym)
        cases["lepton TrafficSignal-v0, its default reward (queue-entry)"] = (ours(reward="queue-entry"), run_gym)
        cases["sumo-rl SumoEnvironment, info on (its default)"] = (raw(True), run_gym)
        cases["sumo-rl SumoEnvironment, info off"] = (raw(False), run_gym)
    return cases


def grid_cases() -> dict[str, tuple[Callable[[], Any], Callable]]:
    from lepton_sim.envs.traffic.grid_env import TrafficGridEnv
    from lepton_sim.envs.traffic.sumo_setup import import_sumo_rl

    net, route = (_sumo_rl_path(p) for p in GRID)
    sumo_rl = import_sumo_rl()

    def ours() -> Any:
        return TrafficGridEnv(net=net, route=route, duration=3600, reward="diff-waiting-time", **TIMING)

    # sumo-rl's own parallel_env fails with the installed pettingzoo ('module' object is not callable at
    # agent_selector), so its multi-agent SumoEnvironment (dict actions) is the peer
    def raw() -> Any:
        return sumo_rl.SumoEnvironment(
            net_file=net,
            route_file=route,
            num_seconds=3600,
            sumo_warnings=False,
            add_system_info=False,
            add_per_agent_info=False,
            reward_fn="diff-waiting-time",
            **TIMING,
        )

    return {
        "lepton TrafficGridEnv (PettingZoo)": (ours, run_parallel),
        "sumo-rl SumoEnvironment (multi-agent dicts), info off": (raw, run_dict_env),
    }


def run_dict_env(make: Callable[[], Any], episodes: int, seed: int = 0) -> tuple[float, int, float]:
    """sumo-rl's multi-agent SumoEnvironment: step({ts: action}) until dones['__all__']."""
    env = make()
    rng = np.random.default_rng(seed)
    steps, reset_time = 0, 0.0
    start = time.perf_counter()
    for ep in range(episodes):
        t = time.perf_counter()
        env.reset(seed=seed + ep)
        reset_time += time.perf_counter() - t
        while True:
            actions = {ts: int(rng.integers(env.action_spaces(ts).n)) for ts in env.ts_ids}
            _, _, dones, _ = env.step(actions)
            steps += 1
            if dones["__all__"]:
                break
    elapsed = time.perf_counter() - start
    env.close()
    return steps / elapsed, steps, reset_time / episodes


def measure(cases: dict[str, tuple[Callable[[], Any], Callable]], episodes: int, rounds: int) -> dict[str, tuple]:
    best: dict[str, tuple] = {}
    for _ in range(rounds):  # interleaved: machine load affects every case alike
        for name, (make, runner) in cases.items():
            result = runner(make, episodes)
            if name not in best or result[0] > best[name][0]:
                best[name] = result
    return best


def report(title: str, best: dict[str, tuple]) -> None:
    """One row per env; ratios of every lepton row against every sumo-rl row (like for like: metrics on vs
    sumo-rl's info on, metrics off vs its info off)."""
    print(f"\n{title}")
    print("| env | steps/s | steps | mean reset (s) |")
    print("|---|---|---|---|")
    for name, (rate, steps, reset) in best.items():
        print(f"| {name} | {rate:,.0f} | {steps} | {reset:.3f} |")
    for ours in (n for n in best if n.startswith("lepton")):
        for peer in (n for n in best if not n.startswith("lepton")):
            print(f"- {ours} / {peer}: {best[ours][0] / best[peer][0]:.2f}")


def raw_traci_in_subprocess(episodes: int) -> None:
    """sumo-rl in traci mode needs LIBSUMO_AS_TRACI unset before import: a fresh interpreter."""
    code = f"""
import os, sys, time, numpy as np
os.environ.pop("LIBSUMO_AS_TRACI", None)
import sumo; os.environ["SUMO_HOME"] = sumo.SUMO_HOME
sys.path.insert(0, {os.path.dirname(os.path.abspath(__file__))!r})
from traffic_throughput import run_gym, _sumo_rl_path, SINGLE, TIMING
import sumo_rl
net, route = (_sumo_rl_path(p) for p in SINGLE)
make = lambda: sumo_rl.SumoEnvironment(net_file=net, route_file=route, single_agent=True, num_seconds=3600,
    sumo_warnings=False, add_system_info=False, add_per_agent_info=False, **TIMING)
rate, steps, reset = run_gym(make, {episodes})
print(f"| sumo-rl SumoEnvironment (traci), info off | {{rate:,.0f}} | {{steps}} | {{reset:.3f}} |")
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("|")]
    print("\n".join(lines) if lines else f"(sumo-rl traci run failed: {out.stderr.strip()[-300:]})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=2, help="1 h episodes per round and env")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--traci", action="store_true", help="also time the traci back ends (slow)")
    parser.add_argument("--no-grid", action="store_true", help="skip the 16-signal grid4x4 comparison")
    args = parser.parse_args()

    report(
        "single-intersection, libsumo (720 steps of 5 s per episode)",
        measure(single_cases("libsumo"), args.episodes, args.rounds),
    )
    if not args.no_grid:
        report(
            "RESCO grid4x4 (16 signals), libsumo, PettingZoo Parallel API",
            measure(grid_cases(), max(1, args.episodes // 2), args.rounds),
        )
    if args.traci:
        report("single-intersection, traci", measure(single_cases("traci"), 1, 1))
        raw_traci_in_subprocess(1)


if __name__ == "__main__":
    main()
