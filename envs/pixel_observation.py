"""Observation modes ``pixels`` and ``state+pixels``: the env's named cameras, stacked on channels, as uint8.

Why a wrapper: an env produces its state observation and camera images (``camera_image``); which of them an agent
sees is the observation pipeline's choice (``observation_pipeline``), so no env branches on its ``obs_mode``.
The layout (:class:`CameraLayout`) and the composition (:func:`compose`) are shared with the native vector
stage (``vector_pixel_observation``), so a batched image equals the single env's pixel for pixel.

Per camera the channels are its RGB (3) or semantic grid (C), then depth (1: metres over the camera's near..far
as 0..255) and segmentation (1: class ids) where asked for; ``channel_order`` "first" gives (C, H, W). An env
whose camera stacks several RGB images (a traffic network: one per signal) says how many channels by a
``camera_channels(name)`` method; each RGB triple is then degraded as its own sensor.
Goal-conditioned envs keep ``achieved_goal`` / ``desired_goal`` beside ``pixels`` (SB3's HerReplayBuffer reads
only those two keys, so ``pixels`` drops ``observation``; ``state+pixels`` keeps it as the state).

Every observation is a fresh array: SB3 keeps the previous one (``_last_obs``) while stepping and users append
frames to lists, so a reused output buffer would silently change data already handed out. Scratch buffers
(blur, noise, channel-first staging) are reused.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, Sequence

import gymnasium
import numpy as np
from gymnasium import spaces

from lepton_sim.envs.camera_image import NOMINAL, CameraConditions, CameraImage
from lepton_sim.envs.sensor_realism import SensorModel, apply_worlds, copy_channels, is_clean, is_nominal

GOAL_KEYS = ("achieved_goal", "desired_goal")
STATE_KEY, PIXELS_KEY = "state", "pixels"


class CameraEnv(Protocol):
    """What a base env offers for camera modes: named cameras rendered at a requested size."""

    params: Any

    def camera_image(self, name: str, width: int, height: int, **kwargs: Any) -> CameraImage: ...


def is_goal_space(space: spaces.Space) -> bool:
    """A goal-conditioned (HER) observation space: Dict with ``observation``, ``achieved_goal``, ``desired_goal``."""
    return isinstance(space, spaces.Dict) and {"observation", *GOAL_KEYS} <= set(space.spaces)


@dataclass(frozen=True)
class CameraLayout:
    """Where each camera's channels go in the image (read from an env's ``CameraParams``)."""

    cameras: tuple[str, ...]
    size: int
    channels: tuple[int, ...]  # per camera: 3 (RGB) or its semantic classes
    semantic: tuple[bool, ...]
    depth: bool
    segmentation: bool
    depth_ranges: tuple[tuple[float, float], ...]
    channel_first: bool

    @classmethod
    def of(cls, params: Any, env: Any = None) -> "CameraLayout":
        """From the params; ``env`` (base or native vector env) may name channel counts by ``camera_channels``."""
        cameras = tuple(params.cameras)
        count = getattr(env, "camera_channels", None) or params.camera_channels
        return cls(
            cameras=cameras,
            size=params.camera_size,
            channels=tuple(int(count(name)) for name in cameras),
            semantic=tuple(name in params.CAMERA_SEMANTIC_CHANNELS for name in cameras),
            depth=params.camera_depth,
            segmentation=params.camera_segmentation,
            depth_ranges=tuple(params.depth_range(name) for name in cameras),
            channel_first=params.channel_order == "first",
        )

    def __post_init__(self) -> None:
        for name, n, semantic in zip(self.cameras, self.channels, self.semantic):
            if not semantic and n % 3:
                raise ValueError(f"camera {name!r}: {n} colour channels is not a stack of RGB images")

    @property
    def rgb_images(self) -> tuple[int, ...]:
        """RGB images each camera stacks (0 for a semantic grid): what sensor realism degrades."""
        return tuple(0 if semantic else n // 3 for n, semantic in zip(self.channels, self.semantic))

    def offsets(self) -> list[int]:
        """First channel of each camera."""
        extra = int(self.depth) + int(self.segmentation)
        out, c = [], 0
        for n in self.channels:
            out.append(c)
            c += n + extra
        return out

    @property
    def n_channels(self) -> int:
        return sum(self.channels) + len(self.cameras) * (int(self.depth) + int(self.segmentation))

    @property
    def hwc(self) -> tuple[int, int, int]:
        return (self.size, self.size, self.n_channels)

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.n_channels, self.size, self.size) if self.channel_first else self.hwc

    def space(self) -> spaces.Box:
        return spaces.Box(0, 255, shape=self.shape, dtype=np.uint8)

    def capture_kwargs(self) -> dict[str, Any]:
        """Only the flags asked for, so renderers keep their fast default path (and older signatures work)."""
        kwargs: dict[str, Any] = {}
        if self.depth:
            kwargs["depth"] = True
        if self.segmentation:
            kwargs["segmentation"] = True
        return kwargs


def observation_space(state: spaces.Space, image: spaces.Box, include_state: bool) -> spaces.Space:
    """The camera mode's space: the image; ``state+pixels``: Dict(state, pixels); goal envs keep their goals."""
    if is_goal_space(state):
        assert isinstance(state, spaces.Dict)
        keys = {k: state[k] for k in GOAL_KEYS}
        if include_state:
            keys["observation"] = state["observation"]
        return spaces.Dict({**keys, PIXELS_KEY: image})
    return spaces.Dict({STATE_KEY: state, PIXELS_KEY: image}) if include_state else image


def combine(state: Any, image: np.ndarray, include_state: bool, goal: bool) -> Any:
    """One observation of :func:`observation_space` (keys in the Dict space's sorted order)."""
    if goal:
        out = {"achieved_goal": state["achieved_goal"], "desired_goal": state["desired_goal"]}
        if include_state:
            out["observation"] = state["observation"]
        out[PIXELS_KEY] = image
        return out
    return {PIXELS_KEY: image, STATE_KEY: state} if include_state else image


def _image_data(layout: CameraLayout, k: int, image: CameraImage) -> np.ndarray:
    """Camera ``k``'s colour or class channels from its capture (with a clear error where they disagree)."""
    name, n = layout.cameras[k], layout.channels[k]
    data = image.semantic if layout.semantic[k] else image.rgb
    if data is None:
        if not layout.semantic[k] and image.semantic is not None:
            raise ValueError(
                f"camera {name!r} returned a semantic grid ({image.semantic.shape[-1]} channels) but is not listed "
                "in its params' CAMERA_SEMANTIC_CHANNELS"
            )
        raise ValueError(f"camera {name!r} returned no {'semantic grid' if layout.semantic[k] else 'rgb'} image")
    if data.shape[-3:] != (layout.size, layout.size, n):
        raise ValueError(
            f"camera {name!r} returned an image of shape {data.shape[-3:]}, expected {(layout.size, layout.size, n)}"
            " (CAMERA_SEMANTIC_CHANNELS declares semantic cameras' channels, an env's camera_channels(name) stacks)"
        )
    return data


def compose(
    layout: CameraLayout,
    images: Sequence[CameraImage],
    out: np.ndarray,
    sensors: Sequence[SensorModel | None] = (None,),
    worlds: Sequence[int] | None = None,
) -> None:
    """Write the cameras' captures into ``out`` (..., H, W, C), degrading RGB with ``sensors``.

    Batched captures (leading axis N) fill ``out`` (N, H, W, C); ``sensors[i]`` degrades world i, and only the
    ``worlds`` listed are written (all by default). A single capture has no batch axis and one sensor.
    """
    batched = out.ndim == 4
    rows: Sequence[int | None] = [None]  # a single capture: no batch axis
    if batched:
        rows = list(range(out.shape[0]) if worlds is None else worlds)
    degraded = any(s is not None for s in sensors)
    for k, (c0, image) in enumerate(zip(layout.offsets(), images)):
        data, n = _image_data(layout, k, image), layout.channels[k]
        groups = layout.rgb_images[k] if degraded else 0
        # images each world's sensor degrades (written below), per RGB image of the camera
        noisy = [[i for i in rows if _degrades(sensors, i, k, g)] for g in range(groups)]
        if groups and all(len(d) == len(rows) for d in noisy) and n == 3 * groups:
            pass  # every image is degraded into out: no plain copy first
        elif batched and worlds is not None:
            out[list(worlds), ..., c0 : c0 + n] = data[list(worlds)]
        else:
            copy_channels(out[..., c0 : c0 + n], data)  # every world at once
        for g, chosen in enumerate(noisy):
            if not chosen:
                continue
            src, dst = data[..., 3 * g : 3 * g + 3], out[..., c0 + 3 * g : c0 + 3 * g + 3]
            if not batched:
                sensor = sensors[0]
                assert sensor is not None
                sensor.apply(k, src, dst, g)
                continue
            models = [sensors[i] for i in chosen]
            if chosen == list(range(src.shape[0])):  # every world, in order: views, no gather
                apply_worlds(models, k, g, src, dst)  # type: ignore[arg-type]
            else:
                part = np.empty((len(chosen), *dst.shape[1:]), np.uint8)
                apply_worlds(models, k, g, src[chosen], part)  # type: ignore[arg-type]
                dst[chosen] = part
        c = c0 + n
        if layout.depth:
            if image.depth is None:
                raise ValueError(f"camera {layout.cameras[k]!r} returned no depth though camera_depth is set")
            near, far = layout.depth_ranges[k]
            depth = image.depth if worlds is None or not batched else image.depth[list(worlds)]
            scaled = np.clip((depth - near) * (255.0 / (far - near)) + 0.5, 0.0, 255.0)
            _put(out, c, scaled, worlds if batched else None)
            c += 1
        if layout.segmentation:
            if image.segmentation is None:
                raise ValueError(f"camera {layout.cameras[k]!r} returned no segmentation though it is set")
            seg = image.segmentation if worlds is None or not batched else image.segmentation[list(worlds)]
            _put(out, c, np.clip(seg, 0, 255), worlds if batched else None)


def _degrades(sensors: Sequence[SensorModel | None], i: int | None, k: int, g: int) -> bool:
    sensor = sensors[0 if i is None else i]
    return sensor is not None and sensor.degrades(k, g)


def _put(out: np.ndarray, channel: int, values: np.ndarray, worlds: Sequence[int] | None) -> None:
    if worlds is None:
        np.copyto(out[..., channel], values, casting="unsafe")
    else:
        out[list(worlds), ..., channel] = values.astype(np.uint8)


def to_order(layout: CameraLayout, hwc: np.ndarray) -> np.ndarray:
    """(…, H, W, C) staging -> the declared layout, always a fresh array."""
    if not layout.channel_first:
        return hwc
    return np.ascontiguousarray(np.moveaxis(hwc, -1, -3))


def sensor_for(params: Any, layout: CameraLayout) -> SensorModel | None:
    """The env's sensor model, or None when its sensor settings change nothing (then nothing is sampled)."""
    if is_clean(params.sensor):
        return None
    return SensorModel(params.sensor, layout.size, layout.rgb_images, getattr(params, "LIGHT_DIRECTION", None))


class PixelObservation(gymnasium.Wrapper, gymnasium.utils.RecordConstructorArgs):
    """``pixels`` (``include_state`` False) or ``state+pixels`` on a single env, configured from its params."""

    def __init__(self, env: gymnasium.Env, include_state: bool = False) -> None:
        gymnasium.utils.RecordConstructorArgs.__init__(self, include_state=include_state)
        gymnasium.Wrapper.__init__(self, env)
        params = env.unwrapped.params  # type: ignore[attr-defined]
        self.include_state = include_state
        self.layout = CameraLayout.of(params, env.unwrapped)
        self.sensor = sensor_for(params, self.layout)
        self._goal = is_goal_space(env.observation_space)
        self._staging = np.empty(self.layout.hwc, np.uint8) if self.layout.channel_first else None
        self._kwargs = self.layout.capture_kwargs()
        self.observation_space = observation_space(env.observation_space, self.layout.space(), include_state)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict]:
        obs, info = self.env.reset(seed=seed, options=options)
        if self.sensor is not None:
            self.sensor.begin_episode(seed)
        return combine(obs, self.image(), self.include_state, self._goal), info

    def step(self, action: Any) -> tuple[Any, Any, bool, bool, dict]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        return combine(obs, self.image(), self.include_state, self._goal), reward, terminated, truncated, info

    def conditions(self, k: int) -> CameraConditions | tuple[CameraConditions, ...]:
        return NOMINAL if self.sensor is None else self.sensor.conditions(k)

    def image(self) -> np.ndarray:
        """Render the cameras asked for, as the observation's image (a fresh array)."""
        base = self.env.unwrapped
        images = []
        for k, name in enumerate(self.layout.cameras):
            conditions = self.conditions(k)
            extra = self._kwargs if is_nominal(conditions) else {**self._kwargs, "conditions": conditions}
            images.append(base.camera_image(name, self.layout.size, self.layout.size, **extra))  # type: ignore[attr-defined]
        out = self._staging if self._staging is not None else np.empty(self.layout.hwc, np.uint8)
        compose(self.layout, images, out, (self.sensor,))
        return to_order(self.layout, out)


def pixel_observation(env: gymnasium.Env) -> PixelObservation:
    """The ``pixels`` stage."""
    return PixelObservation(env, include_state=False)


def state_pixel_observation(env: gymnasium.Env) -> PixelObservation:
    """The ``state+pixels`` stage."""
    return PixelObservation(env, include_state=True)
