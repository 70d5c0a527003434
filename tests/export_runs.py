"""Tiny trained runs for the export and serving tests (tests/test_export.py, tests/test_serving.py), trained once
per test session: with pytest-xdist the workers share them (a file lock per run; the first worker that needs a
run trains it, the others wait and reuse it), so two workers do not train the same run twice."""

from __future__ import annotations

import fcntl
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch

import lepton_sim

LANE_KEEP, REACH, CROSS, GRID, JOINT, CAMERA = (
    "driving/lane-keep",
    "manufacturing/reach",
    "traffic/single-intersection",
    "traffic/2x2-grid",
    "traffic/2x2-grid:joint",
    "manufacturing/reach:pixels",
)
SHORT_TRAFFIC = {"params.duration": 300}  # 30 decisions of 10 s

RUNS: dict[str, tuple[str, dict[str, Any]]] = {
    # PPO on normalised Box observations, continuous actions (clipped)
    LANE_KEEP: (
        LANE_KEEP,
        {"algo": "ppo", "steps": 256, "n_envs": 2, "overrides": {"n_steps": 64, "batch_size": 64, "normalize": True}},
    ),
    # SAC+HER on goal-conditioned Dict observations normalised per key, squashed actions (unscaled)
    REACH: (
        REACH,
        {
            "algo": "sac",
            "steps": 200,
            "overrides": {"learning_starts": 100, "batch_size": 64, "buffer_size": 1000, "normalize": True},
        },
    ),
    # PPO with Discrete actions (argmax), normalised observations (the traffic default)
    CROSS: (
        CROSS,
        {
            "algo": "ppo",
            "steps": 64,
            "n_envs": 1,
            "overrides": {**SHORT_TRAFFIC, "n_steps": 32, "batch_size": 32, "n_epochs": 1},
        },
    ),
    # one PPO policy shared by the four signals of a network (padded observations)
    GRID: (
        GRID,
        {
            "algo": "ppo",
            "steps": 64,
            "n_envs": 1,
            "overrides": {**SHORT_TRAFFIC, "n_steps": 16, "batch_size": 32, "n_epochs": 1},
        },
    ),
    # one agent setting every signal of the network at once (MultiDiscrete actions: argmax per signal)
    JOINT: (
        GRID,
        {
            "algo": "ppo",
            "steps": 64,
            "n_envs": 1,
            "multi_agent": "joint",
            "overrides": {**SHORT_TRAFFIC, "n_steps": 32, "batch_size": 32, "n_epochs": 1},
        },
    ),
    # a CNN on channels-last camera images inside a Dict observation
    CAMERA: (
        REACH,
        {
            "algo": "ppo",
            "steps": 64,
            "n_envs": 1,
            "overrides": {
                "policy": "MultiInputPolicy",
                "n_steps": 32,
                "batch_size": 32,
                "params.obs_mode": "pixels",
                "params.camera_size": 36,
            },
        },
    ),
}


def trained_run(factory: pytest.TempPathFactory, key: str) -> Path:
    """The run ``key`` of RUNS, trained on first use in this test session."""
    base = factory.getbasetemp()
    root = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "export-runs"
    root.mkdir(exist_ok=True)
    name = key.replace("/", "-").replace(":", "-")
    with open(root / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        run = root / name
        if not (run / "model.zip").is_file():
            shutil.rmtree(run, ignore_errors=True)
            scenario, kwargs = RUNS[key]
            threads = torch.get_num_threads()  # training sets one thread; later tests build networks as usual
            try:
                lepton_sim.train(scenario, eval_freq=0, progress_bar=False, out=run, **kwargs)
            finally:
                torch.set_num_threads(threads)
        return run
