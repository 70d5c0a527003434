"""Validated keyword arguments of the manufacturing envs (scenario ``params``).

Only pydantic and numpy are imported here, so registering the envs never starts PyBullet.
Distances are metres in the world frame (table top at z = 0, robot base at x = -0.6, as panda-gym);
speeds m/s, masses kg, times simulated seconds.
"""

from __future__ import annotations

import math
from typing import ClassVar, Literal, Mapping

from pydantic import Field, field_validator, model_validator

from lepton_sim.envs.camera_params import PERCEPTION_OBS_MODES, CameraParams
from lepton_sim.envs.params import Bounds, IntRange, Range

ROBOTS = ("panda", "kuka")
GRIPPER_ROBOTS = ("panda",)  # pybullet_data's Kuka iiwa has no gripper: reach only
# TinyRenderer's light when getCameraImage is given none (z-up worlds), as a unit vector towards the light
LIGHT_DIRECTION = tuple(v / math.hypot(-50.0, 30.0, 100.0) for v in (-50.0, 30.0, 100.0))
MAX_BINS = 4
MAX_CLASSES = 4
MIN_PART_SIZE, MAX_PART_SIZE = 0.02, 0.07  # the Panda gripper opens to 0.08 m


def _range_field(default: list[float] | float, description: str) -> Range:
    return Field(default_factory=lambda: Range.model_validate(default), description=description)


class ArmParams(CameraParams):
    """Parameters shared by every arm task (camera fields: ``CameraParams``)."""

    CAMERA_NAMES: ClassVar[tuple[str, ...]] = ("overhead", "front", "wrist", "inspection")
    CAMERA_CHANNELS: ClassVar[tuple[str, ...]] = ("depth", "segmentation")
    # the metres each camera's uint8 depth channel spans: the cell as it sees it (arm top to floor; wrist: the
    # fingers to the floor below the table), so 0..255 resolves parts on the table (~4-8 mm per step)
    CAMERA_DEPTH_RANGE: ClassVar[Mapping[str, tuple[float, float]]] = {
        "overhead": (0.6, 1.9),
        "front": (0.8, 2.4),
        "wrist": (0.05, 0.75),
        "inspection": (0.1, 0.7),  # part tops (~0.12 m) to the floor beside the belt (~0.58 m): ~2 mm per step
    }
    LIGHT_DIRECTION: ClassVar[tuple[float, float, float] | None] = LIGHT_DIRECTION  # type: ignore[assignment]
    OBS_MODES: ClassVar[tuple[str, ...]] = PERCEPTION_OBS_MODES

    robot: str = Field("panda", description="robot model: 'panda' (Franka Panda) or 'kuka' (Kuka iiwa, no gripper)")
    control_type: Literal["ee", "joints"] = Field(
        "ee", description="'ee': action = end-effector displacement (IK); 'joints': action = arm joint deltas"
    )
    reward_type: Literal["sparse", "dense"] = Field("sparse", description="sparse (success/fail) or dense (shaped)")
    obs_camera: str | list[str] | None = Field(
        "overhead",
        description="camera(s) for the camera obs modes: overhead, front, wrist, inspection (close, straight down on "
        "the belt where parts enter); several are stacked along channels",
    )
    render_width: int = Field(480, ge=16, le=1920, description="width of render() frames")
    render_height: int = Field(360, ge=16, le=1080, description="height of render() frames")
    robot_visuals: Literal["collision", "full"] = Field(
        "collision", description="robot meshes drawn by cameras: light collision hulls (fast) or full visual meshes"
    )
    initial_joint_noise: float = Field(
        0.0, ge=0.0, le=0.5, description="half-width (rad) of uniform noise added to the arm's start joint angles"
    )

    @field_validator("robot")
    @classmethod
    def _known_robot(cls, value: str) -> str:
        if value not in ROBOTS:
            raise ValueError(f"unknown robot {value!r}; allowed: {', '.join(ROBOTS)}")
        return value


class GripperParams(ArmParams):
    """Tasks that grasp parts: part properties are sampled per part from these ranges."""

    part_size: Range = _range_field(0.04, "cube side (m), sampled per part, rounded to 1 mm")
    part_mass: Range = _range_field(1.0, "part mass (kg), sampled per part")
    part_friction: Range = _range_field(0.5, "part lateral friction coefficient, sampled per part")
    RANGE_BOUNDS: ClassVar[dict[str, Bounds]] = {
        "part_size": (MIN_PART_SIZE, MAX_PART_SIZE, " m"),
        "part_mass": (0.01, 5.0, " kg"),
        "part_friction": (0.05, 2.0, ""),
    }

    @field_validator("robot")
    @classmethod
    def _has_gripper(cls, value: str) -> str:
        if value not in GRIPPER_ROBOTS:
            raise ValueError(
                f"robot {value!r} has no gripper; tasks that grasp need one of: {', '.join(GRIPPER_ROBOTS)}"
            )
        return value


class ReachParams(ArmParams):
    """``lepton/ArmReach-v0``: defaults reproduce PandaReach-v3 (goal in a 0.3 m cube in front of the robot)."""

    distance_threshold: float = Field(0.05, gt=0.0, le=0.5, description="success radius (m)")
    target_x: Range = _range_field([-0.15, 0.15], "target x (m)")
    target_y: Range = _range_field([-0.15, 0.15], "target y (m)")
    target_z: Range = _range_field([0.0, 0.3], "target z (m) above the table")
    RANGE_BOUNDS: ClassVar[dict[str, Bounds]] = {
        "target_x": (-0.3, 0.3, " m"),
        "target_y": (-0.3, 0.3, " m"),
        "target_z": (0.0, 0.5, " m"),
    }


class PickPlaceParams(GripperParams):
    """``lepton/ArmPickPlace-v0``: defaults reproduce PandaPickAndPlace-v3 (4 cm, 1 kg cube)."""

    distance_threshold: float = Field(0.05, gt=0.0, le=0.5, description="success radius (m) part centre to target")
    part_x: Range = _range_field([-0.15, 0.15], "part start x (m)")
    part_y: Range = _range_field([-0.15, 0.15], "part start y (m)")
    target_x: Range = _range_field([-0.15, 0.15], "target x (m)")
    target_y: Range = _range_field([-0.15, 0.15], "target y (m)")
    target_z: Range = _range_field([0.0, 0.2], "target height (m) of the part's bottom above the table")
    target_on_table_prob: float = Field(0.3, ge=0.0, le=1.0, description="probability that the target is on the table")
    start_grasped_prob: float = Field(
        0.0,
        ge=0.0,
        le=1.0,
        description="training curriculum: probability that an episode starts with the part "
        "already held in the gripper above its start position (evaluation scenarios keep 0)",
    )
    start_grasped_height: Range = _range_field([0.0, 0.2], "height (m) of a grasped start above the table")
    RANGE_BOUNDS: ClassVar[dict[str, Bounds]] = {
        **GripperParams.RANGE_BOUNDS,
        "part_x": (-0.3, 0.3, " m"),
        "part_y": (-0.3, 0.3, " m"),
        "target_x": (-0.3, 0.3, " m"),
        "target_y": (-0.3, 0.3, " m"),
        "target_z": (0.0, 0.4, " m"),
        "start_grasped_height": (0.0, 0.4, " m"),
    }


class ConveyorPickParams(GripperParams):
    """``lepton/ConveyorPick-v0``: parts ride a belt through the reachable zone; put each into a bin."""

    part_mass: Range = _range_field(0.3, "part mass (kg), sampled per part")
    part_friction: Range = _range_field(0.8, "part lateral friction coefficient, sampled per part")
    conveyor_speed: Range = _range_field(0.1, "belt speed (m/s, >= 0), sampled per episode")
    arrival_rate: Range = _range_field(0.25, "parts arriving per second, sampled per episode")
    parts_per_episode: IntRange = Field(
        default_factory=lambda: IntRange.model_validate(3), description="parts delivered per episode"
    )
    part_offset: Range = _range_field([-0.03, 0.03], "part's sideways offset (m) from the belt centre line")
    num_bins: int = Field(1, ge=1, le=MAX_BINS, description="bins beside the belt")
    success_fraction: float = Field(
        1.0, gt=0.0, le=1.0, description="fraction of the episode's parts that must be binned correctly"
    )
    RANGE_BOUNDS: ClassVar[dict[str, Bounds]] = {  # the lower limits of speed and rate: the validators below
        **GripperParams.RANGE_BOUNDS,
        "conveyor_speed": (None, 0.5, " m/s"),
        "arrival_rate": (None, 2.0, " parts/s"),
        "parts_per_episode": (1, 12, ""),
        "part_offset": (-0.05, 0.05, " m"),
    }

    @field_validator("conveyor_speed")
    @classmethod
    def _speed_ok(cls, value: Range) -> Range:
        if value.low < 0:
            raise ValueError(f"conveyor speed must be >= 0 m/s, got [{value.low}, {value.high}]")
        return value

    @field_validator("arrival_rate")
    @classmethod
    def _rate_ok(cls, value: Range) -> Range:
        if value.low <= 0:
            raise ValueError(f"arrival rate must be > 0 parts/s, got [{value.low}, {value.high}]")
        return value


class ConveyorSortParams(ConveyorPickParams):
    """``lepton/ConveyorSort-v0``: parts of several classes; class c belongs in bin c."""

    num_bins: int = Field(2, ge=1, le=MAX_BINS, description="bins beside the belt (bin c takes class c)")
    num_classes: int = Field(2, ge=1, le=MAX_CLASSES, description="part classes: 0 = good, 1.. = defect kinds")
    defect_rate: float = Field(
        0.3, ge=0.0, le=1.0, description="probability that a part is defective (class >= 1, uniform among them)"
    )

    @model_validator(mode="after")
    def _classes_fit_bins(self) -> "ConveyorSortParams":
        if self.num_classes > self.num_bins:
            raise ValueError(
                f"num_classes: more classes ({self.num_classes}) than bins ({self.num_bins}); "
                f"each class needs its own bin"
            )
        if self.defect_rate > 0 and self.num_classes < 2:
            raise ValueError(f"defect_rate: {self.defect_rate} > 0 needs num_classes >= 2 (class 0 is 'good')")
        return self
