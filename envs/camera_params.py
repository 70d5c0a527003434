"""The camera fields every env's parameter schema shares: observation mode, cameras, image size, sensor realism.

Why a mixin: ``obs_mode: pixels`` must mean the same in every domain's scenario file (same field names, same
limits, same messages); a domain only says which cameras it has (``CAMERA_NAMES``, the first is the default)
and which extra channels its renderer can add (``CAMERA_CHANNELS``). The pipeline that turns these fields into
observations is ``pixel_observation``; the degradations are applied by ``sensor_realism``.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal, Mapping

from pydantic import Field, field_validator, model_validator

from lepton_sim.envs.params import EnvParams, IntRange, Range

CAMERA_OBS_MODES = ("state", "pixels", "state+pixels")
# a perception model's estimate of the state from the camera image (envs/perceived_observation.py); domains opt in
PERCEPTION_OBS_MODES = (*CAMERA_OBS_MODES, "perceived")
SEVERITY_LEVELS = 5
# the degradations ``severity`` can switch on (ImageNet-C calls them corruptions) and the fields each one sets
CORRUPTIONS: dict[str, tuple[str, ...]] = {
    "noise": ("noise_std",),
    "blur": ("blur_sigma",),
    "motion_blur": ("motion_blur",),
    "brightness": ("brightness",),
    "contrast": ("contrast",),
    "gamma": ("gamma",),
    "occlusion": ("occlusions", "occlusion_size"),
    "dead_pixels": ("dead_pixels",),
    "pose": ("pose_position", "pose_rotation", "pose_fov"),
    "light": ("light_direction", "light_color"),
}
DEFAULT_DEPTH_RANGE = (0.05, 4.0)  # metres mapped to uint8 0..255 where an env names no range for a camera


def _range(value: float, description: str) -> Any:
    return Field(default_factory=lambda: Range(low=value, high=value), description=description)


class SensorParams(EnvParams):
    """Sensor realism (scenario field ``sensor``): per-episode degradations, sampled from the env's seed.

    Every field is a range sampled once per episode (a single number fixes it). ``severity`` (0-5) fills the
    fields left unset with documented values (``sensor_realism.SEVERITY``), for the ``corruptions`` listed (all
    by default); fields given explicitly win. All defaults leave the image unchanged.
    """

    severity: int = Field(0, ge=0, le=SEVERITY_LEVELS, description="0 (clean) to 5: shorthand for the fields below")
    corruptions: list[str] | None = Field(
        None,
        description=f"the degradations severity switches on (default: all): {', '.join(CORRUPTIONS)}",
    )
    noise_std: Range = _range(0.0, "Gaussian noise std, in 0-255 intensity units")
    blur_sigma: Range = _range(0.0, "Gaussian blur sigma (pixels)")
    motion_blur: Range = _range(0.0, "motion-blur length (pixels), random direction per episode")
    brightness: Range = _range(0.0, "additive brightness, fraction of full scale (-1 to 1)")
    contrast: Range = _range(1.0, "contrast factor around the image mean (1 = unchanged)")
    gamma: Range = _range(1.0, "gamma exponent on [0, 1] intensities (1 = unchanged)")
    occlusions: IntRange = Field(
        default_factory=lambda: IntRange(low=0, high=0), description="occluding rectangles per episode"
    )
    occlusion_size: Range = _range(0.2, "side of each occluding rectangle, fraction of the image side")
    dead_pixels: Range = _range(0.0, "fraction of pixels stuck black or white")
    pose_position: Range = _range(0.0, "camera position jitter (m, per axis, random sign)")
    pose_rotation: Range = _range(0.0, "camera rotation jitter (degrees, per axis, random sign)")
    pose_fov: Range = _range(0.0, "field-of-view jitter (degrees, random sign)")
    light_direction: Range = _range(0.0, "light direction jitter (degrees off nominal; PyBullet only)")
    light_color: Range = _range(0.0, "light colour jitter (per channel, fraction; PyBullet only)")
    RANGE_BOUNDS: ClassVar[dict[str, tuple[float | None, float | None, str]]] = {
        "noise_std": (0.0, 128.0, ""),
        "blur_sigma": (0.0, 10.0, " px"),
        "motion_blur": (0.0, 20.0, " px"),
        "brightness": (-1.0, 1.0, ""),
        "contrast": (0.0, 4.0, ""),
        "gamma": (0.1, 5.0, ""),
        "occlusions": (0, 10, ""),
        "occlusion_size": (0.0, 1.0, ""),
        "dead_pixels": (0.0, 0.5, ""),
        "pose_position": (0.0, 1.0, " m"),
        "pose_rotation": (0.0, 45.0, " deg"),
        "pose_fov": (0.0, 30.0, " deg"),
        "light_direction": (0.0, 90.0, " deg"),
        "light_color": (0.0, 1.0, ""),
    }

    @field_validator("corruptions")
    @classmethod
    def _known_corruptions(cls, value: list[str] | None) -> list[str] | None:
        for name in value or []:
            if name not in CORRUPTIONS:
                raise ValueError(f"unknown corruption {name!r}; allowed: {', '.join(CORRUPTIONS)}")
        return value

    @property
    def clean(self) -> bool:
        """True when no degradation can change an image (the pipeline then skips sensor realism entirely)."""
        from lepton_sim.envs.sensor_realism import is_clean

        return is_clean(self)


class CameraParams(EnvParams):
    """Camera fields of an env's parameter schema. Subclasses set ``CAMERA_NAMES`` and ``CAMERA_CHANNELS``."""

    OBS_MODES: ClassVar[tuple[str, ...]] = CAMERA_OBS_MODES
    CAMERA_NAMES: ClassVar[tuple[str, ...]] = ()  # the first is the default camera
    CAMERA_CHANNELS: ClassVar[tuple[str, ...]] = ()  # extra channels the renderer can add: "depth", "segmentation"
    # semantic-grid cameras (``CameraImage.semantic``) and their number of class channels; other cameras are RGB
    CAMERA_SEMANTIC_CHANNELS: ClassVar[Mapping[str, int]] = {}
    # (near, far) metres each camera's depth channel spans as uint8 0..255 (unlisted: DEFAULT_DEPTH_RANGE)
    CAMERA_DEPTH_RANGE: ClassVar[Mapping[str, tuple[float, float]]] = {}
    # unit vector towards the renderer's nominal light, which sensor.light_direction tilts (None: no light)
    LIGHT_DIRECTION: ClassVar[tuple[float, float, float] | None] = None

    obs_mode: str = Field(
        "state",
        description="'state' (vector), 'pixels' (camera image, uint8) or 'state+pixels' (Dict with 'state' and 'pixels')",
    )
    obs_camera: str | list[str] | None = Field(
        None, description="camera(s) for the camera obs modes; several are stacked along the channel axis"
    )
    camera_size: int = Field(84, ge=16, le=512, description="side in pixels of the (square) camera image")
    channel_order: Literal["last", "first"] = Field(
        "last", description="'last': (H, W, C), 'first': (C, H, W); SB3's CnnPolicy accepts both"
    )
    camera_depth: bool = Field(False, description="add a depth channel (uint8, near..far) where the renderer has depth")
    camera_segmentation: bool = Field(False, description="add a segmentation channel (uint8 class ids) where available")
    sensor: SensorParams = Field(default_factory=SensorParams, description="sensor realism (per-episode degradations)")
    perception: str | None = Field(
        None,
        description="obs_mode perceived: a trained perception model (perception train's folder or model.pt) that "
        "estimates the state from the camera image, or 'ground-truth' (the true state, through the same pipeline)",
    )

    @field_validator("obs_camera")
    @classmethod
    def _known_cameras(cls, value: str | list[str] | None) -> str | list[str] | None:
        names = [value] if isinstance(value, str) else (value or [])
        if isinstance(value, list) and not value:
            raise ValueError("obs_camera: an empty list; give one camera name or several")
        for name in names:
            if name not in cls.CAMERA_NAMES:
                raise ValueError(f"unknown camera {name!r}; allowed: {', '.join(cls.CAMERA_NAMES)}")
        if len(set(names)) != len(names):
            raise ValueError(f"obs_camera lists a camera twice: {names}")
        return value

    @model_validator(mode="after")
    def _perception_with_perceived(self) -> "CameraParams":
        if self.obs_mode == "perceived" and not self.perception:
            raise ValueError(
                "perception: obs_mode perceived needs a perception model (a folder or file) or ground-truth"
            )
        if self.perception and self.obs_mode != "perceived":
            raise ValueError(
                f"perception: only obs_mode perceived runs a perception model (obs_mode is {self.obs_mode!r})"
            )
        return self

    @model_validator(mode="after")
    def _channels_available(self) -> "CameraParams":
        for flag, channel in (("camera_depth", "depth"), ("camera_segmentation", "segmentation")):
            if getattr(self, flag) and channel not in self.CAMERA_CHANNELS:
                available = ", ".join(self.CAMERA_CHANNELS) or "none"
                raise ValueError(f"{flag}: this env's cameras have no {channel} channel (available: {available})")
        return self

    @property
    def cameras(self) -> tuple[str, ...]:
        """The camera names the camera obs modes render, in channel order (default: the env's first camera)."""
        if self.obs_camera is None:
            return self.CAMERA_NAMES[:1]
        return (self.obs_camera,) if isinstance(self.obs_camera, str) else tuple(self.obs_camera)

    @property
    def uses_camera(self) -> bool:
        return self.obs_mode != "state"

    def camera_channels(self, name: str) -> int:
        """Image channels of camera ``name`` before depth/segmentation: 3 (RGB) or its semantic classes."""
        return self.CAMERA_SEMANTIC_CHANNELS.get(name, 3)

    def depth_range(self, name: str) -> tuple[float, float]:
        return self.CAMERA_DEPTH_RANGE.get(name, DEFAULT_DEPTH_RANGE)
