"""An env that raises inside a remote env runner surfaces as one clear error quoting the env's exception:
restarted runners that keep failing give iterations that sample nothing, and ``max_empty_iterations`` of them in
a row stop training (RLlib's defaults would go on returning empty iterations, 60 s per restart); no livelock."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

pytest.importorskip("ray.rllib")

import lepton_sim  # noqa: E402
from lepton_sim.agents.rllib.algo_config import build_algo_config  # noqa: E402
from lepton_sim.agents.rllib.train import FAIL_AFTER_ENV  # noqa: E402
from lepton_sim.errors import LeptonError  # noqa: E402
from lepton_sim.training import plan_training  # noqa: E402

SMALL = {"envs_per_runner": 2, "train_batch_size_per_learner": 100, "minibatch_size": 50, "num_epochs": 1}


def test_a_crashing_env_in_a_remote_runner_stops_training_clearly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(FAIL_AFTER_ENV, "5")  # every training env raises on its 6th step
    overrides = {**SMALL, "max_restarts": 2, "restart_delay_s": 0.5, "max_empty_iterations": 2, "sample_timeout_s": 10}
    with pytest.raises(LeptonError) as err:
        lepton_sim.train(
            "driving/lane-keep",
            algo="ppo",
            backend="rllib",
            steps=400,
            out=tmp_path / "run",
            overrides=overrides,
            eval_freq=0,
            progress_bar=False,
        )
    message = str(err.value)
    assert "2 iterations in a row sampled no env steps" in message
    assert "the env raised RuntimeError: simulated env crash after 5 steps" in message
    # the training loop's own clock (Ray's start-up, tens of seconds on a busy machine, is not part of it): two
    # empty iterations and the stop, seconds with restart_delay_s 0.5 where RLlib's 60 s delay would show
    with open(tmp_path / "run" / "logs" / "part0" / "progress.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["env_steps_this_iter"]) for r in rows][-2:] == [0, 0]
    assert float(rows[-1]["wall_time_s"]) < 60


def test_fault_tolerance_is_set_explicitly() -> None:
    config, scenario = plan_training(
        "driving/lane-keep", algo="ppo", backend="rllib", overrides={"max_restarts": 4, "restart_delay_s": 1.5}
    )
    algo_config = build_algo_config(config, scenario, lepton_sim.make(scenario).observation_space)
    assert algo_config.restart_failed_env_runners is True
    assert algo_config.max_num_env_runner_restarts == 4
    assert algo_config.delay_between_env_runner_restarts_s == 1.5  # RLlib's default: 60 s
    assert algo_config.restart_failed_sub_environments is False  # in-place env recreation can livelock
