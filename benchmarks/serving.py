"""Latency and throughput of ``lepton-sim serve`` against a local server on the loopback interface.

One client on one keep-alive HTTP/1.1 connection (httpx, default settings) sends ``POST /act`` with batches of 1 and 64 real
driving/lane-keep observations (87 floats each, pre-encoded JSON) and times each request: p50 / p99 latency and
requests/s. Two servers: the ONNX export (onnxruntime) and the run folder itself (SB3 on torch); the policies'
own ``act`` in-process is the reference for what HTTP and JSON add. The policy is PPO with lepton-sim's
lane-keep network (128x128, tanh) and normalised observations, trained for a few hundred steps (the weights do not
change the cost).

Usage: python benchmarks/serving.py [--requests 2000] [--seconds 20] [--run RUN_DIR] [--out results.json]
"""

from __future__ import annotations

import argparse
import json
import select
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

SCENARIO = "driving/lane-keep"
BATCHES = (1, 64)


def train_run(root: Path) -> Path:
    import lepton_sim

    return lepton_sim.train(
        SCENARIO,
        algo="ppo",
        steps=512,
        n_envs=4,
        eval_freq=0,
        progress_bar=False,
        out=root / "run",
        overrides={"n_steps": 128, "batch_size": 256},
    )


def observations(n: int) -> np.ndarray:
    import lepton_sim

    venv = lepton_sim.make_vec(SCENARIO, n)
    try:
        obs, _ = venv.reset(seed=0)
    finally:
        venv.close()
    return np.asarray(obs, np.float32)


def start_server(source: Path) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "lepton_sim.cli", "serve", str(source), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if select.select([proc.stdout], [], [], 1.0)[0]:
            line = proc.stdout.readline()
            if " on http://" in line:
                return proc, line.split(" on ")[1].split()[0]
    proc.kill()
    raise RuntimeError(f"server for {source} did not start")


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def time_requests(url: str, body: bytes, requests: int, seconds: float) -> dict[str, float]:
    """Sequential requests on one connection (after 50 warm-up ones), at most ``requests`` or ``seconds``."""
    import httpx

    headers = {"Content-Type": "application/json"}
    with httpx.Client(base_url=url, timeout=30) as client:
        for _ in range(50):
            client.post("/act", content=body, headers=headers).raise_for_status()
        latencies = []
        start = time.perf_counter()
        while len(latencies) < requests and time.perf_counter() - start < seconds:
            t = time.perf_counter()
            client.post("/act", content=body, headers=headers).raise_for_status()
            latencies.append(time.perf_counter() - t)
        elapsed = time.perf_counter() - start
    ms = np.asarray(latencies) * 1e3
    return {
        "requests": len(latencies),
        "p50_ms": float(np.percentile(ms, 50)),
        "p99_ms": float(np.percentile(ms, 99)),
        "requests_per_s": len(latencies) / elapsed,
    }


def time_act(policy: Any, obs: np.ndarray, repeats: int = 2000) -> float:
    """Median microseconds of one in-process ``act`` call."""
    for _ in range(50):
        policy.act(obs)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        policy.act(obs)
        times.append(time.perf_counter() - t)
    return float(np.median(times) * 1e6)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000, help="timed requests per server and batch size")
    parser.add_argument("--seconds", type=float, default=20.0, help="time limit per server and batch size")
    parser.add_argument("--run", type=Path, help="a lane-keep run folder (default: train a small one)")
    parser.add_argument("--out", type=Path, help="also write the figures as JSON")
    args = parser.parse_args()

    import lepton_sim
    from lepton_sim.exporting import export_policy
    from lepton_sim.loading import load_policy

    with tempfile.TemporaryDirectory() as tmp:
        run = args.run or train_run(Path(tmp))
        export = export_policy(run, "onnx", Path(tmp) / "export")
        obs = observations(max(BATCHES))
        bodies = {b: json.dumps({"observations": obs[:b].tolist()}).encode() for b in BATCHES}
        scenario = lepton_sim.load_scenario(SCENARIO)
        results: dict[str, Any] = {"in_process_us": {}, "http": {}}
        for name, source in (("export (onnxruntime)", export), ("run folder (SB3, torch)", run)):
            policy = load_policy(str(source), scenario, device="cpu")
            results["in_process_us"][name] = {b: time_act(policy, obs[:b]) for b in BATCHES}
            proc, url = start_server(source)
            try:
                results["http"][name] = {b: time_requests(url, bodies[b], args.requests, args.seconds) for b in BATCHES}
            finally:
                stop(proc)

    print("| server | batch | p50 ms | p99 ms | requests/s | observations/s | in-process act (us) |")
    print("|---|---|---|---|---|---|---|")
    for name, by_batch in results["http"].items():
        for b, r in by_batch.items():
            print(
                f"| {name} | {b} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['requests_per_s']:.0f} | "
                f"{r['requests_per_s'] * b:.0f} | {results['in_process_us'][name][b]:.0f} |"
            )
    if args.out:
        args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
