"""The RLlib back end on one local Ray instance shared by the module (small: 1 env runner, 1-2 iterations).

PPO and SAC train on driving through the CLI, checkpoint with the lepton-sim record, resume, and evaluate
through the common policy interface without Ray; the loaded policy's actions equal those RLlib's own env-runner
pipeline sends to the env for the same observations (PPO with normalised observations, as driving's entry
sets, SAC, SAC with flattened goal-conditioned observations, and normalised multi-agent traffic with shared and
independent modules); the normalisation statistics are saved with every checkpoint and resumed; HER and unknown
hyperparameters fail in one line before a run folder exists; the GPU learner config is built and a GPU asked for
on a machine without one is refused; plot overlays an SB3 and an RLlib run; a pretrained perception encoder is the
PPO module's encoder, frozen (weights unchanged) or fine-tuned, and evaluates without its checkpoint.
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
PERCEPTION_SIZE = 40  # camera side for the perception-encoder runs
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
        norm = record["obs_normalization"]  # driving's entry: normalize: true
        assert norm["method"] == "MeanStdFilter" and norm["clip"] == 10.0 and norm["keys"] == [None]
        assert norm["counts"][0] >= record["timesteps"] > 0  # every observation sampled (and the resets)
        assert (folder / "lepton_weights" / norm["file"]).is_file()
    progress = (run.log_parts()[0] / "progress.csv").read_text().splitlines()
    assert progress[0].startswith("iteration,timesteps") and len(progress) >= 3
    assert (run.log_parts()[0] / "monitor.csv").read_text().startswith("#{")


def test_ppo_resumes_from_its_latest_checkpoint(ppo_run: Path) -> None:
    from lepton_sim.agents.rllib.record import read_record

    run = RunFolder(ppo_run, "")
    before = run.latest_checkpoint()
    assert before is not None
    seen_before = read_record(before[1]).obs_normalization.counts[None]
    assert main(["train", "--resume", str(ppo_run), "--steps", "400", "--no-progress"]) == 0
    after = run.latest_checkpoint()
    assert after is not None and after[0] >= 400 > before[0]
    assert len(run.log_parts()) == 2
    steps = [int(r["timesteps"]) for r in run.read_evaluations()]
    assert steps == sorted(set(steps)) and steps[-1] >= 400  # no step evaluated twice
    assert len((ppo_run / "command.txt").read_text().splitlines()) == 2
    record = json.loads((run.final_model / "lepton.json").read_text())
    assert record["timesteps"] == after[0]
    # the normalisation went on from the saved statistics (fresh ones would have seen only the new steps)
    assert record["obs_normalization"]["counts"][0] >= seen_before + (after[0] - before[0])


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


def _frozen_runner(run: Path, runner_class: type, layout: dict):
    """RLlib's own env runner for the run's final model: its env-to-module state (the MeanStdFilter's statistics)
    restored from RLlib's part of the checkpoint, frozen as for inference (``update_stats=False``)."""
    from lepton_sim.agents.rllib.algo_config import build_algo_config, env_to_module_connector, register_env
    from lepton_sim.agents.rllib.record import read_record
    from lepton_sim.agents.rllib.train import _env_spaces, normalization_from_state
    from lepton_sim.scenario import scenario_from_dict

    config = RunFolder(run).read_config()
    config = config.model_copy(update={"hyperparams": {**config.hyperparams, **layout}})
    scenario = scenario_from_dict(config.scenario)
    obs_space = _env_spaces(scenario)[0]
    mode = config.multi_agent if config.multi_agent in ("shared", "independent") else None
    register_env()
    algo_config = build_algo_config(config, scenario, obs_space).env_runners(explore=False)
    frozen = env_to_module_connector(config.hyperparams, obs_space, mode, update_stats=False)
    if frozen is not None:
        algo_config = algo_config.env_runners(env_to_module_connector=frozen)
    runner = runner_class(config=algo_config)
    folder = RunFolder(run, "").final_model
    norm = read_record(folder).obs_normalization
    if norm is not None:
        runner.restore_from_path(str(folder / "env_runner"))  # RLlib's checkpointed connector state
        ours = normalization_from_state(_connector_state(runner), norm.keys)
        for key in norm.keys:  # the record's frozen copy is RLlib's state, bit for bit
            np.testing.assert_array_equal(ours.means[key], norm.means[key])
            np.testing.assert_array_equal(ours.stds[key], norm.stds[key])
    return runner


def _connector_state(runner) -> dict:
    from ray.rllib.core import COMPONENT_ENV_TO_MODULE_CONNECTOR

    return runner.get_state(components=[COMPONENT_ENV_TO_MODULE_CONNECTOR])[COMPONENT_ENV_TO_MODULE_CONNECTOR]


def _pipeline_actions(run: Path, steps: int = 12) -> tuple[list, list]:
    """(observations, env actions) that RLlib's own SingleAgentEnvRunner produces with explore=False, with the
    run's final weights, recorded at the env."""
    from ray.rllib.env.single_agent_env_runner import SingleAgentEnvRunner

    from lepton_sim.agents.rllib.record import read_record, read_weights

    folder = RunFolder(run, "").final_model
    runner = _frozen_runner(run, SingleAgentEnvRunner, {"env_runners": 0, "envs_per_runner": 2})
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
    """PPO normalises observations (driving's entry), SAC does not (sac.yaml)."""
    from lepton_sim.agents.rllib.policy import load_rllib_policy

    run = request.getfixturevalue(f"{which}_run")
    observations, actions = _pipeline_actions(run)
    assert actions
    _check_same_actions(run, SCENARIO, observations, actions)
    policy = load_rllib_policy(RunFolder(run, "").final_model)
    assert (policy.record.obs_normalization is not None) == (which == "ppo")
    if which == "ppo":  # the statistics matter: without them the same weights act differently
        policy.record.obs_normalization = None
        raw = np.concatenate([policy.act(obs)[0] for obs in observations])
        assert not np.allclose(raw, np.concatenate(actions), atol=1e-3)


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
        ({"normalize": "yes"}, "normalize='yes' must be true or false"),
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


def test_gpus_per_learner_flag_on_a_machine_without_gpus(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The CLI path of --gpus-per-learner on CPU: refused in one line before a run folder exists (--device cuda
    too), contradicting --device cpu is an error, and when joining a cluster (which may have GPUs) the check is
    left to it and RLlib receives the GPU learners as given."""
    from lepton_sim.agents.rllib.algo_config import build_algo_config
    from lepton_sim.agents.rllib.cluster import local_gpus
    from lepton_sim.training import plan_training

    if local_gpus():
        pytest.skip("this machine has a GPU")
    out = tmp_path / "never"
    base = ["train", SCENARIO, "--backend", "rllib", "--steps", "100", "--out", str(out), "--no-progress"]
    for extra, message in [
        (["--gpus-per-learner", "1"], "gpus_per_learner=1: this machine has 0 CUDA GPU(s)"),
        (["--gpus-per-learner", "0.5", "--learners", "2"], "gpus_per_learner=0.5: this machine has 0 CUDA GPU(s)"),
        (["--device", "cuda"], "--device cuda: no CUDA device on this machine"),
        (["--device", "cpu", "--gpus-per-learner", "1"], "--device cpu and gpus_per_learner > 0 contradict"),
    ]:
        assert main([*base, *extra]) == 1
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
        assert not out.exists()
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:6379")  # only read here: nothing connects
    config, scenario = plan_training(SCENARIO, algo="ppo", backend="rllib", overrides={"gpus_per_learner": 2})
    assert config.hyperparams["gpus_per_learner"] == 2
    algo_config = build_algo_config(config, scenario, lepton_sim.make(scenario).observation_space)
    assert algo_config.num_gpus_per_learner == 2 and algo_config.num_learners == 0


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
    assert record["obs_normalization"] is None  # normalize: true leaves camera images as they are (as SB3)
    module = record["modules"]["default_policy"]
    assert module["observation_space"]["shape"] == [84, 84, 3] and module["observation_space"]["dtype"] == "float32"
    observations, actions = _pipeline_actions(run, steps=4)  # seen by RLlib: already scaled by the env wrapper
    assert observations[0].dtype == np.float32 and observations[0].max() <= 1.0
    observations = [np.rint(obs * 255).astype(np.uint8) for obs in observations]  # what the env's camera gave
    scenario = tmp_path / "pixels.yaml"
    config = RunFolder(run).read_config()
    scenario.write_text(yaml.safe_dump({k: v for k, v in config.scenario.items() if k != "name"}))
    _check_same_actions(run, str(scenario), observations, actions)


def _perception_run(encoder: Path, out: Path, freeze: bool) -> Path:
    overrides = {
        "params.obs_mode": "pixels",
        "params.camera_size": PERCEPTION_SIZE,
        "train_batch_size_per_learner": 32,
        "minibatch_size": 32,
        "num_epochs": 1,
        "perception": {"checkpoint": str(encoder), "freeze": freeze},
    }
    return lepton_sim.train(
        SCENARIO, algo="ppo", backend="rllib", steps=32, out=out, overrides=overrides, eval_freq=0, progress_bar=False
    )


def _encoder_weights(folder: Path) -> dict[str, np.ndarray]:
    """The perception encoder's arrays in a checkpoint's weights, by the encoder's own names."""
    from lepton_sim.agents.rllib.record import read_record, read_weights

    state = read_weights(folder, read_record(folder).modules["default_policy"])
    marker = ".net."  # encoder.<actor_>encoder.net.<name>: the perception encoder inside RLlib's actor-critic one
    return {k.split(marker, 1)[1]: np.asarray(v) for k, v in state.items() if k.startswith("encoder.") and marker in k}


def test_a_pretrained_perception_encoder_is_the_module_encoder(ray_instance, tmp_path: Path) -> None:
    """perception: {checkpoint, freeze}: frozen, actor and critic share the encoder and its weights stay the
    checkpoint's through training; the loaded policy's actions equal RLlib's pipeline; evaluation does not read the
    perception checkpoint again. Fine-tuned, the weights move."""
    import torch
    from perception_fixtures import save_random_encoder

    from lepton_sim.perception.checkpoint import ENCODER_FILE

    encoder = save_random_encoder(tmp_path / "encoder", PERCEPTION_SIZE)
    saved = {
        k.removeprefix("encoder."): v.numpy()
        for k, v in torch.load(encoder / ENCODER_FILE, weights_only=True)["state_dict"].items()
    }
    run = _perception_run(encoder, tmp_path / "frozen", freeze=True)
    folder = RunFolder(run, "").final_model
    module = json.loads((folder / "lepton.json").read_text())["modules"]["default_policy"]
    assert module["catalog_class"].endswith(":PerceptionPPOCatalog")
    assert module["model_config"]["vf_share_layers"] is True
    trained = _encoder_weights(folder)
    assert trained.keys() == saved.keys()
    for name, value in saved.items():
        np.testing.assert_array_equal(trained[name], value)
    observations, actions = _pipeline_actions(run, steps=4)
    observations = [np.rint(obs * 255).astype(np.uint8) for obs in observations]
    scenario = tmp_path / "pixels.yaml"
    config = RunFolder(run).read_config()
    scenario.write_text(yaml.safe_dump({k: v for k, v in config.scenario.items() if k != "name"}))
    _check_same_actions(run, str(scenario), observations, actions)
    (encoder / ENCODER_FILE).rename(tmp_path / "moved.pt")  # evaluation rebuilds from the record alone
    report = lepton_sim.evaluate(str(run), scenario=str(scenario), episodes=1, progress=False)
    assert report.rows[0].episodes[0].length > 0
    (tmp_path / "moved.pt").rename(encoder / ENCODER_FILE)
    tuned = _encoder_weights(RunFolder(_perception_run(encoder, tmp_path / "tuned", freeze=False), "").final_model)
    assert any(not np.array_equal(tuned[name], value) for name, value in saved.items())


def test_perception_encoder_settings_that_cannot_work_fail_before_the_run_folder(tmp_path: Path) -> None:
    from perception_fixtures import save_random_encoder

    encoder = str(save_random_encoder(tmp_path / "encoder", PERCEPTION_SIZE))
    out = tmp_path / "never"
    pixels = {"params.obs_mode": "pixels", "params.camera_size": PERCEPTION_SIZE}
    cases = [
        ({**pixels, "perception": {"checkpoint": encoder, "freeze": "yes"}}, "takes checkpoint and freeze"),
        ({**pixels, "perception": {"path": encoder}}, "must be {checkpoint: PATH"),
        ({**pixels, "params.camera_size": 64, "perception": {"checkpoint": encoder}}, "but the policy sees 64x64x3"),
        ({"perception": {"checkpoint": encoder}}, "the encoder needs camera images"),
        ({**pixels, "perception": {"checkpoint": str(tmp_path / "none")}}, "none"),
    ]
    for overrides, message in cases:
        with pytest.raises(LeptonError) as err:
            lepton_sim.train(SCENARIO, algo="ppo", backend="rllib", steps=32, out=out, overrides=overrides)
        assert message in str(err.value) and "\n" not in str(err.value)
        assert not out.exists()
    with pytest.raises(LeptonError, match="rllib ppo only"):
        lepton_sim.train(
            SCENARIO, algo="sac", backend="rllib", out=out, overrides={**pixels, "perception": {"checkpoint": encoder}}
        )
    assert not out.exists()


@pytest.fixture(scope="module")
def short_grid(tmp_path_factory) -> str:
    """traffic/2x2-grid with a 5-minute window (30 decisions): the same network and spaces, short episodes."""
    import lepton_sim.scenario

    data = yaml.safe_load((Path(str(lepton_sim.scenario.builtin_root())) / "traffic" / "2x2-grid.yaml").read_text())
    data["params"]["duration"] = 300
    data["max_episode_steps"] = 30
    path = tmp_path_factory.mktemp("scenario") / "short-grid.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


def _multi_agent_pipeline(run: Path, steps: int = 6) -> tuple[list[dict], list[dict]]:
    """(per-agent observations, per-agent actions) at the PettingZoo env of RLlib's MultiAgentEnvRunner with the
    run's final weights and frozen normalisation, explore=False."""
    from ray.rllib.env.multi_agent_env_runner import MultiAgentEnvRunner

    from lepton_sim.agents.rllib.record import read_record, read_weights

    folder = RunFolder(run, "").final_model
    record = read_record(folder)
    runner = _frozen_runner(run, MultiAgentEnvRunner, {"env_runners": 0})
    for mid, module in record.modules.items():
        runner.module[mid].set_state(read_weights(folder, module))
    env = runner.env.envs[0]
    seen: list = []
    pairs: list = []
    env_reset, env_step = env.reset, env.step

    def reset(**kwargs):
        out = env_reset(**kwargs)
        seen.append(out[0])
        return out

    def step(actions):
        pairs.append((seen[-1], dict(actions)))
        out = env_step(actions)
        seen.append(out[0])
        return out

    env.reset, env.step = reset, step
    try:
        runner.sample(num_timesteps=steps, explore=False, random_actions=False)
    finally:
        runner.stop()
    return [p[0] for p in pairs], [p[1] for p in pairs]


@pytest.mark.parametrize("mode", ["shared", "independent"])
def test_normalised_multi_agent_actions_equal_rllib_pipeline(
    ray_instance, short_grid: str, mode: str, tmp_path: Path
) -> None:
    """normalize: true on traffic: one MeanStdFilter per signal (RLlib's multi_agent filter), saved per agent and
    applied per agent by the loaded policies (the shared module's rows, the independent modules' columns)."""
    from lepton_sim.agents.rllib.policy import load_rllib_policy
    from lepton_sim.agents.rllib.record import read_record

    overrides = {
        "normalize": True,
        "env_runners": 1,
        "train_batch_size_per_learner": 40,
        "minibatch_size": 20,
        "num_epochs": 1,
        "rollout_fragment_length": 20,
        "model": {"fcnet_hiddens": [16, 16]},
    }
    run = lepton_sim.train(
        short_grid,
        algo="ppo",
        backend="rllib",
        steps=40,
        out=tmp_path / mode,
        multi_agent=mode,
        overrides=overrides,
        eval_freq=0,
        progress_bar=False,
    )
    folder = RunFolder(run, "").final_model
    record = read_record(folder)
    norm = record.obs_normalization
    assert norm is not None and norm.keys == record.agents and len(record.agents) == 4
    assert all(norm.counts[a] >= 40 for a in record.agents)
    assert any(not np.allclose(norm.means[record.agents[0]], norm.means[a]) for a in record.agents[1:])
    observations, actions = _multi_agent_pipeline(run)
    assert actions
    policy = load_rllib_policy(folder)
    agents = record.agents
    for obs, sent in zip(observations, actions):
        assert set(sent) == set(agents)  # every signal decides at every step
        expected = np.array([sent[a] for a in agents])
        if mode == "shared":  # per-agent rows, agents in env order (as SharedPolicy hands them over)
            ours, _ = policy.act(np.stack([obs[a] for a in agents]))
        else:  # the joint env's stacked rows, zero-padded to the widest
            width = max(len(obs[a]) for a in agents)
            joint = np.zeros((1, len(agents), width), np.float32)
            for i, a in enumerate(agents):
                joint[0, i, : len(obs[a])] = obs[a]
            ours = policy.act(joint)[0][0]
        np.testing.assert_array_equal(np.asarray(ours).reshape(-1), expected)
    report = lepton_sim.evaluate(str(run), scenario=short_grid, episodes=1, progress=False)
    assert report.rows[0].episodes[0].length == 30


def test_sigterm_saves_the_run_although_ray_replaces_the_handler(tmp_path: Path) -> None:
    """ray.init installs its own SIGTERM handler (sys.exit) in the driver; a killed RLlib run still saves a
    checkpoint and the model, as Ctrl-C does (a process of its own: a private Ray instance)."""
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "killed"
    argv = [sys.executable, "-m", "lepton_sim.cli", "train", SCENARIO, "--backend", "rllib", "--steps", "1000000"]
    argv += ["--envs-per-runner", "2", "--eval-freq", "0", "--out", str(out), "--no-progress", *PPO_SMALL]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    progress = out / "logs" / "part0" / "progress.csv"
    deadline = time.time() + 240
    while time.time() < deadline and (not progress.is_file() or len(progress.read_text().splitlines()) < 3):
        assert proc.poll() is None, proc.communicate()[1][-2000:]
        time.sleep(1)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert "interrupted at" in err and "saved checkpoint" in err, err[-2000:]
    run = RunFolder(out, "")
    assert run.latest_checkpoint() is not None and (run.final_model / "lepton.json").is_file()
