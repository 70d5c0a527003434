"""The manufacturing cameras: fast images equal the plain render, depth and segmentation agree with geometry, the
camera conditions (sensor realism's pose and light) change what they should, and cameras never change physics."""

from __future__ import annotations

from contextlib import closing

import gymnasium
import numpy as np
import pybullet as p
import pytest

import lepton_sim.envs.manufacturing  # noqa: F401
from lepton_sim.envs.camera_image import NOMINAL, CameraConditions
from lepton_sim.envs.manufacturing import arm_env
from lepton_sim.envs.manufacturing.arm_env import MAX_CAMERAS
from lepton_sim.envs.manufacturing.background import Layer, floor_hidden_by_table, tied
from lepton_sim.envs.manufacturing.camera import RawFrame
from lepton_sim.envs.manufacturing.params import LIGHT_DIRECTION, ArmParams
from lepton_sim.envs.manufacturing.segmentation import (
    BELT,
    BIN,
    FLOOR,
    ROBOT,
    TABLE,
    TARGET,
    class_lookup,
    classes_of,
    part_class_id,
)

ENV_IDS = ("lepton/ArmReach-v0", "lepton/ArmPickPlace-v0", "lepton/ConveyorPick-v0", "lepton/ConveyorSort-v0")
JITTERED = CameraConditions(
    offset=(0.01, -0.01, 0.02),
    rotation=(2.0, -3.0, 4.0),
    fov_delta=3.0,
    light_direction=(0.3, 0.2, 0.9),
    light_color=(1.0, 0.8, 0.6),
)
HOLD = np.zeros(4, dtype=np.float32)


def _base(env_id: str, **kwargs: object):  # noqa: ANN202 - the unwrapped arm env
    return gymnasium.make(env_id, **kwargs).unwrapped


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_fast_images_equal_the_plain_render(env_id: str) -> None:
    """The cached floor-and-table background (fixed cameras) and the floor skipped under a wrist camera over the
    table give the plain render's rgb, depth and segmentation pixel for pixel, nominal or jittered."""
    env = _base(env_id)
    rng = np.random.default_rng(0)
    try:
        env.reset(seed=1)
        for step in range(12):
            env.step(rng.uniform(-1, 1, env.action_space.shape).astype(np.float32))
            if step % 3:
                continue
            for name in ("overhead", "front", "wrist", "inspection"):
                for conditions in (NOMINAL, JITTERED):
                    fast = env.camera_image(name, 48, 40, depth=True, segmentation=True, conditions=conditions)
                    camera = env.camera(name, 48, 40, conditions)
                    plain = camera.render(segmentation=True)
                    assert fast.rgb.shape == (40, 48, 3) and fast.rgb.dtype == np.uint8
                    assert np.array_equal(fast.rgb, plain.rgba[..., :3]), (name, step, conditions)
                    assert np.array_equal(fast.depth, camera.linear_depth(plain.zbuffer))
                    lut = class_lookup(env._segmentation_bodies())
                    assert np.array_equal(fast.segmentation, classes_of(plain.bodies, lut))
                    assert fast.segmentation.dtype == np.int32 and fast.depth.dtype == np.float32
    finally:
        env.close()


def test_nominal_images_are_the_renders_of_before_the_conditions() -> None:
    """Nominal conditions render exactly what a plain getCameraImage without light arguments gives (the images
    of before the camera conditions existed), also after a jittered light (PyBullet keeps the last light)."""
    env = _base("lepton/ConveyorSort-v0", defect_rate=0.5)
    try:
        env.reset(seed=0)
        for _ in range(20):
            env.step(HOLD)
        camera = env.camera("overhead", 64, 64)
        _, _, before, _, _ = p.getCameraImage(
            64,
            64,
            camera.view,
            camera.projection,
            shadow=0,
            renderer=p.ER_TINY_RENDERER,
            flags=p.ER_NO_SEGMENTATION_MASK,
            physicsClientId=env.sim.cid,
        )
        first = env.camera_image("overhead", 64, 64)
        env.camera_image("overhead", 64, 64, conditions=JITTERED)
        again = env.camera_image("overhead", 64, 64, conditions=CameraConditions())
    finally:
        env.close()
    assert np.array_equal(first.rgb, np.asarray(before)[..., :3])
    assert np.array_equal(again.rgb, first.rgb)


def test_a_moved_part_changes_pixels_where_it_is_projected() -> None:
    env = _base("lepton/ArmPickPlace-v0", part_x=0.1, part_y=-0.1, target_x=-0.1, target_y=0.1)
    try:
        env.reset(seed=0)
        camera = env.camera("overhead", 96, 96)
        before = env.camera_image("overhead", 96, 96).rgb.astype(int)
        old = env.part_position
        new = old + np.array([-0.05, 0.2, 0.0])
        p.resetBasePositionAndOrientation(env.part, new.tolist(), (0, 0, 0, 1), physicsClientId=env.sim.cid)
        after = env.camera_image("overhead", 96, 96).rgb.astype(int)
        (old_px, new_px), _ = camera.project(np.stack([old, new]) + np.array([0.0, 0.0, env.part_size / 2]))
    finally:
        env.close()
    changed = np.abs(after - before).sum(axis=-1) > 30
    for row, col in (old_px, new_px):  # the part left one place and appeared at the other
        assert changed[int(row) - 1 : int(row) + 2, int(col) - 1 : int(col) + 2].all()
    ys, xs = np.nonzero(changed)  # and nothing changed far from both
    near = np.minimum(np.hypot(ys - old_px[0], xs - old_px[1]), np.hypot(ys - new_px[0], xs - new_px[1]))
    assert near.max() < 8


@pytest.mark.parametrize("name", ["overhead", "front", "wrist"])
def test_depth_at_a_projected_point_is_its_distance_along_the_optical_axis(name: str) -> None:
    env = _base("lepton/ArmPickPlace-v0", part_x=0.05, part_y=0.0)
    try:
        env.reset(seed=0)
        if name == "wrist":  # the hand above the part, so that the wrist camera sees its top
            for _ in range(8):
                goal = env.part_position + np.array([0.0, 0.0, 0.15])
                env.step(np.r_[np.clip((goal - env.robot.ee_position) / 0.05, -1, 1), 1.0].astype(np.float32))
        camera = env.camera(name, 128, 128)
        image = env.camera_image(name, 128, 128, depth=True)
        top = env.part_position + np.array([0.004, 0.004, env.part_size / 2])
        (row, col), expected = camera.project(top[None])[0][0], camera.project(top[None])[1][0]
    finally:
        env.close()
    assert image.depth[int(row), int(col)] == pytest.approx(expected, abs=0.01)


def test_segmentation_names_parts_by_class_and_the_cell_by_kind() -> None:
    env = _base("lepton/ConveyorSort-v0", defect_rate=1.0, num_classes=2, part_offset=0.0)
    try:
        env.reset(seed=0)
        for _ in range(15):
            env.step(HOLD)
        part = env.parts[0]
        for conditions in (NOMINAL, JITTERED):  # the jittered pose projects where it renders
            camera = env.camera("overhead", 160, 160, conditions)
            image = env.camera_image("overhead", 160, 160, segmentation=True, conditions=conditions)
            top = part.position + np.array([part.size * 0.3, 0.0, part.size / 2])
            row, col = camera.project(top[None])[0][0]
            assert image.segmentation[int(row), int(col)] == part_class_id(part.part_class) == part_class_id(1)
        seen = set(np.unique(env.camera_image("overhead", 160, 160, segmentation=True).segmentation))
    finally:
        env.close()
    assert {FLOOR, TABLE, ROBOT, BELT, BIN, part_class_id(1)} <= seen
    env = _base("lepton/ArmReach-v0", target_x=0.1, target_y=0.1, target_z=0.1)
    try:
        env.reset(seed=0)
        camera = env.camera("front", 96, 96)
        image = env.camera_image("front", 96, 96, segmentation=True)
        row, col = camera.project(env.goal[None])[0][0]
    finally:
        env.close()
    assert image.segmentation[int(row), int(col)] == TARGET


def test_conditions_move_the_camera_and_change_the_light() -> None:
    env = _base("lepton/ArmPickPlace-v0")
    try:
        env.reset(seed=0)
        nominal = env.camera_image("overhead", 64, 64).rgb.astype(float)
        images = {
            field: env.camera_image("overhead", 64, 64, conditions=CameraConditions(**{field: value})).rgb
            for field, value in (
                ("offset", (0.02, 0.0, 0.0)),
                ("rotation", (0.0, 0.0, 5.0)),
                ("fov_delta", 5.0),
                ("light_direction", (0.5, -0.5, 0.7)),
                ("light_color", (1.0, 0.3, 0.3)),
            )
        }
        wrist = env.camera_image("wrist", 64, 64).rgb
        wrist_moved = env.camera_image("wrist", 64, 64, conditions=CameraConditions(offset=(0.0, 0.0, 0.05))).rgb
        default_light = env.camera_image(
            "overhead", 64, 64, conditions=CameraConditions(light_direction=LIGHT_DIRECTION, light_color=(1, 1, 1))
        )
        # a camera moved right sees the scene shifted left: the offset is in the camera's frame
        a, b = env.camera("overhead", 64, 64), env.camera("overhead", 64, 64, CameraConditions(offset=(0.02, 0, 0)))
        point = np.array([[0.0, 0.0, 0.0]])
        shift = b.project(point)[0][0] - a.project(point)[0][0]
    finally:
        env.close()
    for field, image in images.items():
        assert np.abs(image.astype(float) - nominal).mean() > 0.5, field
    assert not np.array_equal(wrist, wrist_moved)
    assert np.array_equal(default_light.rgb, nominal.astype(np.uint8))  # the nominal light, named explicitly
    assert shift[1] < -0.5 and abs(shift[0]) < 0.1
    red = images["light_color"].astype(float)
    # a red light keeps red and dims green and blue (the ambient term is not coloured)
    assert red[..., 2].mean() < nominal[..., 2].mean() - 3 and abs(red[..., 0].mean() - nominal[..., 0].mean()) < 1
    assert ArmParams.LIGHT_DIRECTION == pytest.approx(LIGHT_DIRECTION)


def test_unknown_camera_names_the_allowed_ones() -> None:
    env = _base("lepton/ArmReach-v0")
    try:
        env.reset(seed=0)
        with pytest.raises(ValueError, match="unknown camera 'side'; allowed: overhead, front, wrist"):
            env.camera_image("side", 32, 32)
    finally:
        env.close()
    with pytest.raises(ValueError, match="unknown camera 'side'; allowed: overhead, front, wrist"):
        ArmParams(obs_camera=["overhead", "side"])
    assert ArmParams().cameras == ("overhead",)


def test_wrist_camera_skips_only_what_it_cannot_see() -> None:
    env = _base("lepton/ArmPickPlace-v0")
    try:
        env.reset(seed=0)
        # the neutral pose sees the floor past the table's far edge (x = 0.25 m)
        assert not floor_hidden_by_table(env.camera("wrist", 64, 64))
        assert FLOOR in env.camera_image("wrist", 64, 64, segmentation=True).segmentation
        env.robot.hold_at(np.array([-0.25, 0.0, 0.1]), 0.0)  # low over the middle of the table
        assert floor_hidden_by_table(env.camera("wrist", 64, 64))
        fast = env.camera_image("wrist", 64, 64, depth=True, segmentation=True)
        plain = env.camera("wrist", 64, 64).render(segmentation=True)
        assert FLOOR not in fast.segmentation and np.array_equal(fast.rgb, plain.rgba[..., :3])
        assert not floor_hidden_by_table(env.camera("wrist", 64, 64, CameraConditions(fov_delta=100.0)))
        assert not floor_hidden_by_table(env.camera("wrist", 64, 64, CameraConditions(rotation=(0.0, 80.0, 0.0))))
        assert not floor_hidden_by_table(env.camera("front", 64, 64))  # sees the floor beyond the table
        env.robot.reset(env.np_random)
        skipped = env._unseen_links(env.camera("wrist", 64, 64))  # the arm above and behind the wrist camera
        assert {link for body, link, _ in skipped if body == env.robot.body} >= {-1, 0, 1, 2}
        fast = env.camera_image("wrist", 64, 64, depth=True, segmentation=True)
        plain = env.camera("wrist", 64, 64).render(segmentation=True)
        assert np.array_equal(fast.rgb, plain.rgba[..., :3]) and ROBOT in fast.segmentation  # the fingers
    finally:
        env.close()


def test_cameras_never_change_the_episode_and_caches_stay_bounded() -> None:
    def run(render: bool) -> list:
        env = _base("lepton/ConveyorSort-v0")
        rng = np.random.default_rng(3)
        out = []
        try:
            env.reset(seed=4)
            for step in range(30):
                if render:
                    conditions = CameraConditions(offset=(0.001 * step, 0.0, 0.0), light_color=(1.0, 0.9, 0.8))
                    env.camera_image("overhead", 32, 32, depth=True, segmentation=True, conditions=conditions)
                    env.camera_image("wrist", 32, 32, segmentation=True, conditions=CameraConditions(fov_delta=step))
                    env.camera_image("front", 32, 32)
                obs, reward, *_ = env.step(rng.uniform(-1, 1, 4).astype(np.float32))
                out.append((obs, reward))
            assert len(env._cameras) <= MAX_CAMERAS and len(env._wrist_projections) <= MAX_CAMERAS
        finally:
            env.close()
        return out

    for (a, ra), (b, rb) in zip(run(False), run(True)):
        assert np.array_equal(a, b) and ra == rb


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_pixels_stack_several_cameras_with_depth_and_segmentation(env_id: str) -> None:
    kwargs = dict(obs_mode="pixels", obs_camera=["overhead", "wrist"], camera_size=32)
    with closing(gymnasium.make(env_id, camera_depth=True, camera_segmentation=True, **kwargs)) as env:
        obs, _ = env.reset(seed=0)
        obs2 = env.step(env.action_space.sample())[0]
        image = obs["pixels"] if isinstance(obs, dict) else obs
        assert image.shape == (32, 32, 10) and image.dtype == np.uint8  # per camera: rgb, depth, segmentation
        assert env.observation_space.contains(obs) and env.observation_space.contains(obs2)
        latest = obs2["pixels"] if isinstance(obs2, dict) else obs2
        segmentation = env.unwrapped.camera_image("overhead", 32, 32, segmentation=True).segmentation
        assert np.array_equal(latest[..., 4], segmentation.astype(np.uint8))


def test_a_tie_with_the_background_renders_the_frame_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    """Where a moving body and the floor or table have equal depth only the plain render knows which one it kept."""
    layer = Layer(np.full((2, 2), 7, np.uint32), np.array([[0.5, 1.0], [0.7, 1.0]], np.float32), np.zeros((2, 2)))
    white = np.full((2, 2, 4), 255, np.uint8)
    assert not tied(RawFrame(white, np.array([[0.4, 1.0], [0.8, 1.0]], np.float32), None), layer)  # nearer/farther
    assert tied(RawFrame(white, np.array([[0.5, 1.0], [0.8, 1.0]], np.float32), None), layer)  # level
    drawn = white.copy()
    drawn[0, 1] = (10, 20, 30, 255)  # a body at the far plane, where the floor's far end is too
    assert tied(RawFrame(drawn, np.array([[0.4, 1.0], [0.8, 1.0]], np.float32), None), layer)
    env = _base("lepton/ConveyorPick-v0")
    try:
        env.reset(seed=0)
        for _ in range(10):
            env.step(HOLD)
        monkeypatch.setattr(arm_env, "tied", lambda frame, layer: True)
        fast = env.camera_image("front", 48, 48, depth=True, segmentation=True)
        plain = env.camera("front", 48, 48).render(segmentation=True)
    finally:
        env.close()
    assert np.array_equal(fast.rgb, plain.rgba[..., :3])
    assert np.array_equal(fast.segmentation, classes_of(plain.bodies, class_lookup(env._segmentation_bodies())))
