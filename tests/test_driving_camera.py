"""Driving cameras (issue 10): the ego-centred top-down RGB view and the semantic grid, single and batched.

Geometry is checked against an independent reference: every pixel centre is mapped back to the world with the
documented camera (ego box centre at column W/2, row 3/4 H, heading up, FOOTPRINT metres per image height) and
tested against the road (by its lateral offset from a dense centreline) and the boxes.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import lepton_sim
from lepton_sim.envs.camera_image import CameraConditions
from lepton_sim.envs.driving.camera import AHEAD, COLORS, FOOTPRINT, SEMANTIC_CLASSES, DrivingCamera
from lepton_sim.envs.driving.driving_env import DrivingEnv
from lepton_sim.envs.driving.vector_env import DrivingVectorEnv

CURVY = dict(lanes=[2, 4], curvature=[0.02, 0.05], curve_length=[20, 60], route_length=200, ego_speed=[8, 10])
BUSY = dict(
    lanes=[2, 3],
    curvature=[0.0, 0.02],
    route_length=250,
    obstacles=[2, 4],
    vehicles=[3, 8],
    vehicle_speed=[8, 14],
    ego_speed=[8, 12],
    max_speed=15,
)
ROAD, MARKING, OBSTACLE, VEHICLE, ROUTE = range(5)


def topdown(env: DrivingEnv, size: tuple[int, int] = (84, 84), **kwargs: object) -> np.ndarray:
    image = env.camera_image("topdown", *size, **kwargs)  # type: ignore[arg-type]
    assert image.semantic is None and image.rgb is not None
    return image.rgb


def semantic(env: DrivingEnv, size: tuple[int, int] = (84, 84), **kwargs: object) -> np.ndarray:
    image = env.camera_image("semantic", *size, **kwargs)  # type: ignore[arg-type]
    assert image.rgb is None and image.semantic is not None
    return image.semantic


def pixel_centres(env: DrivingEnv, w: int, h: int) -> tuple[np.ndarray, np.ndarray]:
    """World coordinates (H, W) of every pixel centre of the nominal camera (its footprint: the env's)."""
    ex, ey, ec, es = (float(a[0]) for a in env.sim.ego_box())
    footprint = float(env.params.camera_footprint)
    mpp = footprint / h
    u = np.arange(w) + 0.5 - 0.5 * w  # right
    v = 0.5 * h - (np.arange(h) + 0.5)  # ahead
    right, ahead = u[None, :] * mpp, 0.25 * footprint + v[:, None] * mpp
    return ex + ahead * ec + right * es, ey + ahead * es - right * ec


def to_pixel(env: DrivingEnv, x: float, y: float, w: int = 84, h: int = 84) -> tuple[int, int]:
    """(row, column) of the pixel holding the world point (x, y)."""
    ex, ey, ec, es = (float(a[0]) for a in env.sim.ego_box())
    mpp = FOOTPRINT / h
    dx, dy = x - ex, y - ey
    ahead, right = dx * ec + dy * es - AHEAD, dx * es - dy * ec
    return int(math.floor(0.5 * h - ahead / mpp)), int(math.floor(0.5 * w + right / mpp))


def road_frame(env: DrivingEnv, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Arc length and lateral offset of world points, by the nearest point of a dense centreline (0.1 m)."""
    sim = env.sim
    s = np.arange(float(sim.s[0]) - 120.0, float(sim.s[0]) + 120.0, 0.1)
    cx, cy, c, sn, _ = sim.road.to_world(s, np.zeros_like(s), np.full(s.shape, sim.road.offset[0]))
    px, py = x.reshape(-1, 1), y.reshape(-1, 1)
    nearest = np.argmin((px - cx) ** 2 + (py - cy) ** 2, axis=1)
    dx, dy = x.ravel() - cx[nearest], y.ravel() - cy[nearest]
    return (s[nearest] + dx * c[nearest] + dy * sn[nearest]).reshape(x.shape), (
        dy * c[nearest] - dx * sn[nearest]
    ).reshape(x.shape)


def test_unknown_camera_and_channels_are_clear_errors() -> None:
    env = DrivingEnv()
    env.reset(seed=0)
    with pytest.raises(ValueError, match="unknown camera 'front'; allowed: topdown, semantic"):
        env.camera_image("front", 84, 84)
    with pytest.raises(ValueError, match="no depth or segmentation"):
        env.camera_image("topdown", 84, 84, depth=True)
    venv = DrivingVectorEnv(2)
    venv.reset(seed=0)
    with pytest.raises(ValueError, match="allowed: topdown, semantic"):
        venv.camera_images("overhead", 84, 84)
    with pytest.raises(ValueError, match="got 1 for 2 worlds"):
        venv.camera_images("topdown", 84, 84, conditions=[CameraConditions(fov_delta=1.0)])


@pytest.mark.parametrize("size", [(84, 84), (64, 64), (83, 61), (120, 40)])
def test_shapes_dtypes_and_palette(size: tuple[int, int]) -> None:
    env = DrivingEnv(**BUSY)
    env.reset(seed=1)
    w, h = size
    rgb, grid = topdown(env, size), semantic(env, size)
    assert rgb.shape == (h, w, 3) and rgb.dtype == np.uint8 and rgb.flags.c_contiguous
    assert grid.shape == (h, w, len(SEMANTIC_CLASSES)) and grid.dtype == np.uint8
    assert set(np.unique(grid)) <= {0, 255}
    palette = {tuple(c) for c in COLORS.values()}
    assert {tuple(p) for p in rgb.reshape(-1, 3)} <= palette
    assert grid[..., ROAD].any() and grid[..., MARKING].any()


@pytest.mark.parametrize("seed", range(4))
def test_ego_at_its_fixed_pixel_heading_up(seed: int) -> None:
    env = DrivingEnv(**CURVY)
    env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    for _ in range(15):
        env.step(rng.uniform(-0.3, 0.3, 2).astype(np.float32))
    for w, h in [(84, 84), (64, 64), (96, 48)]:
        rgb = topdown(env, (w, h))
        ego = np.all(rgb == COLORS["ego"], axis=-1)
        rows, cols = np.nonzero(ego)
        assert ego[int(0.75 * h), w // 2]
        mpp = FOOTPRINT / h
        half_length = 0.5 * (env.params.wheelbase + 1.8)  # wheelbase plus both overhangs
        assert rows.max() - rows.min() + 1 == pytest.approx(2 * half_length / mpp, abs=1.5)  # long axis vertical
        assert cols.max() - cols.min() + 1 <= 1.9 / mpp + 2


@pytest.mark.parametrize("seed, footprint", [(0, 64.0), (1, 64.0), (2, 64.0), (0, 32.0), (1, 20.0)])
def test_road_channel_agrees_with_the_road_geometry(seed: int, footprint: float) -> None:
    """At the default footprint and at finer ones (camera_footprint: metres per image height)."""
    env = DrivingEnv(**CURVY, camera_footprint=footprint)
    env.reset(seed=seed)
    for _ in range(30):
        env.step(np.array([0.0, 0.0], np.float32))
    env.sim.heading[:] += 0.4  # a heading error: the road runs across the image
    w = h = 84
    grid = semantic(env)
    x, y = pixel_centres(env, w, h)
    _, d = road_frame(env, x, y)
    half = float(env.sim.half_road[0])
    mpp = footprint / h
    tol = 0.75 * mpp  # pixels whose centre lies this close to an edge may go either way
    inside, outside = np.abs(d) < half - tol, np.abs(d) > half + tol
    road = grid[..., ROAD] > 0
    assert inside.sum() > 500 and outside.sum() > 500
    assert road[inside].all() and not road[outside].any()
    # markings lie on the road, and the outermost road pixels of each row are edge markings
    marking = grid[..., MARKING] > 0
    assert not (marking & ~road).any()
    if mpp > 0.5:  # markings are drawn at least one pixel wide: at coarse pixels the edge strip is all marking
        edge = (np.abs(d) > half - mpp + 0.2) & (np.abs(d) < half - 0.2)  # the 1-pixel edge strips
        assert edge.sum() > 20 and marking[edge].all()


def test_route_and_goal_in_the_route_channel() -> None:
    env = DrivingEnv(lanes=3, curvature=[0.0, 0.01], route_length=40, ego_speed=[10, 10])
    env.reset(seed=3)
    grid = semantic(env)
    x, y = pixel_centres(env, 84, 84)
    s, d = road_frame(env, x, y)
    sim = env.sim
    tol = 0.75 * FOOTPRINT / 84
    half_route = 0.5 * max(1.0, FOOTPRINT / 84)
    strip = (
        (np.abs(d - float(sim.route_d[0])) < half_route - 0.1)
        & (s > float(sim.s[0]) + 1)
        & (s < float(sim.s_goal[0]) - 2)
    )
    goal = (np.abs(s - float(sim.s_goal[0])) < 0.5 - 0.2) & (np.abs(d) < float(sim.half_road[0]) - tol)
    beyond = (s > float(sim.s_goal[0]) + 1.0 + tol) | (np.abs(d - float(sim.route_d[0])) > half_route + tol) & (
        np.abs(s - float(sim.s_goal[0])) > 0.5 + tol
    )
    route = grid[..., ROUTE] > 0
    assert strip.any() and route[strip].all()
    assert route[goal].all()
    assert not route[beyond].any()
    rgb = topdown(env)
    colors = {tuple(c) for c in rgb[strip]}
    assert tuple(COLORS["route"]) in colors and colors <= {tuple(COLORS[k]) for k in ("route", "goal", "ego")}


def test_boxes_match_the_obstacles_and_vehicles() -> None:
    env = DrivingEnv(**BUSY)
    env.reset(seed=5)
    for _ in range(20):
        env.step(np.array([0.0, 0.0], np.float32))
    sim = env.sim
    grid = semantic(env)
    x, y = pixel_centres(env, 84, 84)
    min_half = 0.5 * FOOTPRINT / 84
    near = {VEHICLE: np.zeros((84, 84), bool), OBSTACLE: np.zeros((84, 84), bool)}
    seen = 0
    for k in range(sim.num_objects):
        c, s = float(sim.obj_cos[0, k]), float(sim.obj_sin[0, k])
        hl, hw = max(float(sim.obj_hl[0, k]), min_half), max(float(sim.obj_hw[0, k]), min_half)
        dx, dy = x - float(sim.obj_x[0, k]), y - float(sim.obj_y[0, k])
        along, across = np.abs(dx * c + dy * s), np.abs(dy * c - dx * s)
        channel = VEHICLE if k < sim.num_vehicles else OBSTACLE
        inside = (along < hl - 0.05) & (across < hw - 0.05)
        assert (grid[..., channel][inside] == 255).all()
        near[channel] |= (along < hl + 0.05) & (across < hw + 0.05)
        seen += int(inside.any())
    assert seen >= 2
    for channel, region in near.items():  # and nowhere else
        assert not (grid[..., channel].astype(bool) & ~region).any()


def test_an_obstacle_placed_or_moved_changes_the_pixels_where_it_projects() -> None:
    env = DrivingEnv(**{**BUSY, "vehicles": 0})
    env.reset(seed=2)
    sim = env.sim
    before_rgb, before = topdown(env), semantic(env)
    ex, ey, ec, es = (float(a[0]) for a in sim.ego_box())
    slot = sim.num_vehicles  # first obstacle slot
    x, y = ex + 20.0 * ec, ey + 20.0 * es  # 20 m ahead of the ego
    sim.obj_x[0, slot], sim.obj_y[0, slot] = x, y
    sim.obj_cos[0, slot], sim.obj_sin[0, slot] = ec, es
    sim.obj_hl[0, slot], sim.obj_hw[0, slot] = 2.25, 0.95
    row, col = to_pixel(env, x, y)
    assert not before[row, col, OBSTACLE]
    rgb, grid = topdown(env), semantic(env)
    assert tuple(rgb[row, col]) == COLORS["parked"] and grid[row, col, OBSTACLE] == 255
    changed = np.nonzero(np.any(rgb != before_rgb, axis=-1))
    assert abs(changed[0].mean() - row) < 2 and abs(changed[1].mean() - col) < 2  # only around it
    sim.obj_hl[0, slot] = sim.obj_hw[0, slot] = 0.25  # a cone, moved 4 m to the left
    lx, ly = x - 4.0 * es, y + 4.0 * ec
    sim.obj_x[0, slot], sim.obj_y[0, slot] = lx, ly
    rgb, grid = topdown(env), semantic(env)
    assert tuple(rgb[row, col]) != COLORS["parked"] and not grid[row, col, OBSTACLE]
    new_row, new_col = to_pixel(env, lx, ly)
    assert tuple(rgb[new_row, new_col]) == COLORS["cone"] and grid[new_row, new_col, OBSTACLE] == 255
    assert new_col < col - 3  # left in the image


def test_a_vehicle_moved_into_view_appears_where_it_projects() -> None:
    env = DrivingEnv(lanes=3, vehicles=2, vehicle_speed=[10, 10], ego_speed=[10, 10])
    env.reset(seed=0)
    sim, tr = env.sim, env.sim.traffic
    tr.veh_s[0, 0], tr.veh_d[0, 0], tr.veh_lat[0, 0] = float(sim.s[0]) + 25.0, float(sim.route_d[0]), 0.0
    sim._place_vehicles()
    row, col = to_pixel(env, float(sim.obj_x[0, 0]), float(sim.obj_y[0, 0]))
    assert tuple(topdown(env)[row, col]) == COLORS["vehicle"]
    assert semantic(env)[row, col, VEHICLE] == 255
    assert row < 0.75 * 84 - 20  # ahead of the ego, up the image


def test_overlapping_vehicles_do_not_paint_other_classes() -> None:
    env = DrivingEnv(lanes=2, vehicles=2, ego_speed=[10, 10])
    env.reset(seed=0)
    sim, tr = env.sim, env.sim.traffic
    alone = semantic(env)  # both vehicles out of view
    for k, extra in enumerate([20.0, 21.0]):  # two vehicles 1 m apart: their boxes overlap
        tr.veh_s[0, k], tr.veh_d[0, k], tr.veh_lat[0, k] = float(sim.s[0]) + extra, float(sim.route_d[0]), 0.0
    sim._place_vehicles()
    grid = semantic(env)
    assert grid[..., VEHICLE].any()
    others = [ROAD, MARKING, OBSTACLE, ROUTE]
    np.testing.assert_array_equal(grid[..., others], alone[..., others])
    ego = np.all(topdown(env) == COLORS["ego"], axis=-1)
    assert not ego[: int(0.75 * 84) - 6].any()  # the overlap shows no ego colour


@pytest.mark.parametrize("kwargs", [BUSY, {**BUSY, "action_mode": "discrete", "vehicles": 12, "lanes": 3}])
def test_vector_images_equal_single_env_images(kwargs: dict) -> None:
    n = 4
    venv = DrivingVectorEnv(n, **kwargs)
    venv.reset(seed=30)
    envs = [DrivingEnv(**kwargs) for _ in range(n)]
    for i, env in enumerate(envs):
        env.reset(seed=30 + i)
    conditions = [
        CameraConditions(offset=(0.3 * i, -0.5 * i, 0.2 * i), rotation=(0.0, 0.0, 3.0 * i), fov_delta=-2.0 + i)
        for i in range(n)
    ]
    action = np.array([1] * n) if kwargs.get("action_mode") == "discrete" else np.zeros((n, 2), np.float32)
    for step in range(12):
        for name in ("topdown", "semantic"):
            for conds in (None, conditions):
                batch = venv.camera_images(name, 64, 48, conditions=conds)
                images = batch.rgb if name == "topdown" else batch.semantic
                assert images is not None and images.shape[0] == n
                for i, env in enumerate(envs):
                    single = env.camera_image(name, 64, 48, conditions=conds[i] if conds else CameraConditions())
                    np.testing.assert_array_equal(images[i], single.rgb if name == "topdown" else single.semantic)
        ended = venv.step(action)[2]
        for i, env in enumerate(envs):
            env.step(action[i])
        if ended.any():  # the vector env resets it next step, the single env would not
            assert step > 5
            break


@pytest.mark.parametrize("name", ["topdown", "semantic"])
def test_large_batches_equal_single_envs(name: str) -> None:
    """Batches of 8 or more worlds narrow each road window to the part that reaches the image and add segments
    above the image to its top row as ranges; single envs do neither, and draw the same pixels."""
    n = 10
    venv = DrivingVectorEnv(n, **BUSY)
    venv.reset(seed=50)
    envs = [DrivingEnv(**BUSY) for _ in range(n)]
    for i, env in enumerate(envs):
        env.reset(seed=50 + i)
    conditions = [
        CameraConditions(
            offset=(0.5 * i - 2.0, 1.0 - 0.3 * i, 0.4 * i), rotation=(0.0, 0.0, 37.0 * i), fov_delta=float(i)
        )
        for i in range(n)
    ]
    action = np.tile(np.array([0.3, 0.05], np.float32), (n, 1))
    for _ in range(6):
        for conds in (None, conditions):
            batch = venv.camera_images(name, 84, 84, conditions=conds)
            images = batch.rgb if name == "topdown" else batch.semantic
            assert images is not None
            for i, env in enumerate(envs):
                single = env.camera_image(name, 84, 84, conditions=conds[i] if conds else CameraConditions())
                np.testing.assert_array_equal(images[i], single.rgb if name == "topdown" else single.semantic)
        venv.step(action)
        for i, env in enumerate(envs):
            env.step(action[i])


def test_overflowing_cell_lists_and_fresh_images() -> None:
    """The kernel lists each changed cell under its row; when its lists overflow it lists every changed cell
    anew, with the same image. Every call returns a new array."""
    for n in (1, 10):
        venv = DrivingVectorEnv(n, **BUSY)
        venv.reset(seed=8)
        for _ in range(4):
            venv.step(np.zeros((n, 2), np.float32))
        camera = DrivingCamera(venv.params)
        for name in ("topdown", "semantic"):
            full = camera.render(venv.sim, name, 84, 84)
            camera.list_room = 3
            tight = camera.render(venv.sim, name, 84, 84)
            camera.list_room = None
            a, b = (full.rgb, tight.rgb) if name == "topdown" else (full.semantic, tight.semantic)
            assert a is not None and b is not None and a.any()
            np.testing.assert_array_equal(a, b)
            b[:] = 0
            again = camera.render(venv.sim, name, 84, 84)
            np.testing.assert_array_equal(again.rgb if name == "topdown" else again.semantic, a)


def test_same_seed_same_image_and_the_camera_draws_no_randomness() -> None:
    a, b, plain = DrivingEnv(**BUSY), DrivingEnv(**BUSY), DrivingEnv(**BUSY)
    for env in (a, b, plain):
        env.reset(seed=11)
    np.testing.assert_array_equal(topdown(a), topdown(b))
    other = DrivingEnv(**BUSY)
    other.reset(seed=12)
    assert not np.array_equal(topdown(a), topdown(other))
    for _ in range(10):
        topdown(a)
        semantic(a)
        obs_a = a.step(np.array([0.2, 0.0], np.float32))
        obs_p = plain.step(np.array([0.2, 0.0], np.float32))
        np.testing.assert_array_equal(obs_a[0], obs_p[0])
        assert obs_a[1] == obs_p[1]


def test_conditions_shift_rotate_and_zoom_the_view() -> None:
    env = DrivingEnv(**BUSY)
    env.reset(seed=4)
    for _ in range(10):
        env.step(np.array([0.0, 0.0], np.float32))
    w = h = 84
    mpp = FOOTPRINT / h
    nominal = topdown(env)

    def same(a: np.ndarray, b: np.ndarray) -> float:
        return float(np.all(a == b, axis=-1).mean())

    right = topdown(env, conditions=CameraConditions(offset=(5 * mpp, 0.0, 0.0)))
    assert same(right[:, : w - 5], nominal[:, 5:]) > 0.99  # camera 5 px to the right: the scene moves left
    ahead = topdown(env, conditions=CameraConditions(offset=(0.0, 4 * mpp, 0.0)))
    assert same(ahead[4:], nominal[:-4]) > 0.99  # camera ahead: the scene moves down
    turned = topdown(env, conditions=CameraConditions(rotation=(0.0, 0.0, 180.0)))
    assert same(turned, nominal[::-1, ::-1]) > 0.99
    quarter = topdown(env, conditions=CameraConditions(rotation=(0.0, 0.0, 90.0)))
    assert same(quarter, np.rot90(nominal, k=-1)) > 0.99  # counter-clockwise camera: the scene turns clockwise
    road = semantic(env)[h // 2, :, ROAD].sum()
    higher = semantic(env, conditions=CameraConditions(offset=(0.0, 0.0, 50.0)))  # twice as high
    wider = semantic(env, conditions=CameraConditions(fov_delta=20.0))
    assert higher[h // 2, :, ROAD].sum() == pytest.approx(road / 2, rel=0.25)
    assert wider[h // 2, :, ROAD].sum() < 0.85 * road


def test_pixels_mode_through_make_keeps_the_episode() -> None:
    state = lepton_sim.make("driving/obstacle-avoid")
    pixels = lepton_sim.make("driving/obstacle-avoid", obs_mode="pixels")
    obs, info = pixels.reset(seed=7)
    state_obs, state_info = state.reset(seed=7)
    assert obs.shape == (84, 84, 3) and obs.dtype == np.uint8 and pixels.observation_space.contains(obs)
    assert info == state_info
    rng = np.random.default_rng(0)
    for _ in range(15):
        action = rng.uniform(-0.5, 0.5, 2).astype(np.float32)
        o, r, te, tr, i = pixels.step(action)
        so, sr, ste, str_, si = state.step(action)
        assert (r, te, tr, i) == (sr, ste, str_, si)
        np.testing.assert_array_equal(o, topdown(pixels.unwrapped))
        if te or tr:
            break
    base = DrivingEnv(obs_mode="pixels")
    placeholder, _ = base.reset(seed=0)
    assert base.observation_space.contains(placeholder)


def test_pixels_mode_vector_env_equals_single_envs() -> None:
    n = 3
    venv = lepton_sim.make_vec("driving/obstacle-avoid", n, obs_mode="pixels")
    obs, _ = venv.reset(seed=40)
    assert obs.shape == (n, 84, 84, 3)
    for i in range(n):
        single = lepton_sim.make("driving/obstacle-avoid", obs_mode="pixels")
        np.testing.assert_array_equal(obs[i], single.reset(seed=40 + i)[0])


def test_pixels_mode_images_and_videos_follow_the_vehicles() -> None:
    """obs_mode 'pixels' skips the state observation, which also places the other vehicles: the camera and the
    video renderer place them themselves, so both see them where state mode does."""
    kwargs = dict(lanes=3, vehicles=6, vehicle_speed=[12, 16], ego_speed=[8, 8], render_mode="rgb_array")
    state, pixels = DrivingEnv(**kwargs), DrivingEnv(obs_mode="pixels", **kwargs)
    state.reset(seed=3)
    pixels.reset(seed=3)
    for _ in range(8):
        action = np.array([0.1, 0.0], np.float32)
        state.step(action)
        pixels.step(action)
        np.testing.assert_array_equal(topdown(pixels), topdown(state))
        np.testing.assert_array_equal(pixels.render(), state.render())
    venv, single = DrivingVectorEnv(2, obs_mode="pixels", **kwargs), DrivingEnv(**kwargs)
    venv.reset(seed=3)
    single.reset(seed=3)
    for _ in range(3):
        venv.step(np.array([[0.1, 0.0]] * 2, np.float32))
        single.step(np.array([0.1, 0.0], np.float32))
    frames, images = venv.render(), venv.camera_images("topdown", 84, 84).rgb
    assert frames is not None and images is not None
    np.testing.assert_array_equal(frames[0], single.render())
    np.testing.assert_array_equal(images[0], topdown(single))
