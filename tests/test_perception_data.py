"""Perception datasets (lepton_sim/perception: collect, labels, dataset, show): collected labels agree with the
simulator's state observation of the same step in every domain, a replayed episode gives the same frames and
labels at the same steps, the loader reads back exactly what was written, splits never share an episode seed
and keep their shares, degradations cycle within each split, and broken folders are one clear error."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

import lepton_sim
from lepton_sim.errors import LeptonError
from lepton_sim.loading import load_policy
from lepton_sim.perception import collection as collect_module
from lepton_sim.perception.collection import collect, parse_degradation
from lepton_sim.perception.dataset import SPLITS, DatasetError, DatasetWriter, SplitAssigner, load_dataset
from lepton_sim.perception.labels import SECTOR_RANGE, labeller_for, sector_of
from lepton_sim.perception.show import show
from lepton_sim.policy import PolicyContext

CAMERA = {"camera_size": 48}


def _all_labels(ds):
    """Every split's frames and labels concatenated, with the split name per frame."""
    parts = [ds.split(s) for s in SPLITS]
    labels = {k: np.concatenate([p.labels[k] for p in parts]) for k in parts[0].labels}
    return np.concatenate([p.frames for p in parts]), labels, np.concatenate([p.seed for p in parts])


@pytest.fixture(scope="module")
def driving(tmp_path_factory):
    """obstacle-avoid, scripted, every 4th step of 100-step episodes: the ego reaches the first obstacles."""
    written = []
    original = DatasetWriter.add

    def spy(self, split, frame, seed, step, labels):
        written.append((split, frame.copy(), seed, step, {k: np.array(v, copy=True) for k, v in labels.items()}))
        original(self, split, frame, seed, step, labels)

    mp = pytest.MonkeyPatch()
    mp.setattr(DatasetWriter, "add", spy)
    try:
        root = collect(
            "driving/obstacle-avoid",
            96,
            tmp_path_factory.mktemp("perception") / "driving",
            policy="scripted",
            overrides=CAMERA,
            sensors=["clean", "noise@2"],
            max_episode_frames=24,
            stride=4,
            shard_frames=10,
            progress=False,
        )
    finally:
        mp.undo()
    return root, written


def test_driving_labels_agree_with_the_state_observation(driving):
    root, _ = driving
    ds = load_dataset(root)
    _, labels, _ = _all_labels(ds)
    state = labels["state"]
    np.testing.assert_array_equal(labels["heading_error"][:, 0], state[:, 1])
    np.testing.assert_allclose(labels["lane_offset"][:, 0], state[:, 2] * 5.0, rtol=1e-5, atol=1e-5)
    params = ds.manifest["params"]
    k, r, q = params["num_waypoints"], params["lidar_rays"], params["num_objects"]
    lidar = state[:, 19 + 2 * k : 19 + 2 * k + r] * params["lidar_range"]
    # the state's lidar sees road edges too, so it is never farther than the nearest object along a ray
    assert np.all(lidar <= labels["object_distance"] + 1e-3)
    assert (labels["object_distance"] < params["lidar_range"]).any()
    objects = state[:, 19 + 2 * k + r :].reshape(len(state), q, 7)
    occupied = labels["obstacle_occupancy"] | labels["vehicle_occupancy"]
    near_any = 0
    for i in range(len(state)):
        for present, x, y, *_ in objects[i]:
            if present and math.hypot(x * 50, y * 50) < SECTOR_RANGE - 0.5:
                assert occupied[i, sector_of(math.atan2(y, x))], (i, x * 50, y * 50)
                near_any += 1
        for sector in np.flatnonzero(occupied[i]):  # something is there: an object within reach of the sector
            dist = np.hypot(objects[i, :, 1], objects[i, :, 2]) * 50
            assert (objects[i, :, 0] > 0)[dist < SECTOR_RANGE + 3.0].any(), (i, sector)
    assert near_any > 0 and labels["obstacle_occupancy"].any()
    assert not labels["vehicle_occupancy"].any()  # obstacle-avoid has no other vehicles


def test_a_replayed_episode_gives_the_same_frames_and_labels_at_the_same_steps(driving):
    root, _ = driving
    ds = load_dataset(root)
    train = ds.split("train")
    seed = int(train.seed[0])
    rows = np.flatnonzero(train.seed == seed)
    scenario = lepton_sim.load_scenario("driving/obstacle-avoid", **CAMERA)
    episode = next(e for e in ds.episodes if e.seed == seed)
    assert episode.degradation == "clean"
    env = lepton_sim.make(scenario.with_params({"obs_mode": "state+pixels"}))
    policy = load_policy("scripted", scenario)
    labeller, layout = labeller_for(env.unwrapped, env.observation_space["state"])
    obs, info = env.reset(seed=seed)
    policy.reset(PolicyContext(env.observation_space["state"], env.action_space, [seed], params=scenario.params))
    seen = {}
    for step in range(int(train.step[rows].max()) + 1):
        if step % 4 == 0:
            seen[step] = (obs["pixels"], labeller.read(env.unwrapped), obs["state"])
        action, _ = policy.act(obs["state"][None], None, np.array([step == 0]), info=None)
        obs, *_ = env.step(action[0])
    for row in rows:
        frame, labels, state = seen[int(train.step[row])]
        np.testing.assert_array_equal(train.frames[row], frame)
        np.testing.assert_array_equal(train.labels["state"][row], state)
        for name, value in labels.items():
            np.testing.assert_array_equal(train.labels[name][row], value)
    env.close()


def test_the_loader_reads_back_exactly_what_was_written(driving):
    root, written = driving
    ds = load_dataset(root)
    assert len(written) == ds.manifest["frames"] == 96
    for split in SPLITS:
        mine = [w for w in written if w[0] == split]
        data = ds.split(split)
        assert len(data) == len(mine) > 0
        np.testing.assert_array_equal(data.frames, np.stack([w[1] for w in mine]))
        np.testing.assert_array_equal(data.seed, [w[2] for w in mine])
        np.testing.assert_array_equal(data.step, [w[3] for w in mine])
        for spec in ds.schema:
            expected = np.stack([w[4][spec.name] for w in mine]).astype(spec.dtype)
            assert data.labels[spec.name].dtype == spec.dtype
            np.testing.assert_array_equal(data.labels[spec.name], expected)
        assert data.frames.dtype == np.uint8 and data.frames.shape[1:] == (48, 48, 3)
    assert len(ds.manifest["splits"]["train"]["shards"]) == 2  # shard_frames=10: a shard per 24-frame episode


def test_splits_never_share_seeds_and_degradations_cycle_within_each_split(driving):
    root, _ = driving
    m = load_dataset(root).manifest
    seeds = {s: set(m["splits"][s]["seeds"]) for s in SPLITS}
    assert all(seeds.values())
    assert (
        not (seeds["train"] & seeds["val"])
        and not (seeds["train"] & seeds["test"])
        and not (seeds["val"] & seeds["test"])
    )
    ds = load_dataset(root)
    for s in SPLITS:
        assert set(ds.split(s).seed.tolist()) == seeds[s]
    train = [e for e in ds.episodes if e.split == "train"]
    assert [e.degradation for e in train[:2]] == ["clean", "noise@2"] and train[1].severity == 2
    assert train[1].sensor["severity"] == 2 and train[0].sensor["severity"] == 0


def test_split_assigner_keeps_the_shares_whatever_the_episode_lengths():
    rng = np.random.default_rng(0)
    a = SplitAssigner((0.7, 0.2, 0.1))
    assert [a.next() for _ in range(1)] == ["train"]
    order = []
    for _ in range(400):
        split = a.next()
        order.append(split)
        a.add(split, int(rng.integers(1, 300)))
    assert order[:3] == ["train", "val", "test"]
    np.testing.assert_allclose(a.frames / a.frames.sum(), [0.7, 0.2, 0.1], atol=0.01)
    with pytest.raises(LeptonError, match="sum"):
        SplitAssigner((0.5, 0.2, 0.2))


def test_conveyor_sort_labels_agree_with_the_state_slots(tmp_path):
    root = collect(
        "manufacturing/conveyor-sort",
        30,
        tmp_path / "sort",
        policy="scripted",
        overrides=CAMERA,
        max_episode_frames=10,
        stride=6,
        progress=False,
    )
    ds = load_dataset(root)
    names = [s.name for s in ds.schema]
    assert names[:6] == ["state", "gripper_position", "part_present", "part_position", "part_class", "defect"]
    assert names[6:] == ["part_inspected", "inspected_class", "inspected_defect"]  # the inspection camera's part
    assert ds.label("inspected_class").mask == ds.label("inspected_defect").mask == "part_inspected"
    assert ds.label("part_class").classes == ("good", "defect-1")
    assert ds.label("part_position").mask == "part_present"
    _, labels, _ = _all_labels(ds)
    state = labels["state"]
    np.testing.assert_allclose(labels["gripper_position"], state[:, 0:3], atol=1e-6)
    np.testing.assert_array_equal(labels["part_present"][:, 0], state[:, 8])
    present = labels["part_present"][:, 0] > 0
    assert present.any()
    np.testing.assert_allclose(labels["part_position"][present], state[present, 9:12], atol=1e-6)
    np.testing.assert_array_equal(labels["part_class"][present], state[present, 16:20].argmax(axis=1))
    np.testing.assert_array_equal(labels["defect"][:, 0], (labels["part_class"] > 0) & present)


def test_pick_place_labels_agree_with_the_goal_observation(tmp_path):
    root = collect(
        "manufacturing/pick-place", 12, tmp_path / "pp", overrides=CAMERA, max_episode_frames=4, progress=False
    )
    ds = load_dataset(root)
    assert [p[0] for p in ds.state_layout.parts] == ["achieved_goal", "desired_goal", "observation"]
    _, labels, _ = _all_labels(ds)
    state = labels["state"]
    assert state.shape[1] == 3 + 3 + 20
    np.testing.assert_allclose(labels["part_position"], state[:, 0:3], atol=1e-6)
    np.testing.assert_allclose(labels["target_position"], state[:, 3:6], atol=1e-6)
    np.testing.assert_allclose(labels["gripper_position"], state[:, 6:9], atol=1e-6)
    back = ds.state_layout.unflatten(state)
    assert set(back) == {"achieved_goal", "desired_goal", "observation"} and back["observation"].shape == (12, 20)


def test_traffic_labels_agree_with_the_queue_observation(tmp_path):
    root = collect(
        "traffic/single-intersection",
        12,
        tmp_path / "cross",
        policy="fixed-time",
        overrides=CAMERA,
        max_episode_frames=4,
        stride=3,
        progress=False,
    )
    ds = load_dataset(root)
    _, labels, _ = _all_labels(ds)
    state = labels["state"]
    lanes = ds.label("queue_length").shape[0]
    phases = state.shape[1] - 1 - 2 * lanes
    assert len(ds.label("phase").classes) == phases
    np.testing.assert_array_equal(labels["phase"], state[:, :phases].argmax(axis=1))
    density, queue = state[:, phases + 1 : phases + 1 + lanes], state[:, phases + 1 + lanes :]
    np.testing.assert_array_equal(labels["queue_length"] == 0, queue == 0)
    np.testing.assert_array_equal(labels["vehicle_count"] == 0, density == 0)
    assert np.all(labels["vehicle_count"] >= labels["queue_length"]) and labels["vehicle_count"].sum() > 0


def test_show_summarises_and_writes_a_contact_sheet(driving, tmp_path):
    root, _ = driving
    lines, sheet = show(root, tmp_path / "sheet.png")
    text = "\n".join(lines)
    assert "96 frames of 48x48x3" in text and "obstacle_occupancy" in text and "noise@2" in text
    assert sheet.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_broken_dataset_folders_are_one_clear_error(driving, tmp_path):
    root, _ = driving
    with pytest.raises(DatasetError, match="no such dataset folder"):
        load_dataset(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no manifest.json"):
        load_dataset(tmp_path / "empty")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "manifest.json").write_text('{"format": "something-else"}')
    with pytest.raises(DatasetError, match="not a lepton-sim perception dataset"):
        load_dataset(bad)
    copy = tmp_path / "copy"
    copy.mkdir()
    (copy / "manifest.json").write_text((root / "manifest.json").read_text())
    (copy / "shards").mkdir()
    manifest = json.loads((root / "manifest.json").read_text())
    first = manifest["splits"]["train"]["shards"][0]
    (copy / first).write_bytes(b"not an npz at all")
    with pytest.raises(DatasetError, match="unreadable shard") as err:
        load_dataset(copy).split("train")
    assert "\n" not in str(err.value)
    with pytest.raises(DatasetError, match="shard missing"):
        load_dataset(copy).split("val")


def test_collect_refuses_a_used_folder_and_bad_degradations(driving, tmp_path):
    root, _ = driving
    with pytest.raises(LeptonError, match="not an empty folder"):
        collect("driving/lane-keep", 4, root, progress=False)
    for bad, message in (("blur@9", "severity"), ("smudge@2", "unknown corruption"), ("blur", "expected")):
        with pytest.raises(LeptonError, match=message):
            parse_degradation(bad)
    assert parse_degradation("noise+blur@3").corruptions == ("noise", "blur")
    assert parse_degradation("all@4").sensor() == {"severity": 4}
    assert parse_degradation("clean").sensor() == {} and parse_degradation("scenario").sensor() is None
    assert not (tmp_path / "x").exists()
    with pytest.raises(LeptonError):
        collect("driving/lane-keep", 4, tmp_path / "x", sensors=["blur@7"], progress=False)
    assert not (tmp_path / "x").exists()  # refused before anything is written


def test_a_state_policy_gets_the_state_and_a_pixel_policy_its_image():
    env = lepton_sim.make("driving/lane-keep", obs_mode="state+pixels", **CAMERA)
    obs, _ = env.reset(seed=0)
    space = env.observation_space

    class Fake:
        name = "fake"
        env_overrides: dict = {}

        def __init__(self, observation_space):
            self.observation_space = observation_space

    state_feed = collect_module._Feed(Fake(space["state"]), space, space["state"])
    assert state_feed(obs, obs["state"]).shape == (1, *space["state"].shape)
    pixel_feed = collect_module._Feed(Fake(space["pixels"]), space, space["state"])
    assert pixel_feed(obs, obs["state"]).shape == (1, 48, 48, 3)
    both = collect_module._Feed(Fake(space), space, space["state"])
    assert set(both(obs, obs["state"])) == {"pixels", "state"}
    env.close()
