"""Physics facts of the manufacturing cell: gravity and the table, the belt's speed, the gripper, the cameras."""

from __future__ import annotations

import gymnasium
import numpy as np
import pybullet as p
import pytest

import lepton_sim.envs.manufacturing  # noqa: F401  (registers the ids)
from lepton_sim.envs.manufacturing.camera import OVERHEAD, WRIST_FAR, WRIST_NEAR
from lepton_sim.envs.manufacturing.conveyor_env import ACTIVE
from lepton_sim.envs.manufacturing.sim import CONTROL_DT

HOLD = np.zeros(4, dtype=np.float32)  # no displacement, fingers unchanged


@pytest.mark.parametrize("size", [0.03, 0.06])
def test_released_part_falls_and_settles_on_the_table(size: float) -> None:
    env = gymnasium.make("lepton/ArmPickPlace-v0", part_size=size).unwrapped
    try:
        env.reset(seed=0)
        cid = env.sim.cid
        p.resetBasePositionAndOrientation(env.part, (0.1, 0.1, 0.3), (0, 0, 0, 1), physicsClientId=cid)
        heights = []
        for _ in range(40):  # 1.6 s
            env.step(HOLD)
            heights.append(env.part_position[2])
    finally:
        env.close()
    # free fall from 0.3 m: after 0.2 s it has dropped 0.5 g t^2 = 0.196 m
    assert heights[4] == pytest.approx(0.3 - 0.5 * 9.81 * (5 * CONTROL_DT) ** 2, abs=0.01)
    assert heights[-1] == pytest.approx(size / 2, abs=0.002)  # resting on the table top (z = 0)
    assert abs(heights[-1] - heights[-10]) < 1e-4  # and at rest


@pytest.mark.parametrize("speed", [0.05, 0.15])
def test_part_on_the_belt_advances_at_the_set_speed(speed: float) -> None:
    env = gymnasium.make("lepton/ConveyorPick-v0", conveyor_speed=speed).unwrapped
    try:
        env.reset(seed=0)
        part = env.parts[0]
        for _ in range(5):  # let contact settle
            env.step(HOLD)
        y0 = part.position[1]
        for _ in range(round(1.0 / CONTROL_DT)):  # one simulated second
            env.step(HOLD)
        y1, x1 = part.position[1], part.position[0]
        assert part.status == ACTIVE
    finally:
        env.close()
    assert y1 - y0 == pytest.approx(speed, rel=0.05)
    assert abs(x1 - (0.05 + env.parts[0].offset)) < 0.005  # carried straight along the belt


def test_stopped_belt_keeps_parts_still() -> None:
    env = gymnasium.make("lepton/ConveyorPick-v0", conveyor_speed=0.0).unwrapped
    try:
        env.reset(seed=0)
        y0 = env.parts[0].position[1]
        for _ in range(25):
            env.step(HOLD)
        assert env.parts[0].position[1] == pytest.approx(y0, abs=0.002)
    finally:
        env.close()


def test_part_carried_out_of_reach_counts_as_missed() -> None:
    env = gymnasium.make("lepton/ConveyorPick-v0", conveyor_speed=0.3, parts_per_episode=1)
    try:
        env.reset(seed=0)
        rewards, info, terminated = [], {}, False
        for _ in range(200):
            _, reward, terminated, _, info = env.step(HOLD)
            rewards.append(reward)
            if terminated:
                break
    finally:
        env.close()
    assert terminated and info["missed"] == 1 and info["parts_placed"] == 0 and not info["is_success"]
    assert sum(rewards) == -1.0  # sparse: -1 per part lost


def test_gripper_grasps_and_lifts_a_part() -> None:
    from lepton_sim.agents.manufacturing.scripted import PickPlaceController

    env = gymnasium.make("lepton/ArmPickPlace-v0", target_on_table_prob=0.0, target_z=0.2)
    try:
        obs, _ = env.reset(seed=4)
        start = obs["observation"][7:10].copy()
        for _ in range(50):
            obs, _, terminated, _, info = env.step(PickPlaceController._one(obs["observation"], obs["desired_goal"]))
            if terminated:
                break
    finally:
        env.close()
    assert info["is_success"]
    assert obs["achieved_goal"][2] > start[2] + 0.1  # lifted against gravity by friction between the fingers


def test_grasped_start_holds_the_part_until_the_gripper_opens() -> None:
    """The pick-place training curriculum: the part starts between the fingers, is carried up with the hand, and
    falls to the table once the fingers open."""
    env = gymnasium.make("lepton/ArmPickPlace-v0", start_grasped_prob=1.0, start_grasped_height=0.1)
    try:
        obs, _ = env.reset(seed=0)
        o = obs["observation"]
        assert o[9] == pytest.approx(0.02 + 0.1, abs=1e-3) and np.linalg.norm(o[0:3] - o[7:10]) < 0.01
        for _ in range(5):  # up 5 x 2.5 cm, fingers still shut
            obs, *_ = env.step(np.array([0.0, 0.0, 0.5, -1.0], np.float32))
        o = obs["observation"]
        assert o[9] > 0.2 and np.linalg.norm(o[0:3] - o[7:10]) < 0.01
        for _ in range(20):  # fingers open, hand still: the part drops onto the table top
            obs, *_ = env.step(np.array([0.0, 0.0, 0.0, 1.0], np.float32))
        assert obs["observation"][9] == pytest.approx(0.02, abs=0.005)
    finally:
        env.close()


def test_grasped_start_share_follows_its_probability() -> None:
    env = gymnasium.make("lepton/ArmPickPlace-v0", start_grasped_prob=0.5)
    try:
        in_air = [env.reset(seed=seed)[0]["observation"][9] > 0.021 for seed in range(40)]
        again = [env.reset(seed=seed)[0]["observation"][9] > 0.021 for seed in range(40)]
    finally:
        env.close()
    assert 10 <= sum(in_air) <= 30 and in_air == again


def test_camera_images_shapes_and_depth() -> None:
    env = gymnasium.make("lepton/ConveyorSort-v0").unwrapped
    try:
        env.reset(seed=0)
        overhead = env.camera_image("overhead", 64, 48, depth=True)
        wrist = env.camera_image("wrist", 32, 32, depth=True)
        front = env.camera_image("front", 40, 30)
        with pytest.raises(ValueError, match="unknown camera 'side'; allowed: overhead, front, wrist"):
            env.camera_image("side")
    finally:
        env.close()
    assert overhead.rgb.shape == (48, 64, 3) and overhead.rgb.dtype == np.uint8
    assert overhead.depth.shape == (48, 64) and overhead.depth.dtype == np.float32
    assert front.rgb.shape == (30, 40, 3) and front.depth is None
    assert OVERHEAD.near < overhead.depth.min() and overhead.depth.max() < OVERHEAD.far
    assert 0.4 < np.median(overhead.depth) < 1.8  # the cell seen from 1.1 m above the table
    assert WRIST_NEAR <= wrist.depth.min() and wrist.depth.max() <= WRIST_FAR
    assert wrist.depth.min() < 0.5  # the table is below the hand, within reach


@pytest.mark.parametrize("defect_rate, colour_channel", [(0.0, 1), (1.0, 0)])  # good = green, defect = red
def test_part_class_and_depth_seen_by_the_overhead_camera(defect_rate: float, colour_channel: int) -> None:
    env = gymnasium.make("lepton/ConveyorSort-v0", defect_rate=defect_rate, part_offset=0.0).unwrapped
    try:
        env.reset(seed=0)
        for _ in range(15):
            env.step(HOLD)
        part = env.parts[0]
        camera = env.camera("overhead", 160, 160)
        image = camera.capture(depth=True)
        # a point on the part's top face beside the defect marking (a dark stripe along y)
        top = part.position + np.array([part.size * 0.3, 0.0, part.size / 2])
        (row, col), depth = camera.project(top[None])[0][0], camera.project(top[None])[1][0]
    finally:
        env.close()
    r, c = int(row), int(col)
    assert 0 <= r < 160 and 0 <= c < 160
    assert image.depth[r, c] == pytest.approx(depth, abs=0.01)  # the depth image measures the part's top
    pixel = image.rgb[r - 1 : r + 2, c - 1 : c + 2].reshape(-1, 3).astype(int).mean(axis=0)
    assert pixel[colour_channel] > 120 and pixel[colour_channel] > 2 * pixel[1 - colour_channel]
