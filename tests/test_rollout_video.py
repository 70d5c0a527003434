"""Rollout videos (issue 10): the frame count and rate that ``--fps`` / ``--speed`` ask for (a speed-up drops
frames, slow motion repeats them), the agent's camera image enlarged beside the scene when the policy observes
pixels, the text overlay in the scene's corner, the channel views of multi-camera and semantic images, the
domain's overlay keys present in every env's info, and bad flags as argparse's usage error."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import gymnasium
import imageio.v2 as imageio
import numpy as np
import pytest

import lepton_sim
from lepton_sim import rollouts
from lepton_sim.cli import main
from lepton_sim.envs.registration import LEPTON_ENVS
from lepton_sim.policy import Policy, PolicyContext
from lepton_sim.video_frames import (
    BACKGROUND,
    GUTTER,
    PALETTE,
    camera_layout,
    compose,
    draw_overlay,
    enlarge,
    observation_views,
    overlay_lines,
    plain_layout,
    views_panel,
)
from lepton_sim.video_timing import FPS_CAP, video_timing

DRIVING = """\
description: a short lane-keep episode for video tests
env: lepton/Driving-v0
params: {lanes: 2, curvature: 0.0, route_length: 200, obstacles: 0, max_speed: 12, render_size: 96}
max_episode_steps: 24
seed: 0
metrics: [route_completion]
success: is_success
"""
REACH = """\
description: arm reach, for video tests
env: lepton/ArmReach-v0
params: {render_width: 320, render_height: 256}
max_episode_steps: 6
seed: 0
metrics: [time_to_success]
success: is_success
"""
TRAFFIC = """\
description: five minutes of one intersection, for video tests
env: lepton/TrafficSignal-v0
params:
  net: sumo_rl:nets/single-intersection/single-intersection.net.xml
  route: sumo_rl:nets/single-intersection/single-intersection.rou.xml
  duration: 300
  delta_time: 5
  render_size: 128
seed: 0
metrics: [mean_delay]
success: is_success
"""


def scenario_file(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(text)
    return path


def video_frames(path: Path) -> tuple[int, float, tuple[int, ...]]:
    """(frames, fps, frame shape) of an mp4 as ffmpeg decodes it."""
    reader = imageio.get_reader(path)
    try:
        return reader.count_frames(), float(reader.get_meta_data()["fps"]), reader.get_data(0).shape
    finally:
        reader.close()


class Captured:
    """Stands in for the video sink: keeps every frame as composed, before any encoding."""

    def __init__(self) -> None:
        self.frames: list[np.ndarray] = []
        self.fps = 0.0

    def open(self, path: Path, fps: float) -> "Captured":
        self.fps = fps
        return self

    def append(self, frame: np.ndarray, repeats: int = 1) -> None:
        self.frames += [frame] * repeats

    def close(self) -> None:
        pass


@pytest.fixture
def captured(monkeypatch: pytest.MonkeyPatch) -> Captured:
    sink = Captured()
    monkeypatch.setattr(rollouts, "open_sink", sink.open)
    return sink


# ------------------------------------------------------------------------------------------------ timing
@pytest.mark.parametrize("dt", [0.04, 0.1, 5.0, 10.0])
@pytest.mark.parametrize("fps, speed", [(None, None), (None, 1.0), (None, 60.0), (5.0, None), (7.0, 0.3), (30, 120)])
def test_timing_repeats_add_up_to_the_frame_count(dt: float, fps: float | None, speed: float | None) -> None:
    timing = video_timing(dt, fps, speed)
    for n in (1, 7, 100):
        assert sum(timing.repeats(i) for i in range(n)) == timing.frame_count(n)
    assert timing.frame_count(100) == pytest.approx(100 * dt / timing.speed * timing.fps, abs=1)
    if fps is None:
        assert timing.fps <= FPS_CAP
    else:
        assert timing.fps == fps


def test_timing_defaults_real_time_and_traffic_sixty_times() -> None:
    assert video_timing(0.04) == video_timing(0.04, speed=1.0) and video_timing(0.04).fps == pytest.approx(25)
    traffic = video_timing(5.0, domain="traffic")  # a 1 h episode: 720 steps
    assert traffic.speed == 60 and traffic.fps == 12 and traffic.frame_count(720) / traffic.fps == 60
    fast = video_timing(0.1, speed=6.0)  # 60 frames/s wanted: 30 fps, every other frame
    assert (fast.fps, [fast.repeats(i) for i in range(4)]) == (30, [1, 0, 1, 0])
    slow = video_timing(0.1, fps=30, speed=1.0)  # each 10 Hz frame three times
    assert [slow.repeats(i) for i in range(3)] == [3, 3, 3]


@pytest.mark.parametrize(
    "flags, fps, ratio",
    [
        ([], 10.0, 1.0),  # real time: driving steps 0.1 s
        (["--speed", "6"], 30.0, 2.0),  # 60 frames/s capped at 30: every other frame
        (["--fps", "5"], 5.0, 1.0),  # every frame, at 5 fps
        (["--fps", "5", "--speed", "1"], 5.0, 2.0),  # 1 s per s at 5 fps: every other frame
        (["--fps", "20", "--speed", "1"], 20.0, 0.5),  # slow motion: each frame twice
    ],
)
def test_video_has_the_frame_count_and_rate_of_fps_and_speed(
    tmp_path: Path, flags: list[str], fps: float, ratio: float, capsys: pytest.CaptureFixture[str]
) -> None:
    scenario = scenario_file(tmp_path, "drive", DRIVING)
    out = tmp_path / "drive.mp4"
    assert main(["rollout", "scripted", "--scenario", str(scenario), "--out", str(out), *flags]) == 0
    steps = int(capsys.readouterr().out.split(" steps")[0].rsplit(" ", 1)[1])  # "..., 24 steps, ..."
    frames, video_fps, shape = video_frames(out)
    env = lepton_sim.make(str(scenario))
    assert env.metadata["render_fps"] == pytest.approx(10)  # 0.1 s per step
    env.close()
    assert frames == math.ceil(steps / ratio - 1e-9) and video_fps == pytest.approx(fps)
    assert shape == (96, 96, 3)  # state observations: the scene alone
    assert out.with_suffix(".png").is_file()


def test_traffic_default_plays_sixty_simulated_seconds_per_second(tmp_path: Path) -> None:
    scenario = scenario_file(tmp_path, "signal", TRAFFIC)
    result = lepton_sim.rollout("max-pressure", scenario, out=tmp_path / "signal.mp4")
    assert result.episodes[0].length == 60  # 300 s of 5 s decisions
    assert (result.speed, result.fps, result.frames) == (60, 12, 60)  # 5 s of video
    assert video_frames(result.video)[:2] == (60, 12)


def test_gif_follows_the_timing_too(tmp_path: Path, captured: Captured) -> None:
    scenario = scenario_file(tmp_path, "drive", DRIVING)
    result = lepton_sim.rollout("scripted", scenario, out=tmp_path / "drive.gif", speed=4.0)  # 40 frames/s: 30
    assert captured.fps == 30 and len(captured.frames) == result.frames
    assert result.frames == math.ceil(result.episodes[0].length * 30 / 40 - 1e-9)


# ------------------------------------------------------------------------------------------------ pixels policy
class RecordingRandom(Policy):
    """A random policy that keeps what it was shown: the camera images the video must show beside the scene."""

    name = "recording-random"

    def __init__(self) -> None:
        self.seen: list[Any] = []

    def reset(self, context: PolicyContext) -> None:
        self.space = context.action_space
        self.space.seed(0)
        params = dict(context.params)
        side = params.get("render_size")
        self.scene_shape = (side, side) if side else (params.get("render_height"), params.get("render_width"))

    def act(self, observation: Any, state: Any = None, episode_start: Any = None, *, info: Any = None) -> Any:
        self.seen.append(observation)
        return np.stack([self.space.sample()]), state


def _image(observation: Any) -> np.ndarray:
    """Sub-env 0's camera image: the observation, or its Dict's pixels (or image) entry."""
    if isinstance(observation, dict):
        observation = observation.get("pixels", observation.get("observation"))
    return np.asarray(observation)[0]


def pixels(scenario: str, camera_size: int, duration: int = 40) -> str:
    """A traffic scenario text in obs_mode pixels, ``duration`` simulated seconds long."""
    camera = f"render_size: 128\n  obs_mode: pixels\n  camera_size: {camera_size}"
    return scenario.replace("duration: 300", f"duration: {duration}").replace("render_size: 128", camera)


def test_pixels_policy_sees_its_image_enlarged_beside_the_scene(tmp_path: Path, captured: Captured) -> None:
    policy = RecordingRandom()
    result = lepton_sim.rollout(policy, scenario_file(tmp_path, "signal", pixels(TRAFFIC, 32)), out=tmp_path / "s.mp4")
    frames = captured.frames
    assert len(frames) == result.frames == result.episodes[0].length == 8 and captured.fps == 12
    assert frames[0].shape == (128, 128 + 128, 3)  # wider than the scene: its 32x32 image, 4x, beside it
    # frame k is drawn after step k + 1: the policy saw that observation at its next act (the last it never saw)
    assert len(policy.seen) == len(frames)
    for frame, observation in zip(frames, policy.seen[1:]):
        image = _image(observation)
        assert image.shape == (32, 32, 3)
        np.testing.assert_array_equal(frame[:, 128:], np.repeat(np.repeat(image, 4, axis=0), 4, axis=1))
        np.testing.assert_array_equal(frame[:, 128:], enlarge(image, 128))
    assert any(not np.array_equal(a[:, 128:], b[:, 128:]) for a, b in zip(frames, frames[1:]))  # it moves


def test_network_camera_shows_one_view_per_signal(tmp_path: Path, captured: Captured) -> None:
    """The joint traffic env stacks one RGB image per signal: four views in a 2x2 grid beside the scene."""
    network = TRAFFIC.replace("single-intersection/single-intersection", "2x2grid/2x2")
    text = pixels(network.replace("TrafficSignal-v0", "TrafficNetwork-v0"), 21)
    policy = RecordingRandom()
    lepton_sim.rollout(policy, scenario_file(tmp_path, "grid", text), out=tmp_path / "grid.mp4", fps=2)
    cell = (128 - GUTTER) // 2  # two rows of views, a gutter between them
    assert captured.frames[0].shape == (128, 128 + 2 * (cell + GUTTER), 3) and cell == 63
    for frame, observation in zip(captured.frames, policy.seen[1:]):
        image = _image(observation)
        assert image.shape == (21, 21, 12)  # four signals' RGB images
        for k in range(4):
            row, col = divmod(k, 2)
            top, left = row * (cell + GUTTER), 128 + GUTTER * (col + 1) + col * cell
            np.testing.assert_array_equal(
                frame[top : top + cell, left : left + cell], enlarge(image[:, :, 3 * k : 3 * k + 3], cell)
            )


DRIVING_CAMERAS = DRIVING.replace(
    "render_size: 96", "render_size: 96, obs_mode: pixels, obs_camera: [topdown, semantic]"
)
PICK_CAMERAS = """\
description: pick-place seen by two cameras with depth and segmentation, for video tests
env: lepton/ArmPickPlace-v0
params: {obs_mode: state+pixels, obs_camera: [overhead, wrist], camera_depth: true, camera_segmentation: true,
         camera_size: 24, render_width: 160, render_height: 120}
max_episode_steps: 4
seed: 0
metrics: [time_to_success]
success: is_success
"""


@pytest.mark.parametrize(
    "text, cameras, depth_and_segmentation, views",
    [
        (DRIVING_CAMERAS, [("topdown", 3, False), ("semantic", 5, True)], False, ["rgb", "semantic"]),
        (
            PICK_CAMERAS,
            [("overhead", 3, False), ("wrist", 3, False)],
            True,
            ["rgb", "depth", "segmentation"] * 2,
        ),
    ],
    ids=["driving-topdown-semantic", "manufacturing-two-cameras-depth-segmentation"],
)
def test_every_camera_channel_is_a_view_beside_the_scene(
    tmp_path: Path,
    captured: Captured,
    text: str,
    cameras: list[tuple[str, int, bool]],
    depth_and_segmentation: bool,
    views: list[str],
) -> None:
    policy = RecordingRandom()
    lepton_sim.rollout(policy, scenario_file(tmp_path, "cameras", text), out=tmp_path / "cameras.mp4")
    first = _image(policy.seen[1])
    layout = camera_layout(cameras, depth_and_segmentation, depth_and_segmentation, first.shape[2])
    assert [v.kind for v in layout] == views  # the camera contract's layout, not a plain split
    height, width = policy.scene_shape
    for frame, observation in zip(captured.frames, policy.seen[1:]):
        panel = views_panel(observation_views(_image(observation), layout), height)
        assert panel is not None and frame.shape[1] >= width + panel.shape[1]
        np.testing.assert_array_equal(frame[:height, width : width + panel.shape[1]], panel)


def test_state_policy_video_is_the_scene_with_an_overlay_in_its_corner(
    tmp_path: Path, captured: Captured, monkeypatch: pytest.MonkeyPatch
) -> None:
    scenario = scenario_file(tmp_path, "reach", REACH)
    lepton_sim.rollout("random", scenario, out=tmp_path / "reach.mp4")
    with_overlay, captured.frames = captured.frames, []
    assert with_overlay[0].shape == (256, 320, 3)  # state observations: the scene alone
    monkeypatch.setattr(rollouts, "draw_overlay", lambda scene, lines: scene)
    lepton_sim.rollout("random", scenario, out=tmp_path / "reach.mp4")  # the same seeded episode, bare
    assert len(captured.frames) == len(with_overlay)
    for drawn, bare in zip(with_overlay, captured.frames):
        assert not np.array_equal(drawn[:20, :80], bare[:20, :80])  # the text box
        np.testing.assert_array_equal(drawn[128:, 160:], bare[128:, 160:])  # nothing else


# ------------------------------------------------------------------------------------------------ overlay
def test_overlay_changes_pixels_in_its_corner_only() -> None:
    env = lepton_sim.make("driving/obstacle-avoid", render_mode="rgb_array")
    try:
        env.reset(seed=3)
        scene = env.render()
    finally:
        env.close()
    lines = overlay_lines(12.5, 125, 0.25, 31.5, {"speed": 11.2, "lane": 1}, {"speed": "m/s"})
    assert lines == ["t 12.50 s   step 125", "reward +0.250   return +31.50", "speed 11.2 m/s"]
    drawn = draw_overlay(scene, lines)
    assert drawn.shape == scene.shape and drawn.dtype == np.uint8
    h, w = scene.shape[:2]
    assert not np.array_equal(drawn[: h // 6, : w // 3], scene[: h // 6, : w // 3])  # the text box
    np.testing.assert_array_equal(drawn[h // 2 :, w // 2 :], scene[h // 2 :, w // 2 :])  # the rest untouched
    later = draw_overlay(scene, overlay_lines(12.6, 126, 0.25, 31.75, {"speed": 11.3}, {"speed": "m/s"}))
    assert not np.array_equal(later[: h // 6, : w // 3], drawn[: h // 6, : w // 3])  # the text follows the step


def test_overlay_lines_format_time_arrays_and_missing_values() -> None:
    lines = overlay_lines(725.0, 145, -1.0, -90.0, {"phase": np.array([0, 2, 1])}, {"phase": "", "absent": "s"}, "2/3")
    assert lines[0] == "t 725.0 s (12:05)   step 145   episode 2/3"
    assert lines[2:] == ["phase 0 2 1"]  # keys the info lacks are left out
    assert overlay_lines(1.0, 1, 0.0, 0.0, {"t": float("nan")}, {"t": "s"})[2] == "t n/a"


# ------------------------------------------------------------------------------------------------ channel views
def test_multi_camera_image_splits_into_its_views() -> None:
    rng = np.random.default_rng(0)
    rgb_a, rgb_b = rng.integers(0, 256, (2, 16, 16, 3), dtype=np.uint8)
    depth = rng.integers(0, 256, (16, 16, 1), dtype=np.uint8)
    segmentation = rng.integers(0, 4, (16, 16, 1), dtype=np.uint8)
    image = np.concatenate([rgb_a, depth, segmentation, rgb_b, depth, segmentation], axis=2)
    layout = camera_layout([("overhead", 3, False), ("wrist", 3, False)], True, True, image.shape[2])
    assert [(v.label, v.kind) for v in layout] == [
        ("overhead", "rgb"),
        ("overhead depth", "depth"),
        ("overhead segmentation", "segmentation"),
        ("wrist", "rgb"),
        ("wrist depth", "depth"),
        ("wrist segmentation", "segmentation"),
    ]
    views = observation_views(image, layout)
    np.testing.assert_array_equal(views[0], rgb_a)
    np.testing.assert_array_equal(views[3], rgb_b)
    np.testing.assert_array_equal(views[1], np.repeat(depth, 3, axis=2))  # depth in grey
    ids = segmentation[:, :, 0]
    assert (views[2][ids == 0] == BACKGROUND).all() and (views[2][ids == 2] == PALETTE[1]).all()
    frame = compose(np.zeros((64, 64, 3), np.uint8), views)
    assert frame.shape[0] == 64 and frame.shape[1] > 64  # six views in a grid at the scene's height


def test_semantic_grid_is_coloured_by_class() -> None:
    grid = np.zeros((8, 8, 3), np.uint8)
    grid[:4, :, 0] = 255  # class 0: top half
    grid[:, :4, 2] = 255  # class 2: left half, drawn over class 0
    (view,) = observation_views(grid, camera_layout([("semantic", 3, True)], False, False, 3))
    assert (view[:4, 4:] == PALETTE[0]).all() and (view[:, :4] == PALETTE[2]).all()
    assert (view[4:, 4:] == BACKGROUND).all()


def test_stacked_rgb_cameras_split_per_image_and_odd_layouts_plainly() -> None:
    views = camera_layout([("approaches", 12, False)], False, False, 12)  # a network's 4 signals
    assert [(v.label, v.start, v.stop) for v in views] == [(f"approaches {k + 1}", 3 * k, 3 * k + 3) for k in range(4)]
    assert camera_layout([("approaches", 3, False)], False, False, 12) == plain_layout(12)  # does not add up
    assert [v.kind for v in plain_layout(4)] == ["gray"] * 4
    assert [v.kind for v in plain_layout(6)] == ["rgb", "rgb"]


def test_enlarge_is_nearest_neighbour_and_compose_pads_to_even_sides() -> None:
    image = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    np.testing.assert_array_equal(enlarge(image, 4), np.repeat(np.repeat(image, 2, axis=0), 2, axis=1))
    assert enlarge(image, 5).shape == (5, 8, 3)  # aspect kept: 3 * 5 / 2 = 7.5 -> 8
    frame = compose(np.zeros((5, 7, 3), np.uint8), [image])
    assert frame.shape == (6, 16, 3)  # 7 + 8 wide, padded to even sides for H.264


# ------------------------------------------------------------------------------------------------ overlay keys
@pytest.mark.parametrize("env_id", sorted(LEPTON_ENVS))
def test_overlay_keys_are_info_keys(env_id: str) -> None:
    spec = LEPTON_ENVS[env_id]
    assert spec.overlay_keys, f"{env_id} declares no overlay keys"
    kwargs = {"duration": 20} if spec.domain == "traffic" else {}
    env = gymnasium.make(env_id, **kwargs)
    try:
        _, info = env.reset(seed=0)
        _, _, _, _, step_info = env.step(env.action_space.sample())
    finally:
        env.close()
    for key in spec.overlay_keys:
        assert key in info and key in step_info, key


# ------------------------------------------------------------------------------------------------ usage errors
@pytest.mark.parametrize(
    "flags, message",
    [
        (["--fps", "-5"], "argument --fps: must be a number > 0, got '-5'"),
        (["--fps", "0"], "argument --fps: must be a number > 0"),
        (["--fps", "1000"], "argument --fps: must be at most 240 frames per second"),
        (["--speed", "nan"], "argument --speed: must be a number > 0, got 'nan'"),
        (["--speed", "fast"], "argument --speed: must be a number > 0, got 'fast'"),
        (["--speed", "-1"], "argument --speed: must be a number > 0"),
    ],
)
def test_bad_video_flags_are_usage_errors(
    tmp_path: Path, flags: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "never.mp4"
    with pytest.raises(SystemExit) as exit_:
        main(["rollout", "random", "--scenario", "driving/lane-keep", "--out", str(out), *flags])
    assert exit_.value.code == 2 and message in capsys.readouterr().err and not out.exists()


def test_bad_rates_from_python_are_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(lepton_sim.LeptonError, match="--speed must be a positive number"):
        lepton_sim.rollout("random", "driving/lane-keep", out=tmp_path / "v.mp4", speed=0.0)
