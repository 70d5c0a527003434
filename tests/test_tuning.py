"""Hyperparameter search (lepton-sim tune): real Optuna studies of tiny PPO trials on driving/lane-keep. A study
ranks its trials and writes hyperparameters that train accepts; a pruned trial stops cleanly and leaves a run that
evaluates and resumes; a refused combination is a failed trial, not a failed study; two processes share one
SQLite study; a bad search space is one line naming the file and the field."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
import yaml

import lepton_sim
from lepton_sim.backends import get_backend
from lepton_sim.cli import main
from lepton_sim.runs import RunFolder

SCENARIO = "driving/lane-keep"
# Trials of 256 steps (two PPO updates of 64 steps x 2 envs), one periodic evaluation half-way, 2 held-out episodes
BUDGET = ["--steps", "256", "--num-envs", "2", "--eval-freq", "128", "--eval-episodes", "2", "--episodes", "2"]
SPACE = """\
n_steps: {type: categorical, choices: [64]}
batch_size: {type: categorical, choices: [64, 128]}
learning_rate: {type: float, low: 1.0e-4, high: 3.0e-3, log: true}
policy_kwargs.net_arch: {type: categorical, choices: {tiny: [16], small: [32, 32]}}
"""


@pytest.fixture
def space(tmp_path: Path) -> Path:
    path = tmp_path / "space.yaml"
    path.write_text(SPACE)
    return path


def tune_cli(out: Path, space: Path, *extra: str) -> int:
    return main(["tune", SCENARIO, "--space", str(space), "--out", str(out), *BUDGET, *extra])


def read_table(out: Path) -> list[dict[str, str]]:
    with (out / "trials.csv").open(newline="") as f:
        return list(csv.DictReader(f))


def test_a_study_ranks_its_trials_and_its_best_hyperparameters_train(
    tmp_path: Path, space: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "study"
    assert tune_cli(out, space, "--trials", "2", "--sampler", "random", "--sampler-seed", "0", "--pruner", "none") == 0
    printed = capsys.readouterr().out
    assert "| rank | trial | state | objective |" in printed and "best_hyperparams.yaml" in printed
    rows = read_table(out)
    assert [r["state"] for r in rows] == ["complete", "complete"] and sorted(r["trial"] for r in rows) == ["0", "1"]
    assert float(rows[0]["objective"]) >= float(rows[1]["objective"])  # ranked, best first
    for row in rows:  # each trial is an ordinary run folder, scored on the held-out seeds
        run = RunFolder(out / "trials" / row["trial"])
        assert run.final_model.is_file() and [int(r["timesteps"]) for r in run.read_evaluations()] == [128, 256]
        objective = lepton_sim.report.Report.load(run.path / "eval" / "objective" / "report.json").rows[0]
        assert objective.seeds == [100_000, 100_001] and float(row["objective"]) == objective.success_rate
        assert run.read_config().hyperparams["learning_rate"] == pytest.approx(float(row["learning_rate"]))

    best = yaml.safe_load((out / "best_hyperparams.yaml").read_text())
    assert list(best) == [SCENARIO]
    tuned = best[SCENARIO]
    best_run = RunFolder(out / "trials" / rows[0]["trial"]).read_config()
    assert tuned["learning_rate"] == best_run.hyperparams["learning_rate"] and tuned["n_envs"] == 2
    assert tuned["policy_kwargs"]["net_arch"] == {"tiny": [16], "small": [32, 32]}[rows[0]["policy_kwargs.net_arch"]]
    assert tuned["policy_kwargs"]["log_std_init"] == -0.5  # what the space does not search comes from ppo.yaml
    retrain = tmp_path / "retrain"
    argv = ["train", SCENARIO, "--hyperparams", str(out / "best_hyperparams.yaml"), "--steps", "64"]
    assert main([*argv, "--eval-freq", "0", "--out", str(retrain), "--no-progress"]) == 0
    assert RunFolder(retrain).read_config().hyperparams["learning_rate"] == tuned["learning_rate"]

    # the same command again continues the study (its default storage is DIR/study.db)
    assert tune_cli(out, space, "--trials", "1", "--pruner", "none") == 0
    assert sorted(r["trial"] for r in read_table(out)) == ["0", "1", "2"]
    # other settings would make trials incomparable: refused before any training
    capsys.readouterr()
    assert main(["tune", SCENARIO, "--space", str(space), "--out", str(out), "--steps", "128", "--num-envs", "2"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "was set up with another" in err and "steps" in err


def test_a_pruned_trial_stops_cleanly_and_its_run_evaluates_and_resumes(tmp_path: Path, space: Path) -> None:
    out = tmp_path / "study"
    result = lepton_sim.tune(
        SCENARIO,
        trials=1,
        space=space,
        objective="return",
        pruner=optuna.pruners.ThresholdPruner(lower=1e9),  # every evaluation is below: pruned at the first one
        steps=256,
        n_envs=2,
        eval_freq=128,
        eval_episodes=2,
        episodes=2,
        out=out,
        progress=None,
    )
    (row,) = result.trials
    assert row.state == "pruned" and row.last_step == 128 and "pruned at 128 steps" in row.note
    assert result.best is None and result.best_hyperparams is None
    assert read_table(out)[0]["state"] == "pruned"
    run = RunFolder(out / "trials" / "0")  # stopped like a run at the end of its budget: model and checkpoint
    assert run.final_model.is_file() and run.latest_checkpoint()[0] == 128
    assert [int(r["timesteps"]) for r in run.read_evaluations()] == [128]
    report = lepton_sim.evaluate(str(run.path), scenario=SCENARIO, episodes=1, progress=False)
    assert report.rows[0].episodes
    lepton_sim.train(resume=run.path, progress_bar=False)  # resumes to its full budget, no hook this time
    assert [int(r["timesteps"]) for r in run.read_evaluations()] == [128, 256]


def test_a_refused_combination_fails_its_trial_and_grid_search_covers_the_choices(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    space = tmp_path / "grid.yaml"
    space.write_text(
        "n_steps: {type: categorical, choices: [64]}\n"
        "batch_size: {type: categorical, choices: [1, 64]}\n"  # SB3's PPO refuses batch_size 1
        "learning_rate: {type: float, low: 1.0e-4, high: 1.0e-3, log: true, grid: [3.0e-4]}\n"
    )
    out = tmp_path / "study"
    assert tune_cli(out, space, "--trials", "5", "--sampler", "grid", "--pruner", "none") == 0
    assert "trial" in capsys.readouterr().out
    rows = {r["batch_size"]: r for r in read_table(out)}
    assert set(rows) == {"1", "64"}  # the grid has two points: the study stops there, not at 5 trials
    assert rows["64"]["state"] == "complete" and rows["1"]["state"] == "failed"
    assert "batch_size" in rows["1"]["note"] and "AssertionError" in rows["1"]["note"]
    best = yaml.safe_load((out / "best_hyperparams.yaml").read_text())[SCENARIO]
    assert best["batch_size"] == 64 and best["learning_rate"] == 3.0e-4


def test_two_processes_work_on_one_sqlite_study_at_once(tmp_path: Path, space: Path) -> None:
    storage = f"sqlite:///{tmp_path / 'shared.db'}"
    out = tmp_path / "study"
    command = [sys.executable, "-m", "lepton_sim.cli", "tune", SCENARIO, "--space", str(space), "--out", str(out)]
    command += [*BUDGET, "--trials", "2", "--storage", storage, "--study-name", "shared", "--pruner", "none"]
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    procs = [
        subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    for proc in procs:
        stdout, stderr = proc.communicate(timeout=300)
        assert proc.returncode == 0, stderr
    study = optuna.load_study(study_name="shared", storage=storage)
    assert sorted(t.number for t in study.trials) == [0, 1, 2, 3]
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
    assert all(RunFolder(out / "trials" / str(n)).final_model.is_file() for n in range(4))
    assert sorted(r["trial"] for r in read_table(out)) == ["0", "1", "2", "3"]


BAD_SPACES = [
    ("lerning_rate: {type: float, low: 1.0e-5, high: 1.0e-2}", "lerning_rate", "unknown hyperparameter"),
    ("learning_rate: {type: gauss, low: 0.0, high: 1.0}", "learning_rate.type", "unknown distribution type 'gauss'"),
    ("learning_rate: {type: float, low: 0.1, high: 0.01}", "learning_rate", "low 0.1 > high 0.01"),
    ("learning_rate: {type: float, low: 0.0, high: 0.01, log: true}", "learning_rate", "log range needs low > 0"),
    ("n_epochs: {type: categorical, choices: []}", "n_epochs.choices", "empty"),
    ("n_epochs: {type: int, low: 1, hi: 5}", "n_epochs", "unknown field(s) hi"),
    ("n_epochs: {type: categorical, choices: [1, 2.5]}", "n_epochs", "not a valid value"),
    (
        "policy_kwargs.net_arc: {type: categorical, choices: {a: [8]}}",
        "policy_kwargs.net_arc",
        "unknown policy argument",
    ),
    ("gamma: 0.99", "gamma", "expected a distribution"),
    ("- a list", "", "expected a mapping"),
]


@pytest.mark.parametrize("text,field,problem", BAD_SPACES)
def test_a_bad_search_space_is_one_line_naming_file_and_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, field: str, problem: str
) -> None:
    space = tmp_path / "bad.yaml"
    space.write_text(text + "\n")
    out = tmp_path / "study"
    assert main(["tune", SCENARIO, "--space", str(space), "--out", str(out), "--trials", "1"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert f"{space}: {field}" in err and problem in err, err
    assert not out.exists()  # refused before anything is written


def test_grid_search_needs_values_for_every_range_and_options_are_checked(
    tmp_path: Path, space: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "study"
    assert main(["tune", SCENARIO, "--space", str(space), "--out", str(out), "--sampler", "grid"]) == 1
    err = capsys.readouterr().err
    assert f"{space}: learning_rate: grid search needs a finite list" in err and not out.exists()
    with pytest.raises(SystemExit) as exit_info:  # a malformed command line is argparse's usage error
        main(["tune", SCENARIO, "--sampler", "bayes"])
    assert exit_info.value.code == 2
    assert main(["tune", SCENARIO, "--space", str(space), "--out", str(out), "--set", "batch_size=64"]) == 1
    assert "batch_size: both searched" in capsys.readouterr().err


@pytest.mark.parametrize("algo", ["ppo", "sac", "td3", "tqc"])
def test_the_shipped_search_spaces_load_and_follow_rl_zoo(algo: str) -> None:
    space = get_backend("sb3").search_space(algo)
    assert {"learning_rate", "gamma", "policy_kwargs.net_arch"} <= set(space.names)
    assert space.grid()  # every shipped space also works with --sampler grid
    if algo == "ppo":
        assert {"batch_size", "n_steps", "ent_coef", "clip_range", "n_epochs", "gae_lambda", "max_grad_norm"} <= set(
            space.names
        )


def test_the_search_spaces_ship_with_the_package() -> None:
    import tomllib

    setuptools = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())["tool"][
        "setuptools"
    ]
    assert "lepton_sim.agents.hyperparams.sb3.search" in setuptools["packages"]
    assert setuptools["package-data"]["lepton_sim.agents.hyperparams.sb3.search"] == ["*.yaml"]
