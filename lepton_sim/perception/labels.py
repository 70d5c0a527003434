"""Task labels read from the simulator in the same step as the camera frame, per domain.

Why from the simulator and not from the state observation alone: the observation is what a state policy reads
(scaled, clipped, padded into slots), while a perception model is judged on what is in the scene (is a sector
occupied, how far is the nearest object along a ray, which class is the part). Every env gets the ``state``
label (the state observation, flattened); the domains add theirs:

| domain | label | kind | shape | unit |
|---|---|---|---|---|
| driving | ``obstacle_occupancy`` / ``vehicle_occupancy`` | binary | (8,) sectors | a parked car or cone / another vehicle within ``SECTOR_RANGE`` m of the ego's box centre; sector k spans 45 degrees centred on ``45 k`` degrees counter-clockwise from the heading |
| driving | ``object_distance`` | regression | (R,) lidar rays | m to the nearest object box along each lidar ray (road edges ignored), capped at ``lidar_range`` |
| driving | ``lane_offset`` / ``heading_error`` | regression | (1,) | m from the route lane's centre (left +) / rad, ego minus road heading |
| manufacturing | ``gripper_position`` | regression | (3,) | m, world frame |
| manufacturing (conveyor) | ``part_present``; ``part_position`` (3,), ``part_class`` (), ``defect`` (1,) | binary; regression, class, binary | | the oldest part on the line (the state's first slot); the last three count only where ``part_present`` |
| manufacturing (sorting) | ``part_inspected``; ``inspected_class`` (), ``inspected_defect`` (1,) | binary; class, binary | | the part wholly under the ``inspection`` camera (the oldest if two); the last two count only where ``part_inspected`` |
| manufacturing (pick-place) | ``part_position``, ``target_position`` | regression | (3,) | m |
| manufacturing (reach) | ``target_position`` | regression | (3,) | m |
| traffic | ``queue_length`` / ``vehicle_count`` | regression | (lanes,) | halted (< 0.1 m/s) / all vehicles per incoming lane, signals in SUMO's order, lanes in the observation's order |
| traffic | ``phase`` | class | () or (signals,) | the green phase shown (or switched to during yellow) |

A label with ``mask`` counts (in losses and metrics) only on the frames where that binary label is 1.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Literal

import gymnasium
import numpy as np

Kind = Literal["regression", "binary", "class"]
KINDS: tuple[str, ...] = ("regression", "binary", "class")
STATE = "state"
SECTORS = 8
SECTOR_RANGE = 16.0  # m: the driving topdown camera sees 16 m behind the ego's box centre, 48 m ahead
SECTOR_RAYS = 9  # rays per sector for occupancy (5 degrees apart), besides each object's centre


@dataclass(frozen=True)
class LabelSpec:
    """One label of a dataset: what a head predicts and how it is scored."""

    name: str
    kind: Kind
    shape: tuple[int, ...]
    classes: tuple[str, ...] = ()  # class kind: the name of each class index
    unit: str = ""
    description: str = ""
    mask: str | None = None  # a binary (1,) label: this one counts only where that is 1

    @property
    def size(self) -> int:
        """Values per frame (1 for a scalar)."""
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def dtype(self) -> np.dtype:
        return np.dtype({"regression": np.float32, "binary": np.uint8, "class": np.int64}[self.kind])

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["shape"], out["classes"] = list(self.shape), list(self.classes)
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "LabelSpec":
        if data.get("kind") not in KINDS:
            raise ValueError(f"label {data.get('name')!r}: kind must be one of {', '.join(KINDS)}")
        return cls(
            name=str(data["name"]),
            kind=data["kind"],
            shape=tuple(int(v) for v in data["shape"]),
            classes=tuple(str(c) for c in data.get("classes", ())),
            unit=str(data.get("unit", "")),
            description=str(data.get("description", "")),
            mask=data.get("mask"),
        )


@dataclass(frozen=True)
class StateLayout:
    """Where each part of the state observation sits in the flat ``state`` label: one part (key None) for a Box,
    one per key (the space's order) for a Dict such as a goal-conditioned arm's."""

    parts: tuple[tuple[str | None, tuple[int, ...]], ...]

    @classmethod
    def of(cls, space: gymnasium.Space) -> "StateLayout":
        if isinstance(space, gymnasium.spaces.Dict):
            return cls(tuple((str(k), tuple(int(d) for d in s.shape or ())) for k, s in space.spaces.items()))
        return cls(((None, tuple(int(d) for d in space.shape or ())),))

    @property
    def size(self) -> int:
        return sum(int(np.prod(shape, dtype=np.int64)) for _, shape in self.parts)

    def flatten(self, state: Any) -> np.ndarray:
        """The state observation as one float32 vector."""
        if self.parts[0][0] is None:
            return np.asarray(state, np.float32).reshape(-1)
        return np.concatenate([np.asarray(state[k], np.float32).reshape(-1) for k, _ in self.parts])

    def unflatten(self, flat: np.ndarray) -> Any:
        """A batch ``(N, size)`` back in the state observation's layout (an array, or a dict of arrays)."""
        flat = np.asarray(flat, np.float32)
        n = flat.shape[0]
        if self.parts[0][0] is None:
            return flat.reshape(n, *self.parts[0][1])
        out, start = {}, 0
        for key, shape in self.parts:
            stop = start + int(np.prod(shape, dtype=np.int64))
            out[key] = flat[:, start:stop].reshape(n, *shape)
            start = stop
        return out

    def to_json(self) -> list[dict[str, Any]]:
        return [{"key": k, "shape": list(s)} for k, s in self.parts]

    @classmethod
    def from_json(cls, data: list[dict[str, Any]]) -> "StateLayout":
        return cls(tuple((d["key"], tuple(int(v) for v in d["shape"])) for d in data))


LabelFn = Callable[[Any], dict[str, np.ndarray]]


@dataclass
class Labeller:
    """The labels of one env: ``schema`` declares them, ``read(base_env)`` reads them for the current state."""

    schema: list[LabelSpec]
    read: LabelFn = field(repr=False)


# ------------------------------------------------------------------------------------------------- driving
def _driving(env: Any) -> Labeller:
    p = env.params
    rays = int(p.lidar_rays)
    occupancy = "sectors of 45 degrees, sector k centred 45 k degrees counter-clockwise from the heading"
    schema = [
        LabelSpec(
            "obstacle_occupancy",
            "binary",
            (SECTORS,),
            unit="",
            description=f"a parked car or cone within {SECTOR_RANGE:g} m of the ego's box centre, {occupancy}",
        ),
        LabelSpec(
            "vehicle_occupancy",
            "binary",
            (SECTORS,),
            description=f"another vehicle within {SECTOR_RANGE:g} m of the ego's box centre, {occupancy}",
        ),
        LabelSpec(
            "object_distance",
            "regression",
            (rays,),
            unit="m",
            description=f"distance to the nearest object box along each lidar ray (road edges ignored), capped at "
            f"{p.lidar_range:g} m",
        ),
        LabelSpec("lane_offset", "regression", (1,), unit="m", description="from the route lane's centre, left +"),
        LabelSpec("heading_error", "regression", (1,), unit="rad", description="ego heading minus road heading"),
    ]
    sector_angles = 2.0 * np.pi * (np.arange(SECTORS * SECTOR_RAYS) + 0.5) / (SECTORS * SECTOR_RAYS) - np.pi / SECTORS

    def read(base: Any) -> dict[str, np.ndarray]:
        from lepton_sim.envs.driving.sensors import rays_to_boxes

        sim = base.sim
        v = sim.num_vehicles
        ex, ey, c, s = (a[0] for a in sim.ego_box())
        heading = float(sim.heading[0])
        distance = np.full(rays, float(p.lidar_range))
        occupied = np.zeros((2, SECTORS), np.uint8)
        if sim.num_objects:
            ox, oy = sim.obj_x[0], sim.obj_y[0]
            reach = max(float(p.lidar_range), SECTOR_RANGE) + np.hypot(sim.obj_hl[0], sim.obj_hw[0])
            near = (ox - ex) ** 2 + (oy - ey) ** 2 < reach**2
            k = np.flatnonzero(near)
            if k.size:
                args = (sim.obj_x[0, k], sim.obj_y[0, k], sim.obj_cos[0, k], sim.obj_sin[0, k])
                sizes = (sim.obj_hl[0, k], sim.obj_hw[0, k])
                one = np.ones(k.size)
                hits = rays_to_boxes(ex * one, ey * one, heading * one, *args, *sizes, sim.ray_cos, sim.ray_sin)
                distance = np.minimum(distance, hits.min(axis=0))
                sector_hits = rays_to_boxes(
                    ex * one, ey * one, heading * one, *args, *sizes, np.cos(sector_angles), np.sin(sector_angles)
                )
                hit_sector = np.asarray((sector_hits < SECTOR_RANGE).reshape(k.size, SECTORS, SECTOR_RAYS).any(axis=2))
                dx, dy = ox[k] - ex, oy[k] - ey
                fwd, left = dx * c + dy * s, dy * c - dx * s
                centre_in = np.hypot(fwd, left) < SECTOR_RANGE
                sector = np.floor((np.arctan2(left, fwd) + np.pi / SECTORS) / (2.0 * np.pi / SECTORS)).astype(int)
                hit_sector[np.flatnonzero(centre_in), sector[centre_in] % SECTORS] = True
                vehicle = k < v
                occupied[0] = hit_sector[~vehicle].any(axis=0)
                occupied[1] = hit_sector[vehicle].any(axis=0)
        return {
            "obstacle_occupancy": occupied[0],
            "vehicle_occupancy": occupied[1],
            "object_distance": distance.astype(np.float32),
            "lane_offset": np.array([sim.d[0] - sim.route_d[0]], np.float32),
            "heading_error": np.array([sim.psi[0]], np.float32),
        }

    return Labeller(schema, read)


# ------------------------------------------------------------------------------------------- manufacturing
def _position(name: str, what: str, mask: str | None = None) -> LabelSpec:
    return LabelSpec(name, "regression", (3,), unit="m", description=f"{what} (x, y, z, world frame)", mask=mask)


def _conveyor(env: Any) -> Labeller:
    from lepton_sim.envs.manufacturing.camera import under_inspection
    from lepton_sim.envs.manufacturing.conveyor_env import ACTIVE

    classes = int(getattr(env, "num_classes", 1))
    oldest = "the oldest part on the line (the state observation's first slot)"
    station = "the inspection camera (on the belt, top face all in the image)"
    inspected = "the part under the inspection camera (the oldest if two)"
    schema = [
        _position("gripper_position", "the grasp point"),
        LabelSpec("part_present", "binary", (1,), description=f"a part is on the line: {oldest}"),
        _position("part_position", f"centre of {oldest}", mask="part_present"),
    ]
    if classes >= 2:
        # an env may name its classes (visual inspection: good, defective; waste sorting: the materials)
        names = tuple(getattr(env, "CLASS_NAMES", ())[:classes]) or (
            "good",
            *(f"defect-{c}" for c in range(1, classes)),
        )
        schema += [
            LabelSpec("part_class", "class", (), names, description=f"class of {oldest}", mask="part_present"),
            LabelSpec("defect", "binary", (1,), description=f"{oldest} is defective (class >= 1)", mask="part_present"),
            LabelSpec("part_inspected", "binary", (1,), description=f"a part is wholly in view of {station}"),
            LabelSpec(
                "inspected_class", "class", (), names, description=f"class of {inspected}", mask="part_inspected"
            ),
            LabelSpec(
                "inspected_defect",
                "binary",
                (1,),
                description=f"{inspected} is defective (class >= 1)",
                mask="part_inspected",
            ),
        ]

    def read(base: Any) -> dict[str, np.ndarray]:
        active = [q for q in base.parts if q.status == ACTIVE]
        part = active[0] if active else None
        out: dict[str, np.ndarray] = {
            "gripper_position": np.asarray(base.robot.ee_position, np.float32),
            "part_present": np.array([part is not None], np.uint8),
            "part_position": np.asarray(part.position if part is not None else np.zeros(3), np.float32),
        }
        if classes >= 2:
            cls = part.part_class if part is not None else 0
            out["part_class"] = np.array(cls, np.int64)
            out["defect"] = np.array([cls > 0], np.uint8)
            seen = next((q for q in active if under_inspection(q.position, q.size / 2)), None)
            inspected_cls = seen.part_class if seen is not None else 0
            out["part_inspected"] = np.array([seen is not None], np.uint8)
            out["inspected_class"] = np.array(inspected_cls, np.int64)
            out["inspected_defect"] = np.array([inspected_cls > 0], np.uint8)
        return out

    return Labeller(schema, read)


def _pick_place(env: Any) -> Labeller:
    schema = [
        _position("gripper_position", "the grasp point"),
        _position("part_position", "the part's centre"),
        _position("target_position", "the target marker"),
    ]

    def read(base: Any) -> dict[str, np.ndarray]:
        return {
            "gripper_position": np.asarray(base.robot.ee_position, np.float32),
            "part_position": np.asarray(base.part_position, np.float32),
            "target_position": np.asarray(base.goal, np.float32),
        }

    return Labeller(schema, read)


def _reach(env: Any) -> Labeller:
    schema = [_position("gripper_position", "the end effector"), _position("target_position", "the target marker")]

    def read(base: Any) -> dict[str, np.ndarray]:
        return {
            "gripper_position": np.asarray(base.robot.ee_position, np.float32),
            "target_position": np.asarray(base.goal, np.float32),
        }

    return Labeller(schema, read)


# ------------------------------------------------------------------------------------------------- traffic
def _traffic(env: Any) -> Labeller:
    from lepton_sim.envs.traffic.base import green_phases

    sim = env.sim
    layouts = sim.layouts
    lane_index = np.concatenate([lay.lane_index for lay in layouts])
    lanes = len(lane_index)
    phases = max(lay.movements.num_phases for lay in layouts)
    single = len(layouts) == 1
    order = "incoming lanes, signals in SUMO's order, lanes in the state observation's order"
    schema = [
        LabelSpec("queue_length", "regression", (lanes,), unit="vehicles", description=f"halted vehicles, {order}"),
        LabelSpec("vehicle_count", "regression", (lanes,), unit="vehicles", description=f"vehicles, {order}"),
        LabelSpec(
            "phase",
            "class",
            () if single else (len(layouts),),
            tuple(f"phase-{k}" for k in range(phases)),
            description="green phase shown (or switched to during yellow)"
            + ("" if single else ", per signal in SUMO's order"),
        ),
    ]

    def read(base: Any) -> dict[str, np.ndarray]:
        reads = base.sim._reads  # the step's one pass of lane reads, which the state observation was made from
        if reads is None:
            raise RuntimeError("traffic labels read before the episode started")
        phase = green_phases(base.sim)
        return {
            "queue_length": np.asarray(reads.halting[lane_index], np.float32),
            "vehicle_count": np.asarray(reads.count[lane_index], np.float32),
            "phase": np.asarray(phase[0] if single else phase, np.int64),
        }

    return Labeller(schema, read)


def _domain_labeller(base: Any) -> Callable[[Any], Labeller] | None:
    """The domain's labeller for this env class (imported lazily: each domain pulls in its simulator)."""
    module = type(base).__module__
    if module.startswith("lepton_sim.envs.driving"):
        return _driving
    if module.startswith("lepton_sim.envs.manufacturing"):
        from lepton_sim.envs.manufacturing.conveyor_env import ConveyorEnv
        from lepton_sim.envs.manufacturing.pick_place import ArmPickPlaceEnv
        from lepton_sim.envs.manufacturing.reach import ArmReachEnv

        for cls, make in ((ConveyorEnv, _conveyor), (ArmPickPlaceEnv, _pick_place), (ArmReachEnv, _reach)):
            if isinstance(base, cls):
                return make
        return None
    if module.startswith("lepton_sim.envs.traffic") and hasattr(base, "sim"):
        return _traffic
    return None


def labeller_for(base: Any, state_space: gymnasium.Space) -> tuple[Labeller, StateLayout]:
    """The labels of a base env (``env.unwrapped``): ``state`` first, then its domain's; an env of no known domain
    gets ``state`` alone. ``state_space``: the env's state observation space."""
    layout = StateLayout.of(state_space)
    state = LabelSpec(STATE, "regression", (layout.size,), description="the state observation, flattened")
    make = _domain_labeller(base)
    domain = make(base) if make is not None else Labeller([], lambda _base: {})
    names = [s.name for s in domain.schema]
    assert STATE not in names and len(set(names)) == len(names), names
    return Labeller([state, *domain.schema], domain.read), layout


def check_labels(schema: list[LabelSpec], labels: dict[str, np.ndarray]) -> None:
    """Every declared label present with its shape (a labeller bug shows at the first frame, not in training)."""
    for spec in schema:
        value = labels.get(spec.name)
        if value is None or tuple(np.shape(value)) != spec.shape:
            got = "missing" if value is None else f"shape {tuple(np.shape(value))}"
            raise RuntimeError(f"label {spec.name!r}: expected shape {spec.shape}, {got}")
        if spec.kind == "regression" and not np.all(np.isfinite(value)):
            raise RuntimeError(f"label {spec.name!r}: not finite ({value})")


def sector_of(angle: float) -> int:
    """The occupancy sector of a direction (radians counter-clockwise from the heading)."""
    return int(math.floor((angle + math.pi / SECTORS) / (2.0 * math.pi / SECTORS))) % SECTORS
