"""Training smoke tests on the driving env: PPO and SAC train, save, reload, evaluate, render a video; an
interrupted run resumes from its checkpoint with the step count continuing; run folders record everything."""

from __future__ import annotations

import json
from pathlib import Path

import imageio.v3 as iio
import pytest
import yaml

import lepton_sim
from lepton_sim.cli import main
from lepton_sim.policy import IncompatiblePolicy
from lepton_sim.runs import RunFolder


def latest_checkpoint(run: Path) -> tuple[Path, int]:
    steps, path = RunFolder(run).latest_checkpoint()
    return path, steps


SCENARIO = "driving/lane-keep"


@pytest.mark.parametrize(
    "algo,overrides",
    [
        ("ppo", {"n_steps": 64, "batch_size": 64, "normalize": True}),
        ("sac", {"learning_starts": 100, "batch_size": 64, "buffer_size": 5000}),
    ],
)
def test_train_save_reload_evaluate_and_render(tmp_path: Path, algo: str, overrides: dict) -> None:
    run = lepton_sim.train(
        SCENARIO,
        algo=algo,
        steps=400,
        n_envs=2,
        out=tmp_path / "run",
        overrides=overrides,
        eval_freq=200,
        eval_episodes=2,
        progress_bar=False,
    )
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
            assert model.with_name(model.stem + "_vecnormalize.pkl").is_file(), model  # what resume reads
            assert model.with_name(model.stem + "_vecnormalize.npz").is_file(), model  # what inference reads
        (run / "best_model_vecnormalize.pkl").unlink()
        (run / "best_model_vecnormalize.npz").unlink()
        with pytest.raises(lepton_sim.LeptonError, match="best_model_vecnormalize.npz is missing"):
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
    run = lepton_sim.train(
        SCENARIO,
        algo="ppo",
        steps=256,
        n_envs=2,
        out=tmp_path / "run",
        overrides={"n_steps": 64, "batch_size": 64},
        eval_freq=0,
        checkpoint_freq=128,
        progress_bar=False,
    )
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
    assert "unknown algorithm 'dqnn' for the sb3 back end; allowed: ppo" in capsys.readouterr().err
    assert (
        main(
            [
                "train",
                SCENARIO,
                "--steps",
                "10",
                "--set",
                "learning_rat=0.1",
                "--out",
                str(tmp_path / "a"),
                "--no-progress",
            ]
        )
        == 1
    )
    assert "unknown hyperparameter(s) learning_rat" in capsys.readouterr().err
    assert main(["train", "--resume", str(tmp_path / "nothing")]) == 1
    assert "not a run folder" in capsys.readouterr().err


@pytest.mark.parametrize(
    "setting, message",
    [
        ("learning_rat=0.1", "unknown hyperparameter(s) learning_rat"),
        ("learning_rate=fast", "learning_rate='fast' is not a valid value for ppo"),
        ("learning_rate=lin_x", "a linear schedule is lin_<number>"),
        ("n_steps=2.5", "n_steps=2.5 is not a valid value"),
        ("normalize=maybe", "normalize='maybe' must be true or false"),
        ("noise_type=normal", "noise_type/noise_std apply to off-policy algorithms"),
        ("device=tpu", "device: String should match pattern"),
        ("multi_agent=shared", "lepton/Driving-v0 (driving/lane-keep) has a single agent"),
        pytest.param(
            "device=cuda",
            "no such CUDA device here",
            marks=pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="this machine has CUDA"),
        ),
    ],
)
def test_bad_settings_give_one_line_and_leave_no_run_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], setting: str, message: str
) -> None:
    out = tmp_path / "run"
    assert main(["train", SCENARIO, "--steps", "64", "--set", setting, "--out", str(out), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1, err
    assert not out.exists()


def test_run_fields_and_schedules_in_set(tmp_path: Path) -> None:
    """--set seed / device / verbose and rl-zoo3's lin_ schedules used to crash after the run folder existed."""
    out = tmp_path / "run"
    assert (
        main(
            [
                "train",
                SCENARIO,
                "--steps",
                "64",
                "--n-envs",
                "2",
                "--eval-freq",
                "0",
                "--out",
                str(out),
                "--set",
                "seed=3",
                "--set",
                "device=cpu",
                "--set",
                "verbose=0",
                "--set",
                "n_steps=32",
                "--set",
                "batch_size=32",
                "--set",
                "learning_rate=lin_3e-4",
                "--set",
                "clip_range=lin_0.2",
                "--no-progress",
            ]
        )
        == 0
    )
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert config["seed"] == 3 and config["device"] == "cpu" and config["hyperparams"]["learning_rate"] == "lin_3e-4"
    assert "seed" not in config["hyperparams"]
    assert json.loads((out / "meta.json").read_text())["device_used"] == "cpu"
    from stable_baselines3 import PPO

    model = PPO.load(out / "model.zip")
    assert model.learning_rate(1.0) == pytest.approx(3e-4) and model.learning_rate(0.5) == pytest.approx(1.5e-4)


def test_td3_explores_with_the_action_noise_of_its_hyperparameters(tmp_path: Path) -> None:
    run = lepton_sim.train(
        SCENARIO,
        algo="td3",
        steps=120,
        out=tmp_path / "run",
        eval_freq=0,
        progress_bar=False,
        overrides={"learning_starts": 50, "batch_size": 32, "buffer_size": 1000, "noise_std": 0.3},
    )
    from stable_baselines3 import TD3
    from stable_baselines3.common.noise import NormalActionNoise

    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["hyperparams"]["noise_type"] == "normal"  # from agents/hyperparams/sb3/td3.yaml
    noise = TD3.load(run / "model.zip").action_noise  # the noise the model explored with
    assert isinstance(noise, NormalActionNoise) and noise._sigma.tolist() == [0.3, 0.3]


def test_old_run_folders_still_evaluate(tmp_path: Path) -> None:
    """A run folder written before the typed training config (policy_sharing, no multi_agent) still loads."""
    golden = Path(__file__).parent / "data" / "golden" / "ppo-lane-keep"
    assert "policy_sharing" in (golden / "config.yaml").read_text()
    config = RunFolder(golden).read_config()
    assert config.multi_agent is None and config.algo == "ppo" and config.steps == 4096


def test_a_run_folder_from_before_the_typed_config_resumes(tmp_path: Path) -> None:
    run = lepton_sim.train(
        SCENARIO,
        algo="ppo",
        steps=128,
        n_envs=2,
        out=tmp_path / "run",
        eval_freq=0,
        checkpoint_freq=64,
        overrides={"n_steps": 32, "batch_size": 64},
        progress_bar=False,
    )
    config = yaml.safe_load((run / "config.yaml").read_text())
    del config["multi_agent"]
    config["policy_sharing"] = False  # config.yaml as main wrote it before the TrainConfig model
    (run / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    assert main(["train", "--resume", str(run), "--steps", "256", "--no-progress"]) == 0
    assert latest_checkpoint(run)[1] >= 256
    assert yaml.safe_load((run / "config.yaml").read_text())["multi_agent"] is None  # rewritten in the new form


def test_a_scenario_its_env_refuses_fails_before_the_run_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "grid-on-one-signal.yaml"
    path.write_text(
        "env: lepton/TrafficSignal-v0\nparams: {net: 'sumo_rl:nets/2x2grid/2x2.net.xml', "
        "route: 'sumo_rl:nets/2x2grid/2x2.rou.xml'}\n"
    )
    out = tmp_path / "run"
    assert main(["train", str(path), "--steps", "64", "--out", str(out), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "cannot build lepton/TrafficSignal-v0: network" in err and "has 4 traffic signals" in err
    assert len(err.strip().splitlines()) == 1 and not out.exists()
