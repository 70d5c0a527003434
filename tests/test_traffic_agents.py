"""Traffic baselines and learning on real SUMO: the classical controllers through lepton-sim's evaluation loop,
a PPO smoke test through lepton_sim.train / evaluate, and parameter-shared PPO through the PettingZoo adapter."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

import lepton_sim
from lepton_sim.baselines import available_baselines
from lepton_sim.evaluation import run_episodes
from lepton_sim.loading import load_policy


def test_traffic_baselines_are_registered() -> None:
    names = {b.name for b in available_baselines("traffic")}
    assert {"fixed-time", "max-pressure", "greedy", "actuated", "random"} <= names


def test_classical_controllers_beat_the_fixed_program_on_single_intersection() -> None:
    """15 min, two seeds: the 42 s/42 s program makes long queues; the adaptive controllers clear them."""
    sc = lepton_sim.load_scenario("traffic/single-intersection", duration=900)
    results = {
        name: run_episodes(load_policy(name, sc), sc, [0, 1], num_envs=1)
        for name in ("fixed-time", "max-pressure", "greedy", "actuated")
    }
    delay = {k: np.mean([e.metrics["mean_delay"] for e in v]) for k, v in results.items()}
    never = {k: np.sum([e.metrics["never_inserted"] for e in v]) for k, v in results.items()}
    for name in ("max-pressure", "greedy", "actuated"):
        assert delay[name] < 0.8 * delay["fixed-time"], delay
        assert never[name] <= never["fixed-time"], never
    assert all(len(v) == 2 and all(e.length == 90 for e in v) for v in results.values())


def test_max_pressure_controls_a_network_with_multidiscrete_actions() -> None:
    sc = lepton_sim.load_scenario("traffic/2x2-grid", duration=300)
    policy = load_policy("max-pressure", sc)
    actions = []
    orig_act = policy.act

    def recording_act(obs, state=None, episode_start=None, *, info=None):  # noqa: ANN001, ANN202
        action, state = orig_act(obs, state, episode_start, info=info)
        actions.append(action)
        return action, state

    policy.act = recording_act
    (episode,) = run_episodes(policy, sc, [3], num_envs=1)
    assert actions[0].shape == (1, 4)  # one env, four signals
    assert len({tuple(a[0]) for a in actions}) > 1  # it switches phases
    assert not math.isnan(episode.metrics["mean_delay"])


def test_evaluation_results_do_not_depend_on_earlier_episodes() -> None:
    """A libsumo process carries state from one simulation into the next (SUMO 1.28: on cologne1, 10 min, seed
    100004 gave 44.30 s after seeds 100001 and 100002 in one process, 43.91 s alone), so evaluation runs each batch
    of episodes in fresh worker processes (TrafficSignal-v0's ``isolate_episodes``)."""
    sc = lepton_sim.load_scenario("traffic/resco-cologne1", duration=600)
    policy = load_policy("fixed-time", sc)
    (alone,) = run_episodes(policy, sc, [100004], num_envs=1)
    *_, after_others = run_episodes(policy, sc, [100001, 100002, 100004], num_envs=1)
    assert after_others.metrics == alone.metrics


@pytest.mark.slow
def test_ppo_smoke_train_save_reload_evaluate(tmp_path: Path) -> None:
    """A few hundred PPO steps through lepton_sim.train (a SubprocVecEnv worker runs libsumo), then the saved
    model is reloaded by lepton_sim.evaluate and run on two held-out seeds (full 1 h windows, in-process)."""
    run = lepton_sim.train(
        "traffic/single-intersection",
        algo="ppo",
        steps=480,
        seed=0,
        n_envs=1,
        out=tmp_path / "run",
        eval_freq=0,
        eval_episodes=1,
        progress_bar=False,
        overrides={"n_steps": 120, "batch_size": 60, "n_epochs": 2, "params.duration": 600},
    )
    assert (run / "model.zip").is_file()
    report = lepton_sim.evaluate(
        str(run), scenario="traffic/single-intersection", episodes=2, num_envs=1, progress=False
    )
    (row,) = report.rows
    assert len(row.seeds) == 2 and row.length_mean == 360
    mean_delay, never_inserted = row.metrics["mean_delay"][0], row.metrics["never_inserted"][0]
    assert math.isfinite(mean_delay) and mean_delay > 0 and never_inserted >= 0

    from lepton_sim.agents.sb3.policy import SB3Policy

    policy = SB3Policy.load(run / "model.zip", algo="ppo")
    assert policy.act(np.zeros((3, 11), np.float32))[0].shape == (3,)


@pytest.mark.slow
def test_parameter_shared_ppo_on_a_grid(tmp_path: Path) -> None:
    from stable_baselines3 import PPO

    from lepton_sim.agents.sb3.pettingzoo_vec import make_shared_vec_env
    from lepton_sim.agents.sb3.policy import SB3Policy
    from lepton_sim.multi_agent import SharedPolicy

    sc = lepton_sim.load_scenario("traffic/2x2-grid", duration=300)
    venv = make_shared_vec_env(sc, seed=0)
    try:
        assert venv.num_envs == 4  # one slot per signal
        model = PPO("MlpPolicy", venv, n_steps=30, batch_size=60, n_epochs=1, seed=0, device="cpu")
        model.learn(total_timesteps=240)  # 2 episodes of 30 decisions x 4 signals
        model.save(tmp_path / "shared.zip")
    finally:
        venv.close()
    policy = SharedPolicy(SB3Policy.load(tmp_path / "shared.zip", algo="ppo", device="cpu"))
    (episode,) = run_episodes(policy, sc, [7], num_envs=1)  # evaluated on lepton/TrafficNetwork-v0
    assert episode.length == 30 and math.isfinite(episode.metrics["mean_delay"])
