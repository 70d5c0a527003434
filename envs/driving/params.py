"""DrivingParams: every knob of ``lepton/Driving-v0``, validated once (keyword arguments and scenario ``params``).

Values written as ``[low, high]`` (:class:`Range` / :class:`IntRange`) are sampled per episode from the
episode's random generator, so a scenario describes a *distribution* of worlds and a suite can hold out
parameter ranges for testing.
"""

from __future__ import annotations

from typing import ClassVar, Literal, Mapping

from pydantic import Field, model_validator

from lepton_sim.envs.camera_params import PERCEPTION_OBS_MODES, CameraParams
from lepton_sim.envs.params import Bounds, IntRange, Range

ACTION_MODES = ("continuous", "discrete")
MAX_LANES = 4
MAX_CURVATURE = 0.05  # 1/m: the inner edge of a 4-lane road keeps a radius >= 6 m
MAX_VEHICLES = 100
MAX_OBSTACLES = 50
START_MARGIN = 40.0  # m of road behind the ego's start
FIRST_OBSTACLE = 40.0  # m from the start to the earliest obstacle, so the ego can see and react
GOAL_CLEARANCE = 15.0  # m between the last obstacle and the goal


# allowed [min, max] (and unit, for messages) of every range parameter (checked by EnvParams)
RANGE_BOUNDS: dict[str, Bounds] = {
    "lanes": (1, MAX_LANES, ""),
    "curvature": (0.0, MAX_CURVATURE, " 1/m"),
    "curve_length": (5.0, 2000.0, " m"),
    "route_length": (20.0, 10000.0, " m"),
    "obstacles": (0, MAX_OBSTACLES, ""),
    "vehicles": (0, MAX_VEHICLES, ""),
    "vehicle_speed": (0.5, 60.0, " m/s"),
    "vehicle_spacing": (8.0, 1000.0, " m"),
    "ego_speed": (0.0, 50.0, " m/s"),
}


class DrivingParams(CameraParams):
    """Keyword arguments of ``lepton/Driving-v0`` (and its vector env). Units: metres, seconds, radians.

    Cameras (``obs_mode`` pixels / state+pixels, see ``camera``): ``topdown`` (RGB, ego-centred and heading
    aligned) and ``semantic`` (the same view as 5 class channels: road, markings, obstacles, vehicles, route).
    """

    RANGE_BOUNDS: ClassVar[dict[str, Bounds]] = RANGE_BOUNDS
    CAMERA_NAMES: ClassVar[tuple[str, ...]] = ("topdown", "semantic")
    CAMERA_CHANNELS: ClassVar[tuple[str, ...]] = ()
    CAMERA_SEMANTIC_CHANNELS: ClassVar[Mapping[str, int]] = {"semantic": 5}
    OBS_MODES: ClassVar[tuple[str, ...]] = PERCEPTION_OBS_MODES

    action_mode: Literal["continuous", "discrete"] = Field(
        "continuous", description="'continuous': (acceleration, steering) in [-1, 1]; 'discrete': 5 meta-actions"
    )

    # road
    lanes: IntRange = Field(IntRange(low=2, high=2), description="number of lanes (1-4), sampled per episode")
    lane_width: float = Field(3.5, ge=2.5, le=5.0, description="m")
    curvature: Range = Field(
        Range(low=0.0, high=0.01), description="|curvature| of each curve (1/m), sampled per curve; sign is random"
    )
    curve_length: Range = Field(Range(low=40.0, high=120.0), description="length of each curve (m)")
    route_length: Range = Field(Range(low=200.0, high=200.0), description="distance from start to goal (m)")

    # static obstacles
    obstacles: IntRange = Field(
        IntRange(low=0, high=0), description="number of obstacle sites (a parked car or a group of 1-3 cones)"
    )
    obstacle_spacing: float = Field(
        40.0, ge=10.0, le=500.0, description="minimum distance along the road between obstacle sites (m)"
    )
    cone_fraction: float = Field(0.3, ge=0.0, le=1.0, description="probability that a site is cones, not a car")

    # other vehicles
    vehicles: IntRange = Field(IntRange(low=0, high=0), description="number of other vehicles (IDM + MOBIL)")
    vehicle_speed: Range = Field(Range(low=20.0, high=28.0), description="desired speeds of other vehicles (m/s)")
    vehicle_spacing: Range = Field(
        Range(low=20.0, high=40.0), description="initial gap between consecutive vehicles of a lane (m)"
    )
    lane_changes: bool = Field(True, description="other vehicles change lanes (MOBIL)")

    # ego vehicle
    ego_speed: Range = Field(Range(low=8.0, high=12.0), description="initial ego speed (m/s)")
    max_speed: float = Field(20.0, gt=0.0, le=50.0, description="ego speed limit (m/s); no reversing")
    max_accel: float = Field(3.0, gt=0.0, le=10.0, description="m/s^2 at action +1")
    max_brake: float = Field(6.0, gt=0.0, le=12.0, description="m/s^2 of braking at action -1")
    wheelbase: float = Field(2.7, gt=1.0, le=5.0, description="m")
    max_steer: float = Field(0.5, gt=0.0, le=1.0, description="steering angle limit (rad)")
    max_steer_rate: float = Field(2.0, gt=0.0, le=20.0, description="steering rate limit (rad/s)")
    speed_step: float = Field(5.0, gt=0.0, le=20.0, description="discrete mode: FASTER/SLOWER change (m/s)")

    # time
    dt: float = Field(0.1, ge=0.01, le=0.5, description="simulation step (s)")
    sim_steps_per_action: int = Field(
        1, ge=1, le=100, description="simulation steps per env step (10 x 0.1 s = 1 s per action)"
    )

    # observation
    num_waypoints: int = Field(5, ge=1, le=20, description="route waypoints in the observation")
    waypoint_spacing: float = Field(10.0, ge=1.0, le=50.0, description="m between route waypoints")
    lidar_rays: int = Field(16, ge=4, le=128, description="lidar rays, evenly spaced over 360 degrees")
    lidar_range: float = Field(50.0, ge=5.0, le=200.0, description="m")
    num_objects: int = Field(6, ge=1, le=32, description="nearest objects (vehicles, obstacles) in the observation")
    sensor_range: float = Field(60.0, ge=5.0, le=200.0, description="objects farther than this are not listed (m)")

    # reward (per env step; see DrivingEnv's docstring)
    progress_reward: float = Field(1.0, ge=0.0, description="reward for a step driven along the route at max_speed")
    goal_reward: float = Field(10.0, ge=0.0, description="bonus on reaching the goal")
    collision_penalty: float = Field(5.0, ge=0.0, description="penalty on a collision (terminates)")
    off_road_penalty: float = Field(5.0, ge=0.0, description="penalty on leaving the road (terminates)")
    comfort_weight: float = Field(0.1, ge=0.0, description="penalty for a step of maximal jerk and steering rate")

    camera_footprint: float = Field(
        64.0,
        ge=8.0,
        le=256.0,
        description="m of road the camera image's height covers (3/4 ahead of the ego): smaller gives finer pixels "
        "(64 m over 64 px: 1 m per pixel)",
    )

    render_size: int = Field(400, ge=32, le=2048, description="rendered image side (pixels)")
    render_scale: float = Field(4.0, gt=0.0, le=50.0, description="pixels per metre")

    @model_validator(mode="after")
    def _consistent(self) -> "DrivingParams":
        if self.obstacles.high > 0 and self.lanes.low < 2:
            raise ValueError(
                f"obstacles need at least 2 lanes (a free lane to pass them), but lanes can be {int(self.lanes.low)}"
            )
        usable = self.route_length.low - FIRST_OBSTACLE - GOAL_CLEARANCE
        needed = (self.obstacles.high - 1) * self.obstacle_spacing
        if self.obstacles.high > 0 and needed > usable:
            raise ValueError(
                f"{int(self.obstacles.high)} obstacles spaced {self.obstacle_spacing:g} m need a route of at least "
                f"{needed + FIRST_OBSTACLE + GOAL_CLEARANCE:g} m, but route_length can be {self.route_length.low:g} m"
            )
        if self.ego_speed.high > self.max_speed:
            raise ValueError(f"ego_speed ({self.ego_speed.high:g} m/s) exceeds max_speed ({self.max_speed:g} m/s)")
        return self

    @property
    def policy_dt(self) -> float:
        """Simulated seconds per env step."""
        return self.dt * self.sim_steps_per_action
