"""Training on a suite split (issue 14): the rows in one vector env, envs shared by weight, spaces checked in one
line, the run's record, validation rows for the periodic evaluation, and env params for the training envs only."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

import lepton_sim
from lepton_sim.agents.sb3.vec_env import ConcatVecEnv, make_sb3_mixture, make_sb3_vec_env
from lepton_sim.errors import LeptonError
from lepton_sim.runs import RunFolder
from lepton_sim.scenario import load_scenario
from lepton_sim.suite_training import assign_envs, parse_rows
from lepton_sim.training import plan_training
from lepton_sim.training_config import TrainConfig

ROWS = ["driving/lane-keep", "driving/obstacle-avoid"]
TINY = {"n_steps": 64, "batch_size": 128, "n_epochs": 1}


def test_envs_are_dealt_by_weight_with_one_per_row_at_least() -> None:
    assert assign_envs([1, 1, 1], 32) == [11, 11, 10]
    assert assign_envs([1, 2], 8) == [3, 5]
    assert assign_envs([1, 1000], 3) == [1, 2]
    assert sum(assign_envs([0.3, 0.5, 2.0], 17)) == 17
    with pytest.raises(LeptonError, match="each row needs an env"):
        assign_envs([1, 1, 1], 2)


def test_rows_and_weights_are_parsed() -> None:
    assert parse_rows(None) is None
    assert parse_rows(["a", "b=2.5"]) == {"a": 1.0, "b": 2.5}
    assert parse_rows({"a": 3}) == {"a": 3.0}
    for bad, why in ((["a=0"], "> 0"), (["a=x"], "> 0"), (["a", "a=2"], "twice"), ([], "at least one")):
        with pytest.raises(LeptonError, match=why):
            parse_rows(bad)


def test_rows_with_other_spaces_are_one_line_naming_them() -> None:
    with pytest.raises(LeptonError) as err:
        plan_training(None, suite="driving/standard")
    message = str(err.value)
    assert "\n" not in message
    assert "driving/dense-traffic: observations Box(87,) float32, actions Discrete(5)" in message
    assert "driving/lane-keep, driving/obstacle-avoid, lane-keep-sensor-train" in message
    assert "--rows driving/lane-keep driving/obstacle-avoid lane-keep-sensor-train" in message
    with pytest.raises(LeptonError, match="has no row 'nope'; its rows: driving/lane-keep, "):
        plan_training(None, suite="driving/standard", rows=["nope"])
    with pytest.raises(LeptonError, match="the test split is what a run is measured on"):
        plan_training(None, suite="driving/standard", split="test", rows=ROWS)
    with pytest.raises(LeptonError, match="a scenario or a suite, not both"):
        plan_training("driving/lane-keep", suite="driving/standard", rows=ROWS)
    with pytest.raises(LeptonError, match="params.<name> sets a param of one scenario"):
        plan_training(None, suite="driving/standard", rows=ROWS, overrides={"params.lanes": 2})


def test_the_concatenated_rows_step_as_one_vector_env_of_their_envs() -> None:
    """Worlds 0-2 and 3-4 in two native batches give what one batch of five gives, autoresets included (the
    episode limit is 300 steps), and each row of a mixture what its scenario's own vector env gives."""
    lane_keep, obstacles = load_scenario("driving/lane-keep"), load_scenario("driving/obstacle-avoid")
    whole = make_sb3_vec_env(lane_keep, 5, seed=3)
    parts = ConcatVecEnv([make_sb3_vec_env(lane_keep, 3, seed=3), make_sb3_vec_env(lane_keep, 2, seed=6)])
    parts.seed(3)
    mixture = make_sb3_mixture([(lane_keep, 2), (obstacles, 3)], seed=3)
    alone = [make_sb3_vec_env(lane_keep, 2, seed=3), make_sb3_vec_env(obstacles, 3, seed=5)]
    rng = np.random.default_rng(0)
    obs = [whole.reset(), parts.reset(), mixture.reset(), np.concatenate([v.reset() for v in alone])]
    assert all(np.array_equal(obs[0][:2], o[:2]) for o in obs) and np.array_equal(obs[2], obs[3])
    finished = 0
    for _ in range(320):
        actions = rng.uniform(-1, 1, (5, 2)).astype(np.float32)
        got = [whole.step(actions), parts.step(actions), mixture.step(actions)]
        singles = [alone[0].step(actions[:2]), alone[1].step(actions[2:])]
        got.append(
            (
                np.concatenate([s[0] for s in singles]),
                np.concatenate([s[1] for s in singles]),
                np.concatenate([s[2] for s in singles]),
                [i for s in singles for i in s[3]],
            )
        )
        for (a_obs, a_rew, a_done, a_info), (b_obs, b_rew, b_done, b_info) in ((got[0], got[1]), (got[2], got[3])):
            assert np.array_equal(a_obs, b_obs) and np.array_equal(a_rew, b_rew) and np.array_equal(a_done, b_done)
            for i in np.flatnonzero(a_done):
                assert np.array_equal(a_info[i]["terminal_observation"], b_info[i]["terminal_observation"])
                assert a_info[i]["is_success"] == b_info[i]["is_success"]
        finished += int(got[0][2].sum())
    assert finished >= 5  # every world ended an episode at least once (the limit is 300 steps)
    assert mixture.get_attr("num_envs") == [2, 2, 3, 3, 3]
    assert mixture.get_attr("num_envs", [4, 0]) == [3, 2]
    for venv in (whole, parts, mixture, *alone):
        venv.close()


def test_a_suite_run_records_its_rows_and_evaluates_on_the_validation_rows(tmp_path: Path) -> None:
    run = lepton_sim.train(
        suite="driving/standard",
        rows=["driving/lane-keep", "driving/obstacle-avoid=3"],
        steps=512,
        n_envs=4,
        eval_freq=512,
        eval_episodes=2,
        out=tmp_path / "run",
        progress_bar=False,
        overrides=TINY,
    )
    config = TrainConfig.from_file_data(yaml.safe_load((run / "config.yaml").read_text()), "config.yaml")
    assert (config.suite, config.split, config.n_envs) == ("driving/standard", "train", 4)
    assert config.rows is not None and config.validation is not None
    assert [(r.label, r.weight, r.n_envs) for r in config.rows] == [
        ("driving/lane-keep", 1.0, 1),
        ("driving/obstacle-avoid", 3.0, 3),
    ]
    assert config.rows[1].scenario["params"]["obstacles"] == [3, 5]
    assert config.scenario["name"] == "driving/lane-keep"  # the first row's: the policy's spaces
    # the suite's validation split, less the row with discrete actions this policy cannot take
    assert [(v.label, v.seed) for v in config.validation] == [
        ("driving/lane-keep", 50000),
        ("driving/obstacle-avoid", 50000),
    ]
    rows = [line for line in (run / "evaluations.csv").read_text().splitlines()[1:] if line]
    assert len(rows) == 1 and rows[0].startswith("512,")
    assert (run / "best_model.zip").is_file()
    per_row = RunFolder(run).read_row_evaluations()  # each validation row's numbers beside the overall ones
    assert [(r["timesteps"], r["label"], r["episodes"]) for r in per_row] == [
        ("512", "driving/lane-keep", "2"),
        ("512", "driving/obstacle-avoid", "2"),
    ]
    assert config.hyperparams["policy_kwargs"]["net_arch"] == [128, 128]  # ppo.yaml's driving/standard entry
    lepton_sim.train(resume=run, steps=768, progress_bar=False)  # resumes like any run
    assert TrainConfig.from_file_data(yaml.safe_load((run / "config.yaml").read_text()), "c").steps == 768


def test_old_run_folders_have_no_suite(tmp_path: Path) -> None:
    golden = Path(__file__).parent / "data" / "golden" / "ppo-lane-keep" / "config.yaml"
    config = TrainConfig.from_file_data(yaml.safe_load(golden.read_text()), str(golden))
    assert (config.suite, config.rows, config.validation, config.train_env_params) == (None, None, None, {})


def test_train_env_params_reach_the_training_env_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The training env runs with ``train_env_params`` (as SUMO's time_to_teleport would for traffic), the periodic
    and the final evaluation with the scenario's own params."""
    import lepton_sim.agents.sb3.train as sb3_train
    import lepton_sim.evaluation as evaluation
    import lepton_sim.periodic_evaluation as periodic

    trained: list[dict] = []
    evaluated: list[dict] = []
    make_vec, run_episodes = sb3_train.make_sb3_vec_env, periodic.run_episodes

    def spy_make_vec(scenario, *args, **kwargs):  # type: ignore[no-untyped-def]
        trained.append(dict(scenario.params))
        return make_vec(scenario, *args, **kwargs)

    def spy_run_episodes(policy, scenario, *args, **kwargs):  # type: ignore[no-untyped-def]
        evaluated.append(dict(scenario.params))
        return run_episodes(policy, scenario, *args, **kwargs)

    monkeypatch.setattr(sb3_train, "make_sb3_vec_env", spy_make_vec)
    monkeypatch.setattr(periodic, "run_episodes", spy_run_episodes)
    monkeypatch.setattr(evaluation, "run_episodes", spy_run_episodes)
    run = lepton_sim.train(
        "driving/lane-keep",
        steps=256,
        n_envs=2,
        eval_freq=256,
        eval_episodes=1,
        out=tmp_path / "run",
        progress_bar=False,
        overrides={**TINY, "train_env_params.max_speed": 12.0, "normalize": False},
    )
    assert [p["max_speed"] for p in trained] == [12.0]
    assert [p["max_speed"] for p in evaluated] == [20]  # the periodic evaluation: the scenario's
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["train_env_params"] == {"max_speed": 12.0} and config["scenario"]["params"]["max_speed"] == 20
    assert "train_env_params" not in config["hyperparams"]
    report = lepton_sim.evaluate(str(run), scenario="driving/lane-keep", episodes=1, progress=False)
    assert [p["max_speed"] for p in evaluated] == [20, 20]  # the final evaluation too
    assert "max_speed" not in report.rows[0].env_overrides


def test_train_env_params_are_checked_before_any_run_folder(tmp_path: Path) -> None:
    with pytest.raises(LeptonError, match="train_env_params"):
        plan_training("driving/lane-keep", overrides={"train_env_params.lanse": 2})
    with pytest.raises(LeptonError, match="expected a mapping"):
        plan_training("driving/lane-keep", overrides={"train_env_params": 3})
    config, _ = plan_training("traffic/single-intersection", overrides={"train_env_params": {"time_to_teleport": 300}})
    assert config.train_env_params == {"time_to_teleport": 300}
    assert config.scenario["params"].get("time_to_teleport", -1) == -1  # evaluation never teleports
