"""Training smoke tests on the driving env: PPO and SAC train, save, reload, evaluate, render a video; an
interrupted run resumes from its checkpoint with the step count continuing; run folders record everything."""
from __future__ import annotations

import json
from pathlib import Path

import imageio.v3 as iio
import pytest
import yaml

import lepton_sim
from lepton_sim.agents.sb3.callbacks import latest_checkpoint
from lepton_sim.cli import main
from lepton_sim.policies import IncompatiblePolicy

SCENARIO = "driving/lane-keep"


@pytest.mark.parametrize("algo,overrides", [
    ("ppo", {"n_steps": 64, "batch_size": 64, "normalize": True}),
    ("sac", {"learning_starts": 100, "batch_size": 64, "buffer_size": 5000}),
])
def test_train_save_reload_evaluate_and_render(tmp_path: Path, algo: str, overrides: dict) -> None:
    run = lepton_sim.train(SCENARIO, algo=algo, steps=400, n_envs=2, out=tmp_path / "run", overrides=overrides,
                           eval_freq=200, eval_episodes=2, progress_bar=False)
    for name in ("model.zip", "best_model.zip", "config.yaml", "command.txt", "meta.json", "evaluations.csv"):
        assert (run / name).is_file(), name
    assert latest_checkpoint(run)[1] >= 400
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["algo"] == algo and config["scenario"]["env"] == "lepton/Driving-v0" and config["seed"] == 0
    assert config["hyperparams"]["batch_size"] == 64
    meta = json.loads((run / "meta.json").read_text())
    assert meta["versions"]["stable-baselines3"] and "commit" in meta["git"]

    report = lepton_sim.evaluate(str(run), scenario=SCENARIO, episodes=2, progress=False)
    checkpoint = latest_checkpoint(run)[0]  # saved at the same step as the final model
    again = lepton_sim.evaluate(str(checkpoint), scenario=SCENARIO, episodes=2, progress=False)
    assert report.rows[0].return_mean == again.rows[0].return_mean  # reloaded model, deterministic actions
    if overrides.get("normalize"):  # each model file carries the observation statistics it was trained with
        for model in (run / "model.zip", run / "best_model.zip", checkpoint):
            assert model.with_name(model.stem + "_vecnormalize.pkl").is_file(), model
        (run / "best_model_vecnormalize.pkl").unlink()
        with pytest.raises(lepton_sim.LeptonError, match="best_model_vecnormalize.pkl is missing"):
            lepton_sim.evaluate(str(run / "best_model.zip"), scenario=SCENARIO, episodes=1, progress=False)

    if algo == "ppo":  # a continuous-action policy on a suite that also holds a discrete-action scenario
        rows = lepton_sim.evaluate(str(run), suite="driving/standard", episodes=1, progress=False).rows
        skipped = {row.label for row in rows if row.skipped}
        assert skipped == {"driving/dense-traffic", "dense-traffic-two-lanes"}
        assert all("actions" in row.skipped for row in rows if row.skipped)
        with pytest.raises(IncompatiblePolicy, match="trained on actions Box"):
            lepton_sim.evaluate(str(run), scenario="driving/dense-traffic", episodes=1, progress=False)

    result = lepton_sim.rollout(str(run), SCENARIO, episodes=1, out=tmp_path / "video.mp4")
    frames = iio.imread(result.video)
    assert frames.ndim == 4 and frames.shape[0] == result.episodes[0].length
    assert result.plot.is_file() and result.plot.stat().st_size > 1000


def test_resume_continues_the_step_count(tmp_path: Path) -> None:
    run = lepton_sim.train(SCENARIO, algo="ppo", steps=256, n_envs=2, out=tmp_path / "run",
                           overrides={"n_steps": 64, "batch_size": 64}, eval_freq=0, checkpoint_freq=128,
                           progress_bar=False)
    first = latest_checkpoint(run)[1]
    (run / "model.zip").unlink()  # as if the run had been interrupted after its last checkpoint
    assert main(["train", "--resume", str(run), "--steps", "512", "--no-progress"]) == 0
    assert latest_checkpoint(run)[1] >= 512 > first
    from stable_baselines3 import PPO

    assert PPO.load(run / "model.zip").num_timesteps >= 512
    assert (run / "logs" / "part1" / "progress.csv").is_file()  # the first part's logs are kept
    assert (run / "logs" / "part0" / "progress.csv").is_file()
    assert len((run / "command.txt").read_text().splitlines()) == 2


def test_training_errors_are_clear(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", SCENARIO, "--algo", "dqnn", "--steps", "10", "--no-progress"]) == 1
    assert "unknown algorithm 'dqnn'; allowed: ppo" in capsys.readouterr().err
    assert main(["train", SCENARIO, "--steps", "10", "--set", "learning_rat=0.1", "--out", str(tmp_path / "a"),
                 "--no-progress"]) == 1
    assert "unknown hyperparameter(s) learning_rat" in capsys.readouterr().err
    assert main(["train", "--resume", str(tmp_path / "nothing")]) == 1
    assert "not a run folder" in capsys.readouterr().err
