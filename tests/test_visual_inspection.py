"""Visual inspection and waste sorting: the class shows in camera images only, so routing from state is chance.

The tests replay one episode in "worlds" whose classes are permuted (class c -> c + j mod K, the env's own draw
kept, so the physics stream is untouched): the state observation is then bit-identical across worlds while the
images differ exactly at the parts, and a state controller, acting alike in every world, routes each part right
in exactly one of the K worlds: chance, 1/K, whatever it does.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import lepton_sim
from lepton_sim.agents.manufacturing.inspection import BlindSorter, OracleSorter
from lepton_sim.envs.manufacturing.inspection import class_indices
from lepton_sim.envs.manufacturing.segmentation import part_class_id
from lepton_sim.errors import ScenarioError
from lepton_sim.policy import PolicyContext
from lepton_sim.scenario import suite_items

TASKS = {"manufacturing/visual-inspection": 2, "manufacturing/waste-sorting": 4}
FAST = {"parts_per_episode": 3, "arrival_rate": 0.5}


def _world(scenario: str, shift: int, **params: Any) -> Any:
    env = lepton_sim.make(scenario, **{**FAST, **params})
    base = env.unwrapped
    k = base.num_classes
    draw = base._sample_class
    base._sample_class = lambda: (draw() + shift) % k
    return env


def _images(base: Any) -> tuple[np.ndarray, np.ndarray]:
    image = base.camera_image("overhead", 84, 84, segmentation=True)
    return image.rgb.astype(int), image.segmentation


def _grown(mask: np.ndarray) -> np.ndarray:
    """``mask`` and its 8 neighbours."""
    out = mask.copy()
    for dr in (-1, 0, 1):
        for dc in (-1, 0, 1):
            out |= np.roll(np.roll(mask, dr, axis=0), dc, axis=1)
    return out


@pytest.mark.parametrize("scenario", TASKS)
def test_the_class_shows_in_images_and_never_in_the_state(scenario: str) -> None:
    worlds = [_world(scenario, shift) for shift in (0, 1)]
    try:
        observations = [env.reset(seed=11)[0] for env in worlds]
        rng = np.random.default_rng(0)
        differing = 0
        for step in range(60):
            np.testing.assert_array_equal(observations[0], observations[1])  # positions only, bit for bit
            assert not observations[0][class_indices()].any()
            if step % 20 == 19:
                (rgb_a, seg_a), (rgb_b, seg_b) = (_images(env.unwrapped) for env in worlds)
                parts_a, parts_b = seg_a >= part_class_id(0), seg_b >= part_class_id(0)
                # the same parts in the same places (a defect's patch, a hair above the face, may cover one more
                # pixel at the silhouette)
                assert (parts_a != parts_b).sum() <= 3
                parts = _grown(parts_a | parts_b)
                assert not (seg_a != seg_b)[~parts].any()  # the class ids differ on the parts only ...
                changed = np.abs(rgb_a - rgb_b).sum(axis=2) > 0
                assert not changed[~parts].any()  # ... and so do the colours
                base = worlds[0].unwrapped
                camera = base.camera("overhead", 84, 84)
                for q in (q for q in base.parts if q.body >= 0):
                    pixel, _ = camera.project(q.position[None])
                    r, c = (int(v) for v in pixel[0])
                    if seg_a[r, c] < part_class_id(0):
                        continue  # hidden by the arm
                    assert seg_a[r, c] == part_class_id(q.part_class)
                    assert seg_b[r, c] == part_class_id((q.part_class + 1) % base.num_classes)
                    mask = np.zeros_like(parts_a)
                    mask[max(r - 3, 0) : r + 4, max(c - 3, 0) : c + 4] = True
                    differing += int(changed[mask & parts].any())
            action = rng.uniform(-1, 1, 4).astype(np.float32)
            observations = [env.step(action)[0] for env in worlds]
        assert differing >= 2  # the parts seen look different in the two worlds
        oracle = [env.unwrapped.oracle_observation() for env in worlds]
        assert not np.array_equal(oracle[0], oracle[1])  # what a perception model must supply
    finally:
        for env in worlds:
            env.close()


def _routed(env: Any, policy: Any, seed: int) -> tuple[list[tuple[int, str]], list[np.ndarray]]:
    """(class, outcome) of every part and the observations seen, for one episode of ``policy``."""
    obs, info = env.reset(seed=seed)
    policy.reset(PolicyContext(env.observation_space, env.action_space, [seed]))
    seen, start = [obs], np.array([True])
    for _ in range(env.spec.max_episode_steps):
        action, _ = policy.act(obs[None], None, start, info=info)
        obs, _, terminated, truncated, info = env.step(action[0])
        seen.append(obs)
        start = np.array([False])
        if terminated or truncated:
            break
    names = {2: "correct", 3: "mis-sorted", 4: "dropped", 5: "missed"}
    return [(q.part_class, names.get(q.status, "unresolved")) for q in env.unwrapped.parts], seen


@pytest.mark.parametrize("scenario", TASKS)
def test_routing_from_the_state_observation_is_chance(scenario: str) -> None:
    """K worlds (classes shifted by 0..K-1): a state controller sees and does the same in each, so every binned
    part is right in exactly one world: its correct routings average exactly 1/K of the binned parts."""
    k = TASKS[scenario]
    outcomes, observations = [], []
    for shift in range(k):
        env = _world(scenario, shift, max_episode_steps=400)
        try:
            routed, seen = _routed(env, BlindSorter(num_bins=k, seed=5), seed=21)
        finally:
            env.close()
        outcomes.append([o for _, o in routed])
        observations.append(np.stack(seen))
    for seen in observations[1:]:
        np.testing.assert_array_equal(seen, observations[0])
    binned = np.array([[o in ("correct", "mis-sorted") for o in row] for row in outcomes])
    correct = np.array([[o == "correct" for o in row] for row in outcomes])
    assert (binned == binned[0]).all() and binned[0].sum() >= 2
    np.testing.assert_array_equal(correct.sum(axis=0), binned[0])  # each binned part right in one world
    assert correct.sum() / binned.sum() == pytest.approx(1.0 / k)


def test_the_oracle_controller_routes_by_the_class_and_the_blind_one_does_not() -> None:
    env = lepton_sim.make("manufacturing/waste-sorting", **FAST, oracle_class=True)
    try:
        oracle, _ = _routed(env, OracleSorter(), seed=21)
        blind, _ = _routed(env, BlindSorter(num_bins=4, fixed=0), seed=21)
    finally:
        env.close()
    assert sum(o == "correct" for _, o in oracle) >= 2 and not any(o == "mis-sorted" for _, o in oracle)
    assert all(o == ("correct" if c == 0 else "mis-sorted") for c, o in blind if o in ("correct", "mis-sorted"))


@pytest.mark.parametrize(
    "scenario, unseen",
    [
        ("manufacturing/visual-inspection", {"defect_size": [0.3, 0.45], "defect_contrast": 0.4, "colour_jitter": 0.1}),
        ("manufacturing/waste-sorting", {"material_variants": [2], "colour_jitter": 0.1}),
    ],
)
def test_appearance_parameters_never_change_the_episode(scenario: str, unseen: dict[str, Any]) -> None:
    envs = [lepton_sim.make(scenario, **FAST), lepton_sim.make(scenario, **FAST, **unseen)]
    try:
        first = [env.reset(seed=4) for env in envs]
        rng = np.random.default_rng(1)
        steps = [first]
        for _ in range(40):
            action = rng.uniform(-1, 1, 4).astype(np.float32)
            steps.append([env.step(action) for env in envs])
        for a, b in steps:
            np.testing.assert_array_equal(a[0], b[0])
            assert str(a[1:]) == str(b[1:])  # rewards, flags, infos (NaN-safe)
        images = [env.unwrapped.camera_image("overhead", 84, 84).rgb for env in envs]
        assert not np.array_equal(*images)
    finally:
        for env in envs:
            env.close()


@pytest.mark.parametrize(
    "scenario, params, words",
    [
        ("manufacturing/visual-inspection", {"defect_kinds": ["crack"]}, ["crack", "scratch, dent, discolouration"]),
        ("manufacturing/visual-inspection", {"defect_kinds": []}, ["defect_kinds"]),
        ("manufacturing/visual-inspection", {"defect_size": [0.0, 0.5]}, ["defect_size", "0.1"]),
        ("manufacturing/waste-sorting", {"material_variants": [3]}, ["material_variants", "0-2"]),
        ("manufacturing/waste-sorting", {"num_bins": 3}, ["num_classes", "bins"]),
    ],
)
def test_bad_appearance_parameters_name_the_field(scenario: str, params: dict[str, Any], words: list[str]) -> None:
    with pytest.raises(ScenarioError) as err:
        lepton_sim.load_scenario(scenario, **params)
    for word in words:
        assert word in str(err.value)


def test_the_suite_and_the_scripted_baseline_use_the_oracle_class() -> None:
    suite = lepton_sim.load_suite("manufacturing/inspection")
    labels = {item.label for item in suite_items(suite, "test")}
    assert {
        "visual-inspection-unseen-lighting",
        "visual-inspection-unseen-defects",
        "waste-sorting-unseen-looks",
    } <= labels
    scenario = lepton_sim.load_scenario("manufacturing/visual-inspection", **FAST)
    report = lepton_sim.evaluate("scripted", scenario=scenario, episodes=1, progress=False)
    (row,) = report.rows
    assert row.env_overrides["oracle_class"] is True  # the baseline asks for the oracle state
    assert row.episodes[0].metrics["parts_placed"] >= 2


@pytest.mark.parametrize("scenario", TASKS)
def test_the_inspection_camera_shows_each_part_and_its_class_plainly(scenario: str) -> None:
    """The scenarios' camera: a close view where parts enter; at 64x64 a part is a big square (not 2-3 pixels)
    and a good and a defective part (or two materials) differ over many pixels, not a few."""
    from lepton_sim.envs.manufacturing.camera import under_inspection
    from lepton_sim.perception.labels import labeller_for

    worlds = [_world(scenario, shift) for shift in (0, 1)]
    try:
        base = worlds[0].unwrapped
        assert base.params.obs_camera == "inspection"
        labeller, _ = labeller_for(base, worlds[0].observation_space)
        for env in worlds:
            env.reset(seed=3)
        seen = 0
        for _ in range(120):
            inspected = [q for q in base.parts if q.body >= 0 and under_inspection(q.position, q.size / 2)]
            labels = labeller.read(base)
            assert labels["part_inspected"][0] == bool(inspected)
            for q in inspected[:1]:
                assert labels["inspected_defect"][0] == (q.part_class > 0)
                images = [env.unwrapped.camera_image("inspection", 64, 64, segmentation=True) for env in worlds]
                pixel, _ = base.camera("inspection", 64, 64).project(q.position[None] + [0.0, 0.0, q.size / 2])
                r, c = (int(v) for v in pixel[0])
                assert images[0].segmentation[r, c] == part_class_id(q.part_class)
                assert images[1].segmentation[r, c] == part_class_id((q.part_class + 1) % base.num_classes)
                part = images[0].segmentation >= part_class_id(0)
                assert 64 * 64 * 0.05 < part.sum() < 64 * 64 * 0.3  # ~(25-40 % of the side)^2
                changed = np.abs(images[0].rgb.astype(int) - images[1].rgb.astype(int)).sum(axis=2) > 30
                assert changed.sum() >= 12, changed.sum()  # the defect / material: far more than a few pixels
                seen += 1
            for env in worlds:
                env.step(np.zeros(4, np.float32))
        assert seen >= 10
    finally:
        for env in worlds:
            env.close()
