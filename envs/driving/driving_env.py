"""``lepton/Driving-v0``: path planning for one car on a procedurally generated road."""

from __future__ import annotations

from typing import Any, Sequence

import gymnasium
import numpy as np
from gymnasium import spaces

from lepton_sim.envs.camera_image import NOMINAL, CameraConditions, CameraImage
from lepton_sim.envs.driving.camera import DrivingCamera, check_camera
from lepton_sim.envs.driving.observation import observation_bounds
from lepton_sim.envs.driving.params import DrivingParams
from lepton_sim.envs.driving.sim import DrivingSim
from lepton_sim.envs.info import NanEqualFloat
from lepton_sim.envs.rendering import check_render_mode


class DrivingEnv(gymnasium.Env):
    """
    ## Description

    Drive one car (the *ego*) along a route on a procedurally generated road to its goal, without hitting
    parked cars, cones or other vehicles and without leaving the road. The road has 1-4 lanes (lane width 3.5 m
    by default) and random curves; other vehicles follow their lanes with the Intelligent Driver Model and
    change lanes with MOBIL. The ego is a kinematic bicycle (rear-axle reference, wheelbase 2.7 m, 4.5 x 1.9 m
    box) simulated at ``dt = 0.1 s``; one env step holds the action for ``sim_steps_per_action`` simulation
    steps (10 gives 1 s per decision, like highway-env's ``highway-fast-v0``). Every episode's world is drawn
    from the seed and the parameters (see *Arguments*), so a scenario is a distribution of roads.

    ## Action Space

    ``action_mode="continuous"`` (default): ``Box(-1, 1, (2,), float32)``

    | Num | Action       | -1                       | +1                         |
    |-----|--------------|--------------------------|----------------------------|
    | 0   | acceleration | brake at ``max_brake``   | accelerate at ``max_accel``|
    | 1   | steering     | ``max_steer`` right      | ``max_steer`` left         |

    The steering angle follows the command at most ``max_steer_rate`` rad/s; speed stays in ``[0, max_speed]``.

    ``action_mode="discrete"``: ``Discrete(5)`` meta-actions (highway-env's order): 0 ``LANE_LEFT``,
    1 ``IDLE``, 2 ``LANE_RIGHT``, 3 ``FASTER``, 4 ``SLOWER`` (target speed +- ``speed_step``). A built-in pure
    pursuit controller then tracks the target lane's centre and a proportional controller the target speed.

    ## Observation Space

    ``Box(low, high, (D,), float32)`` with ``D = 19 + 2 K + R + 7 Q`` (K = ``num_waypoints``, R = ``lidar_rays``,
    Q = ``num_objects``; 87 with the defaults 5, 16, 6). Ego frame: x forward, y to the left, origin at the
    rear axle (waypoints) or the box centre (lidar, objects). Values are clipped to the bounds shown.

    | Index               | Observation                                                   | Scale     | Bounds        |
    |---------------------|---------------------------------------------------------------|-----------|---------------|
    | 0                   | speed                                                         | / 30 m/s  | [0, 2]        |
    | 1                   | heading error: ego heading - road heading (rad)              | 1         | [-pi, pi]     |
    | 2                   | lateral offset from the route lane's centre (left +)         | / 5 m     | [-5, 5]       |
    | 3                   | distance from the rear axle to the left road edge            | / 5 m     | [-5, 5]       |
    | 4                   | distance from the rear axle to the right road edge           | / 5 m     | [-5, 5]       |
    | 5                   | lane width                                                    | / 5 m     | [0, 1]        |
    | 6                   | steering angle                                                | / max_steer | [-1, 1]     |
    | 7                   | acceleration (braking negative)                               | / max_accel or max_brake | [-1, 1] |
    | 8                   | road curvature at the ego (1/m, left +)                       | x 20      | [-1, 1]       |
    | 9                   | distance to the goal, capped at 100 m                         | / 100 m   | [0, 1]        |
    | 10 + 3j             | lane j exists (j = 0, 1, 2: the lane right of, containing, left of the ego's centre) | 1 | [0, 1] |
    | 11 + 3j             | lane j: free distance ahead along the road, ego front bumper to the first object's rear (0 if alongside), capped at ``sensor_range`` | / sensor_range | [0, 1] |
    | 12 + 3j             | lane j: that object's speed minus the ego's (0 if none)       | / 30 m/s  | [-5, 5]       |
    | 19 + 2k, 20 + 2k    | route waypoint k (k < K, ``waypoint_spacing`` m apart) x, y   | / 50 m    | [-5, 5]       |
    | 19 + 2K + r         | lidar ray r (angle 2 pi r / R from the heading, counter-clockwise): distance to the nearest box or road edge | / lidar_range | [0, 1] |
    | 19 + 2K + R + 7j    | object j present (1) or empty slot (0); objects = other vehicles and obstacles within ``sensor_range``, nearest first (those > 5 m behind count double distance) | 1 | [0, 1] |
    | ... + 1, + 2        | object j centre x, y                                          | / 50 m    | [-5, 5]       |
    | ... + 3, + 4        | object j velocity minus ego velocity, x, y                    | / 30 m/s  | [-5, 5]       |
    | ... + 5, + 6        | object j length, width                                        | / 5 m     | [0, 2]        |

    ## Rewards

    Dense and normalised per step (MetaDrive-like), with ``T`` = ``dt * sim_steps_per_action``:

    * progress: ``progress_reward * (metres gained along the route) / (max_speed * T)`` - 1 for a step at the
      speed limit along the route (negative when driving backwards along it);
    * comfort: ``- comfort_weight * mean over the step's simulation steps of (min((jerk / 10 m/s^3)^2, 1) +
      (steering rate / max_steer_rate)^2) / 2`` - at most ``comfort_weight`` per step;
    * ``- collision_penalty`` (5) on a collision, ``- off_road_penalty`` (5) on leaving the road, ``+ goal_reward``
      (10) on reaching the goal.

    ## Starting State

    The ego starts 40 m from the road's start, on the centre of a random lane (the *route lane*), aligned with
    the road, at a speed from ``ego_speed``, steering straight. The route runs along that lane's centre for
    ``route_length`` m to the goal line (any lane counts). Obstacle sites (a parked car or 1-3 cones, each
    blocking one lane) are at least ``obstacle_spacing`` apart between 40 m from the start and 15 m before the
    goal; other vehicles start ahead of the ego at gaps from ``vehicle_spacing``.

    ## Episode End

    Terminates when the ego's box touches an obstacle's or vehicle's box (``collision``), when a corner of it
    crosses a road edge (``off_road``), or when its rear axle crosses the goal line (``is_success``).
    Truncation is left to ``max_episode_steps`` (scenarios set it; the registered default is 300).

    ``info`` on every step and reset: ``is_success``, ``collision``, ``off_road`` (bool), ``route_completion``
    (0-1), ``time_to_goal`` (simulated s, NaN until reached), ``speed`` and ``average_speed`` (m/s, along the
    route since the start), ``x``, ``y``, ``heading`` (rear axle, world frame), ``lateral_offset`` (m from the
    route lane's centre), ``lane`` (0 = rightmost), ``elapsed_time`` (s) and ``world_id`` (names the road for :meth:`plot_trajectory`).

    ## Arguments

    ``gymnasium.make("lepton/Driving-v0", render_mode=None, **params)``; the parameters and their defaults are
    the fields of :class:`~lepton_sim.envs.driving.params.DrivingParams` (e.g. ``lanes=[2, 3]``,
    ``obstacles=[3, 5]``, ``vehicles=20``, ``sim_steps_per_action=10``, ``action_mode="discrete"``).
    ``obs_mode``: ``"state"`` (the table above), ``"pixels"`` or ``"state+pixels"`` (the observation pipeline
    wraps this env; cameras ``topdown`` (RGB) and ``semantic`` (5 class channels), ego-centred and heading-aligned,
    see :meth:`camera_image` and ``envs/driving/camera.py``). In ``"pixels"`` this env returns a constant placeholder
    in the state space instead of computing the state observation, which the wrapper replaces by the image.
    ``render_mode="rgb_array"`` gives a top-down ``render_size`` x ``render_size`` image centred on the ego. ``gymnasium.make_vec("lepton/Driving-v0", n)``
    gives the native batched :class:`~lepton_sim.envs.driving.vector_env.DrivingVectorEnv`.

    ## Version History

    * v0: initial version.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(self, render_mode: str | None = None, **kwargs: Any) -> None:
        self.params = DrivingParams(**kwargs)
        self.render_mode = check_render_mode(render_mode, self.metadata)
        self.metadata = {**self.metadata, "render_fps": 1.0 / self.params.policy_dt}
        self.sim = DrivingSim(self.params, 1)
        low, high = observation_bounds(self.params)
        self.observation_space = spaces.Box(low, high, dtype=np.float32)
        self._discrete = self.params.action_mode == "discrete"
        self.action_space = (
            spaces.Discrete(5) if self._discrete else spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)
        )
        self._camera: DrivingCamera | None = None
        # obs_mode 'pixels': the pixel wrapper replaces the state observation, so it is not computed (a constant
        # placeholder inside the state space stands in for it); rewards and infos are unchanged
        self._state_obs = self.params.obs_mode != "pixels"
        self._placeholder = np.clip(np.zeros_like(low), low, high)
        self._placeholder.flags.writeable = False
        self._placed = True  # other vehicles' boxes follow their road state (observe() places them)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        self.sim.reset_worlds([0], [self.np_random])
        return self._observe(), self._info()

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        reward, terminated = self.sim.step(np.asarray(action)[None], self._discrete)
        return self._observe(), float(reward[0]), bool(terminated[0]), False, self._info()

    def _observe(self) -> np.ndarray:
        self._placed = self._state_obs
        return self.sim.observe()[0] if self._state_obs else self._placeholder

    def _info(self) -> dict[str, Any]:
        info = self.sim.world_info(0)
        info["time_to_goal"] = NanEqualFloat(info["time_to_goal"])
        return info

    def camera_image(
        self,
        name: str,
        width: int,
        height: int,
        *,
        depth: bool = False,
        segmentation: bool = False,
        conditions: CameraConditions = NOMINAL,
    ) -> CameraImage:
        """Camera ``name`` (``topdown`` RGB or ``semantic`` 5-class grid) of the current state, ``height`` x
        ``width`` pixels; the same pixels as world i of :meth:`DrivingVectorEnv.camera_images` in that state."""
        check_camera(name, depth, segmentation)
        if self._camera is None:
            self._camera = DrivingCamera(self.params)
        self._place_vehicles()
        image = self._camera.render(self.sim, name, width, height, None if conditions.nominal else [conditions])
        if image.rgb is not None:
            return CameraImage(rgb=image.rgb[0])
        assert image.semantic is not None
        return CameraImage(semantic=image.semantic[0])

    def render(self) -> np.ndarray | None:
        if self.render_mode is None:
            gymnasium.logger.warn("render() called without a render_mode; use render_mode='rgb_array'")
            return None
        from lepton_sim.envs.driving.render import render_world

        self._place_vehicles()
        return render_world(self.sim, 0)

    def _place_vehicles(self) -> None:
        """Other vehicles' boxes for pictures, where no state observation placed them this step."""
        if not self._placed:
            self.sim._place_vehicles()
            self._placed = True

    def plot_trajectory(self, ax: Any, infos: Sequence[dict[str, Any]]) -> None:
        """Draw the episode's road (lanes, obstacles, route, goal) and the ego's path from ``infos`` onto ``ax``."""
        from lepton_sim.envs.driving.render import plot_trajectory

        plot_trajectory(ax, infos, self.sim)
