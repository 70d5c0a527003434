"""The production cell: floor, table, parts, bins and a conveyor belt (all rigid bodies in one BulletSim).

Layout (metres, world frame; table top at z = 0 and the robot at x = -0.6, as panda-gym):
  * table 1.1 x 0.7 centred at x = -0.3;
  * belt along +y at x = BELT_X, its surface 5 mm above the table, 1.2 m long; parts enter at y = SPAWN_Y and
    are reachable while ZONE_START_Y < y < ZONE_END_Y;
  * bins in a row at x = BIN_X (beside the robot), open boxes whose rims carry their class colour.
Parts are cubes whose colour (and a dark top marking for defect classes) shows their class, so that a camera can
tell them apart.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pybullet as p

from lepton_sim.envs.manufacturing.sim import BulletSim

TABLE_X, TABLE_LENGTH, TABLE_WIDTH, TABLE_HEIGHT = -0.3, 1.1, 0.7, 0.4
BELT_X, BELT_WIDTH, BELT_LENGTH, BELT_THICKNESS = 0.05, 0.14, 1.2, 0.02
BELT_TOP = 0.005  # the belt surface sits just above the table top (z = 0)
SPAWN_Y = -0.42  # parts appear here, upstream of the reachable zone
ZONE_START_Y = -0.3  # the reachable zone of the belt starts here ...
ZONE_END_Y = 0.28  # ... and ends here: a part still on the belt past this is "missed"
BIN_X, BIN_INNER, BIN_WALL, BIN_HEIGHT, BIN_SPACING = -0.26, 0.13, 0.01, 0.05, 0.17
BIN_STACK_ALLOWANCE = 0.07  # a part resting on another part in a bin may stick out above the rim
CLASS_COLOURS = (  # class 0 good = green, then the defect kinds
    (0.15, 0.75, 0.2, 1.0),
    (0.85, 0.15, 0.12, 1.0),
    (0.15, 0.35, 0.9, 1.0),
    (0.95, 0.8, 0.1, 1.0),
)
MARKING_COLOUR = (0.05, 0.05, 0.05, 1.0)
FLOOR_COLOUR = (0.15, 0.15, 0.15, 1.0)
TABLE_COLOUR = (0.95, 0.95, 0.95, 1.0)


def create_floor_and_table(sim: BulletSim) -> tuple[int, int]:
    """panda-gym's plane (at z = -0.4) and table (top at z = 0); both static."""
    cid = sim.cid
    floor = _static_box(cid, (3.0, 3.0, 0.01), (0.0, 0.0, -TABLE_HEIGHT - 0.01), FLOOR_COLOUR)
    table = _static_box(
        cid, (TABLE_LENGTH / 2, TABLE_WIDTH / 2, TABLE_HEIGHT / 2), (TABLE_X, 0.0, -TABLE_HEIGHT / 2), TABLE_COLOUR
    )
    return floor, table


def _static_box(
    cid: int, half: tuple[float, float, float], pos: tuple[float, float, float], rgba: tuple[float, float, float, float]
) -> int:
    col = p.createCollisionShape(p.GEOM_BOX, halfExtents=half, physicsClientId=cid)
    vis = p.createVisualShape(
        p.GEOM_BOX, halfExtents=half, rgbaColor=rgba, specularColor=(0, 0, 0), physicsClientId=cid
    )
    return p.createMultiBody(0.0, col, vis, pos, physicsClientId=cid)


def create_marker(sim: BulletSim, radius: float, rgba: tuple[float, float, float, float]) -> int:
    """A ghost sphere (no collision) that shows a goal."""
    vis = p.createVisualShape(p.GEOM_SPHERE, radius=radius, rgbaColor=rgba, physicsClientId=sim.cid)
    return p.createMultiBody(0.0, -1, vis, (0.0, 0.0, 0.0), physicsClientId=sim.cid)


class PartFactory:
    """Creates cube parts, reusing collision/visual shapes per (size in mm, class).

    PyBullet never frees shapes until the world is reset, so per-part shapes would leak over millions of steps;
    sizes are therefore rounded to 1 mm.
    """

    def __init__(self, sim: BulletSim) -> None:
        self.sim = sim
        self._collision: dict[int, int] = {}
        self._visual: dict[tuple[int, int, bool], int] = {}

    @staticmethod
    def quantise(size: float) -> float:
        return round(size * 1000.0) / 1000.0

    def create(
        self,
        size: float,
        mass: float,
        friction: float,
        part_class: int,
        marked: bool,
        position: tuple[float, float, float],
    ) -> int:
        cid = self.sim.cid
        mm = int(round(size * 1000.0))
        half = mm / 2000.0
        if mm not in self._collision:
            self._collision[mm] = p.createCollisionShape(p.GEOM_BOX, halfExtents=(half,) * 3, physicsClientId=cid)
        key = (mm, part_class, marked)
        if key not in self._visual:
            colour = CLASS_COLOURS[part_class % len(CLASS_COLOURS)]
            if marked:  # a dark stripe on top: "defective" visible to an overhead camera
                self._visual[key] = p.createVisualShapeArray(
                    shapeTypes=[p.GEOM_BOX, p.GEOM_BOX],
                    halfExtents=[(half, half, half), (half * 0.35, half * 1.01, 0.001)],
                    rgbaColors=[colour, MARKING_COLOUR],
                    visualFramePositions=[(0, 0, 0), (0, 0, half + 0.0005)],
                    physicsClientId=cid,
                )
            else:
                self._visual[key] = p.createVisualShape(
                    p.GEOM_BOX, halfExtents=(half,) * 3, rgbaColor=colour, specularColor=(0, 0, 0), physicsClientId=cid
                )
        body = p.createMultiBody(mass, self._collision[mm], self._visual[key], position, physicsClientId=cid)
        p.changeDynamics(body, -1, lateralFriction=friction, physicsClientId=cid)
        return body


@dataclass(frozen=True)
class Bin:
    """An open box on the table; ``centre`` is its floor centre."""

    body: int
    centre: np.ndarray
    inner_half: float
    height: float

    def contains(self, position: np.ndarray) -> bool:
        """Whether a part centre is in the bin: within the walls, below the rim plus a part's height (parts
        pile up on each other)."""
        d = np.abs(position[:2] - self.centre[:2])
        return bool(
            d[0] < self.inner_half
            and d[1] < self.inner_half
            and position[2] < self.centre[2] + self.height + BIN_STACK_ALLOWANCE
        )


def bin_centres(num_bins: int) -> np.ndarray:
    """Floor centres of ``num_bins`` bins in a row along y at x = BIN_X."""
    ys = (np.arange(num_bins) - (num_bins - 1) / 2) * BIN_SPACING
    return np.stack([np.full(num_bins, BIN_X), ys, np.zeros(num_bins)], axis=1)


def create_bins(sim: BulletSim, num_bins: int, colour_by_class: bool) -> list[Bin]:
    """Static open boxes (floor + 4 walls in one body); rims coloured like the class they take."""
    cid = sim.cid
    h, w, t = BIN_INNER / 2, BIN_WALL / 2, BIN_HEIGHT / 2
    halves = [(h + 2 * w, h + 2 * w, w), (w, h + 2 * w, t), (w, h + 2 * w, t), (h, w, t), (h, w, t)]
    offsets = [(0, 0, w), (h + w, 0, t), (-h - w, 0, t), (0, h + w, t), (0, -h - w, t)]
    bins = []
    for i, centre in enumerate(bin_centres(num_bins)):
        colour = CLASS_COLOURS[i] if colour_by_class else (0.45, 0.45, 0.5, 1.0)
        col = p.createCollisionShapeArray(
            [p.GEOM_BOX] * 5, halfExtents=halves, collisionFramePositions=offsets, physicsClientId=cid
        )
        vis = p.createVisualShapeArray(
            [p.GEOM_BOX] * 5,
            halfExtents=halves,
            visualFramePositions=offsets,
            rgbaColors=[(0.3, 0.3, 0.32, 1.0)] + [colour] * 4,
            physicsClientId=cid,
        )
        body = p.createMultiBody(0.0, col, vis, centre.tolist(), physicsClientId=cid)
        bins.append(Bin(body=body, centre=centre + np.array([0.0, 0.0, BIN_WALL]), inner_half=h, height=BIN_HEIGHT))
    return bins


class Conveyor:
    """A belt that carries parts by friction at a set speed.

    The belt is a thin box on a prismatic joint along +y, driven by a velocity motor; parts resting on it are
    dragged by friction (real contact physics, so a part slips while it accelerates and a gripper can hold a
    part against the belt). Every control step the belt is put back at its home position keeping its velocity:
    its surface is uniform, so parts notice nothing, and the belt never runs out of track.
    """

    def __init__(self, sim: BulletSim, ignore_bodies: tuple[int, ...]) -> None:
        cid = sim.cid
        self.sim = sim
        half = (BELT_WIDTH / 2, BELT_LENGTH / 2, BELT_THICKNESS / 2)
        col = p.createCollisionShape(p.GEOM_BOX, halfExtents=half, physicsClientId=cid)
        vis = p.createVisualShape(
            p.GEOM_BOX,
            halfExtents=half,
            rgbaColor=(0.12, 0.12, 0.14, 1.0),
            specularColor=(0, 0, 0),
            physicsClientId=cid,
        )
        self.body = p.createMultiBody(
            baseMass=0.0,
            baseCollisionShapeIndex=-1,
            baseVisualShapeIndex=-1,
            basePosition=(BELT_X, 0.0, BELT_TOP - BELT_THICKNESS / 2),
            linkMasses=[5.0],
            linkCollisionShapeIndices=[col],
            linkVisualShapeIndices=[vis],
            linkPositions=[(0, 0, 0)],
            linkOrientations=[(0, 0, 0, 1)],
            linkInertialFramePositions=[(0, 0, 0)],
            linkInertialFrameOrientations=[(0, 0, 0, 1)],
            linkParentIndices=[0],
            linkJointTypes=[p.JOINT_PRISMATIC],
            linkJointAxis=[(0, 1, 0)],
            physicsClientId=cid,
        )
        p.changeDynamics(self.body, 0, lateralFriction=1.0, physicsClientId=cid)
        for other in ignore_bodies:  # the belt overlaps the table top: only parts and the robot touch it
            p.setCollisionFilterPair(self.body, other, 0, -1, 0, physicsClientId=cid)
        self.speed = 0.0

    def set_speed(self, speed: float) -> None:
        self.speed = float(speed)
        self.rewind()

    def rewind(self) -> None:
        """Put the belt back at home with its velocity; call before every control step."""
        cid = self.sim.cid
        p.resetJointState(self.body, 0, 0.0, self.speed, physicsClientId=cid)
        p.setJointMotorControl2(
            self.body, 0, p.VELOCITY_CONTROL, targetVelocity=self.speed, force=2000.0, physicsClientId=cid
        )

    @staticmethod
    def on_belt(position: np.ndarray, half_size: float) -> bool:
        """Whether a part rests on the belt (its centre at belt height and its footprint overlapping the belt)."""
        return bool(
            abs(position[0] - BELT_X) < BELT_WIDTH / 2 + half_size
            and abs(position[1]) < BELT_LENGTH / 2
            and position[2] < BELT_TOP + half_size + 0.02
        )
