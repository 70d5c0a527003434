"""Sensor realism (envs/sensor_realism.py): severity 0 leaves images bit-identical and costs nothing; each
degradation changes an image the way it should (noise raises variance, blur and motion blur lower high
frequencies, occlusion blanks a region, dead pixels stick at 0/255, brightness/contrast/gamma move the
intensities the right way); the same seed repeats, another seed differs; pose jitter and light stay within the
documented magnitudes; bad sensor fields are one clear line naming the scenario file and the field."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from fake_camera_env import FakeCameraEnv

import lepton_sim
from lepton_sim.envs import LEPTON_ENVS
from lepton_sim.envs.camera_image import CameraImage
from lepton_sim.envs.camera_params import CORRUPTIONS, SEVERITY_LEVELS, SensorParams
from lepton_sim.envs.observation_pipeline import STAGES
from lepton_sim.envs.pixel_observation import CameraLayout, compose
from lepton_sim.envs.sensor_realism import (
    NEUTRAL,
    PIXEL_FIELDS,
    SEVERITY,
    SensorModel,
    apply_worlds,
    is_clean,
    resolved,
)
from lepton_sim.errors import ScenarioError
from lepton_sim.scenario import builtin_root

SIZE = 48


def _scene(size: int = SIZE) -> np.ndarray:
    """A test card: smooth gradients, a bright square and fine stripes (high frequencies to blur away)."""
    ys, xs = np.mgrid[0:size, 0:size]
    img = np.stack([xs * 255 // (size - 1), ys * 255 // (size - 1), np.full_like(xs, 90)], axis=-1)
    img[size // 4 : size // 2, size // 4 : size // 2] = 230
    img[:, 3 * size // 4 :, 2] = np.where(xs[:, 3 * size // 4 :] % 2 == 0, 20, 235)
    return img.astype(np.uint8)


def _frames(sensor: dict, seed: int | None = 1, n: int = 1, size: int = SIZE) -> list[np.ndarray]:
    model = SensorModel(SensorParams(**sensor), size, [1])
    model.begin_episode(seed)
    src = _scene(size)
    out = []
    for _ in range(n):
        dst = np.empty_like(src)
        model.apply(0, src, dst)
        out.append(dst)
    np.testing.assert_array_equal(src, _scene(size))  # the rendered frame is never written to
    return out


def _laplacian(img: np.ndarray) -> float:
    x = img.astype(np.float64)
    lap = 4 * x[1:-1, 1:-1] - x[:-2, 1:-1] - x[2:, 1:-1] - x[1:-1, :-2] - x[1:-1, 2:]
    return float(np.abs(lap).mean())


def test_severity_zero_is_clean_and_adds_no_stage() -> None:
    assert is_clean(SensorParams()) and SensorParams().clean
    assert is_clean(SensorParams(severity=0, noise_std=0, corruptions=["noise"]))
    assert not is_clean(SensorParams(severity=1)) and not is_clean(SensorParams(blur_sigma=[0, 1]))
    assert is_clean(SensorParams(severity=2, corruptions=[]))  # severity switches on nothing
    env = STAGES["pixels"].single(FakeCameraEnv(obs_mode="pixels", camera_size=SIZE))
    assert env.sensor is None  # nothing sampled, nothing applied
    image, _ = env.reset(seed=0)
    np.testing.assert_array_equal(image, env.unwrapped.camera_image("cam", SIZE, SIZE).rgb)


@pytest.mark.parametrize("group", [g for g in CORRUPTIONS if g not in ("pose", "light")])
def test_every_corruption_at_every_severity_changes_the_image(group: str) -> None:
    src = _scene(84)  # the severity table's reference size (sub-pixel blurs of smaller images change nothing)
    for severity in range(1, SEVERITY_LEVELS + 1):
        (out,) = _frames({"severity": severity, "corruptions": [group]}, seed=3, size=84)
        assert out.dtype == np.uint8 and out.shape == src.shape
        assert not np.array_equal(out, src), (group, severity)


def test_noise_raises_variance_by_about_its_std() -> None:
    src = _scene().astype(np.float64)
    (out,) = _frames({"noise_std": 12})
    residual = out.astype(np.float64) - src
    flat = (slice(0, SIZE // 4), slice(0, SIZE // 4), 2)  # a flat patch (blue = 90): far from clipping
    assert out[flat].std() > 8 and abs(residual[flat].std() - 12) < 2
    assert abs(residual.mean()) < 1


@pytest.mark.parametrize("sensor", [{"blur_sigma": 1.2}, {"motion_blur": 5}], ids=["gaussian", "motion"])
def test_blur_lowers_high_frequencies_and_keeps_the_mean(sensor: dict) -> None:
    src = _scene()
    (out,) = _frames(sensor)
    assert _laplacian(out) < 0.6 * _laplacian(src)
    assert abs(float(out.mean()) - float(src.mean())) < 1.5


def test_motion_blur_direction_is_drawn_per_episode() -> None:
    first = _frames({"motion_blur": 7}, seed=1)[0]
    assert any(not np.array_equal(first, _frames({"motion_blur": 7}, seed=s)[0]) for s in range(2, 6))


@pytest.mark.parametrize(
    "sensor, direction",
    [
        ({"brightness": 0.2}, +1),
        ({"brightness": -0.2}, -1),
        ({"gamma": 2.0}, -1),
        ({"gamma": 0.5}, +1),
    ],
)
def test_brightness_and_gamma_move_the_mean_the_right_way(sensor: dict, direction: int) -> None:
    (out,) = _frames(sensor)
    assert direction * (float(out.mean()) - float(_scene().mean())) > 10


@pytest.mark.parametrize("contrast, wider", [(1.5, True), (0.5, False)])
def test_contrast_spreads_or_narrows_the_intensities(contrast: float, wider: bool) -> None:
    (out,) = _frames({"contrast": contrast})
    assert (float(out.std()) > float(_scene().std())) == wider


def test_occlusion_blanks_rectangles_fixed_for_the_episode() -> None:
    src = _scene()
    frames = _frames({"occlusions": 1, "occlusion_size": 0.25}, n=3)
    changed = np.any(frames[0] != src, axis=-1)
    ys, xs = np.nonzero(changed)
    box = frames[0][ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
    assert box.shape[:2] == (12, 12)  # 0.25 of 48 pixels
    assert len(np.unique(box.reshape(-1, 3), axis=0)) == 1  # one blank colour
    assert all(np.array_equal(f, frames[0]) for f in frames[1:])


def test_dead_pixels_are_stuck_black_or_white_at_fixed_places() -> None:
    src = _scene()
    frames = _frames({"dead_pixels": 0.02}, n=2)
    changed = np.any(frames[0] != src, axis=-1)
    stuck = frames[0][changed]
    assert 0.5 * 0.02 * SIZE * SIZE <= changed.sum() <= 0.02 * SIZE * SIZE
    assert np.all((stuck == 0).all(axis=-1) | (stuck == 255).all(axis=-1))
    np.testing.assert_array_equal(frames[0], frames[1])


def test_same_seed_repeats_other_seeds_differ_and_an_unseeded_reset_continues() -> None:
    sensor = {"severity": 3}
    a, b = _frames(sensor, seed=7, n=4), _frames(sensor, seed=7, n=4)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not np.array_equal(a[1], a[2])  # fresh noise every frame
    assert not np.array_equal(a[0], _frames(sensor, seed=8)[0])
    runs = []
    for _ in range(2):
        model = SensorModel(SensorParams(**sensor), SIZE, [1])
        model.begin_episode(7)
        model.begin_episode(None)  # the next episode of the same stream
        runs.append((model.conditions(0), model._photometric[0][0].rects))
    assert runs[0][0] == runs[1][0]
    assert [r[:4] for r in runs[0][1]] == [r[:4] for r in runs[1][1]]


def test_the_env_never_draws_the_sensor_from_its_np_random() -> None:
    """A degraded episode leaves the env's own generator exactly where a state episode leaves it."""
    after = []
    for kwargs in ({"obs_mode": "state"}, {"obs_mode": "pixels", "sensor": {"severity": 5}}):
        env = STAGES[kwargs["obs_mode"]].single(FakeCameraEnv(camera_size=SIZE, **kwargs))
        env.reset(seed=4)
        env.step(np.zeros(2, np.float32))
        after.append(env.unwrapped.np_random.random())
    assert after[0] == after[1]


def test_pose_jitter_and_light_stay_within_the_documented_magnitudes() -> None:
    model = SensorModel(SensorParams(severity=3), SIZE, [1], light_direction=(0.0, 0.0, 1.0))
    offsets, fovs = [], []
    for seed in range(200):
        model.begin_episode(seed)
        c = model.conditions(0)
        assert max(abs(v) for v in c.offset) <= 0.01 and max(abs(v) for v in c.rotation) <= 5.0
        assert abs(c.fov_delta) <= 5.0
        assert c.light_direction is not None and c.light_color is not None
        assert abs(math.hypot(*c.light_direction) - 1.0) < 1e-9
        assert math.degrees(math.acos(c.light_direction[2])) <= 20.0 + 1e-9
        assert all(0.85 <= v <= 1.0 for v in c.light_color)
        offsets.append(c.offset[0])
        fovs.append(c.fov_delta)
    assert min(offsets) < -0.005 and max(offsets) > 0.005  # both signs, robosuite's +-1 cm
    assert min(fovs) < -2.5 and max(fovs) > 2.5
    without_light = SensorModel(SensorParams(severity=3), SIZE, [1])  # a renderer without lights
    without_light.begin_episode(0)
    assert without_light.conditions(0).light_direction is None


def test_a_camera_stacking_several_images_poses_and_degrades_each_on_its_own() -> None:
    model = SensorModel(SensorParams(severity=3), SIZE, [2])
    model.begin_episode(0)
    a, b = model.conditions(0)  # type: ignore[misc]
    assert a != b
    src = _scene()
    one, two = np.empty_like(src), np.empty_like(src)
    model.apply(0, src, one, 0)
    model.apply(0, src, two, 1)
    assert not np.array_equal(one, two)


MIXED_WORLDS = [
    {"severity": 1},
    {"severity": 3},
    {"severity": 5},
    {"severity": 4, "corruptions": ["blur", "noise"]},
    {"severity": 5, "corruptions": ["motion_blur", "contrast"]},
    {"severity": 2, "corruptions": ["occlusion", "gamma"]},
    {"severity": 3, "corruptions": ["pose"]},  # pose only: nothing photometric to apply
    {"blur_sigma": [0.3, 2.5], "motion_blur": [1, 9], "contrast": [0.6, 1.4], "noise_std": [0, 20]},
    {"dead_pixels": 0.01, "brightness": [-0.2, 0.2]},
    {"severity": 3},
    {"severity": 5, "corruptions": ["blur"]},
    {"severity": 5, "corruptions": ["blur"]},
]


def _mixed_sensors() -> list[SensorModel | None]:
    sensors: list[SensorModel | None] = [SensorModel(SensorParams(**p), SIZE, [1]) for p in MIXED_WORLDS]
    for i, sensor in enumerate(sensors):
        assert sensor is not None
        sensor.begin_episode(20 + i)
    return sensors[:5] + [None] + sensors[5:]  # a world without degradations among them


def test_batched_worlds_with_mixed_severities_equal_each_world_degraded_alone() -> None:
    """compose over a batch (a native vector env's worlds, each with its own sensor: severities, corruptions,
    kernels and noise differ per world) gives each world the image its sensor gives it alone, frame after frame,
    and draws the same noise offsets (the next frames agree too); a re-render of some worlds as well."""
    layout = CameraLayout(("cam",), SIZE, (3,), (False,), False, False, ((0.0, 1.0),), False)
    batched, alone = _mixed_sensors(), _mixed_sensors()
    n = len(batched)
    rgba = np.stack([np.roll(np.dstack([_scene(), _scene()[..., :1]]), 3 * i, axis=1) for i in range(n)])
    src = rgba[..., :3]  # strided channels, as an RGB view of an RGBA render
    for frame in range(3):
        worlds = None if frame < 2 else [1, 4, 5, 9, 12]
        out = np.zeros((n, SIZE, SIZE, 3), np.uint8)
        compose(layout, [CameraImage(rgb=src)], out, batched, worlds)
        for i in range(n) if worlds is None else worlds:
            one = np.zeros((SIZE, SIZE, 3), np.uint8)
            compose(layout, [CameraImage(rgb=src[i])], one, (alone[i],))
            np.testing.assert_array_equal(out[i], one, err_msg=f"frame {frame} world {i}")
    assert any(not np.array_equal(out[1], out[i]) for i in (4, 5))


def test_apply_worlds_writes_strided_outputs_like_apply() -> None:
    sensors = [s for s in _mixed_sensors() if s is not None]
    alone = [s for s in _mixed_sensors() if s is not None]
    src = np.stack([np.ascontiguousarray(np.rot90(_scene(), i % 4)) for i in range(len(sensors))])
    out = np.zeros((len(sensors), SIZE, SIZE, 5), np.uint8)
    apply_worlds(sensors, 0, 0, src, out[..., 1:4])
    for i, sensor in enumerate(alone):
        one = np.zeros((SIZE, SIZE, 3), np.uint8)
        sensor.apply(0, src[i], one)
        np.testing.assert_array_equal(out[i, ..., 1:4], one)
    assert not out[..., 0].any() and not out[..., 4].any()


def test_the_severity_table_grows_with_severity_and_scales_pixel_sizes() -> None:
    assert set(SEVERITY) == {f for fields in CORRUPTIONS.values() for f in fields}
    for name, levels in SEVERITY.items():
        assert len(levels) == SEVERITY_LEVELS
        spread = [max(abs(lo - NEUTRAL.get(name, 0.0)), abs(hi - NEUTRAL.get(name, 0.0))) for lo, hi in levels]
        assert spread == sorted(spread), name
        assert SensorParams(**{name: list(levels[-1])})  # every level is inside the field's bounds
    at84, at42 = resolved(SensorParams(severity=3), 84), resolved(SensorParams(severity=3), 42)
    for name in PIXEL_FIELDS:
        assert at42[name].high == pytest.approx(at84[name].high / 2)
    assert at42["noise_std"] == at84["noise_std"]


def test_fields_given_explicitly_win_over_severity_and_corruptions_choose_what_severity_sets() -> None:
    ranges = resolved(SensorParams(severity=5, noise_std=1, corruptions=["noise", "blur"]))
    assert (ranges["noise_std"].low, ranges["noise_std"].high) == (1, 1)
    assert ranges["blur_sigma"].high == SEVERITY["blur_sigma"][4][1]
    assert ranges["motion_blur"].high == 0 and ranges["occlusions"].high == 0


def _sensor_scenarios() -> list[str]:
    out = []
    for path in sorted(builtin_root().rglob("*.yaml")):
        text = path.read_text()
        env = next((line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("env:")), None)
        if env in LEPTON_ENVS and "sensor" in LEPTON_ENVS[env].params_model.model_fields:
            domain = LEPTON_ENVS[env].domain
            if domain not in {s.split("/")[0] for s in out}:
                out.append(str(path.relative_to(builtin_root()).with_suffix("")))
    return out


BAD_SENSORS = [
    ("noise_std: [-1, 2]", r"params\.sensor\.noise_std: .*noise_std must be within \[0, 128\], got \[-1, 2\]"),
    ("blur_sigma: [3, 1]", r"params\.sensor\.blur_sigma: .*range low \(3.0\) is greater than high \(1.0\)"),
    ("severity: 6", r"params\.sensor\.severity: .*less than or equal to 5"),
    ("corruptions: [fog]", r"params\.sensor\.corruptions: .*unknown corruption 'fog'; allowed: noise, blur"),
    (
        "nosie_std: 3",
        r"params\.sensor: unknown field 'nosie_std' \(did you mean 'noise_std'\?\); allowed: severity, corruptions, noise_std",
    ),
    ("occlusions: 1.5", r"params\.sensor\.occlusions: .*whole numbers"),
]


@pytest.mark.parametrize("scenario", _sensor_scenarios())
@pytest.mark.parametrize("bad, message", BAD_SENSORS, ids=[b.split(":")[0] for b, _ in BAD_SENSORS])
def test_bad_sensor_fields_name_the_file_and_the_field(scenario: str, bad: str, message: str, tmp_path: Path) -> None:
    text = (builtin_root() / f"{scenario}.yaml").read_text()
    key, value = bad.split(": ", 1)
    path = tmp_path / "bad.yaml"
    path.write_text(text.replace("params:", f"params:\n  sensor: {{{key}: {value}}}", 1))
    if "params: {" in text:  # flow-style params: add the field inside the mapping
        path.write_text(text.replace("params: {", f"params: {{sensor: {{{key}: {value}}}, ", 1))
    with pytest.raises(ScenarioError, match=message) as err:
        lepton_sim.load_scenario(path)
    assert str(err.value).startswith(str(path))
