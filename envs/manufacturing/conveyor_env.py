"""Production-line tasks: parts arrive on a moving belt and must be picked before they leave the reachable
zone and put into the right bin. Shared by ``ConveyorPick`` (any bin) and ``ConveyorSort`` (bin = class)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pybullet as p
from gymnasium import spaces

from lepton_sim.envs.manufacturing.arm_env import ArmEnv
from lepton_sim.envs.manufacturing.params import MAX_BINS, MAX_CLASSES, ConveyorPickParams
from lepton_sim.envs.manufacturing.scene import (
    BELT_TOP,
    BELT_X,
    SPAWN_Y,
    ZONE_END_Y,
    Bin,
    Conveyor,
    PartFactory,
    create_bins,
)
from lepton_sim.envs.manufacturing.segmentation import BELT, BIN, part_class_id
from lepton_sim.envs.manufacturing.sim import CONTROL_DT

SLOTS = 3  # parts on the line visible in the state observation (oldest first)
SLOT_DIM = 1 + 3 + 3 + 1 + MAX_CLASSES  # present, position, velocity, size, class one-hot
BIN_DIM = 3  # present, x, y
ROBOT_DIM = 3 + 3 + 1 + 1  # grasp point position, velocity, finger opening, belt speed
OBS_DIM = ROBOT_DIM + SLOTS * SLOT_DIM + MAX_BINS * BIN_DIM
FELL_OFF_Z = -0.1
AT_REST_SPEED = 0.02  # m/s: a part slower than this, outside any bin and off the belt, counts as dropped
HELD_XY, HELD_Z, HELD_WIDTH_MARGIN = 0.03, 0.04, 0.012  # a part this close to the closed fingers is held

WAITING, ACTIVE, PLACED, MIS_SORTED, DROPPED, MISSED = range(6)


@dataclass
class Part:
    """One part of the episode's delivery schedule."""

    size: float
    mass: float
    friction: float
    part_class: int
    offset: float  # sideways offset on the belt (m)
    arrival_step: int
    status: int = WAITING
    body: int = -1
    position: np.ndarray | None = None
    velocity: np.ndarray | None = None


class ConveyorEnv(ArmEnv):
    """Base of the conveyor tasks; see ``ConveyorPickEnv`` / ``ConveyorSortEnv`` for the full description."""

    params_model = ConveyorPickParams
    nullspace_ik = True  # long episodes: keep the arm's posture
    sorting = False  # ConveyorSort: class c must go to bin c; ConveyorPick: any bin is right

    # --------------------------------------------------------------------------------------------- scene
    def _build_scene(self) -> None:
        self.conveyor = Conveyor(self.sim, ignore_bodies=(self.floor, self.table))
        self.bins: list[Bin] = create_bins(self.sim, self.params.num_bins, colour_by_class=self.sorting)
        self.factory = PartFactory(self.sim)
        self.parts: list[Part] = []
        self.belt_speed = 0.0
        self._required = 1
        bins = np.zeros((MAX_BINS, BIN_DIM))
        for i, b in enumerate(self.bins):
            bins[i] = (1.0, b.centre[0], b.centre[1])
        self._bin_obs = bins.ravel()

    @property
    def num_classes(self) -> int:
        return int(getattr(self.params, "num_classes", 1))

    def _sample_class(self) -> int:
        defect_rate = float(getattr(self.params, "defect_rate", 0.0))
        if self.num_classes < 2 or self.np_random.random() >= defect_rate:
            return 0
        return int(self.np_random.integers(1, self.num_classes))

    def _clear_episode(self) -> None:
        for part in self.parts:
            if part.body >= 0:
                p.removeBody(part.body, physicsClientId=self.sim.cid)
                part.body = -1

    def _reset_task(self) -> None:
        prm, rng = self.params, self.np_random
        self.belt_speed = prm.conveyor_speed.sample(rng)
        self.conveyor.set_speed(self.belt_speed)
        rate = prm.arrival_rate.sample(rng)
        n = prm.parts_per_episode.sample(rng)
        self.parts, t = [], 0.0
        for _ in range(n):
            size = PartFactory.quantise(prm.part_size.sample(rng))
            self.parts.append(
                Part(
                    size=size,
                    mass=prm.part_mass.sample(rng),
                    friction=prm.part_friction.sample(rng),
                    part_class=self._sample_class(),
                    offset=prm.part_offset.sample(rng),
                    arrival_step=int(round(t / CONTROL_DT)),
                )
            )
            t += rng.uniform(0.8, 1.2) / rate  # jittered arrivals at the sampled rate
        self._required = max(1, math.ceil(prm.success_fraction * n - 1e-9))
        self._spawn_due()

    def _spawn_due(self) -> None:
        """Put parts whose time has come onto the belt (later if the spawn point is still occupied)."""
        cid = self.sim.cid
        for part in self.parts:
            if part.status != WAITING or part.arrival_step > self.steps:
                continue
            if any(
                q.status == ACTIVE
                and q.position is not None
                and abs(q.position[1] - SPAWN_Y) < 0.08
                and abs(q.position[0] - BELT_X) < 0.1
                for q in self.parts
            ):
                break  # the spawn point is blocked (e.g. a stopped belt): keep the order, retry next step
            start = (BELT_X + part.offset, SPAWN_Y, BELT_TOP + part.size / 2 + 0.0005)
            part.body = self._create_body(part, start)
            p.resetBaseVelocity(part.body, (0.0, self.belt_speed, 0.0), (0, 0, 0), physicsClientId=cid)
            part.status = ACTIVE
            part.position = np.array(start)
            part.velocity = np.array([0.0, self.belt_speed, 0.0])

    def _create_body(self, part: Part, start: tuple[float, float, float]) -> int:
        """The part's rigid body at ``start``: a cube coloured by class (defects marked); tasks that show class
        otherwise (visual inspection) draw their own."""
        return self.factory.create(
            part.size, part.mass, part.friction, part.part_class, marked=part.part_class > 0, position=start
        )

    # -------------------------------------------------------------------------------------------- step
    def _before_physics(self) -> None:
        self.conveyor.rewind()

    def _held(self, part: Part) -> bool:
        d = part.position - self.robot.ee_position
        return bool(
            abs(d[0]) < HELD_XY
            and abs(d[1]) < HELD_XY
            and abs(d[2]) < HELD_Z
            and self.robot.finger_width < part.size + HELD_WIDTH_MARGIN
        )

    def _resolve(self, part: Part) -> int:
        """New status of an active part (ACTIVE if nothing happened to it)."""
        pos = part.position
        if self._held(part):
            return ACTIVE
        for i, b in enumerate(self.bins):
            if b.contains(pos):
                return MIS_SORTED if (self.sorting and i != part.part_class) else PLACED
        if pos[2] < FELL_OFF_Z:
            return DROPPED
        if Conveyor.on_belt(pos, part.size / 2):
            return MISSED if pos[1] > ZONE_END_Y else ACTIVE
        if np.linalg.norm(part.velocity) < AT_REST_SPEED:
            return DROPPED  # at rest off the belt and outside every bin (table, bin rim)
        return ACTIVE

    def _evaluate(self) -> tuple[float, bool]:
        cid = self.sim.cid
        events = 0.0
        for part in self.parts:
            if part.status != ACTIVE:
                continue
            part.position = np.asarray(p.getBasePositionAndOrientation(part.body, physicsClientId=cid)[0])
            part.velocity = np.asarray(p.getBaseVelocity(part.body, physicsClientId=cid)[0])
            status = self._resolve(part)
            if status == ACTIVE:
                continue
            part.status = status
            if status == PLACED:
                self.metrics.placed += 1
                events += 1.0
            else:
                events -= 1.0
                if status == MIS_SORTED:
                    self.metrics.mis_sorted += 1
                elif status == DROPPED:
                    self.metrics.dropped += 1
                else:
                    self.metrics.missed += 1
                if status in (DROPPED, MISSED):  # off the line: take it away
                    p.removeBody(part.body, physicsClientId=cid)
                    part.body = -1
        self._spawn_due()
        self.metrics.mark_success(self.metrics.placed >= self._required, self.sim.time)
        reward = events
        if self.params.reward_type == "dense":
            reward += self._shaping()
        terminated = all(part.status not in (WAITING, ACTIVE) for part in self.parts)
        return reward, terminated

    def _target_bin(self, part: Part) -> Bin:
        if self.sorting:
            return self.bins[part.part_class]
        return min(self.bins, key=lambda b: float(np.linalg.norm(b.centre[:2] - part.position[:2])))

    def _shaping(self) -> float:
        """Dense term: -0.1 x (gripper-to-oldest-part distance, or held-part-to-its-bin distance)."""
        active = [q for q in self.parts if q.status == ACTIVE]
        if not active:
            return 0.0
        held = [q for q in active if self._held(q)]
        if held:
            b = self._target_bin(held[0])
            above = b.centre + np.array([0.0, 0.0, b.height + 0.05])
            return -0.1 * float(np.linalg.norm(held[0].position - above))
        return -0.1 * float(np.linalg.norm(active[0].position - self.robot.ee_position))

    # ---------------------------------------------------------------------------------------- observation
    def _segmentation_bodies(self) -> list[tuple[int, int]]:
        return [
            *super()._segmentation_bodies(),
            (self.conveyor.body, BELT),
            *((b.body, BIN) for b in self.bins),
            *((q.body, part_class_id(q.part_class)) for q in self.parts if q.body >= 0),
        ]

    def _state_observation_space(self) -> spaces.Space:
        return spaces.Box(-10.0, 10.0, shape=(OBS_DIM,), dtype=np.float32)

    def _state_observation(self) -> np.ndarray:
        r = self.robot
        slots = np.zeros((SLOTS, SLOT_DIM))
        for row, part in zip(slots, [q for q in self.parts if q.status == ACTIVE][:SLOTS]):
            row[0] = 1.0
            row[1:4] = part.position
            row[4:7] = part.velocity
            row[7] = part.size
            row[8 + part.part_class] = 1.0
        head = np.array([*r.ee_position, *r.ee_velocity, r.finger_width, self.belt_speed])
        return np.concatenate([head, slots.ravel(), self._bin_obs]).astype(np.float32)
