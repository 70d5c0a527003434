"""The traffic envs' ``approaches`` camera on real SUMO: the stop-line strips follow the signal state, vehicles are
drawn where SUMO has them (queued ones in the queue colour), images repeat for a seed and leave the episode
unchanged, the joint env stacks every signal's image, the PettingZoo env gives each agent its own, camera
conditions move the camera, and unknown cameras are refused. Each test closes its envs, which releases the
process's one libsumo simulation for the next."""

from __future__ import annotations

from contextlib import closing

import gymnasium
import numpy as np
import pytest

import lepton_sim  # noqa: F401  (registers the env ids)
from lepton_sim.envs.camera_image import CameraConditions
from lepton_sim.envs.traffic.camera import BACKGROUND, HALTED, LANE, MOVING, STATE_COLOURS, ApproachCamera
from lepton_sim.envs.traffic.network_env import TrafficNetworkEnv
from lepton_sim.envs.traffic.params import TrafficParams
from lepton_sim.envs.traffic.reads import VehicleReads
from lepton_sim.envs.traffic.signal_env import TrafficSignalEnv

NETS = "sumo_rl:nets"
SINGLE = {
    "net": f"{NETS}/single-intersection/single-intersection.net.xml",
    "route": f"{NETS}/single-intersection/single-intersection.rou.xml",
}
GRID = {"net": f"{NETS}/2x2grid/2x2.net.xml", "route": f"{NETS}/2x2grid/2x2.rou.xml"}
COLOGNE1 = {
    "net": f"{NETS}/RESCO/cologne1/cologne1.net.xml",
    "route": f"{NETS}/RESCO/cologne1/cologne1.rou.xml",
    "begin": 25200,
}
GREEN, RED = STATE_COLOURS[4], STATE_COLOURS[1]


def colour_mask(image: np.ndarray, colour: np.ndarray) -> np.ndarray:
    return (image == colour).all(axis=-1)


def vehicle_pixels(image: np.ndarray) -> int:
    return int((colour_mask(image, MOVING) | colour_mask(image, HALTED)).sum())


def strip_colours(env: TrafficSignalEnv, image: np.ndarray, size: int) -> dict[str, set[tuple[int, ...]]]:
    """Per incoming lane: the colours of its stop-line strip pixels."""
    plan = env.sim._camera.plan((0,), size, size)
    lanes = env.sim.layouts[0].lanes
    rows = image.reshape(-1, 3)[plan.strip_rows]
    return {lane: {tuple(c) for c in rows[plan.strip_lane == k]} for k, lane in enumerate(lanes)}


def green_lanes(env: TrafficSignalEnv) -> set[str]:
    """The lanes with a green link, from SUMO's own state string and controlled links (not the camera's tables)."""
    conn, ts = env.sim.sumo, env.signal_id
    state = conn.trafficlight.getRedYellowGreenState(ts)
    links = conn.trafficlight.getControlledLinks(ts)
    return {link[0][0] for i, link in enumerate(links) if link and state[i] in "Gg"}


def test_a_phase_change_recolours_the_stop_line_strips() -> None:
    size = 84
    with closing(TrafficSignalEnv(**SINGLE, duration=300)) as env:
        env.reset(seed=0)
        for _ in range(3):
            env.step(0)
        before = env.camera_image("approaches", size, size).rgb
        green_before = green_lanes(env)
        env.step(1)
        after = env.camera_image("approaches", size, size).rgb
        green_after = green_lanes(env)
        assert green_before and green_after and green_before != green_after
        for image, green in ((before, green_before), (after, green_after)):
            strips = strip_colours(env, image, size)
            for lane, colours in strips.items():
                assert colours == {tuple(GREEN if lane in green else RED)}, lane
        assert (before != after).any(axis=-1).sum() >= len(env.sim.layouts[0].lanes)


def centre_pixels(
    env: TrafficSignalEnv | TrafficNetworkEnv, size: int, slot: int = 0, upstream_only: bool = False
) -> list[tuple]:
    """(pixel x, y, halted) of the middle of every vehicle on the lanes slot ``slot``'s camera draws (incoming and
    upstream lanes), from SUMO's own reads."""
    conn, camera = env.sim.sumo, env.sim.camera
    plan = camera.plan(tuple(range(len(env.sim.ts_ids))), size, size)
    view = camera.views[slot]
    incoming = set(int(k) for k in view.lanes)
    out = []
    for k, visible_from in zip(view.shown, view.visible_from):
        if upstream_only and int(k) in incoming:
            continue
        for v in conn.lane.getLastStepVehicleIDs(camera.lane_ids[k]):
            middle_at = conn.vehicle.getLanePosition(v) - conn.vehicle.getLength(v) / 2
            if middle_at < max(visible_from, 0.0):  # not (half) in view
                continue
            middle = camera.lanes.points(np.array([k]), np.array([middle_at]))[0]
            px = plan.matrix[slot] @ middle + plan.shift[slot]
            out.append((int(np.floor(px[0] + 0.5)), int(np.floor(px[1] + 0.5)), conn.vehicle.getSpeed(v) < 0.1))
    return out


def test_vehicles_appear_at_their_positions_with_queues_in_the_queue_colour() -> None:
    size = 168
    with closing(TrafficSignalEnv(**SINGLE, duration=600)) as env:
        env.reset(seed=1)
        counts, seen = [], {True: 0, False: 0}
        for step in range(40):
            env.step(0 if step < 25 else 1)  # a long red on one approach builds a queue, then it drains
            image = env.camera_image("approaches", size, size).rgb
            vehicles = centre_pixels(env, size)
            for x, y, halted in vehicles:
                assert tuple(image[y, x]) == tuple(HALTED if halted else MOVING), (step, x, y, halted)
                seen[halted] += 1
            counts.append((len(vehicles), vehicle_pixels(image)))
        assert seen[True] > 20 and seen[False] > 20  # both colours were checked
        n, pixels = np.array(counts).T
        assert pixels[n == 0].sum() == 0 and (pixels[n > 0] > 0).all()
        assert np.corrcoef(n, pixels)[0, 1] > 0.95  # more vehicles, more vehicle pixels


def test_short_approaches_continue_upstream_up_to_the_camera_range() -> None:
    """RESCO cologne1's incoming lanes are 41-351 m long: the camera follows the short ones upstream (up to the
    previous signal), and vehicles there are drawn where SUMO has them."""
    with closing(TrafficSignalEnv(**COLOGNE1, duration=800)) as env:
        camera = env.sim.camera
        view = camera.views[0]
        assert len(view.shown) > len(view.lanes)  # upstream lanes were added
        ahead = camera.lanes.length[view.shown] - view.visible_from  # drawn metres of each lane, from its end
        assert (ahead <= camera.camera_range + 1e-9).all()
        env.reset(seed=0)
        seen = 0
        for _ in range(75):
            env.step(0)
            image = env.camera_image("approaches", 168, 168).rgb
            for x, y, halted in centre_pixels(env, 168, upstream_only=True):
                assert tuple(image[y, x]) == tuple(HALTED if halted else MOVING)
                seen += 1
        assert seen > 10


def test_more_vehicles_give_more_vehicle_pixels_where_the_lane_is() -> None:
    """The drawing alone, from hand-made reads: each vehicle added on a lane adds pixels next to its position."""
    with closing(TrafficSignalEnv(**SINGLE)) as env:  # not started: only the network's geometry is read
        network = env.sim.network
        camera = ApproachCamera(str(env.params.net_path), network, 80.0)
        lane = 0
        length = camera.lanes.length[lane]
        state = "G" * 16
        last = 0
        for n in range(1, 6):
            fronts = length - 1.0 - 10.0 * np.arange(n)  # 10 m apart, the first at the stop line
            reads = VehicleReads(np.zeros(n, np.int64), fronts, np.full(n, 5.0), np.arange(n) % 2 == 1, [state])
            image = camera.frame((0,), 84, 84, reads)
            pixels = vehicle_pixels(image)
            assert pixels > last
            last = pixels
            plan = camera.plan((0,), 84, 84)
            newest = camera.lanes.points(np.array([lane]), np.array([fronts[-1] - 2.5]))[0]
            x, y = np.floor(plan.matrix[0] @ newest + plan.shift[0] + 0.5).astype(int)
            assert tuple(image[y, x]) == tuple(HALTED if (n - 1) % 2 else MOVING)
        none = VehicleReads(np.zeros(0, np.int64), np.zeros(0), np.zeros(0), np.zeros(0, bool), [state])
        empty = camera.frame((0,), 84, 84, none)
        assert vehicle_pixels(empty) == 0 and colour_mask(empty, LANE).any() and colour_mask(empty, BACKGROUND).any()


def test_same_seed_same_images_and_the_camera_leaves_the_episode_unchanged() -> None:
    actions = np.random.default_rng(0).integers(0, 2, 25)

    def episode(obs_mode: str) -> tuple[list, list, list]:
        with closing(TrafficSignalEnv(**SINGLE, duration=250, obs_mode=obs_mode)) as env:
            runs = []
            for _ in range(2):
                obs, info = env.reset(seed=7)
                images, states, rest = [env.camera_image("approaches", 64, 64).rgb], [obs], [info]
                for a in actions:
                    obs, reward, terminated, truncated, info = env.step(int(a))
                    images.append(env.camera_image("approaches", 64, 64).rgb)
                    states.append(obs)
                    rest.append((reward, terminated, truncated, info))
                runs.append((images, states, rest))
            assert truncated
            (images_a, *_), (images_b, *_) = runs
            assert all(np.array_equal(a, b) for a, b in zip(images_a, images_b))  # same seed, same images
            assert len({a.tobytes() for a in images_a}) > 10  # and they move
            return runs[0]

    images_p, states_p, rest_p = episode("pixels")
    images_s, states_s, rest_s = episode("state")
    assert all(np.array_equal(a, b) for a, b in zip(states_p, states_s))
    assert repr(rest_p) == repr(rest_s)  # rewards and infos identical (NaN-safe)
    # a state-mode env reads vehicles lazily, on the first image of a step: the same images, except after the
    # window's end, where SUMO has closed and it shows the last step it read
    assert all(np.array_equal(a, b) for a, b in zip(images_p[:-1], images_s[:-1]))


@pytest.mark.parametrize("obs_mode", ["state", "pixels", "state+pixels"])
def test_vehicles_are_read_once_per_decision_step_and_never_in_state_mode(
    obs_mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lepton_sim.envs.traffic import simulation

    calls = []
    real = simulation.read_vehicles
    monkeypatch.setattr(simulation, "read_vehicles", lambda *a: calls.append(1) or real(*a))
    with closing(gymnasium.make("lepton/TrafficNetwork-v0", **GRID, duration=100, obs_mode=obs_mode)) as env:
        env.reset(seed=0)
        for _ in range(10):  # to the window's end: SUMO closes there, after the last read
            obs, *_ = env.step(env.action_space.sample())
        assert env.observation_space.contains(obs)
    assert len(calls) == (0 if obs_mode == "state" else 11)  # the reset and each decision, not each SUMO step


def test_network_env_stacks_every_signals_image_in_signal_order() -> None:
    with closing(TrafficNetworkEnv(**GRID, duration=200)) as env:
        env.reset(seed=2)
        for _ in range(8):
            env.step(env.action_space.sample())
        stack = env.camera_image("approaches", 84, 84).rgb
        n = len(env.signal_ids)
        assert stack.shape == (84, 84, 3 * n) and stack.dtype == np.uint8 and n == 4
        for k in range(n):
            alone = env.sim.approach_images([k], 84, 84)
            assert np.array_equal(stack[:, :, 3 * k : 3 * k + 3], alone)
            for x, y, halted in centre_pixels(env, 84, slot=k):
                assert tuple(stack[y, x, 3 * k : 3 * k + 3]) == tuple(HALTED if halted else MOVING)
        assert len({stack[:, :, 3 * k : 3 * k + 3].tobytes() for k in range(n)}) == n


@pytest.mark.parametrize("obs_mode, order", [("pixels", "last"), ("state+pixels", "first")])
def test_pettingzoo_agents_see_their_own_signals_image(obs_mode: str, order: str) -> None:
    from lepton_sim.envs.traffic.grid_env import parallel_env

    with closing(parallel_env(**GRID, duration=100, obs_mode=obs_mode, channel_order=order, camera_size=64)) as env:
        obs, _ = env.reset(seed=4)
        for _ in range(5):
            obs, *_ = env.step({a: env.action_space(a).sample() for a in env.agents})
        stack = env.camera_image("approaches", 64, 64).rgb
        for k, agent in enumerate(env.possible_agents):
            space = env.observation_space(agent)
            assert space.contains(obs[agent])
            image = obs[agent] if obs_mode == "pixels" else obs[agent]["pixels"]
            image = image.transpose(1, 2, 0) if order == "first" else image
            assert image.shape == (64, 64, 3)
            assert np.array_equal(image, stack[:, :, 3 * k : 3 * k + 3])
            assert np.array_equal(image, env.camera_image("approaches", 64, 64, agent=agent).rgb)


def test_pettingzoo_agents_see_the_joint_envs_images_degradations_included() -> None:
    """Same seed and actions: agent k's image is slice k of lepton/TrafficNetwork-v0's pixel observation (through
    the observation pipeline), with the same severity-3 sensor degradations and per-signal camera poses."""
    from lepton_sim.envs.traffic.grid_env import parallel_env

    kw = {**GRID, "duration": 100, "obs_mode": "pixels", "camera_size": 48, "sensor": {"severity": 3}}
    actions = np.random.default_rng(1).integers(0, 2, (6, 4))
    with closing(gymnasium.make("lepton/TrafficNetwork-v0", **kw)) as joint:
        frames = [joint.reset(seed=5)[0]] + [joint.step(a)[0] for a in actions]
    with closing(parallel_env(**kw)) as env:
        obs, _ = env.reset(seed=5)
        agents = [obs] + [env.step(dict(zip(env.possible_agents, map(int, a))))[0] for a in actions]
        clean = env.camera_image("approaches", 48, 48).rgb
    for frame, per_agent in zip(frames, agents):
        for k, agent in enumerate(env.possible_agents):
            assert np.array_equal(per_agent[agent], frame[:, :, 3 * k : 3 * k + 3])
    assert not np.array_equal(frames[-1], clean)  # the sensor did degrade them


def test_pettingzoo_camera_modes_pass_the_parallel_api_test() -> None:
    from pettingzoo.test import parallel_api_test

    from lepton_sim.envs.traffic.grid_env import parallel_env

    with closing(parallel_env(**GRID, duration=100, obs_mode="pixels", camera_size=32)) as env:
        parallel_api_test(env, num_cycles=20)


def test_camera_conditions_move_turn_and_zoom_the_camera() -> None:
    with closing(TrafficSignalEnv(**SINGLE)) as env:  # approaches from the north and west only: not symmetric
        camera = ApproachCamera(str(env.params.net_path), env.sim.network, 80.0)
        reads = VehicleReads(np.zeros(0, np.int64), np.zeros(0), np.zeros(0), np.zeros(0, bool), ["r" * 16])

        def lanes(**conditions: object) -> np.ndarray:
            return colour_mask(camera.frame((0,), 84, 84, reads, CameraConditions(**conditions)), LANE)

        nominal = lanes()
        turned = lanes(rotation=(0.0, 0.0, 90.0))  # the camera turns left: the scene turns clockwise
        overlap = (turned & np.rot90(nominal, k=-1)).sum() / max(turned.sum(), 1)
        assert overlap > 0.8 and not np.array_equal(turned, nominal)
        shifted = lanes(offset=(20.0, 0.0, 0.0))  # the camera moves right: the scene moves left
        cols = np.flatnonzero(nominal.any(axis=0)), np.flatnonzero(shifted.any(axis=0))
        assert cols[1].mean() < cols[0].mean() - 5
        wider = lanes(fov_delta=10.0)
        assert wider.sum() < nominal.sum()  # the same lanes, smaller in the image
        assert np.array_equal(lanes(offset=(0.0, 0.0, 0.0)), nominal)


def test_unknown_cameras_and_channels_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown camera 'front'; allowed: approaches"):
        TrafficParams(**SINGLE, obs_camera="front")
    with pytest.raises(ValueError, match="no depth channel"):
        TrafficParams(**SINGLE, camera_depth=True)
    with closing(TrafficSignalEnv(**SINGLE, duration=100)) as env:
        env.reset(seed=0)
        with pytest.raises(ValueError, match="unknown camera 'topdown'; allowed: approaches"):
            env.camera_image("topdown", 84, 84)
        with pytest.raises(ValueError, match="no depth channel"):
            env.camera_image("approaches", 84, 84, depth=True)
        with pytest.raises(ValueError, match="no segmentation channel"):
            env.camera_image("approaches", 84, 84, segmentation=True)
