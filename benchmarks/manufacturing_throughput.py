"""Throughput of the manufacturing arm envs against panda-gym, in the same process and on the same actions.

Pairs: ArmReach-v0 vs PandaReach-v3 and ArmPickPlace-v0 vs PandaPickAndPlace-v3 (both: 25 Hz control, 20 PyBullet
substeps of 1/500 s, 50-step episodes, resets included), then an 84x84 camera image every step (our
``obs_mode="pixels"`` vs panda-gym's ``render()`` at 84x84), then the conveyor tasks (no peer has them).
Reference (../shared/reference/peers.md, 2-core machine): PandaReach-v3 850-950 steps/s, PandaPickAndPlace-v3
800-860; with an 84x84 image every step panda-gym collapses to ~24 steps/s. Absolute figures drift on shared
machines: read the ratios. Repeats alternate ours and the peer and keep each one's best.

Usage: python benchmarks/manufacturing_throughput.py [--steps 3000] [--repeats 3] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import time
from typing import Any, Callable

import gymnasium
import numpy as np

import lepton_sim.envs.manufacturing  # noqa: F401  (registers lepton/* ids)

PEER_FIGURES = {"PandaReach-v3": "850-950", "PandaPickAndPlace-v3": "800-860", "camera": "~24"}


def steps_per_second(make: Callable[[], gymnasium.Env], steps: int, render: bool = False, seed: int = 0) -> float:
    """Random actions (pre-sampled), resets on episode end counted in the time."""
    env = make()
    try:
        rng = np.random.default_rng(seed)
        actions = rng.uniform(-1, 1, size=(steps, *env.action_space.shape)).astype(np.float32)
        env.reset(seed=seed)
        start = time.perf_counter()
        for action in actions:
            _, _, terminated, truncated, _ = env.step(action)
            if render:
                env.render()
            if terminated or truncated:
                env.reset()
        return steps / (time.perf_counter() - start)
    finally:
        env.close()


def best_of(make: Callable[[], gymnasium.Env], steps: int, repeats: int, **kw: Any) -> float:
    return max(steps_per_second(make, steps, **kw) for _ in range(repeats))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--camera-steps", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--profile", action="store_true", help="cProfile ArmPickPlace-v0 and print the top calls")
    args = parser.parse_args()
    import panda_gym  # noqa: F401  (registers Panda*-v3)

    rows: list[tuple[str, float, str, float]] = []
    for ours, peer in (("lepton/ArmReach-v0", "PandaReach-v3"), ("lepton/ArmPickPlace-v0", "PandaPickAndPlace-v3")):
        ours_sps, peer_sps = [], []
        for _ in range(args.repeats):  # alternate, so drifting machine load hits both alike
            ours_sps.append(steps_per_second(lambda ours=ours: gymnasium.make(ours), args.steps))
            peer_sps.append(steps_per_second(lambda peer=peer: gymnasium.make(peer), args.steps))
        rows.append((ours, max(ours_sps), peer, max(peer_sps)))

    cam = args.camera_steps
    for ours, peer in (("lepton/ArmReach-v0", "PandaReach-v3"), ("lepton/ArmPickPlace-v0", "PandaPickAndPlace-v3")):
        ours_sps = best_of(lambda ours=ours: gymnasium.make(ours, obs_mode="pixels"), cam, args.repeats)
        peer_sps = best_of(
            lambda peer=peer: gymnasium.make(peer, render_width=84, render_height=84), cam, 1, render=True
        )
        rows.append((f"{ours} obs_mode=pixels 84x84", ours_sps, f"{peer} + render() 84x84", peer_sps))
    full = best_of(lambda: gymnasium.make("lepton/ArmPickPlace-v0", obs_mode="pixels", robot_visuals="full"), cam, 1)
    rows.append(("lepton/ArmPickPlace-v0 pixels 84x84, full robot meshes", full, "-", float("nan")))
    for env_id in ("lepton/ConveyorPick-v0", "lepton/ConveyorSort-v0"):
        rows.append(
            (env_id, best_of(lambda env_id=env_id: gymnasium.make(env_id), args.steps, args.repeats), "-", float("nan"))
        )
    rows.append(
        (
            "lepton/ArmReach-v0 robot=kuka",
            best_of(lambda: gymnasium.make("lepton/ArmReach-v0", robot="kuka"), args.steps, args.repeats),
            "-",
            float("nan"),
        )
    )

    print("\n| env | steps/s | peer (same run) | peer steps/s | ratio |\n|---|---|---|---|---|")
    for ours, ours_sps, peer, peer_sps in rows:
        ratio = f"{ours_sps / peer_sps:.2f}x" if np.isfinite(peer_sps) else "-"
        peer_txt = f"{peer_sps:.0f}" if np.isfinite(peer_sps) else "-"
        print(f"| {ours} | {ours_sps:.0f} | {peer} | {peer_txt} | {ratio} |")
    print(
        f"\npeers.md reference: PandaReach-v3 {PEER_FIGURES['PandaReach-v3']}, PandaPickAndPlace-v3 "
        f"{PEER_FIGURES['PandaPickAndPlace-v3']}, 84x84 camera {PEER_FIGURES['camera']} steps/s"
    )

    if args.profile:
        profiler = cProfile.Profile()
        profiler.enable()
        steps_per_second(lambda: gymnasium.make("lepton/ArmPickPlace-v0"), args.steps)
        profiler.disable()
        pstats.Stats(profiler).sort_stats("tottime").print_stats(12)


if __name__ == "__main__":
    main()
