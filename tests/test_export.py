"""``lepton-sim export`` (issue 13): a trained SB3 model becomes a self-describing folder whose graph (run by
onnxruntime for ONNX, torch.jit for TorchScript, with nothing lepton-sim applies around it) acts exactly as
lepton-sim's own policy (``load_policy(run).act``): equal for discrete actions, within 1e-5 for continuous ones.
One tiny run per domain: PPO on normalised Box observations (driving), SAC+HER on Dict observations with squashed
actions (manufacturing), PPO with Discrete actions (traffic), a joint agent with MultiDiscrete actions and a
parameter-shared policy on a traffic network (the spec describes the padding), and a camera policy (the image
transpose). The export folder loads as a Policy and
evaluates to the run folder's report."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime
import pytest
import torch
import yaml
from export_runs import CAMERA, CROSS, GRID, JOINT, LANE_KEEP, REACH, trained_run
from gymnasium import spaces

import lepton_sim
from lepton_sim.cli import main
from lepton_sim.envs.padding import agent_actions, pad_batch
from lepton_sim.exported import ExportedPolicy
from lepton_sim.exporting import export_policy, sample_observations
from lepton_sim.loading import load_policy
from lepton_sim.multi_agent import SharedPolicy
from lepton_sim.policy import PolicyContext
from lepton_sim.space_json import space_from_json, space_to_json


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The tiny runs of tests/export_runs.py, trained when a test first asks for one."""

    class Runs(dict):
        def __missing__(self, key: str) -> Path:
            self[key] = trained_run(tmp_path_factory, key)
            return self[key]

    return Runs()


@pytest.fixture(scope="module")
def exports(runs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Any:
    """``exports(which, fmt)``: the run's export, made once per module (tests that change one copy it first)."""
    made: dict[tuple[str, str], Path] = {}

    def get(which: str, fmt: str) -> Path:
        if (which, fmt) not in made:
            made[which, fmt] = export_policy(runs[which], fmt, tmp_path_factory.mktemp("export") / fmt)
        return made[which, fmt]

    return get


def scenario_of(run: Path) -> Any:
    config = yaml.safe_load((run / "config.yaml").read_text())
    return lepton_sim.scenario.scenario_from_dict(config["scenario"])


def reset_for(policy: Any, run: Path, obs_space: Any, act_space: Any) -> None:
    sc = scenario_of(run)
    policy.reset(PolicyContext(obs_space, act_space, seeds=[0], env_id=sc.env, scenario=sc.name))


def run_graph(folder: Path, observation: Any) -> np.ndarray:
    """The graph alone, called from spec.json as any program would: onnxruntime or torch.jit, no lepton-sim."""
    spec = json.loads((folder / "spec.json").read_text())
    graph = spec["graph"]
    feeds = [
        np.asarray(observation if i["key"] is None else observation[i["key"]], dtype=i["dtype"])
        for i in graph["inputs"]
    ]
    if graph["format"] == "onnx":
        session = onnxruntime.InferenceSession(str(folder / graph["file"]), providers=["CPUExecutionProvider"])
        assert [i.name for i in session.get_inputs()] == [i["name"] for i in graph["inputs"]]
        return session.run(None, {i["name"]: x for i, x in zip(graph["inputs"], feeds)})[0]
    module = torch.jit.load(str(folder / graph["file"]))
    with torch.no_grad():
        return module(*(torch.as_tensor(x) for x in feeds)).numpy()


def assert_same_actions(mine: np.ndarray, theirs: np.ndarray) -> None:
    mine, theirs = np.asarray(mine), np.asarray(theirs)
    assert mine.shape == theirs.shape
    if np.issubdtype(theirs.dtype, np.integer):
        assert mine.dtype == np.int64
        np.testing.assert_array_equal(mine, theirs)
    else:
        np.testing.assert_allclose(mine, theirs, rtol=0, atol=1e-5)


# ---------------------------------------------------------------------------------------------- the same actions
@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
@pytest.mark.parametrize("which", [LANE_KEEP, REACH, CROSS, JOINT])
def test_exported_graph_acts_as_the_run_policy(runs: dict[str, Path], exports: Any, which: str, fmt: str) -> None:
    run = runs[which]
    folder = exports(which, fmt)
    original = load_policy(str(run), scenario_of(run))
    exported = load_policy(str(folder), scenario_of(run))
    assert isinstance(exported, ExportedPolicy)
    assert exported.observation_space == original.observation_space
    assert exported.action_space == original.action_space
    for n in (1, 5, 64):
        obs = sample_observations(original.observation_space, n, seed=n)
        expected = original.act(obs)[0]
        assert_same_actions(run_graph(folder, obs), expected)  # the runtime alone
        assert_same_actions(exported.act(obs)[0], expected)  # lepton-sim's loader
    if isinstance(original.action_space, (spaces.Discrete, spaces.MultiDiscrete)):
        assert run_graph(folder, sample_observations(original.observation_space, 64)).dtype == np.int64


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_a_shared_traffic_policy_exports_per_agent_with_its_padding(
    runs: dict[str, Path], exports: Any, fmt: str
) -> None:
    run = runs[GRID]
    folder = exports(GRID, fmt)
    spec = json.loads((folder / "spec.json").read_text())
    shared = spec["multi_agent"]
    env = lepton_sim.make(scenario_of(run))
    joint_obs_space, joint_act_space = env.observation_space, env.action_space
    env.close()
    assert shared["mode"] == "shared" and shared["num_actions"] == [4, 4, 4, 4]
    assert space_from_json(shared["joint_observation_space"]) == joint_obs_space
    assert space_from_json(spec["observation_space"]) == joint_obs_space
    assert space_from_json(spec["action_space"]) == joint_act_space
    width = shared["agent_observation_width"]
    assert space_from_json(spec["graph"]["observation_space"]).shape == (width,)

    original, exported = load_policy(str(run), scenario_of(run)), load_policy(str(folder), scenario_of(run))
    assert isinstance(original, SharedPolicy) and isinstance(exported, SharedPolicy)
    for policy in (original, exported):
        reset_for(policy, run, joint_obs_space, joint_act_space)
    joint = sample_observations(joint_obs_space, 16)  # (16 envs, 4 agents, 21)
    expected = original.act(joint)[0]
    assert expected.shape == (16, 4)
    assert_same_actions(exported.act(joint)[0], expected)
    # what spec.json says, done by hand: pad each agent's row, run the graph on it, map a -> a mod n_i
    rows = pad_batch(joint, width).reshape(-1, width)
    by_hand = agent_actions(run_graph(folder, rows).reshape(16, 4), np.asarray(shared["num_actions"]))
    assert_same_actions(by_hand, expected)


def test_a_camera_policy_transposes_images_inside_the_graph(runs: dict[str, Path], tmp_path: Path) -> None:
    run = runs[CAMERA]
    folder = export_policy(run, "onnx", tmp_path / "export")
    spec = json.loads((folder / "spec.json").read_text())
    image = next(i for i in spec["graph"]["inputs"] if i["key"] == "pixels")
    assert image["dtype"] == "uint8" and image["shape"] == [None, 36, 36, 3]  # what the env gives, channels last
    assert any(step.startswith("image transpose (keys: pixels)") for step in spec["graph"]["includes"])
    original = load_policy(str(run), scenario_of(run))
    obs = sample_observations(original.observation_space, 8)
    assert_same_actions(run_graph(folder, obs), original.act(obs)[0])


# ---------------------------------------------------------------------------------------------- the folder
def test_the_export_folder_describes_itself(runs: dict[str, Path], exports: Any) -> None:
    run = runs[REACH]
    folder = exports(REACH, "onnx")
    assert sorted(p.name for p in folder.iterdir()) == ["normalization.npz", "policy.onnx", "spec.json"]
    spec = json.loads((folder / "spec.json").read_text())
    config = yaml.safe_load((run / "config.yaml").read_text())
    env = lepton_sim.make(REACH)
    assert spec["format"] == "lepton-sim/export/1" and spec["deterministic"] is True
    assert space_from_json(spec["observation_space"]) == env.observation_space
    assert space_from_json(spec["action_space"]) == env.action_space
    env.close()
    assert [i["key"] for i in spec["graph"]["inputs"]] == ["achieved_goal", "desired_goal", "observation"]
    assert spec["graph"]["output"] == {"name": "action", "key": None, "dtype": "float32", "shape": [None, 3]}
    includes = " | ".join(spec["graph"]["includes"])
    assert "observation normalisation (keys: achieved_goal, desired_goal, observation)" in includes
    assert "tanh of the squashed Gaussian's mean" in includes and "unscale from [-1, 1]" in includes
    assert spec["scenario"] == config["scenario"] and spec["training_config"] == config
    assert spec["source"]["sha256"] == hashlib.sha256((run / "model.zip").read_bytes()).hexdigest()
    assert spec["source"]["model"] == "model.zip"
    assert {"torch", "stable-baselines3", "onnx", "onnxruntime"} <= set(spec["versions"]["export"])
    assert "stable-baselines3" in spec["versions"]["training"]
    assert spec["check"]["observations"] == 64 and spec["check"]["max_abs_diff"] <= 1e-5
    assert (folder / "normalization.npz").read_bytes() == (run / "model_vecnormalize.npz").read_bytes()
    # plain JSON all the way down: no NaN or Infinity tokens, spaces round-trip exactly
    json.loads((folder / "spec.json").read_text(), parse_constant=lambda c: pytest.fail(f"{c} in spec.json"))
    assert space_to_json(space_from_json(spec["observation_space"])) == spec["observation_space"]


@pytest.mark.parametrize(
    "space",
    [
        spaces.Box(-np.inf, np.inf, (3,), np.float32),
        spaces.Box(np.array([0.0, -1.5], np.float32), np.array([1.0, 2.5], np.float32)),
        spaces.Box(0, 255, (8, 8, 3), np.uint8),
        spaces.Discrete(5, start=2),
        spaces.MultiDiscrete([4, 4, 3]),
        spaces.MultiBinary(6),
        spaces.Dict([("z", spaces.Discrete(2)), ("a", spaces.Box(-1, 1, (2,), np.float32))]),
        spaces.Tuple([spaces.Discrete(2), spaces.Box(-1, 1, (2,), np.float32)]),
    ],
    ids=lambda s: type(s).__name__,
)
def test_spaces_round_trip_through_json(space: spaces.Space) -> None:
    text = json.dumps(space_to_json(space), allow_nan=False)
    back = space_from_json(json.loads(text))
    assert back == space and type(back) is type(space)
    if isinstance(space, spaces.Dict):
        assert list(back.spaces) == ["z", "a"]  # the order given, not sorted: the graph's input order


# ---------------------------------------------------------------------------------------------- evaluate
def _short(tmp_path: Path, name: str, **params: Any) -> Path:
    sc = lepton_sim.load_scenario(name, **params)
    path = tmp_path / f"{name.replace('/', '-')}.yaml"
    path.write_text(yaml.safe_dump({**sc.model_dump(exclude={"name"}), "params": sc.params}))
    return path


@pytest.mark.parametrize(
    "which, fmt, episodes, params",
    [(LANE_KEEP, "onnx", 2, {"max_episode_steps": 60}), (CROSS, "torchscript", 1, {"duration": 300})],
)
def test_evaluate_on_an_export_gives_the_run_folders_report(
    runs: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    which: str,
    fmt: str,
    episodes: int,
    params: dict,
) -> None:
    run = runs[which]
    assert main(["export", str(run), "--format", fmt, "--out", str(tmp_path / "export")]) == 0
    out = capsys.readouterr().out
    assert f"as {fmt}: {tmp_path / 'export'}" in out and "checked: same actions" in out
    scenario = _short(tmp_path, which, **params)
    reports = {}
    for name, policy in (("run", run), ("export", tmp_path / "export")):
        argv = ["evaluate", str(policy), "--scenario", str(scenario), "--episodes", str(episodes), "--no-progress"]
        assert main([*argv, "--out", str(tmp_path / name)]) == 0
        reports[name] = json.loads((tmp_path / name / "report.json").read_text())
    capsys.readouterr()
    (mine,), (theirs,) = reports["export"]["rows"], reports["run"]["rows"]
    assert [e["seed"] for e in mine["episodes"]] == [e["seed"] for e in theirs["episodes"]]
    for a, b in zip(mine["episodes"], theirs["episodes"]):
        assert (a["length"], a["success"]) == (b["length"], b["success"])
        assert a["episode_return"] == pytest.approx(b["episode_return"], rel=1e-4, abs=1e-4)
        assert a["metrics"].keys() == b["metrics"].keys()
        for key, value in a["metrics"].items():  # null: a metric that did not apply
            assert value == b["metrics"][key] or value == pytest.approx(b["metrics"][key], rel=1e-4, abs=1e-4), key


# ---------------------------------------------------------------------------------------------- refusals
def test_what_cannot_be_exported_is_refused_in_one_line(
    runs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = runs[LANE_KEEP]
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "notes.txt").write_text("mine")
    outside = tmp_path / "model.zip"
    shutil.copy(run / "model.zip", outside)
    cases = [
        (["export", "random"], "no such run folder or model file"),
        (["export", str(outside)], "not inside a lepton-sim run folder"),
        (["export", str(run), "--out", str(tmp_path / "full")], "folder is not empty and holds no export"),
        (["export", str(run), "--out", str(tmp_path / "full" / "notes.txt")], "is a file"),
    ]
    for argv, message in cases:
        assert main(argv) == 1, argv
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, err
    assert (tmp_path / "full" / "notes.txt").read_text() == "mine"
    with pytest.raises(SystemExit) as usage:
        main(["export", str(run), "--format", "tflite"])
    assert usage.value.code == 2
    capsys.readouterr()

    # an export is replaced by the next one, and is itself no source of exports
    folder = export_policy(run, "torchscript", tmp_path / "export")
    (folder / "policy.pt").write_bytes(b"stale")
    assert export_policy(run, "torchscript", folder) == folder
    assert (folder / "policy.pt").read_bytes() != b"stale"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging folder left behind
    assert main(["export", str(folder)]) == 1
    assert "already an exported policy" in capsys.readouterr().err


def test_a_damaged_export_is_refused_in_one_line(
    exports: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = Path(shutil.copytree(exports(LANE_KEEP, "onnx"), tmp_path / "export"))
    scenario = _short(tmp_path, LANE_KEEP, max_episode_steps=10)
    argv = ["evaluate", str(folder), "--scenario", str(scenario), "--episodes", "1", "--no-progress"]

    (folder / "policy.onnx").write_bytes(b"not a graph")
    assert main([*argv, "--out", str(tmp_path / "r1")]) == 1
    err = capsys.readouterr().err
    assert "not a loadable ONNX graph" in err and len(err.strip().splitlines()) == 1

    (folder / "policy.onnx").unlink()
    assert main([*argv, "--out", str(tmp_path / "r2")]) == 1
    assert "the graph file policy.onnx named in spec.json is missing" in capsys.readouterr().err

    spec = json.loads((folder / "spec.json").read_text())
    (folder / "policy.onnx").write_bytes(b"x")
    (folder / "spec.json").write_text(json.dumps({**spec, "graph": {"format": "onnx"}}))
    with pytest.raises(lepton_sim.LeptonError, match="malformed export spec"):
        ExportedPolicy.load(folder)
