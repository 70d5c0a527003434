"""The RLlib back end on one local Ray instance shared by the module (small: 1 env runner, 1-2 iterations).

PPO and SAC train on driving through the CLI, checkpoint with the lepton-sim record, resume, and evaluate
through the common policy interface without Ray; the loaded policy's actions equal those RLlib's own env-runner
pipeline sends to the env for the same observations (PPO, SAC and SAC with flattened goal-conditioned
observations); HER and unknown hyperparameters fail in one line before a run folder exists; the GPU learner
config is built; plot overlays an SB3 and an RLlib run.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np
import pytest
import yaml

pytest.importorskip("ray.rllib")

import lepton_sim  # noqa: E402
from lepton_sim.cli import main  # noqa: E402
from lepton_sim.errors import LeptonError  # noqa: E402
from lepton_sim.runs import RunFolder  # noqa: E402

SCENARIO = "driving/lane-keep"
PPO_SMALL = [
    "--set",
    "train_batch_size_per_learner=100",
    "--set",
    "minibatch_size=50",
    "--set",
    "num_epochs=1",
    "--set",
    "model={fcnet_hiddens: [32, 32]}",
]
SAC_SMALL = {
    "train_batch_size_per_learner": 32,
    "num_steps_sampled_before_learning_starts": 32,
    "rollout_fragment_length": 16,
    "model": {"fcnet_hiddens": [32, 32]},
}


@pytest.fixture(scope="module")
def ray_instance():
    """One private local Ray instance for the module (the back end uses a running one as it is)."""
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    import ray

    temp = tempfile.mkdtemp(prefix="lepton-ray-test-")
    ray.init(num_cpus=2, include_dashboard=False, _temp_dir=temp, configure_logging=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def ppo_run(ray_instance, tmp_path_factory) -> Path:
    """PPO through the CLI: 1 env runner x 2 native vector sub-envs, ~2 iterations, then resumed to ~4."""
    out = tmp_path_factory.mktemp("rllib") / "ppo"
    argv = ["train", SCENARIO, "--backend", "rllib", "--algo", "ppo", "--steps", "200", "--out", str(out)]
    argv += ["--env-runners", "1", "--envs-per-runner", "2", "--eval-freq", "100", "--eval-episodes", "2"]
    assert main([*argv, *PPO_SMALL, "--no-progress"]) == 0
    return out


@pytest.fixture(scope="module")
def sac_run(ray_instance, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("rllib") / "sac"
    return lepton_sim.train(
        SCENARIO,
        algo="sac",
        backend="rllib",
        steps=48,
        out=out,
        overrides={**SAC_SMALL, "envs_per_runner": 1},
        eval_freq=48,
        eval_episodes=2,
        progress_bar=False,
    )


def test_ppo_run_folder_records_everything(ppo_run: Path) -> None:
    for name in ("config.yaml", "command.txt", "meta.json", "evaluations.csv"):
        assert (ppo_run / name).is_file(), name
    config = yaml.safe_load((ppo_run / "config.yaml").read_text())
    assert config["backend"] == "rllib" and config["algo"] == "ppo"
    assert config["hyperparams"]["env_runners"] == 1 and config["hyperparams"]["envs_per_runner"] == 2
    assert config["n_envs"] == 2
    meta = json.loads((ppo_run / "meta.json").read_text())
    assert meta["versions"]["ray"].startswith("2.60") and meta["device_used"] == "cpu"
    rows = RunFolder(ppo_run).read_evaluations()
    assert [int(r["timesteps"]) for r in rows] == sorted(int(r["timesteps"]) for r in rows) and len(rows) >= 2
    run = RunFolder(ppo_run, "")
    checkpoints = run.checkpoints()
    assert checkpoints and checkpoints[-1][0] >= 200
    for folder in (run.final_model, run.best_model, checkpoints[-1][1]):
        assert (folder / "rllib_checkpoint.json").is_file() and (folder / "lepton.json").is_file()
        record = json.loads((folder / "lepton.json").read_text())
        assert record["scenario"] == SCENARIO and record["normalize_actions"] is True
        assert record["flatten_observations"] is False and list(record["modules"]) == ["default_policy"]
        assert record["modules"]["default_policy"]["model_config"]["fcnet_hiddens"] == [32, 32]
        assert record["action_space"] == {"type": "Box", "shape": [2], "dtype": "float32", "low": -1.0, "high": 1.0}
    progress = (run.log_parts()[0] / "progress.csv").read_text().splitlines()
    assert progress[0].startswith("iteration,timesteps") and len(progress) >= 3
    assert (run.log_parts()[0] / "monitor.csv").read_text().startswith("#{")


def test_ppo_resumes_from_its_latest_checkpoint(ppo_run: Path) -> None:
    run = RunFolder(ppo_run, "")
    before = run.latest_checkpoint()
    assert before is not None
    assert main(["train", "--resume", str(ppo_run), "--steps", "400", "--no-progress"]) == 0
    after = run.latest_checkpoint()
    assert after is not None and after[0] >= 400 > before[0]
    assert len(run.log_parts()) == 2
    steps = [int(r["timesteps"]) for r in run.read_evaluations()]
    assert steps == sorted(set(steps)) and steps[-1] >= 400  # no step evaluated twice
    assert len((ppo_run / "command.txt").read_text().splitlines()) == 2
    record = json.loads((run.final_model / "lepton.json").read_text())
    assert record["timesteps"] == after[0]


def test_evaluate_without_ray(ppo_run: Path, sac_run: Path, tmp_path: Path) -> None:
    """Loading needs no Ray: the policies are built from the record and the npz weights."""
    import subprocess
    import sys

    code = (
        "import lepton_sim, ray, sys\n"
        "for run in sys.argv[1:]:\n"
        f"    r = lepton_sim.evaluate(run, scenario='{SCENARIO}', episodes=2, progress=False)\n"
        "    assert len(r.rows[0].episodes) == 2\n"
        "assert not ray.is_initialized()\n"
        "print('ok')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(ppo_run), str(sac_run)], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert main(["evaluate", str(ppo_run), "--scenario", SCENARIO, "--episodes", "2", "--no-progress"]) == 0


def _pipeline_actions(run: Path, steps: int = 12) -> tuple[list, list]:
    """(observations, env actions) that RLlib's own SingleAgentEnvRunner produces with explore=False, with the
    run's final weights, recorded at the env."""
    from ray.rllib.env.single_agent_env_runner import SingleAgentEnvRunner

    from lepton_sim.agents.rllib.algo_config import build_algo_config, register_env
    from lepton_sim.agents.rllib.record import read_record, read_weights
    from lepton_sim.agents.rllib.train import _env_spaces
    from lepton_sim.scenario import scenario_from_dict

    config = RunFolder(run).read_config()
    config = config.model_copy(update={"hyperparams": {**config.hyperparams, "env_runners": 0, "envs_per_runner": 2}})
    scenario = scenario_from_dict(config.scenario)
    register_env()
    algo_config = build_algo_config(config, scenario, _env_spaces(scenario)[0]).env_runners(explore=False)
    runner = SingleAgentEnvRunner(config=algo_config)
    folder = RunFolder(run, "").final_model
    record = read_record(folder)
    runner.module.set_state(read_weights(folder, record.modules["default_policy"]))
    seen: list = []
    pairs: list = []
    env_reset, env_step = runner.env.reset, runner.env.step

    def reset(**kwargs):
        out = env_reset(**kwargs)
        seen.append(out[0])
        return out

    def step(actions):
        pairs.append((seen[-1], np.array(actions, copy=True)))
        out = env_step(actions)
        seen.append(out[0])
        return out

    runner.env.reset, runner.env.step = reset, step
    runner.sample(num_timesteps=steps, explore=False, random_actions=False)
    runner.stop()
    return [p[0] for p in pairs], [p[1] for p in pairs]


@pytest.mark.parametrize("which", ["ppo", "sac"])
def test_loaded_actions_equal_rllib_pipeline(which: str, request: pytest.FixtureRequest) -> None:
    run = request.getfixturevalue(f"{which}_run")
    observations, actions = _pipeline_actions(run)
    assert actions
    _check_same_actions(run, SCENARIO, observations, actions)


def _check_same_actions(run: Path, scenario: str, observations: list, actions: list) -> None:
    from lepton_sim.loading import load_policy
    from lepton_sim.scenario import load_scenario

    policy = load_policy(str(run), load_scenario(scenario))
    trusted = load_policy(str(run), load_scenario(scenario), trust_pickle=True)  # RLModule.from_checkpoint
    for obs, sent in zip(observations, actions):
        ours, _ = policy.act(obs)
        np.testing.assert_allclose(ours, sent, rtol=0, atol=1e-6)
        np.testing.assert_allclose(trusted.act(obs)[0], sent, rtol=0, atol=1e-6)
        assert np.all(ours >= -1) and np.all(ours <= 1)  # unsquashed and clipped to the env's bounds


def test_goal_conditioned_sac_trains_through_flattening(ray_instance, tmp_path: Path) -> None:
    run = lepton_sim.train(
        "manufacturing/reach",
        algo="sac",
        backend="rllib",
        steps=32,
        out=tmp_path / "reach",
        overrides=SAC_SMALL,
        eval_freq=32,
        eval_episodes=1,
        progress_bar=False,
    )
    record = json.loads((RunFolder(run, "").final_model / "lepton.json").read_text())
    assert record["flatten_observations"] is True and record["observation_space"]["type"] == "Dict"
    assert record["modules"]["default_policy"]["observation_space"]["type"] == "Box"
    report = lepton_sim.evaluate(str(run), scenario="manufacturing/reach", episodes=1, progress=False)
    assert report.rows[0].episodes[0].length == 50
    observations, actions = _pipeline_actions(run, steps=6)  # Dict observations, flattened on both sides
    assert isinstance(observations[0], dict)
    _check_same_actions(run, "manufacturing/reach", observations, actions)


def test_bad_hyperparameters_fail_before_the_run_folder(tmp_path: Path) -> None:
    out = tmp_path / "never"
    cases = [
        ({"lrr": 0.1}, "unknown hyperparameter(s) for rllib ppo: lrr (did you mean lr?)"),
        ({"her": True}, "RLlib has no hindsight experience replay"),
        ({"num_epochs": "many"}, "num_epochs='many' is not a valid value"),
        ({"model": {"fcnet_hidens": [8]}}, "did you mean fcnet_hiddens?"),
        ({"minibatch_size": 500, "train_batch_size_per_learner": 100}, "RLlib refuses the settings"),
        ({"envs_per_runner": 0}, "envs_per_runner=0 must be a positive integer"),
    ]
    for overrides, message in cases:
        with pytest.raises(LeptonError, match=message.replace("(", r"\(").replace(")", r"\)").replace("?", r"\?")):
            lepton_sim.train(SCENARIO, algo="ppo", backend="rllib", steps=100, out=out, overrides=overrides)
        assert not out.exists()
    with pytest.raises(LeptonError, match="HER"):
        lepton_sim.train("manufacturing/reach", algo="sac", backend="rllib", out=out, overrides={"her": True})
    with pytest.raises(LeptonError, match="lr"):  # SAC has actor_lr, critic_lr, alpha_lr
        lepton_sim.train(SCENARIO, algo="sac", backend="rllib", out=out, overrides={"lr": 0.1})
    assert not out.exists()


def test_cli_refuses_rllib_flags_for_other_back_ends(capsys: pytest.CaptureFixture) -> None:
    assert main(["train", SCENARIO, "--env-runners", "2"]) == 1
    assert "--env-runners: for --backend rllib only" in capsys.readouterr().err


def test_gpu_learner_config_is_built() -> None:
    """--gpus-per-learner 1 puts the learner on a GPU: the config RLlib gets (built here without one), and a
    clear refusal on a machine without a GPU."""
    from lepton_sim.agents.rllib.algo_config import build_algo_config
    from lepton_sim.agents.rllib.cluster import local_gpus
    from lepton_sim.training import plan_training

    overrides = {"gpus_per_learner": 1, "learners": 0}
    if local_gpus() == 0:
        with pytest.raises(LeptonError, match="gpus_per_learner=1: this machine has 0 CUDA GPU"):
            plan_training(SCENARIO, algo="ppo", backend="rllib", overrides=overrides)
    config, scenario = plan_training(SCENARIO, algo="ppo", backend="rllib", overrides={"learners": 0})
    config = config.model_copy(update={"hyperparams": {**config.hyperparams, "gpus_per_learner": 1}})
    obs_space = lepton_sim.make(scenario).observation_space
    algo_config = build_algo_config(config, scenario, obs_space)
    assert algo_config.num_gpus_per_learner == 1 and algo_config.num_learners == 0
    assert algo_config.num_env_runners == 1


def test_plot_overlays_sb3_and_rllib_runs(ppo_run: Path, tmp_path: Path) -> None:
    sb3 = lepton_sim.train(
        SCENARIO,
        algo="ppo",
        steps=128,
        n_envs=2,
        out=tmp_path / "sb3",
        overrides={"n_steps": 32, "batch_size": 32},
        eval_freq=64,
        eval_episodes=1,
        progress_bar=False,
    )
    out = tmp_path / "curves.png"
    assert main(["plot", str(sb3), str(ppo_run), "--out", str(out)]) == 0
    assert out.stat().st_size > 1000


def test_camera_images_train_through_the_cnn_encoder(ray_instance, tmp_path: Path) -> None:
    """obs_mode pixels: uint8 84x84 images reach RLlib's default CNN as floats in [0, 1]; the loaded policy
    scales them the same way (its actions equal the pipeline's)."""
    run = lepton_sim.train(
        SCENARIO,
        algo="ppo",
        backend="rllib",
        steps=32,
        out=tmp_path / "pixels",
        overrides={
            "params.obs_mode": "pixels",
            "train_batch_size_per_learner": 32,
            "minibatch_size": 32,
            "num_epochs": 1,
        },
        eval_freq=0,
        progress_bar=False,
    )
    record = json.loads((RunFolder(run, "").final_model / "lepton.json").read_text())
    assert record["scale_images"] is True and record["observation_space"]["dtype"] == "uint8"
    module = record["modules"]["default_policy"]
    assert module["observation_space"]["shape"] == [84, 84, 3] and module["observation_space"]["dtype"] == "float32"
    observations, actions = _pipeline_actions(run, steps=4)  # seen by RLlib: already scaled by the env wrapper
    assert observations[0].dtype == np.float32 and observations[0].max() <= 1.0
    observations = [np.rint(obs * 255).astype(np.uint8) for obs in observations]  # what the env's camera gave
    scenario = tmp_path / "pixels.yaml"
    config = RunFolder(run).read_config()
    scenario.write_text(yaml.safe_dump({k: v for k, v in config.scenario.items() if k != "name"}))
    _check_same_actions(run, str(scenario), observations, actions)
